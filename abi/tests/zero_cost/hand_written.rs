//! The hand-written half of the zero-cost check: the hypercalls of `generated.rs`, in inline
//! assembly written the way one would without the generator. `tests/zero_cost.rs` compiles
//! it in release mode with the ABI's `numbers` and `types` modules and compares the
//! instructions.
//!
//! A separate crate, so that LLVM cannot merge each function with its identical generated
//! twin.

use core::ffi::CStr;

use crate::numbers::{FLUSH_ASYNC, NOTIFY, SET_PTE, SHUTDOWN};
use crate::types::ShutdownKind;

/// The kernel's direct map: guest-physical = guest-virtual - this.
const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;

/// SET_PTE by hand. LLVM reserves rbx, so the first argument goes in through an exchange.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_hand_set_pte(pgdir: u64, vaddr: u64, pte: u64) {
    // SAFETY: never called; only compiled for its instructions.
    unsafe {
        core::arch::asm!(
            "xchg {a0}, rbx",
            "vmcall",
            "xchg {a0}, rbx",
            a0 = inout(reg) pgdir => _,
            inout("rax") SET_PTE => _,
            in("rcx") vaddr,
            in("rdx") pte,
            in("rsi") 0u64,
            options(nostack),
        );
    }
}

/// SHUTDOWN by hand: the string's guest-physical address, then the call.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_hand_shutdown(reason: &CStr) {
    let reason = (reason.as_ptr() as u64).wrapping_sub(DIRECT_MAP);
    // SAFETY: never called; only compiled for its instructions.
    unsafe {
        core::arch::asm!(
            "xchg {a0}, rbx",
            "vmcall",
            "xchg {a0}, rbx",
            a0 = inout(reg) reason => _,
            inout("rax") SHUTDOWN => _,
            in("rcx") ShutdownKind::Restart.raw(),
            in("rdx") 0u64,
            in("rsi") 0u64,
            options(nostack),
        );
    }
}

/// FLUSH_ASYNC by hand.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_hand_flush_async() {
    // SAFETY: never called; only compiled for its instructions.
    unsafe {
        core::arch::asm!(
            "xchg {a0}, rbx",
            "vmcall",
            "xchg {a0}, rbx",
            a0 = inout(reg) 0u64 => _,
            inout("rax") FLUSH_ASYNC => _,
            in("rcx") 0u64,
            in("rdx") 0u64,
            in("rsi") 0u64,
            options(nostack),
        );
    }
}

/// NOTIFY by hand over port I/O.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_hand_pio_notify(text: &CStr) {
    let addr = (text.as_ptr() as u64).wrapping_sub(DIRECT_MAP);
    // SAFETY: never called; only compiled for its instructions.
    unsafe {
        core::arch::asm!(
            "out 0xf4, eax",
            inout("rax") NOTIFY => _,
            in("rdi") addr,
            in("rsi") 0u64,
            in("rdx") 0u64,
            in("rcx") 0u64,
            options(nostack),
        );
    }
}
