//! The generated transports load the registers the spec names, including rbx, which Rust
//! reserves in inline asm, and zero the argument registers a call does not use.
//!
//! `out` to a port without I/O permission faults in a process (#GP, delivered as SIGSEGV),
//! so a signal handler sees the registers exactly as the instruction did, writes the
//! "host's" result into the result register and steps over the instruction. The probe
//! ABI (tests/specs/fixtures/rbx_probe.toml) carries its first argument in rbx, returns in
//! rbx on a second transport, and has a third with more registers than calls use and a
//! port above 0xff (which travels in dx).

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

#[path = "common/segv.rs"]
mod segv;

use std::sync::atomic::{AtomicU64, Ordering};

use pv_tests::rbx_probe::guest::{Pio, PioRetRbx, PioWide, RbxProbeHypercalls};

/// Registers seen at the fault: rax, rbx, rcx, rdx, rsi, rdi, r8, r9, and the opcode.
static SEEN: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
/// Where the handler puts the result: 0 = rax, 1 = rbx.
static RESULT_REG: AtomicU64 = AtomicU64::new(0);
const RESULT: u64 = 0x5eed_0000_0000_0001;

extern "C" fn on_fault(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler, and nothing
    // else touches it while the handler runs.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let g = &mut uc.uc_mcontext.gregs;
    let regs = [
        libc::REG_RAX,
        libc::REG_RBX,
        libc::REG_RCX,
        libc::REG_RDX,
        libc::REG_RSI,
        libc::REG_RDI,
        libc::REG_R8,
        libc::REG_R9,
    ];
    for (slot, r) in SEEN.iter().zip(regs) {
        slot.store(g[r as usize] as u64, Ordering::SeqCst);
    }
    let rip = g[libc::REG_RIP as usize] as usize;
    // SAFETY: rip points at the faulting instruction in this process's mapped text.
    let opcode = unsafe { *(rip as *const u8) };
    SEEN[8].store(u64::from(opcode), Ordering::SeqCst);
    // `out imm8, eax` is E7 ib (2 bytes); `out dx, eax` is EF (1 byte). Anything else is
    // not a fault this test caused: leave rip alone so the process dies loudly.
    let len = match opcode {
        0xe7 => 2,
        0xef => 1,
        _ => 0,
    };
    g[libc::REG_RIP as usize] += len;
    let dst = if RESULT_REG.load(Ordering::SeqCst) == 1 {
        libc::REG_RBX
    } else {
        libc::REG_RAX
    };
    g[dst as usize] = RESULT as i64;
}

fn seen() -> [u64; 9] {
    std::array::from_fn(|i| SEEN[i].load(Ordering::SeqCst))
}

#[test]
fn generated_transports_load_every_register_the_spec_names() {
    let trap = segv::install(on_fault);
    let (a, b, c, d) = (
        0x1111_1111_aaaa_0001,
        0x2222_2222_bbbb_0002,
        0x3333_3333_cccc_0003,
        0x4444_4444_dddd_0004,
    );

    // 1. rbx carries the first argument; the result comes back in rax.
    RESULT_REG.store(0, Ordering::SeqCst);
    // SAFETY: `out` faults here and the handler above stands in for the host.
    let t = unsafe { Pio::new() };
    let r = t.probe(a, b, c, d);
    let s = seen();
    assert_eq!(s[8], 0xe7, "port 0xf4 uses the `out imm8, eax` form");
    assert_eq!(
        s[0],
        pv_tests::rbx_probe::numbers::PROBE,
        "call number in rax"
    );
    assert_eq!(
        [s[1], s[2], s[4], s[5]],
        [a, b, c, d],
        "arguments in rbx, rcx, rsi, rdi"
    );
    assert_eq!(r, RESULT, "result from rax");

    // 2. The result register is rbx: it comes back through the swap.
    RESULT_REG.store(1, Ordering::SeqCst);
    // SAFETY: as above.
    let t = unsafe { PioRetRbx::new() };
    let r = t.probe(a, b, c, d);
    let s = seen();
    assert_eq!(
        [s[2], s[4], s[5], s[6]],
        [a, b, c, d],
        "arguments in rcx, rsi, rdi, r8"
    );
    assert_eq!(r, RESULT, "result from rbx");

    // 3. Registers beyond the calls' arguments are loaded with 0, never left stale, and a
    //    port above 0xff travels in dx.
    RESULT_REG.store(0, Ordering::SeqCst);
    // SAFETY: as above.
    let t = unsafe { PioWide::new() };
    let r = t.probe(a, b, c, d);
    let s = seen();
    assert_eq!(s[8], 0xef, "port 0x4f4 uses the `out dx, eax` form");
    assert_eq!(s[3] & 0xffff, 0x4f4, "port in dx");
    assert_eq!([s[1], s[2], s[4], s[5]], [a, b, c, d]);
    assert_eq!([s[6], s[7]], [0, 0], "unused r8 and r9 are zeroed");
    assert_eq!(r, RESULT);

    trap.restore();
}
