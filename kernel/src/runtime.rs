//! Room: the C runtime a freestanding Rust binary links against and this kernel does not
//! have: the memory functions the compiler calls (the linux-gnu target expects libc to have
//! them) and the personality symbol the prebuilt `core` names.

/// The prebuilt core is compiled with unwinding and names this symbol; nothing here unwinds
/// (panic = "abort"), so it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

// `rep movsb`/`rep stosb` keep the compiler from turning these back into calls to
// themselves.

/// `memcpy`.
///
/// # Safety
///
/// As C's: `n` bytes at `src` readable, at `dst` writable, not overlapping.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; rep movsb copies forwards with the direction flag
    // clear, which the ABI guarantees.
    unsafe {
        core::arch::asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _,
            inout("rcx") n => _, options(nostack, preserves_flags));
    }
    dst
}

/// `memmove`.
///
/// # Safety
///
/// As C's: `n` bytes at `src` readable and at `dst` writable.
#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: forwards is safe when dst is below src or past its end.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: the caller's contract; with the direction flag set rep movsb copies
    // backwards from the last byte, then the flag is cleared again as the ABI requires.
    unsafe {
        core::arch::asm!("std", "rep movsb", "cld",
            inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
            inout("rcx") n => _, options(nostack));
    }
    dst
}

/// `memset`.
///
/// # Safety
///
/// As C's: `n` bytes at `dst` writable.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("rep stosb", inout("rdi") dst => _, in("al") c as u8,
            inout("rcx") n => _, options(nostack, preserves_flags));
    }
    dst
}

/// `memcmp`.
///
/// # Safety
///
/// As C's: `n` bytes readable at both.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller's contract; i < n.
        let (x, y) = unsafe { (a.add(i).read(), b.add(i).read()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `bcmp`.
///
/// # Safety
///
/// As C's: `n` bytes readable at both.
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract.
    unsafe { memcmp(a, b, n) }
}
