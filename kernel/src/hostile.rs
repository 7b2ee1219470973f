//! Room: the hostile guest. The deliberate ABI violations of issue 11's liveness and
//! precise-reason cases, one function each, committed after the kernel's tables are loaded
//! (so traps reach its handlers) and before its workload. Each ends the kernel one way or
//! another; the host must end it first, with the reason its test expects.

use guest::Instance;
use guest::pic::{TRAP_GATE, encode_gate};
use lguest_abi::guest::LguestHypercalls;
use lguest_abi::numbers::{CR0_TS, GUEST_PL, HOST_CS_ENTRY, KERNEL_DS};
use lguest_abi::shared::RING_SIZE;
use x86::irq::BREAKPOINT_VECTOR;

use crate::params::Fault;
use crate::workload::{Failure, NEEDS_CPU, Platform, pv};

/// The breakpoint vector (x86).
const BP_VECTOR: u64 = BREAKPOINT_VECTOR as u64;
/// A flat 64-bit code segment at privilege level 1 (x86 descriptor bits).
const CODE64_DPL1: u64 = 0x00af_bb00_0000_ffff;
/// Where a descriptor's privilege level goes (x86).
const DPL_SHIFT: u64 = 45;
/// A flat 64-bit code segment at the guest kernel's privilege level with the D bit set as
/// well as L, which the CPU refuses to load (x86 descriptor bits).
const CODE64_DB: u64 = 0x00ef_9b00_0000_ffff | (GUEST_PL << DPL_SHIFT);
/// A flat writable data segment at the guest kernel's privilege level, marked not present
/// (x86 descriptor bits). (A present read-only one is no test here: kvm_pvm's iretq does
/// not check that SS is writable.)
const DATA_NOT_PRESENT: u64 = 0x00cf_1200_0000_ffff | (GUEST_PL << DPL_SHIFT);
/// A GDT entry the kernel does not run on (its user data segment).
pub const SPARE_GDT_ENTRY: u64 = 5;
/// When the wild-stack fault's timer fires.
const WILD_STACK_TICK_NS: u64 = 1_000_000;
/// An address no canonical form has.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Commits `fault` if it is one of this room's; returns normally for any other.
pub fn commit<I: Instance, P: Platform>(p: &P, fault: Fault) -> Result<(), Failure> {
    let lg = I::lguest();
    let t = lg.transport();
    match fault {
        Fault::HaltNoTimer => {
            t.halt();
            Err("the host woke a guest that had nothing to wake it")
        }
        Fault::HaltFarTimer => {
            t.set_clockevent(u64::MAX);
            t.halt();
            Err("the host slept through a clock event 584 years away and came back")
        }
        Fault::ExitStorm => loop {
            // A ring of FLUSH_TLB(all) per exit, each making the host re-read the tables.
            (pv().mmu.lazy_mode_enter)();
            for _ in 0..RING_SIZE {
                (pv().mmu.flush_tlb_kernel)();
            }
            (pv().mmu.lazy_mode_leave)();
            let _ = p.now_ns();
        },
        Fault::CallStorm => loop {
            // The cheapest exit there is: an empty ring to drain, nothing to do.
            t.flush_async();
        },
        Fault::WildStack
        | Fault::GateHostSelector
        | Fault::GateDpl1Selector
        | Fault::GateDbSelector
        | Fault::StubBadStack
        | Fault::HypercallIn
        | Fault::Syscall
        | Fault::Sysenter
        | Fault::GateWildOffset
            if !p.mappings_live() =>
        {
            Err(NEEDS_CPU)
        }
        Fault::WildStack => {
            (pv().time.time_init)();
            lg.set_next_event(WILD_STACK_TICK_NS)
                .map_err(|_| "the clock event refused the tick")?;
            crate::workload::irq_enable();
            // SAFETY: deliberately wrong: the stack pointer leaves canonical space and
            // the loop waits for the timer, whose frame the host cannot push.
            unsafe {
                core::arch::asm!("mov rsp, {bad}", "2: jmp 2b", bad = in(reg) NON_CANONICAL,
                    options(noreturn))
            }
        }
        Fault::GateHostSelector | Fault::GateDpl1Selector | Fault::GateDbSelector => {
            let selector = if fault == Fault::GateHostSelector {
                // The host's own code segment, at ring 0.
                (HOST_CS_ENTRY * 8) as u16
            } else {
                let d = if fault == Fault::GateDpl1Selector {
                    CODE64_DPL1
                } else {
                    CODE64_DB
                };
                t.load_gdt_entry(SPARE_GDT_ENTRY, d & 0xffff_ffff, d >> 32);
                (SPARE_GDT_ENTRY * 8) as u16
            };
            let handler = p.exception_handlers().map_or(0, |h| h[BP_VECTOR as usize]);
            let g = encode_gate(handler, selector, TRAP_GATE, GUEST_PL as u8);
            t.load_idt_entry(BP_VECTOR, g as u64, (g >> 64) as u64);
            // SAFETY: deliberately wrong: a breakpoint through a gate the guest cannot run.
            unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
            Err("the host entered a gate with a selector the guest cannot run in")
        }
        Fault::StubBadStack => {
            // Our stack segment's entry, not present from now on: the CPU does not look at
            // it again until something loads SS, which the host's stub does on its way
            // back into our breakpoint handler.
            t.load_gdt_entry(
                KERNEL_DS >> 3,
                DATA_NOT_PRESENT & 0xffff_ffff,
                DATA_NOT_PRESENT >> 32,
            );
            // SAFETY: deliberately wrong: a breakpoint whose return needs a stack segment
            // we just made unusable.
            unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
            Err("the host returned into the guest on a stack segment that is not present")
        }
        Fault::GateWildOffset => {
            let g = encode_gate(
                NON_CANONICAL,
                crate::workload::KERNEL_CS,
                TRAP_GATE,
                GUEST_PL as u8,
            );
            t.load_idt_entry(BP_VECTOR, g as u64, (g >> 64) as u64);
            // SAFETY: deliberately wrong: a breakpoint through a gate to nowhere.
            unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
            Err("the host took a gate with a non-canonical handler")
        }
        Fault::HypercallIn => {
            let port = lguest_abi::guest::Pio::PORT;
            let v: u32;
            // SAFETY: deliberately wrong: a read from the hypercall port, which the I/O
            // bitmap lets through; the host ends the guest.
            unsafe {
                core::arch::asm!("in eax, dx", in("dx") port, out("eax") v,
                    options(nomem, nostack, preserves_flags))
            };
            let _ = v;
            Err("the host let `in` from the hypercall port through")
        }
        Fault::Syscall => {
            // SAFETY: deliberately wrong: lguest guests have no fast system calls.
            unsafe { core::arch::asm!("syscall", out("rcx") _, out("r11") _, options(nostack)) };
            Err("`syscall` returned")
        }
        Fault::Sysenter => {
            // SAFETY: deliberately wrong: as `syscall`.
            unsafe { core::arch::asm!("sysenter", options(nostack)) };
            Err("`sysenter` returned")
        }
        Fault::TsNm => {
            (pv().cpu.write_cr0)((pv().cpu.read_cr0)() | CR0_TS);
            if let Some(traps) = p.emulated_nm() {
                // No CPU to trap: the platform says whether it would, and the handler's
                // part (clts, as on a real CPU) runs here.
                if !traps {
                    return Err("an SSE instruction would run with cr0.TS set: the host lost TS");
                }
                (pv().cpu.clts)();
                return Err(
                    "exception 7 (device not available), emulated in process from the host's TS bit; the handler ran clts",
                );
            }
            // SAFETY: an SSE instruction on registers only; with cr0.TS set it raises #NM,
            // which must reach the kernel's handler (which says so and panics).
            unsafe { core::arch::asm!("addps xmm0, xmm0", out("xmm0") _, options(nomem, nostack)) };
            Err("an SSE instruction ran with cr0.TS set")
        }
        _ => Ok(()),
    }
}
