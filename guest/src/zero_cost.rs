//! Pairs of functions for the zero-cost check (`guest/asm/`, `tests/zero_cost.rs`): each
//! makes one hypercall, once through the generated wrapper and once with hand-written
//! inline assembly. Their compiled instructions must be identical.
//!
//! Not part of the API: these exist only so the compiler emits them as separate symbols.

use crate::abi::guest::{LguestHypercalls, Pio, Vmcall};
use crate::abi::numbers::{FLUSH_ASYNC, NOTIFY, SET_PTE, SHUTDOWN};
use crate::abi::types::ShutdownKind;

/// SET_PTE through the generated `vmcall` wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_set_pte(pgdir: u64, vaddr: u64, pte: u64) {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Vmcall::new() };
    t.set_pte(pgdir, vaddr, pte);
}

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

/// SHUTDOWN (an enum argument) through the generated wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_shutdown(reason: u64) {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Vmcall::new() };
    t.shutdown(reason, ShutdownKind::Restart);
}

/// SHUTDOWN by hand.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_hand_shutdown(reason: u64) {
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

/// FLUSH_ASYNC (no arguments) through the generated wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_flush_async() {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Vmcall::new() };
    t.flush_async();
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

/// NOTIFY through the generated port-I/O wrapper.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_generated_pio_notify(addr: u64) {
    // SAFETY: never called; only compiled for its instructions.
    let t = unsafe { Pio::new() };
    t.notify(addr);
}

/// NOTIFY by hand over port I/O.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn zc_hand_pio_notify(addr: u64) {
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
