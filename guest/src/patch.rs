//! Patching (Powerfully Placating Performance Pedants).
//!
//! We have already seen that pv_ops structures let us replace simple native instructions
//! with calls to the appropriate back end all throughout the kernel. This allows the same
//! kernel to run as a Guest and as a native kernel, but it's slow because of all the
//! indirect branches.
//!
//! Remember that David Wheeler quote about "Any problem in computer science can be solved
//! with another layer of indirection"? The rest of that quote is "... But that usually will
//! create another problem." This is the first of those problems.
//!
//! Our current solution is to allow the paravirt back end to optionally patch over the
//! indirect calls to replace them with something more efficient. We patch the four most
//! commonly called functions: disable interrupts, enable interrupts, restore interrupts and
//! save interrupts. The templates come from the spec (`abi::patch`), each with a
//! RIP-relative form and an absolute form.

use crate::abi::guest::Transport;
use crate::abi::pv_ops::PvOpId;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// Our patch routine is fairly simple. If we have a replacement for op number `op` that
    /// fits `site` (the call site's bytes, at guest-virtual `addr`), we copy it in, pointed
    /// at this guest's shared page, and return how much of the available space we used.
    /// Otherwise we return 0 and leave the site alone: no template, or none that fits
    /// (the site is too short, or the shared page is out of reach of every form).
    ///
    /// The clobber mask is not checked: the templates clobber nothing but the return
    /// register of `save_fl`.
    pub fn patch(&self, op: u8, _clobbers: u16, site: &mut [u8], addr: u64) -> usize {
        let Some(op) = PvOpId::from_id(u16::from(op)) else {
            return 0;
        };
        // The patched instruction runs in the guest's address space, so it needs the
        // shared page's virtual address, not its physical one.
        let page = core::ptr::from_ref(self.data) as u64;
        crate::abi::patch::patch(op, site, addr, page).unwrap_or(0)
    }
}
