//! The generated `hypercall_results` on a real CPU: every register a result may come back
//! in is read back after the trap, rbx (which Rust reserves in inline asm) included, and
//! the wrappers decode them. Like transport_registers.rs: `out` to a port without I/O
//! permission faults in a process (#GP, delivered as SIGSEGV), so a signal handler sees the
//! registers as the instruction did, writes the "host's" answer into the result registers
//! and steps over the instruction. The ABI is tests/specs/fixtures/results_edges.toml,
//! whose `pio` transport passes arguments in rbx, rcx and rsi and returns in rax.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

#[path = "common/segv.rs"]
mod segv;

use std::sync::atomic::{AtomicU64, Ordering};

use pv_tests::results_edges::guest::{
    CallError, Pio, ResultsEdgesHypercalls, Translate, Transport,
};
use pv_tests::results_edges::numbers;
use pv_tests::results_edges::structs::Req;
use pv_tests::results_edges::types::{Mode, Status, SubmitResults};

/// The registers the handler saw: rax, rbx, rcx, rsi.
static SEEN: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// What the handler answers in rax, rbx, rcx, rsi.
static ANSWER: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

const REGS: [libc::c_int; 4] = [libc::REG_RAX, libc::REG_RBX, libc::REG_RCX, libc::REG_RSI];

extern "C" fn on_fault(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler, and nothing
    // else touches it while the handler runs.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let g = &mut uc.uc_mcontext.gregs;
    let rip = g[libc::REG_RIP as usize] as usize;
    // SAFETY: rip points at the faulting instruction in this process's mapped text.
    let opcode = unsafe { *(rip as *const u8) };
    // `out imm8, eax` is E7 ib. Anything else is not a fault this test caused: leave rip
    // alone so the process dies loudly.
    if opcode != 0xe7 {
        return;
    }
    g[libc::REG_RIP as usize] += 2;
    for (i, r) in REGS.iter().enumerate() {
        SEEN[i].store(g[*r as usize] as u64, Ordering::SeqCst);
        g[*r as usize] = ANSWER[i].load(Ordering::SeqCst) as i64;
    }
}

fn answer(regs: [u64; 4]) {
    for (a, v) in ANSWER.iter().zip(regs) {
        a.store(v, Ordering::SeqCst);
    }
}

fn seen() -> [u64; 4] {
    std::array::from_fn(|i| SEEN[i].load(Ordering::SeqCst))
}

/// The request's "guest-physical address": the handler does not read memory.
struct Fake;

impl Translate for Fake {
    fn pa(&self, _va: *const u8) -> u64 {
        0x7000
    }
}

#[test]
fn results_come_back_from_every_register_rbx_included() {
    let trap = segv::install(on_fault);
    // SAFETY: `out` faults here and the handler above stands in for the host.
    let t = unsafe { Pio::new() };

    // Every result register, in place order: rax, then rbx, rcx, rsi.
    assert_eq!(Pio::RESULT_REGS, [0, 3, 1, 6]);
    let a = [0xa0a0, 0xb1b1_0000_0000_0001, 0xc2c2, 0xd3d3];
    answer(a);
    let got = t.hypercall_results(numbers::COUNTER, [11, 22, 33]);
    assert_eq!(
        seen(),
        [numbers::COUNTER, 11, 22, 33],
        "nr in rax, args in rbx, rcx, rsi"
    );
    assert_eq!(got, a, "rax, rbx, rcx, rsi read back");

    // The wrappers: rbx, rcx and rax decoded as their types.
    answer([1, 21 << 40, 7, 0]);
    let mut req = Req { op: 21, done: 0 };
    assert_eq!(
        t.submit(&Fake, &mut req, 9),
        Ok(SubmitResults {
            value: 21 << 40,
            r0: 7
        })
    );
    assert_eq!(
        seen()[1..3],
        [0x7000, 9],
        "the request's address in rbx, `e` in rcx"
    );
    answer([0, 0, 0, 0]);
    assert_eq!(
        t.submit(&Fake, &mut req, 9),
        Err(CallError::Failed(Status::Bad)),
        "0 is `bad` here: success is 1"
    );
    answer([0, 6, 0, 0]);
    assert_eq!(t.mode_of(), Ok(Mode::Slow), "an enum from rbx");
    answer([0, 7, 0, 0]);
    assert_eq!(
        t.mode_of(),
        Err(CallError::BadResult {
            call: "mode_of",
            result: "type",
            value: 7
        })
    );
    answer([0, 0, u64::MAX, 0]);
    assert_eq!(t.counter(), u64::MAX, "a u64 from rcx");
    answer([2, 0, 0, 0]);
    assert_eq!(t.check(5), Err(CallError::Failed(Status::Worse)));

    trap.restore();
}
