//! The pv_op function-pointer tables of `Ops<I>`, over one static guest, as a kernel would
//! install them; and the `lguest_iret` entry's no-interrupt window.

mod common;

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use common::{Call, HOST_TSC_KHZ, Loopback, Recorded, TRANSLATE, pa};
use guest::abi::numbers::*;
use guest::abi::pv_ops::{PvOpId, PvOps};
use guest::abi::shared::LguestData;
use guest::abi::types::{FlushScope, ShutdownKind, TsState};
use guest::{DirectMap, Instance, IrqGates, Lguest, Ops, Scratch};
use iced_x86::{Decoder, DecoderOptions, Mnemonic, Register};

static PAGE: LguestData = LguestData::new();
static SCRATCH: Scratch = Scratch::new();
static HOST: LazyLock<Loopback> = LazyLock::new(|| Loopback::new(&PAGE));
static GUEST: LazyLock<Lguest<'static, &'static Loopback, Recorded, DirectMap>> =
    LazyLock::new(|| {
        let leaf1 = core::arch::x86_64::CpuidResult {
            eax: 0x0671,
            ebx: 0,
            ecx: 0,
            edx: !0,
        };
        Lguest::new(
            &PAGE,
            &SCRATCH,
            &*HOST,
            Recorded(vec![((1, 0), leaf1)]),
            TRANSLATE,
        )
    });
static IDT: LazyLock<usize> =
    LazyLock::new(|| Box::leak(Box::new([0u128; IDT_ENTRIES as usize])).as_mut_ptr() as usize);
static HANDLERS: [u64; IRQS as usize] = [0xffff_ffff_8100_1000; IRQS as usize];

struct Kernel;

impl Instance for Kernel {
    type Transport = &'static Loopback;
    type Cpuid = Recorded;
    type Translate = DirectMap;

    fn lguest() -> &'static Lguest<'static, &'static Loopback, Recorded, DirectMap> {
        &GUEST
    }

    fn irq_gates() -> IrqGates<'static> {
        // SAFETY: IDT is a leaked, writable table of IDT_ENTRIES gates.
        unsafe { IrqGates::new(*IDT as *mut u128, 0x10, &HANDLERS) }
    }
}

const OPS: PvOps = Ops::<Kernel>::TABLES;

/// The tests below share one static guest: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_log() -> Vec<Call> {
    let log = HOST.log();
    HOST.clear();
    log
}

#[test]
fn the_tables_run_the_seeds_functions_on_the_static_guest() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // lguest_entry: the first hypercall names the page and the no-interrupt window.
    Ops::<Kernel>::boot(0xffff_8800_0000_0000);
    assert_eq!(
        take_log(),
        vec![Call::sync(LGUEST_INIT, [pa(&PAGE), 0, 0, 0])]
    );
    let window = guest::init::noirq_window();
    assert_eq!(PAGE.noirq_start.load(Ordering::Relaxed), window.start);
    assert_eq!(PAGE.noirq_end.load(Ordering::Relaxed), window.end);
    assert_eq!(
        PAGE.kernel_address.load(Ordering::Relaxed),
        0xffff_8800_0000_0000
    );
    assert_eq!((OPS.time.get_tsc_khz)(), u64::from(HOST_TSC_KHZ));

    // irq
    (OPS.irq.irq_enable)();
    assert_eq!((OPS.irq.save_fl)(), EFLAGS_IF);
    (OPS.irq.irq_disable)();
    assert_eq!(PAGE.irq_enabled.load(Ordering::Relaxed), 0);
    (OPS.irq.restore_fl)(EFLAGS_IF);
    assert_eq!((OPS.irq.save_fl)(), EFLAGS_IF);
    assert!(take_log().is_empty());
    (OPS.irq.safe_halt)();
    (OPS.irq.init_irq)();
    let log = take_log();
    assert_eq!(log[0], Call::sync(HALT, [0; 4]));
    assert_eq!(log.len(), 1 + IRQS as usize);
    assert!(log[1..].iter().all(|c| c.nr == LOAD_IDT_ENTRY));

    // init
    let mut site = [0x90u8; 11];
    let site_addr = std::ptr::from_ref(&PAGE) as u64 - 0x1000;
    assert_eq!(
        (OPS.init.patch)(PvOpId::IrqIrqDisable.id() as u8, 0, &mut site, site_addr),
        10
    );
    assert_eq!((OPS.init.memory_setup)(), "LGUEST");

    // cpu
    (OPS.cpu.write_cr0)(0x8005_003b);
    assert_eq!((OPS.cpu.read_cr0)(), 0x8005_003b);
    (OPS.cpu.clts)();
    assert_eq!(
        (OPS.cpu.cpuid)(1, 0).eax,
        0x0571,
        "family 5 through the table"
    );
    (OPS.cpu.start_context_switch)(core::ptr::null());
    (OPS.cpu.load_sp0)(0xffff_c900_0000_8000);
    (OPS.cpu.end_context_switch)(core::ptr::null());
    assert_eq!(
        take_log(),
        vec![
            Call::sync(TS, [TsState::Set.raw(), 0, 0, 0]),
            Call::sync(TS, [TsState::Clear.raw(), 0, 0, 0]),
            Call::queued(
                SET_STACK,
                [
                    guest::misc::KERNEL_DS | GUEST_PL,
                    0xffff_c900_0000_8000,
                    MAX_STACK_PAGES,
                    0
                ]
            ),
            Call::sync(FLUSH_ASYNC, [0; 4]),
        ]
    );

    // mmu
    (OPS.mmu.lazy_mode_enter)();
    // SAFETY: nothing runs on these page tables.
    unsafe { (OPS.mmu.write_cr3)(0x20_0000) };
    (OPS.mmu.flush_tlb_single)(0x5000);
    (OPS.mmu.flush_tlb_kernel)();
    (OPS.mmu.lazy_mode_leave)();
    assert_eq!((OPS.mmu.read_cr3)(), 0x20_0000);
    PAGE.cr2.store(0xbad0, Ordering::Relaxed);
    assert_eq!((OPS.mmu.read_cr2)(), 0xbad0);
    assert_eq!(
        take_log(),
        vec![
            Call::queued(NEW_PGTABLE, [0x20_0000, 0, 0, 0]),
            Call::queued(SET_PTE, [0x20_0000, 0x5000, 0, 0]),
            Call::queued(FLUSH_TLB, [FlushScope::All.raw(), 0, 0, 0]),
            Call::sync(FLUSH_ASYNC, [0; 4]),
        ]
    );

    // time, apic
    (OPS.time.time_init)();
    assert_eq!(
        PAGE.blocked_interrupts.load(Ordering::Relaxed) & 1,
        0,
        "timer unblocked"
    );
    assert_eq!((OPS.apic.read)(0x30), 0);
    (OPS.apic.icr_write)(0, 0);
    assert_eq!(GUEST.stray_icr_writes(), 1);

    // machine
    (OPS.machine.power_off)();
    (OPS.machine.restart)(c"bye");
    let log = take_log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].args[1], ShutdownKind::Poweroff.raw());
    assert_eq!(log[1].args[1], ShutdownKind::Restart.raw());
}

#[test]
fn lguest_iret_restores_the_flag_inside_the_no_interrupt_window() {
    let entry = guest::init::lguest_iret as *const () as u64;
    let window = guest::init::noirq_window();
    assert!(entry < window.start && window.start < window.end);
    let len = (window.end - entry) as usize;
    // SAFETY: the function's code is mapped and readable, from its entry to the window's
    // end label, which sits right after its last instruction.
    let code = unsafe { std::slice::from_raw_parts(entry as *const u8, len) };
    let mut d = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let insns: Vec<_> = d.iter().collect();
    let mnemonics: Vec<Mnemonic> = insns.iter().map(|i| i.mnemonic()).collect();
    use Mnemonic::*;
    assert_eq!(mnemonics, [Push, Push, Mov, Mov, And, Mov, Pop, Pop, Iretq]);
    // The saved rflags come from the interrupt frame above the two pushes, masked to IF.
    assert_eq!(insns[3].memory_base(), Register::RSP);
    assert_eq!(insns[3].memory_displacement64(), 32);
    assert_eq!(u64::from(insns[4].immediate32()), EFLAGS_IF);
    // The window starts at the store to irq_enabled and ends after the iretq.
    assert_eq!(insns[5].ip(), window.start);
    assert_eq!(insns[5].memory_base(), Register::RCX);
    assert_eq!(insns[8].next_ip(), window.end);
}

#[test]
fn irq_flag_ops_have_callee_save_entry_points() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    HOST.clear();
    // The thunks `#[pv_ops]` made for the callee-save ops: they run the seed's functions...
    Ops::<Kernel>::irq_enable_callee_save();
    assert_eq!(Ops::<Kernel>::save_fl_callee_save(), EFLAGS_IF);
    Ops::<Kernel>::irq_disable_callee_save();
    assert_eq!(PAGE.irq_enabled.load(Ordering::Relaxed), 0);
    Ops::<Kernel>::restore_fl_callee_save(EFLAGS_IF);
    assert_eq!(PAGE.irq_enabled.load(Ordering::Relaxed) as u64, EFLAGS_IF);
    // ...and are the register-saving thunks, not the plain functions: each starts by
    // pushing rcx, the first caller-saved register it keeps.
    for f in [
        Ops::<Kernel>::save_fl_callee_save as *const u8,
        Ops::<Kernel>::restore_fl_callee_save as *const u8,
        Ops::<Kernel>::irq_disable_callee_save as *const u8,
        Ops::<Kernel>::irq_enable_callee_save as *const u8,
    ] {
        // SAFETY: a function's first 16 bytes are mapped code.
        let code = unsafe { std::slice::from_raw_parts(f, 16) };
        let insn = Decoder::with_ip(64, code, f as u64, DecoderOptions::NONE).decode();
        assert_eq!(
            (insn.mnemonic(), insn.op0_register()),
            (Mnemonic::Push, Register::RCX)
        );
    }
    // No hypercall: the flag lives in the shared page.
    assert_eq!(take_log(), vec![]);
}
