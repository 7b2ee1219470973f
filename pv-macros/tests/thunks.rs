//! Callee-save thunks made by `#[pv_ops]`: called from assembly with sentinels in every
//! caller-saved register, they must hand back all of them but rax, while a plain
//! `extern "C"` call to the same op (the thunk's callee) loses them.

use std::arch::asm;
use std::cell::Cell;

// The whole generated ABI; the tests use a part of it.
#[allow(dead_code)]
mod abi {
    pv_macros::abi!("../spec/lguest.toml");
}

use abi::numbers::EFLAGS_IF;
use abi::pv_ops::IrqOps;

thread_local! {
    static FLAGS: Cell<u64> = const { Cell::new(0) };
    static HALTS: Cell<u32> = const { Cell::new(0) };
}

/// Overwrites every caller-saved register the sentinels sit in, as any compiled function
/// may: without the thunk, the caller sees these values instead of its own.
#[inline(always)]
fn scramble() {
    // SAFETY: only writes registers declared as clobbered.
    unsafe {
        asm!(
            "mov rcx, -1", "mov rdx, -1", "mov rsi, -1", "mov rdi, -1",
            "mov r8, -1", "mov r9, -1", "mov r10, -1", "mov r11, -1",
            "pcmpeqd xmm0, xmm0", "pcmpeqd xmm8, xmm8", "pcmpeqd xmm15, xmm15",
            out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("xmm0") _, out("xmm8") _, out("xmm15") _,
            options(nostack, nomem),
        );
    }
}

struct Guest;

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl IrqOps for Guest {
    fn save_fl() -> u64 {
        scramble();
        FLAGS.get()
    }
    fn restore_fl(flags: u64) {
        FLAGS.set(flags);
        scramble();
    }
    fn irq_disable() {
        FLAGS.set(0);
        scramble();
    }
    fn irq_enable() {
        FLAGS.set(EFLAGS_IF);
        scramble();
    }
    fn safe_halt() {
        HALTS.set(HALTS.get() + 1);
    }
    fn init_irq() {}
}

/// An unsafe callee-save op (from the compile-fail tests' small spec): its thunk is an
/// `unsafe extern "C" fn` and its arguments still arrive.
mod unsafe_op {
    #[allow(dead_code)]
    mod mini {
        pv_macros::abi!("tests/ui/specs/mini.toml");
    }

    pub struct Clock;

    #[pv_macros::pv_ops(spec = "tests/ui/specs/mini.toml")]
    impl mini::pv_ops::TimeOps for Clock {
        fn now() -> u64 {
            super::scramble();
            0
        }
        unsafe fn arm(deadline: *mut u64, at: u64) -> u64 {
            // SAFETY: the caller passes a valid pointer (the op's contract).
            let old = unsafe { deadline.replace(at) };
            super::scramble();
            old
        }
    }
}

/// What a call from assembly saw: the registers after the call, rax last.
#[derive(Debug, PartialEq, Eq)]
struct After {
    gprs: [u64; 8],
    xmm: [u64; 3],
    rax: u64,
}

/// The sentinels: rcx, rdx, rsi, rdi, r8-r11 (rdi doubles as the first argument).
fn sentinels(rdi: u64) -> [u64; 8] {
    [
        0x1111_0000_0000_00c1,
        0x2222_0000_0000_00d2,
        0x3333_0000_0000_0051,
        rdi,
        0x8888_0000_0000_0008,
        0x9999_0000_0000_0009,
        0xaaaa_0000_0000_0010,
        0xbbbb_0000_0000_0011,
    ]
}

const XMM: [u64; 3] = [
    0x0e0e_0000_0000_0000,
    0x0808_0000_0000_0008,
    0x1515_0000_0000_0015,
];

/// Calls `f` from assembly with the sentinels in place and reads every register back.
fn call_from_asm(f: usize, rdi: u64) -> After {
    let [
        mut rcx,
        mut rdx,
        mut rsi,
        mut rdi,
        mut r8,
        mut r9,
        mut r10,
        mut r11,
    ] = sentinels(rdi);
    let [mut x0, mut x8, mut x15] = XMM;
    let rax: u64;
    // SAFETY: `f` is an `extern "C"` function taking at most one u64 (in rdi); every
    // register a C call may change is an output or clobbered, and the stack is aligned
    // for a call (no `nostack`).
    unsafe {
        asm!(
            "call {f}",
            f = in(reg) f,
            inout("rcx") rcx, inout("rdx") rdx, inout("rsi") rsi, inout("rdi") rdi,
            inout("r8") r8, inout("r9") r9, inout("r10") r10, inout("r11") r11,
            inout("xmm0") x0, inout("xmm8") x8, inout("xmm15") x15,
            lateout("rax") rax,
            clobber_abi("C"),
        );
    }
    After {
        gprs: [rcx, rdx, rsi, rdi, r8, r9, r10, r11],
        xmm: [x0, x8, x15],
        rax,
    }
}

#[test]
fn save_fl_thunk_preserves_all_but_rax() {
    FLAGS.set(EFLAGS_IF);
    let after = call_from_asm(Guest::save_fl_callee_save as *const () as usize, 7);
    assert_eq!(after.gprs, sentinels(7));
    assert_eq!(after.xmm, XMM);
    assert_eq!(after.rax, EFLAGS_IF, "save_fl's result arrives in rax");
}

#[test]
fn restore_fl_thunk_passes_its_argument_in_rdi_and_keeps_it() {
    FLAGS.set(0);
    let after = call_from_asm(
        Guest::restore_fl_callee_save as *const () as usize,
        EFLAGS_IF,
    );
    assert_eq!(FLAGS.get(), EFLAGS_IF, "the op saw rdi");
    assert_eq!(after.gprs, sentinels(EFLAGS_IF));
    assert_eq!(after.xmm, XMM);
}

#[test]
fn irq_disable_and_enable_thunks_preserve_registers() {
    FLAGS.set(EFLAGS_IF);
    let after = call_from_asm(Guest::irq_disable_callee_save as *const () as usize, 3);
    assert_eq!(FLAGS.get(), 0);
    assert_eq!(after.gprs, sentinels(3));
    let after = call_from_asm(Guest::irq_enable_callee_save as *const () as usize, 4);
    assert_eq!(FLAGS.get(), EFLAGS_IF);
    assert_eq!(after.gprs, sentinels(4));
    assert_eq!(after.xmm, XMM);
}

#[test]
fn plain_extern_c_call_loses_the_registers() {
    // The thunk's callee on its own: the op's body scrambles the caller-saved registers,
    // so this is what a call site would see without the thunk.
    FLAGS.set(EFLAGS_IF);
    let after = call_from_asm(Guest::save_fl_extern_c as *const () as usize, 7);
    assert_eq!(after.rax, EFLAGS_IF);
    for (i, (got, sent)) in after.gprs.iter().zip(sentinels(7)).enumerate() {
        assert_ne!(
            *got, sent,
            "register {i} of rcx, rdx, rsi, rdi, r8-r11 survived"
        );
    }
    for (got, sent) in after.xmm.iter().zip(XMM) {
        assert_ne!(*got, sent, "a vector register survived");
    }
}

#[test]
fn unsafe_op_thunk_takes_two_arguments_and_keeps_registers() {
    let mut deadline = 5u64;
    // SAFETY: `deadline` is valid for reads and writes.
    let old = unsafe { unsafe_op::Clock::arm_callee_save(&mut deadline, 9) };
    assert_eq!((old, deadline), (5, 9));
    // Through assembly: rdi = pointer, rsi = the new deadline (a sentinel that must
    // survive as well).
    let f = unsafe_op::Clock::arm_callee_save as *const () as usize;
    let after = call_from_asm(f, &raw mut deadline as u64);
    assert_eq!(after.rax, 9, "the old deadline");
    assert_eq!(
        deadline,
        sentinels(0)[2],
        "rsi arrived as the second argument"
    );
    assert_eq!(after.gprs, sentinels(&raw mut deadline as u64));
    assert_eq!(after.xmm, XMM);
}

#[test]
fn thunks_are_ordinary_extern_c_functions_from_rust() {
    FLAGS.set(0);
    Guest::restore_fl_callee_save(EFLAGS_IF);
    assert_eq!(Guest::save_fl_callee_save(), EFLAGS_IF);
    Guest::irq_disable_callee_save();
    assert_eq!(Guest::save_fl_callee_save(), 0);
}

#[test]
fn only_callee_save_ops_get_thunks_and_the_impl_is_kept() {
    // safe_halt is not callee-save: no thunk (a `Guest::safe_halt_callee_save` would not
    // compile), and the trait impl itself is still there for the ops table.
    let table = abi::pv_ops::IrqOpsTable::of::<Guest>();
    (table.safe_halt)();
    assert_eq!(HALTS.get(), 1);
    assert_eq!((table.save_fl)(), FLAGS.get());
}

/// A generic implementation, as a guest crate writes one over its global instance: each
/// instantiation gets its own thunks.
mod generic {
    use super::{EFLAGS_IF, FLAGS, IrqOps, call_from_asm, scramble, sentinels};
    use std::marker::PhantomData;

    pub trait Scale {
        const FACTOR: u64;
    }
    pub struct Twice;
    impl Scale for Twice {
        const FACTOR: u64 = 2;
    }
    pub struct Thrice;
    impl Scale for Thrice {
        const FACTOR: u64 = 3;
    }

    pub struct Ops<S>(PhantomData<S>);

    #[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
    impl<S: Scale> IrqOps for Ops<S> {
        fn save_fl() -> u64 {
            scramble();
            FLAGS.get() * S::FACTOR
        }
        fn restore_fl(flags: u64) {
            FLAGS.set(flags);
            scramble();
        }
        fn irq_disable() {
            FLAGS.set(0);
            scramble();
        }
        fn irq_enable() {
            FLAGS.set(EFLAGS_IF);
            scramble();
        }
        fn safe_halt() {}
        fn init_irq() {}
    }

    #[test]
    fn generic_impls_get_a_thunk_per_instantiation() {
        FLAGS.set(5);
        let two = call_from_asm(Ops::<Twice>::save_fl_callee_save as *const () as usize, 1);
        let three = call_from_asm(Ops::<Thrice>::save_fl_callee_save as *const () as usize, 1);
        assert_eq!((two.rax, three.rax), (10, 15));
        assert_eq!(two.gprs, sentinels(1));
        assert_eq!(three.gprs, sentinels(1));
        let after = call_from_asm(
            Ops::<Twice>::restore_fl_callee_save as *const () as usize,
            9,
        );
        assert_eq!(
            after.gprs,
            sentinels(9),
            "the argument arrives and rdi survives"
        );
        assert_eq!(FLAGS.get(), 9);
    }
}
