//! Page Table Handling.
//!
//! Now would be a good time to take a rest and grab a coffee or similarly relaxing
//! stimulant. The easy parts are behind us, and the trek gradually winds uphill from here.
//!
//! The CPU maps virtual addresses to physical addresses using "page tables". On x86_64 a
//! virtual address is divided into four 9-bit indexes (one per level: PML4, PDPT, PD, PT)
//! and a 12-bit offset within the page; cr3 holds the physical address of the top level.
//!
//! The kernel spends a lot of time changing both the top-level page directory and
//! lower-level pagetable pages. The Guest doesn't know physical addresses, so while it
//! maintains these page tables exactly like normal, it also needs to keep the Host informed
//! whenever it makes a change: the Host will create the real page tables based on the
//! Guests'.

use core::mem::size_of;
use core::sync::atomic::Ordering;

use x86::bits64::paging::{PDEntry, PML4Entry, PTEntry};

use crate::abi::guest::Transport;
use crate::abi::lazy::{LguestLazyHypercalls, Sent};
use crate::abi::numbers::PAGE_SIZE;
use crate::abi::types::FlushScope;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::{LazyMode, Lguest};

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// The Guest calls this to tell the Host about a changed leaf entry (pte), ie. a page
    /// mapped into a process' address space: the toplevel and address this corresponds
    /// to. The Guest uses one pagetable per process, so we need to tell the Host which one
    /// we're changing (mm->pgd).
    ///
    /// # Safety
    ///
    /// `ptep` must point to a live page-table entry (the one mapping `addr` under `pgd`).
    pub unsafe fn pte_update(&self, pgd: *mut PML4Entry, addr: u64, ptep: *mut PTEntry) -> Sent {
        // SAFETY: the caller promises `ptep` is a live entry.
        let pte = unsafe { ptep.read_volatile() };
        let pgdir = self.pa(pgd);
        self.lazy_hcall(|b| b.set_pte(pgdir, addr, pte.0))
    }

    /// We set the entry then tell the Host the toplevel and address this corresponds to.
    ///
    /// # Safety
    ///
    /// `ptep` must point to a live, writable page-table entry (the one mapping `addr` under
    /// `pgd`).
    pub unsafe fn set_pte_at(
        &self,
        pgd: *mut PML4Entry,
        addr: u64,
        ptep: *mut PTEntry,
        pte: PTEntry,
    ) -> Sent {
        // SAFETY: the caller promises `ptep` is a live, writable entry.
        unsafe {
            ptep.write_volatile(pte);
            self.pte_update(pgd, addr, ptep)
        }
    }

    /// The Guest calls this to set an upper-level entry. Again, we set the entry then tell
    /// the Host which page of entries we changed, and the index of the entry we changed.
    ///
    /// # Safety
    ///
    /// `pmdp` must point to a live, writable upper-level page-table entry.
    pub unsafe fn set_pmd(&self, pmdp: *mut PDEntry, pmd: PDEntry) -> Sent {
        // SAFETY: the caller promises `pmdp` is a live, writable entry.
        unsafe { pmdp.write_volatile(pmd) };
        let pa = self.pa(pmdp);
        let table = pa & !(PAGE_SIZE - 1);
        let index = (pa & (PAGE_SIZE - 1)) / size_of::<PDEntry>() as u64;
        self.lazy_hcall(|b| b.set_pmd(table, index))
    }

    /// There are a couple of legacy places where the kernel sets a PTE, but we don't know
    /// the top level any more. This is useless for us, since we don't know which pagetable
    /// is changing or what address, so we just tell the Host to forget all of them.
    /// Fortunately, this is very rare.
    ///
    /// ... except in early boot when the kernel sets up the initial pagetables, which makes
    /// booting astonishingly slow: 1.83 seconds! So we don't even tell the Host anything
    /// changed until we've done the first page table switch, which brings boot back to 0.25
    /// seconds. Returns `None` before that first switch.
    ///
    /// # Safety
    ///
    /// `ptep` must point to a live, writable page-table entry.
    pub unsafe fn set_pte(&self, ptep: *mut PTEntry, pte: PTEntry) -> Option<Sent> {
        // SAFETY: the caller promises `ptep` is a live, writable entry.
        unsafe { ptep.write_volatile(pte) };
        if self.cr3_changed.load(Ordering::Relaxed) {
            Some(self.lazy_hcall(|b| b.flush_tlb(FlushScope::All)))
        } else {
            None
        }
    }

    /// Unfortunately for Lguest, the pv_mmu_ops for page tables were based on native page
    /// table operations. On native hardware you can set a new page table entry whenever you
    /// want, but if you want to remove one you have to do a TLB flush (a TLB is a little
    /// cache of page table entries kept by the CPU).
    ///
    /// So the set_pte_at() and set_pmd() functions above are only called when a valid entry
    /// is written, not when it's removed (ie. marked not present). Instead, this is where
    /// we come when the Guest wants to remove a page table entry: we tell the Host to set
    /// that entry to 0 (ie. the present bit is zero).
    pub fn flush_tlb_single(&self, addr: u64) -> Sent {
        // Simply set it to zero: if it was not, it will fault back in.
        let pgdir = self.data.pgdir.load(Ordering::Relaxed);
        self.lazy_hcall(|b| b.set_pte(pgdir, addr, 0))
    }

    /// This is what happens after the Guest has removed a large number of entries. This
    /// tells the Host that any of the page table entries for userspace might have changed,
    /// ie. virtual addresses below PAGE_OFFSET.
    pub fn flush_tlb_user(&self) -> Sent {
        self.lazy_hcall(|b| b.flush_tlb(FlushScope::User))
    }

    /// This is called when the kernel page tables have changed. That's not very common, so
    /// it's worth separating this from the user flushing above.
    pub fn flush_tlb_kernel(&self) -> Sent {
        self.lazy_hcall(|b| b.flush_tlb(FlushScope::All))
    }

    /// `paravirt_enter_lazy_mmu()`: page-table hypercalls are queued from now on.
    pub fn enter_lazy_mmu(&self) {
        self.enter_lazy(LazyMode::Mmu);
    }

    /// `lguest_leave_lazy_mmu_mode()`: flush the queued calls and stop queueing.
    pub fn leave_lazy_mmu(&self) {
        self.leave_lazy(LazyMode::Mmu);
    }
}
