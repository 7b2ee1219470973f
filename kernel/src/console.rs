//! The early console: `core::fmt` over the seed's `early_put_chars`, which sends at most
//! `NOTIFY_MAX - 1` bytes per NOTIFY, so text goes out in chunks of that size.

use core::fmt;

use guest::Instance;
use lguest_abi::numbers::NOTIFY_MAX;

const CHUNK: usize = NOTIFY_MAX as usize - 1;

/// A console writer; what is left in its buffer goes out when it is dropped.
pub struct Console<I: Instance> {
    buf: [u8; CHUNK],
    len: usize,
    _guest: core::marker::PhantomData<I>,
}

impl<I: Instance> Console<I> {
    /// An empty writer.
    pub fn new() -> Self {
        Console {
            buf: [0; CHUNK],
            len: 0,
            _guest: core::marker::PhantomData,
        }
    }

    fn flush(&mut self) {
        let mut sent = 0;
        while sent < self.len {
            let n = I::lguest().early_put_chars(&self.buf[sent..self.len]);
            if n == 0 {
                break;
            }
            sent += n;
        }
        self.len = 0;
    }
}

impl<I: Instance> Default for Console<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Instance> fmt::Write for Console<I> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == CHUNK {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl<I: Instance> Drop for Console<I> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints a line on guest `I`'s early console.
#[macro_export]
macro_rules! println {
    ($i:ty, $($arg:tt)*) => {{
        let mut c = $crate::console::Console::<$i>::new();
        let _ = ::core::fmt::Write::write_fmt(&mut c, format_args!($($arg)*));
        let _ = ::core::fmt::Write::write_str(&mut c, "\n");
    }};
}

/// A fixed buffer `core::fmt` can write into, for messages that must be one C string.
pub struct CBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> CBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        CBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text so far, NUL-terminated (cut short to fit).
    pub fn as_cstr(&mut self) -> &core::ffi::CStr {
        let end = self.len.min(N - 1);
        self.buf[end] = 0;
        // Interior NULs would cut the message short; there are none in what we format, and
        // from_bytes_until_nul stops at the first anyway.
        core::ffi::CStr::from_bytes_until_nul(&self.buf[..=end]).unwrap_or(c"?")
    }
}

impl<const N: usize> Default for CBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for CBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len + 1 < N {
                self.buf[self.len] = if b == 0 { b'?' } else { b };
                self.len += 1;
            }
        }
        Ok(())
    }
}
