//! The shadow pool: the pages the host builds its page tables in, in memory of its own that
//! the VMM places outside guest RAM (so no guest entry can name it: `check_gpte` refuses
//! every frame past guest RAM).
//!
//! Pages are handed out by a bump allocator and never freed one by one: dropping a shadow
//! subtree only clears the entry above it, and the pages come back all at once when the
//! pool runs out and the host drops every shadow ([`Pool::reset`]). That keeps every drop
//! O(1), whatever the guest recorded, at the price of refaulting after a reset.

use std::sync::atomic::{AtomicU64, Ordering};

use paging::{ENTRIES, PAGE};

/// A pool page, by index.
pub type PageIdx = u32;

/// One page of shadow entries, page-aligned so the VMM can hand the pool to the VM as is.
/// Atomics because the VM's MMU reads them (and could set accessed bits) behind our back.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Page([AtomicU64; ENTRIES]);

const _: () = assert!(size_of::<Page>() as u64 == PAGE);

impl Page {
    fn new() -> Page {
        Page([const { AtomicU64::new(0) }; ENTRIES])
    }
}

/// Shadow-table pages at a guest-physical address of their own.
#[derive(Debug)]
pub struct Pool {
    mem: Box<[Page]>,
    gpa: u64,
    pages: u32,
    reserved: u32,
    next: u32,
    work: u64,
}

impl Pool {
    /// `pages` zeroed pages seen by the VM at `gpa`; the first `reserved` are never handed out
    /// by [`Pool::alloc`] (the roots live there).
    pub fn new(gpa: u64, pages: u32, reserved: u32) -> Pool {
        let mem = std::iter::repeat_with(Page::new)
            .take(pages as usize)
            .collect();
        Pool {
            mem,
            gpa,
            pages,
            reserved: reserved.min(pages),
            next: reserved.min(pages),
            work: 0,
        }
    }

    /// The pool's memory, [`Pool::bytes`] long and page-aligned, for the VMM to hand to the
    /// VM at [`Pool::gpa`] (read-only: the VM never needs to write it).
    pub fn host_ptr(&self) -> *const u8 {
        self.mem.as_ptr().cast()
    }

    /// Bytes of the pool.
    pub fn bytes(&self) -> u64 {
        u64::from(self.pages) * PAGE
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
    #[inline]
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
        // Pages come from this pool and indexes from `paging::index`; a miss would read as
        // "not present".
        self.entry(page, index)
            .map_or(0, |e| e.load(Ordering::Relaxed))
    }

    /// Entry `index` of `page`, uncounted (for looking, not for the host's work).
    #[inline]
    pub fn peek(&self, page: PageIdx, index: usize) -> u64 {
        self.entry(page, index)
            .map_or(0, |e| e.load(Ordering::Relaxed))
    }

    /// Sets entry `index` of `page`.
    pub fn set(&mut self, page: PageIdx, index: usize, v: u64) {
        self.work += 1;
        if let Some(e) = self.entry(page, index) {
            e.store(v, Ordering::Release);
        }
    }

    /// Zeroes `page`.
    pub fn zero(&mut self, page: PageIdx) {
        self.work += ENTRIES as u64;
        if let Some(p) = self.mem.get(page as usize) {
            for e in &p.0 {
                e.store(0, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    fn entry(&self, page: PageIdx, index: usize) -> Option<&AtomicU64> {
        self.mem.get(page as usize)?.0.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_handed_out_zeroed_until_the_pool_is_used_up() {
        let mut p = Pool::new(0x4000_0000, 4, 1);
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
