//! Just enough ELF64 to load a static kernel: the header, and each `PT_LOAD` segment copied
//! to its physical address. Every offset and size is checked against the file and against
//! guest memory before anything is copied.

use host_stubs::GuestMem;

/// Why a kernel image cannot be loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file for x86_64, or not an executable.
    #[error("not a static x86_64 ELF executable: {0}")]
    NotElf(&'static str),
    /// A header or segment points outside the file.
    #[error("ELF segment {index}: bytes {offset:#x}+{len:#x} are outside the {file_len}-byte file")]
    Truncated {
        /// The segment.
        index: usize,
        /// Its file offset.
        offset: u64,
        /// Its size in the file.
        len: u64,
        /// The file's length.
        file_len: usize,
    },
    /// A segment does not fit where it must go.
    #[error(
        "ELF segment {index}: {len:#x} bytes at guest-physical {paddr:#x} do not fit below {limit:#x}"
    )]
    DoesNotFit {
        /// The segment.
        index: usize,
        /// Its physical address.
        paddr: u64,
        /// Its size in memory.
        len: u64,
        /// Where loadable memory ends.
        limit: u64,
    },
}

/// A loaded image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The entry point.
    pub entry: u64,
    /// The highest guest-physical byte the segments occupy, plus one.
    pub end: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Copies `image`'s loadable segments into `mem` below `limit` (zeroing what the file does
/// not cover) and returns its entry point.
pub fn load(image: &[u8], mem: &GuestMem, limit: u64) -> Result<Loaded, ElfError> {
    if image.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf("no ELF magic"));
    }
    if image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return Err(ElfError::NotElf("not 64-bit little-endian"));
    }
    if u16_at(image, 16) != Some(2) {
        return Err(ElfError::NotElf("not an executable (ET_EXEC)"));
    }
    if u16_at(image, 18) != Some(62) {
        return Err(ElfError::NotElf("not x86_64"));
    }
    let short = ElfError::NotElf("header truncated");
    let entry = u64_at(image, 24).ok_or(short.clone())?;
    let phoff = u64_at(image, 32).ok_or(short.clone())? as usize;
    let phentsize = usize::from(u16_at(image, 54).ok_or(short.clone())?);
    let phnum = usize::from(u16_at(image, 56).ok_or(short)?);
    if phentsize < 56 {
        return Err(ElfError::NotElf("program headers too small"));
    }
    let mut end = 0;
    for index in 0..phnum {
        let ph = phoff
            .checked_add(index * phentsize)
            .ok_or(ElfError::NotElf("program header offset overflows"))?;
        let field = |off: usize| {
            u64_at(image, ph + off).ok_or(ElfError::Truncated {
                index,
                offset: ph as u64,
                len: phentsize as u64,
                file_len: image.len(),
            })
        };
        let kind = u32_at(image, ph).ok_or(ElfError::NotElf("program header truncated"))?;
        if kind != 1 {
            continue; // PT_LOAD only
        }
        let (offset, paddr, filesz, memsz) = (field(8)?, field(24)?, field(32)?, field(40)?);
        let file_end = offset.checked_add(filesz);
        let Some(bytes) = file_end
            .and_then(|e| image.get(offset as usize..usize::try_from(e).ok()?))
            .filter(|_| filesz <= memsz)
        else {
            return Err(ElfError::Truncated {
                index,
                offset,
                len: filesz,
                file_len: image.len(),
            });
        };
        let fits = paddr.checked_add(memsz).is_some_and(|e| e <= limit);
        if !fits {
            return Err(ElfError::DoesNotFit {
                index,
                paddr,
                len: memsz,
                limit,
            });
        }
        let outside = |_| ElfError::DoesNotFit {
            index,
            paddr,
            len: memsz,
            limit: mem.size(),
        };
        mem.write(paddr, bytes).map_err(outside)?;
        let zeros = vec![0u8; (memsz - filesz) as usize];
        mem.write(paddr + filesz, &zeros).map_err(outside)?;
        end = end.max(paddr + memsz);
    }
    if end == 0 {
        return Err(ElfError::NotElf("no loadable segment"));
    }
    Ok(Loaded { entry, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: header, one PT_LOAD of `data` at `paddr` with `memsz`.
    fn elf(paddr: u64, data: &[u8], memsz: u64) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[24..32].copy_from_slice(&paddr.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn loads_a_segment_and_zeroes_its_bss() {
        let mem = GuestMem::new(0x10000).unwrap();
        mem.write(0x2004, &[0xaa; 4]).unwrap();
        let l = load(&elf(0x2000, &[1, 2, 3, 4], 8), &mem, 0x8000).unwrap();
        assert_eq!(
            l,
            Loaded {
                entry: 0x2000,
                end: 0x2008
            }
        );
        let mut b = [0u8; 8];
        mem.read(0x2000, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_images_are_refused_with_the_reason() {
        let mem = GuestMem::new(0x10000).unwrap();
        assert_eq!(
            load(b"MZ\0\0", &mem, 0x8000),
            Err(ElfError::NotElf("no ELF magic"))
        );
        assert!(matches!(
            load(&elf(0x7ffc, &[1; 4], 8), &mem, 0x8000),
            Err(ElfError::DoesNotFit {
                index: 0,
                paddr: 0x7ffc,
                ..
            })
        ));
        let mut cut = elf(0x2000, &[1; 16], 16);
        cut.truncate(cut.len() - 8);
        assert!(matches!(
            load(&cut, &mem, 0x8000),
            Err(ElfError::Truncated { index: 0, .. })
        ));
    }
}
