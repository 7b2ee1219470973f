//! Loading the guest kernel's ELF image into guest memory: the file is read by the `object`
//! crate (gimli-rs's, which rustc and std's backtraces use), each `PT_LOAD` segment is
//! copied here, to its physical address, after every offset and size was checked against
//! the file and against guest memory.
//!
//! Why the copying is written here and not rust-vmm's `linux-loader` (`loader::elf::Elf`,
//! which loads over vm-memory too): for this VMM it would be weaker. It does not zero a
//! segment's memory beyond its file bytes (the bss), relying on fresh memory; it skips
//! `PT_LOAD` segments without file bytes when it computes the image's end, so a bss-only
//! segment could overlap what the VMM puts after the kernel; it checks neither the machine
//! nor the file type; it takes no upper bound (the segments must stay below the boot page
//! tables); and its errors name neither the segment nor the bytes ("Unable to read kernel
//! image"). What it does beyond that, the PVH note and bzImage, this kernel does not use.

use host_stubs::GuestMem;
use object::LittleEndian;
use object::elf::{EM_X86_64, ET_EXEC, FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};

/// Why a kernel image cannot be loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file for x86_64, or not an executable.
    #[error("not a static x86_64 ELF executable: {0}")]
    NotElf(String),
    /// A segment's bytes are outside the file.
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
    /// A segment has more bytes in the file than in memory.
    #[error("ELF segment {index}: {filesz:#x} bytes in the file but {memsz:#x} in memory")]
    FileLargerThanMemory {
        /// The segment.
        index: usize,
        /// Its size in the file.
        filesz: u64,
        /// Its size in memory.
        memsz: u64,
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

/// Copies `image`'s loadable segments into `mem` below `limit` (zeroing what the file does
/// not cover) and returns its entry point and end. Nothing is written unless every segment
/// was checked first.
pub fn load(image: &[u8], mem: &GuestMem, limit: u64) -> Result<Loaded, ElfError> {
    let not_elf = |e: object::read::Error| ElfError::NotElf(e.to_string());
    let header = FileHeader64::<LittleEndian>::parse(image).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    if header.e_type(endian) != ET_EXEC {
        return Err(ElfError::NotElf("not an executable (ET_EXEC)".into()));
    }
    if header.e_machine(endian) != EM_X86_64 {
        return Err(ElfError::NotElf("not x86_64".into()));
    }
    let phdrs = header.program_headers(endian, image).map_err(not_elf)?;
    let mut segments = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != PT_LOAD {
            continue;
        }
        let (offset, filesz) = (ph.p_offset(endian), ph.p_filesz(endian));
        let (paddr, memsz) = (ph.p_paddr(endian), ph.p_memsz(endian));
        let bytes = ph.data(endian, image).map_err(|()| ElfError::Truncated {
            index,
            offset,
            len: filesz,
            file_len: image.len(),
        })?;
        if filesz > memsz {
            return Err(ElfError::FileLargerThanMemory {
                index,
                filesz,
                memsz,
            });
        }
        let limit = limit.min(mem.size());
        if paddr.checked_add(memsz).is_none_or(|end| end > limit) {
            return Err(ElfError::DoesNotFit {
                index,
                paddr,
                len: memsz,
                limit,
            });
        }
        segments.push((index, paddr, bytes, memsz));
    }
    if segments.is_empty() {
        return Err(ElfError::NotElf("no loadable segment".into()));
    }
    let mut end = 0;
    for (index, paddr, bytes, memsz) in segments {
        // Checked above to be inside `mem`: an error here is the memory refusing the write.
        let refused = |_| ElfError::DoesNotFit {
            index,
            paddr,
            len: memsz,
            limit: mem.size(),
        };
        mem.write(paddr, bytes).map_err(refused)?;
        let filesz = bytes.len() as u64;
        let zeros = vec![0u8; (memsz - filesz) as usize];
        mem.write(paddr + filesz, &zeros).map_err(refused)?;
        end = end.max(paddr + memsz);
    }
    Ok(Loaded {
        entry: header.e_entry(endian),
        end,
    })
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
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&paddr.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
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
        assert!(matches!(
            load(b"MZ\0\0", &mem, 0x8000),
            Err(ElfError::NotElf(_))
        ));
        assert_eq!(
            load(&elf(0x7ffc, &[1; 4], 8), &mem, 0x8000),
            Err(ElfError::DoesNotFit {
                index: 0,
                paddr: 0x7ffc,
                len: 8,
                limit: 0x8000
            })
        );
        let mut cut = elf(0x2000, &[1; 16], 16);
        cut.truncate(cut.len() - 8);
        assert_eq!(
            load(&cut, &mem, 0x8000),
            Err(ElfError::Truncated {
                index: 0,
                offset: 120,
                len: 16,
                file_len: 128
            })
        );
        assert_eq!(
            load(&elf(0x2000, &[1; 16], 8), &mem, 0x8000),
            Err(ElfError::FileLargerThanMemory {
                index: 0,
                filesz: 16,
                memsz: 8
            })
        );
        let mut dyn_ = elf(0x2000, &[1; 4], 4);
        dyn_[16] = 3; // ET_DYN
        assert_eq!(
            load(&dyn_, &mem, 0x8000),
            Err(ElfError::NotElf("not an executable (ET_EXEC)".into()))
        );
        let mut arm = elf(0x2000, &[1; 4], 4);
        arm[18] = 183; // EM_AARCH64
        assert_eq!(
            load(&arm, &mem, 0x8000),
            Err(ElfError::NotElf("not x86_64".into()))
        );
    }

    #[test]
    fn a_refused_image_writes_nothing() {
        // Segment 0 fits, segment 1 does not: segment 0 is not copied either.
        let mut f = elf(0x2000, &[7; 4], 4);
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let second: Vec<u8> = f[64..120].to_vec();
        f.splice(120..120, second);
        // Segment 1's data offset and address.
        let ph1 = 120;
        f[64 + 8..64 + 16].copy_from_slice(&176u64.to_le_bytes());
        f[ph1 + 8..ph1 + 16].copy_from_slice(&176u64.to_le_bytes());
        f[ph1 + 24..ph1 + 32].copy_from_slice(&0x9000u64.to_le_bytes());
        let mem = GuestMem::new(0x10000).unwrap();
        assert!(matches!(
            load(&f, &mem, 0x8000),
            Err(ElfError::DoesNotFit { index: 1, .. })
        ));
        let mut b = [0u8; 4];
        mem.read(0x2000, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
    }

    /// The kernel this crate boots, prefixes of it and copies with bytes of its headers
    /// changed: loaded or refused with a reason, never a panic.
    #[test]
    fn the_real_kernel_loads_and_damaged_copies_are_errors_not_panics() {
        let kernel = std::fs::read(env!("LGUEST_KERNEL_ELF")).expect("the built kernel");
        let mem = GuestMem::new(64 << 20).unwrap();
        let loaded = load(&kernel, &mem, 64 << 20).expect("the kernel loads");
        assert!(loaded.end > loaded.entry);
        // Just the kernel's room, so a damaged size cannot make each try write megabytes.
        let room = loaded.end.next_multiple_of(4096);
        let mem = GuestMem::new(room).unwrap();
        let step = (kernel.len() / 97).max(1);
        for len in (0..kernel.len()).step_by(step).chain(1..130) {
            let _ = load(&kernel[..len], &mem, room);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut refused = 0;
        for _ in 0..300 {
            let mut bad = kernel.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % 512.min(bad.len() as u64)) as usize;
                bad[at] = (seed >> 32) as u8;
            }
            refused += usize::from(load(&bad, &mem, room).is_err());
        }
        assert!(refused > 0, "some damage to the headers is noticed");
    }
}
