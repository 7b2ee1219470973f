//! The shadow pool: the pages the host builds its page tables in, in memory of its own that
//! the VMM places outside guest RAM (so no guest entry can name it: `check_gpte` refuses
//! every frame past guest RAM).
//!
//! Pages are handed out by a bump allocator and never freed one by one: dropping a shadow
//! subtree only clears the entry above it, and the pages come back all at once when the
//! pool runs out and the host drops every shadow ([`Pool::reset`]). That keeps every drop
//! O(1), whatever the guest recorded, at the price of refaulting after a reset.

use paging::{ENTRIES, PAGE};

use crate::memory::{GuestMem, MemoryError};

/// A pool page, by index.
pub type PageIdx = u32;

/// Shadow-table pages at a guest-physical address of their own.
#[derive(Debug)]
pub struct Pool {
    mem: GuestMem,
    gpa: u64,
    pages: u32,
    reserved: u32,
    next: u32,
    work: u64,
}

impl Pool {
    /// `pages` zeroed pages seen by the VM at `gpa`; the first `reserved` are never handed out
    /// by [`Pool::alloc`] (the roots live there).
    pub fn new(gpa: u64, pages: u32, reserved: u32) -> Result<Pool, MemoryError> {
        let mem = GuestMem::new(u64::from(pages) * PAGE)?;
        Ok(Pool {
            mem,
            gpa,
            pages,
            reserved: reserved.min(pages),
            next: reserved.min(pages),
            work: 0,
        })
    }

    /// The pool's memory (for the VMM to hand to the VM at [`Pool::gpa`]).
    pub fn mem(&self) -> &GuestMem {
        &self.mem
    }

    /// Where the VM sees page 0.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Pages in the pool.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Pages handed out (the reserved ones included).
    pub fn in_use(&self) -> u32 {
        self.next
    }

    /// Entries read or written so far, pages zeroed counting as [`ENTRIES`] writes: the
    /// measure of the host's work in its own tables.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// The VM's address of `page`.
    pub fn gpa_of(&self, page: PageIdx) -> u64 {
        self.gpa + u64::from(page) * PAGE
    }

    /// The page at VM address `gpa` (an entry's address bits), if it is one of ours.
    pub fn page_of(&self, gpa: u64) -> Option<PageIdx> {
        let off = gpa.checked_sub(self.gpa)?;
        let page = u32::try_from(off / PAGE).ok()?;
        (off % PAGE == 0 && page < self.pages).then_some(page)
    }

    /// A zeroed page, or `None` when the pool is used up.
    pub fn alloc(&mut self) -> Option<PageIdx> {
        if self.next >= self.pages {
            return None;
        }
        let page = self.next;
        self.next += 1;
        self.zero(page);
        Some(page)
    }

    /// Takes back every page but the reserved ones (their contents are the caller's).
    pub fn reset(&mut self) {
        self.next = self.reserved;
    }

    /// Entry `index` of `page`.
    pub fn get(&mut self, page: PageIdx, index: usize) -> u64 {
        self.work += 1;
        // Indexes come from `paging::index` (< ENTRIES) and pages from this pool, so the
        // read is inside; a miss would read as "not present".
        self.mem.read_u64(Self::at(page, index)).unwrap_or(0)
    }

    /// Sets entry `index` of `page`.
    pub fn set(&mut self, page: PageIdx, index: usize, v: u64) {
        self.work += 1;
        // As for `get`: always inside the pool.
        let _ = self.mem.write_u64(Self::at(page, index), v);
    }

    /// Zeroes `page`.
    pub fn zero(&mut self, page: PageIdx) {
        self.work += ENTRIES as u64;
        let _ = self
            .mem
            .write(u64::from(page) * PAGE, &[0u8; PAGE as usize]);
    }

    fn at(page: PageIdx, index: usize) -> u64 {
        u64::from(page) * PAGE + (index.min(ENTRIES - 1) as u64) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_handed_out_zeroed_until_the_pool_is_used_up() {
        let mut p = Pool::new(0x4000_0000, 4, 1).unwrap();
        let a = p.alloc().unwrap();
        assert_eq!(a, 1);
        p.set(a, 3, 0x1234);
        assert_eq!(p.get(a, 3), 0x1234);
        assert_eq!((p.alloc(), p.alloc(), p.alloc()), (Some(2), Some(3), None));
        p.reset();
        assert_eq!(p.alloc(), Some(1));
        assert_eq!(p.get(1, 3), 0, "a page comes back zeroed");
        assert_eq!(p.page_of(p.gpa_of(3)), Some(3));
        assert_eq!(p.page_of(p.gpa_of(4)), None);
        assert_eq!(p.page_of(0x1000), None);
    }
}
