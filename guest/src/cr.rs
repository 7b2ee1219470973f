//! The control registers.
//!
//! Intel has four control registers, imaginatively named cr0, cr2, cr3 and cr4. I assume
//! there's a cr1, but it hasn't bothered us yet, so we'll not bother it. The Host needs to
//! know when the Guest wants to change them, so we have a whole series of functions like
//! read_cr0() and write_cr0().

use core::sync::atomic::Ordering;

use crate::abi::guest::Transport;
use crate::abi::lazy::{LguestLazyHypercalls, Sent};
use crate::abi::numbers::CR0_TS;
use crate::abi::types::TsState;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// We start with cr0. cr0 allows you to turn on and off all kinds of basic features,
    /// but Linux only really cares about one: the horrifically-named Task Switched (TS) bit
    /// at bit 3 (ie. 8).
    ///
    /// What does the TS bit do? Well, it causes the CPU to trap (interrupt 7) if the
    /// floating point unit is used. Which allows us to restore FPU state lazily after a
    /// task switch, and Linux uses that gratefully.
    ///
    /// We store cr0 locally because the Host never changes it. The Guest sometimes wants to
    /// read it and we'd prefer not to bother the Host unnecessarily.
    pub fn write_cr0(&self, val: u64) -> Sent {
        let ts = if val & CR0_TS != 0 {
            TsState::Set
        } else {
            TsState::Clear
        };
        let sent = self.lazy_hcall(|b| b.ts(ts));
        self.cr0.store(val, Ordering::Relaxed);
        sent
    }

    /// The guest's cr0, as it last wrote it.
    pub fn read_cr0(&self) -> u64 {
        self.cr0.load(Ordering::Relaxed)
    }

    /// Intel provided a special instruction to clear the TS bit for people too cool to use
    /// write_cr0() to do it. This "clts" instruction is faster, because all the vowels have
    /// been optimized out.
    pub fn clts(&self) -> Sent {
        let sent = self.lazy_hcall(|b| b.ts(TsState::Clear));
        self.cr0.fetch_and(!CR0_TS, Ordering::Relaxed);
        sent
    }

    /// cr2 is the virtual address of the last page fault, which the Guest only ever reads.
    /// The Host kindly writes this into our "struct lguest_data", so we just read it out of
    /// there.
    pub fn read_cr2(&self) -> u64 {
        self.data.cr2.load(Ordering::Relaxed)
    }

    /// cr3 is the current toplevel pagetable page: the principle is the same as cr0. Keep a
    /// local copy, and tell the Host when it changes. The only difference is that our local
    /// copy is in lguest_data because the Host needs to set it upon our initial hypercall.
    ///
    /// # Safety
    ///
    /// `cr3` must be the physical address of a valid top-level page table that maps the
    /// running code.
    pub unsafe fn write_cr3(&self, cr3: u64) -> Sent {
        self.data.pgdir.store(cr3, Ordering::Relaxed);
        let sent = self.lazy_hcall(|b| b.new_pgtable(cr3));
        // See Lguest::set_pte().
        self.cr3_changed.store(true, Ordering::Relaxed);
        sent
    }

    /// The current top-level page table, from the shared page.
    pub fn read_cr3(&self) -> u64 {
        self.data.pgdir.load(Ordering::Relaxed)
    }

    /// cr4 is used to enable and disable PGE, but we don't care.
    pub fn read_cr4(&self) -> u64 {
        0
    }

    /// Writes to cr4 are ignored.
    pub fn write_cr4(&self, _val: u64) {}
}
