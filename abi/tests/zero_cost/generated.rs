//! The generated half of the zero-cost check (`tests/zero_cost.rs`): each function makes one
//! hypercall through a generated wrapper; `hand_written.rs` makes the same hypercalls in
//! hand-written inline assembly. Their compiled instructions must be identical.
//!
//! Compiled by the test alone with the ABI's `numbers`, `types`, `structs` and `guest` modules, in
//! release mode. The hand-written half is a separate crate because inside one codegen unit
//! LLVM merges each identical pair into an alias, leaving only one body to look at.

use core::ffi::CStr;

use crate::guest::{LguestHypercalls, Pio, Translate, Vmcall};
use crate::types::ShutdownKind;

/// A kernel's direct map: guest-physical = guest-virtual - its base. The wrappers of calls
/// with memory arguments take a `&dyn Translate`; inlined, the call is devirtualised.
struct DirectMap;

impl Translate for DirectMap {
    #[inline]
    fn pa(&self, va: *const u8) -> u64 {
        (va as u64).wrapping_sub(0xffff_8000_0000_0000)
    }
}

/// SET_PTE through the generated `vmcall` wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_set_pte(pgdir: u64, vaddr: u64, pte: u64) {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Vmcall::new() };
    t.set_pte(pgdir, vaddr, pte);
}

/// SHUTDOWN (a string in guest memory and an enum argument) through the generated wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_shutdown(reason: &CStr) {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Vmcall::new() };
    t.shutdown(&DirectMap, reason, ShutdownKind::Restart);
}

/// FLUSH_ASYNC (no arguments) through the generated wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_flush_async() {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Vmcall::new() };
    t.flush_async();
}

/// NOTIFY through the generated port-I/O wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_pio_notify(text: &CStr) {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Pio::new() };
    t.notify(&DirectMap, text);
}
