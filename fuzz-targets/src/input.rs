//! Reading structured choices out of fuzzer bytes: past the end, everything reads as zero,
//! so every input is a valid (if short) program.

/// A cursor over the fuzzer's bytes.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, at: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// The next 8 bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, i| v | (u64::from(self.u8()) << (8 * i)))
    }

    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let v = if n <= 256 {
            u64::from(self.u8())
        } else {
            self.u64()
        };
        v % n
    }

    /// Whether the next byte is odd.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// One of `choices` (the first past the end).
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }

    /// A value as hypercall arguments come: small, page-aligned, one of the edges of
    /// address spaces and ranges, `near` plus or minus a little, or anything.
    pub fn value(&mut self, near: u64) -> u64 {
        const EDGES: [u64; 10] = [
            0,
            1,
            u64::MAX,
            1 << 47,
            (1 << 47) - 1,
            0xffff_8000_0000_0000,
            0xffff_ff80_0000_0000,
            0x0000_4000_0000_0000,
            0x8000_0000_0000_0000,
            4096,
        ];
        match self.u8() % 6 {
            0 => u64::from(self.u8()),
            1 => u64::from(self.u8()) << 12,
            2 => self.pick(&EDGES),
            3 => near.wrapping_add(u64::from(self.u8())).wrapping_sub(128),
            4 => near & !0xfff,
            _ => self.u64(),
        }
    }
}
