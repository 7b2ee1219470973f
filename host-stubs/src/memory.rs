//! Guest memory: one region of guest-physical RAM starting at address 0, behind
//! bounds-checked accessors.
//!
//! This is rust-vmm's `vm-memory` (`GuestMemoryMmap`), the same backing a KVM host hands to
//! `KVM_SET_USER_MEMORY_REGION`, so the VM issue can give the very same mapping to the
//! kernel. Every access goes through [`GuestMem::check`] first: the range must lie wholly
//! inside guest memory, with no wrap-around. `vm-memory` checks again underneath; the
//! first check is ours so that the error names the guest-physical range, which becomes the
//! kill reason.
//!
//! The host treats guest memory as hostile and shared: the guest (or, under KVM, another
//! vCPU) may change it at any time. So the accessors copy out, and callers read each value
//! once into a local and act on the local (see the ring drain in [`crate::host`]). The
//! generated decode does the same for memory arguments, through the generated
//! `GuestMemory` trait this type implements.

use std::ptr::NonNull;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::abi::types::Gpa;

/// A guest-physical range the guest named that is not wholly inside guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes at guest-physical {gpa:#x} are not inside guest memory (size {size:#x})")]
pub struct OutOfRange {
    /// Start of the range.
    pub gpa: Gpa,
    /// Its length in bytes.
    pub len: u64,
    /// Size of guest memory.
    pub size: u64,
}

/// Why guest memory could not be set up (a host configuration error, not the guest's).
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// A guest needs at least one byte of memory.
    #[error("guest memory must not be empty")]
    Empty,
    /// The size does not fit the host's address space.
    #[error("guest memory of {0:#x} bytes does not fit this host")]
    TooLarge(u64),
    /// `vm-memory` could not map it.
    #[error("mapping guest memory failed: {0}")]
    Map(#[from] vm_memory::mmap::FromRangesError),
}

/// Guest-physical memory `[0, size)`, less any ranges withdrawn since.
#[derive(Debug)]
pub struct GuestMem {
    mem: GuestMemoryMmap,
    size: u64,
    /// Ranges `[start, end)` taken back with [`GuestMem::withdraw`].
    withdrawn: RwLock<Vec<(Gpa, Gpa)>>,
    /// Whether `withdrawn` has any range: every access checks it, and almost always none
    /// has been withdrawn, so the common case skips the lock.
    any_withdrawn: AtomicBool,
    /// The host address of guest-physical 0: the mapping is one region of `size` bytes,
    /// never moved or shrunk while this lives. (An address, not a pointer, so `GuestMem`
    /// stays `Send` and `Sync`.)
    base: usize,
}

impl GuestMem {
    /// Maps `size` bytes of zeroed anonymous memory as guest RAM at guest-physical 0.
    pub fn new(size: u64) -> Result<Self, MemoryError> {
        if size == 0 {
            return Err(MemoryError::Empty);
        }
        let len = usize::try_from(size).map_err(|_| MemoryError::TooLarge(size))?;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)])?;
        let base = mem
            .get_host_address(GuestAddress(0))
            .map_err(|_| MemoryError::TooLarge(size))? as usize;
        Ok(GuestMem {
            mem,
            size,
            withdrawn: RwLock::new(Vec::new()),
            any_withdrawn: AtomicBool::new(false),
            base,
        })
    }

    /// Size of guest memory in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The `vm-memory` mapping, for a VMM that registers it with KVM.
    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Checks that `[gpa, gpa + len)` lies inside guest memory (and touches no withdrawn
    /// range).
    ///
    /// Unlike the original's `lguest_address_ok`, a range that ends exactly at the end of
    /// memory is fine (the original's strict `<` refused the last byte).
    pub fn check(&self, gpa: Gpa, len: u64) -> Result<(), OutOfRange> {
        match gpa.checked_add(len) {
            Some(end) if end <= self.size && !self.touches_withdrawn(gpa, end) => Ok(()),
            _ => Err(self.out_of_range(gpa, len)),
        }
    }

    /// Takes `[gpa, gpa + len)` away from the guest, as memory hot-unplug or a balloon
    /// does: from now on every access touching it fails like one outside guest memory, so
    /// the host refuses (and names) a guest that still uses it instead of reading memory the
    /// VMM has reclaimed. The VMM unmaps the range from the VM itself; [`GuestMem::mmap`]
    /// still covers it.
    pub fn withdraw(&self, gpa: Gpa, len: u64) -> Result<(), OutOfRange> {
        let end = match gpa.checked_add(len) {
            Some(end) if end <= self.size => end,
            _ => return Err(self.out_of_range(gpa, len)),
        };
        self.withdrawn
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((gpa, end));
        self.any_withdrawn.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether `[start, end)` overlaps a withdrawn range.
    fn touches_withdrawn(&self, start: Gpa, end: Gpa) -> bool {
        if !self.any_withdrawn.load(Ordering::Acquire) {
            return false;
        }
        self.withdrawn
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .any(|&(s, e)| start < e && s < end.max(start.saturating_add(1)))
    }

    /// How many bytes from `gpa` to the end of memory (0 if `gpa` is outside).
    pub fn available(&self, gpa: Gpa) -> u64 {
        self.size.saturating_sub(gpa)
    }

    /// Copies `buf.len()` bytes at `gpa` into `buf`, once.
    pub fn read(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let len = buf.len() as u64;
        self.check(gpa, len)?;
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| self.out_of_range(gpa, len))
    }

    /// Copies `buf` to `gpa`.
    pub fn write(&self, gpa: Gpa, buf: &[u8]) -> Result<(), OutOfRange> {
        let len = buf.len() as u64;
        self.check(gpa, len)?;
        self.mem
            .write_slice(buf, GuestAddress(gpa))
            .map_err(|_| self.out_of_range(gpa, len))
    }

    /// Reads a little-endian `u64` at `gpa` (any alignment; an aligned one is read in one
    /// atomic load, so the guest cannot tear it).
    pub fn read_u64(&self, gpa: Gpa) -> Result<u64, OutOfRange> {
        if gpa.is_multiple_of(8) {
            return self.load_u64(gpa, Ordering::Relaxed);
        }
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u64` at `gpa` (any alignment).
    pub fn write_u64(&self, gpa: Gpa, v: u64) -> Result<(), OutOfRange> {
        if gpa.is_multiple_of(8) {
            return self.store_u64(gpa, v, Ordering::Relaxed);
        }
        self.write(gpa, &v.to_le_bytes())
    }

    /// The host address of the `len` bytes at `gpa`, checked to lie in guest memory and to
    /// be aligned to `len` (as the atomics below need; a misaligned access is refused like
    /// one outside memory, as `vm-memory` refuses it).
    fn atomic_at(&self, gpa: Gpa, len: u64) -> Result<usize, OutOfRange> {
        self.check(gpa, len)?;
        if !gpa.is_multiple_of(len) {
            return Err(self.out_of_range(gpa, len));
        }
        Ok(self.base + gpa as usize)
    }

    /// Atomically loads the `u8` at `gpa`.
    ///
    /// The shared page is a struct of atomics on the guest's side; the host uses atomic
    /// accesses of the same size on the same fields, so the two never race non-atomically.
    pub fn load_u8(&self, gpa: Gpa, order: Ordering) -> Result<u8, OutOfRange> {
        let at = self.atomic_at(gpa, 1)?;
        // SAFETY: `atomic_at` checked the byte lies in the live mapping (which outlives
        // `self`'s borrow); this process touches guest memory only through atomics and
        // vm-memory's volatile copies, never through references.
        Ok(unsafe { AtomicU8::from_ptr(at as *mut u8) }.load(order))
    }

    /// Atomically loads the naturally aligned `u32` at `gpa`.
    pub fn load_u32(&self, gpa: Gpa, order: Ordering) -> Result<u32, OutOfRange> {
        let at = self.atomic_at(gpa, 4)?;
        // SAFETY: as in `load_u8`, and `atomic_at` checked the alignment.
        Ok(unsafe { AtomicU32::from_ptr(at as *mut u32) }.load(order))
    }

    /// Atomically loads the naturally aligned `u64` at `gpa`.
    pub fn load_u64(&self, gpa: Gpa, order: Ordering) -> Result<u64, OutOfRange> {
        let at = self.atomic_at(gpa, 8)?;
        // SAFETY: as in `load_u8`, and `atomic_at` checked the alignment.
        Ok(unsafe { AtomicU64::from_ptr(at as *mut u64) }.load(order))
    }

    /// Atomically stores a `u8` at `gpa`.
    pub fn store_u8(&self, gpa: Gpa, v: u8, order: Ordering) -> Result<(), OutOfRange> {
        let at = self.atomic_at(gpa, 1)?;
        // SAFETY: as in `load_u8`.
        unsafe { AtomicU8::from_ptr(at as *mut u8) }.store(v, order);
        Ok(())
    }

    /// Atomically stores a naturally aligned `u32` at `gpa`.
    pub fn store_u32(&self, gpa: Gpa, v: u32, order: Ordering) -> Result<(), OutOfRange> {
        let at = self.atomic_at(gpa, 4)?;
        // SAFETY: as in `load_u8`, and `atomic_at` checked the alignment.
        unsafe { AtomicU32::from_ptr(at as *mut u32) }.store(v, order);
        Ok(())
    }

    /// Atomically stores a naturally aligned `u64` at `gpa`.
    pub fn store_u64(&self, gpa: Gpa, v: u64, order: Ordering) -> Result<(), OutOfRange> {
        let at = self.atomic_at(gpa, 8)?;
        // SAFETY: as in `load_u8`, and `atomic_at` checked the alignment.
        unsafe { AtomicU64::from_ptr(at as *mut u64) }.store(v, order);
        Ok(())
    }

    /// The host address backing `[gpa, gpa + len)`, after checking the range.
    ///
    /// The pointer stays valid as long as this `GuestMem` lives (the mapping is never
    /// moved or shrunk). Dereferencing it is the caller's business, and its `unsafe`.
    pub fn host_ptr(&self, gpa: Gpa, len: u64) -> Result<NonNull<u8>, OutOfRange> {
        self.check(gpa, len)?;
        self.mem
            .get_host_address(GuestAddress(gpa))
            .ok()
            .and_then(NonNull::new)
            .ok_or_else(|| self.out_of_range(gpa, len))
    }

    /// The guest-physical address of host address `ptr`, if `[ptr, ptr + len)` lies in
    /// guest memory: the inverse of [`GuestMem::host_ptr`].
    pub fn gpa_of(&self, ptr: *const u8, len: u64) -> Option<Gpa> {
        let base = self.mem.get_host_address(GuestAddress(0)).ok()? as usize;
        let gpa = (ptr as usize).checked_sub(base)? as u64;
        self.check(gpa, len).ok().map(|()| gpa)
    }

    fn out_of_range(&self, gpa: Gpa, len: u64) -> OutOfRange {
        OutOfRange {
            gpa,
            len,
            size: self.size,
        }
    }
}

/// Implements a generated `GuestMemory` trait for [`GuestMem`], over its bounds-checked
/// accessors: the generated `decode` copies memory arguments out through it, once each, and
/// `run` writes `out` ones back. The trait is generated per ABI (in its `host` module), so
/// each ABI's crate implements its own: host-stubs does lguest's with this macro, and a crate
/// that generates another ABI's host writes `host_stubs::guest_memory_for!(my_abi::host);`
/// (the trait is that crate's, so the orphan rule allows the impl there). For ABIs with
/// guest-physical memory arguments only: one with virtual ones also needs `translate`.
#[macro_export]
macro_rules! guest_memory_for {
    ($($host:ident)::+) => {
        impl $($host)::+::GuestMemory for $crate::memory::GuestMem {
            fn read(
                &self,
                gpa: u64,
                buf: &mut [u8],
            ) -> ::core::result::Result<(), $($host)::+::OutsideMemory> {
                $crate::memory::GuestMem::read(self, gpa, buf)
                    .map_err(|_| $($host)::+::OutsideMemory)
            }

            fn write(
                &self,
                gpa: u64,
                buf: &[u8],
            ) -> ::core::result::Result<(), $($host)::+::OutsideMemory> {
                $crate::memory::GuestMem::write(self, gpa, buf)
                    .map_err(|_| $($host)::+::OutsideMemory)
            }

            fn contains(&self, gpa: u64, len: u64) -> bool {
                $crate::memory::GuestMem::check(self, gpa, len).is_ok()
            }
        }
    };
}

guest_memory_for!(crate::abi::host);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_memory_is_refused() {
        assert!(matches!(GuestMem::new(0), Err(MemoryError::Empty)));
    }

    #[test]
    fn ranges_are_checked_exactly_at_the_end_and_for_wrap_around() {
        let m = GuestMem::new(0x2000).unwrap();
        assert_eq!(m.check(0x1ff8, 8), Ok(()));
        assert_eq!(m.check(0x2000, 0), Ok(()));
        assert!(m.check(0x1ff9, 8).is_err());
        assert!(m.check(u64::MAX, 2).is_err());
        let e = m.read_u64(0x1ffc).unwrap_err();
        assert_eq!(
            e,
            OutOfRange {
                gpa: 0x1ffc,
                len: 8,
                size: 0x2000
            }
        );
        assert!(e.to_string().contains("0x1ffc"));
    }

    #[test]
    fn reads_see_writes_and_atomics_agree_with_bytes() {
        let m = GuestMem::new(0x1000).unwrap();
        m.write_u64(0x10, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u64(0x10).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(
            m.load_u64(0x10, Ordering::Relaxed).unwrap(),
            0x1122_3344_5566_7788
        );
        assert_eq!(m.load_u8(0x10, Ordering::Relaxed).unwrap(), 0x88);
        m.store_u32(0x20, 0x200, Ordering::Relaxed).unwrap();
        let mut b = [0u8; 4];
        m.read(0x20, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), 0x200);
    }

    #[test]
    fn withdrawn_ranges_refuse_every_access_touching_them() {
        let m = GuestMem::new(0x3000).unwrap();
        m.write_u64(0x1ff8, 7).unwrap();
        m.withdraw(0x2000, 0x10).unwrap();
        // Neighbours still work; anything overlapping, even by one byte or empty, does not.
        assert_eq!(m.read_u64(0x1ff8), Ok(7));
        m.write_u64(0x2010, 1).unwrap();
        assert!(m.check(0x1ff9, 8).is_err());
        assert!(m.check(0x200f, 1).is_err());
        assert!(m.check(0x2008, 0).is_err());
        assert!(m.store_u8(0x2000, 1, Ordering::Relaxed).is_err());
        assert!(m.load_u64(0x2008, Ordering::Relaxed).is_err());
        assert!(m.host_ptr(0x1000, 0x2000).is_err());
        // Only memory the guest has can be withdrawn.
        assert!(m.withdraw(0x2ff0, 0x20).is_err());
    }

    #[test]
    fn the_generated_decode_reads_through_it_bounds_checked() {
        use crate::abi::host::{GuestMemory, OutsideMemory};
        let m = GuestMem::new(0x2000).unwrap();
        m.write(0x1ffc, b"abcd").unwrap();
        let mut b = [0u8; 4];
        assert_eq!(GuestMemory::read(&m, 0x1ffc, &mut b), Ok(()));
        assert_eq!(&b, b"abcd");
        assert_eq!(GuestMemory::read(&m, 0x1ffd, &mut b), Err(OutsideMemory));
        assert_eq!(GuestMemory::write(&m, u64::MAX, &b), Err(OutsideMemory));
        assert!(GuestMemory::contains(&m, 0x1000, 0x1000));
        assert!(!GuestMemory::contains(&m, 0x1001, 0x1000));
        m.withdraw(0x1000, 8).unwrap();
        assert!(!GuestMemory::contains(&m, 0x1004, 1));
    }

    #[test]
    fn host_pointers_round_trip_to_guest_physical_addresses() {
        let m = GuestMem::new(0x3000).unwrap();
        let p = m.host_ptr(0x1234, 16).unwrap();
        assert_eq!(m.gpa_of(p.as_ptr(), 16), Some(0x1234));
        assert_eq!(m.gpa_of(p.as_ptr(), 0x3000), None);
        assert!(m.host_ptr(0x2ff8, 16).is_err());
    }
}
