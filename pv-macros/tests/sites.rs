//! `pv_call!` sites: they call through their slot, and the records in `pv_sites` find
//! them with the right op, length and clobbers, over bytes that are the call and its NOPs.

use std::cell::Cell;

use pv_sites::{CALL_LEN, NOP, SiteRecord, Slot, clobber};

// The whole generated ABI; the tests use a part of it.
#[allow(dead_code)]
mod abi {
    pv_macros::abi!("../spec/lguest.toml");
}

use abi::numbers::EFLAGS_IF;
use abi::patch::site_len;
use abi::pv_ops::{IrqOps, PvOpId};

thread_local! {
    static FLAGS: Cell<u64> = const { Cell::new(0) };
    static FLUSHED: Cell<u64> = const { Cell::new(0) };
}

struct Guest;

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl IrqOps for Guest {
    fn save_fl() -> u64 {
        FLAGS.get()
    }
    fn restore_fl(flags: u64) {
        FLAGS.set(flags);
    }
    fn irq_disable() {
        FLAGS.set(0);
    }
    fn irq_enable() {
        FLAGS.set(EFLAGS_IF);
    }
    fn safe_halt() {}
    fn init_irq() {}
}

/// An ordinary (not callee-save) op with an argument, called the C way.
extern "C" fn flush_tlb_single(addr: u64) {
    FLUSHED.set(addr);
}

static SAVE_FL: Slot = Slot::new(Guest::save_fl_callee_save as *const ());
static RESTORE_FL: Slot = Slot::new(Guest::restore_fl_callee_save as *const ());
static IRQ_ENABLE: Slot = Slot::new(Guest::irq_enable_callee_save as *const ());
static FLUSH_TLB_SINGLE: Slot = Slot::new(flush_tlb_single as *const ());

// One function per site, never inlined, so each site (and record) exists exactly once.

#[inline(never)]
fn save_fl() -> u64 {
    // SAFETY: SAVE_FL holds save_fl's callee-save thunk.
    unsafe { pv_macros::pv_call!(spec = "../spec/lguest.toml", slot = SAVE_FL, irq.save_fl()) }
}

#[inline(never)]
fn restore_fl(flags: u64) {
    // SAFETY: RESTORE_FL holds restore_fl's callee-save thunk.
    unsafe {
        pv_macros::pv_call!(
            spec = "../spec/lguest.toml",
            slot = RESTORE_FL,
            irq.restore_fl(flags)
        )
    }
}

#[inline(never)]
fn irq_enable() {
    // SAFETY: IRQ_ENABLE holds a callee-save thunk taking and returning nothing.
    unsafe {
        pv_macros::pv_call!(
            spec = "../spec/lguest.toml",
            slot = IRQ_ENABLE,
            irq.irq_enable()
        )
    }
}

#[inline(never)]
fn flush_single(addr: u64) {
    // SAFETY: FLUSH_TLB_SINGLE holds an extern "C" fn(u64).
    unsafe {
        pv_macros::pv_call!(
            slot = FLUSH_TLB_SINGLE,
            mmu.flush_tlb_single(addr),
            spec = "../spec/lguest.toml",
        )
    }
}

/// The one record of `op` in this program.
fn record(op: PvOpId) -> &'static SiteRecord {
    let found: Vec<&SiteRecord> = pv_sites::iter().filter(|r| r.op == op.id()).collect();
    assert_eq!(found.len(), 1, "records of {op:?}: {found:?}");
    found[0]
}

/// Checks `r`'s bytes: `call qword ptr [rip + slot]`, then NOPs to the recorded length.
fn check_site(r: &SiteRecord, slot: &Slot) {
    // SAFETY: the record came from the linker's section, and this program's text is
    // mapped readable and never written.
    let bytes = unsafe { r.site() };
    assert_eq!(&bytes[..2], &[0xff, 0x15], "call qword ptr [rip + rel32]");
    let rel = i32::from_le_bytes(bytes[2..CALL_LEN].try_into().unwrap());
    let target = (r.addr() + CALL_LEN).wrapping_add_signed(rel as isize);
    assert_eq!(
        target, slot as *const Slot as usize,
        "the call reads its slot"
    );
    assert!(bytes[CALL_LEN..].iter().all(|b| *b == NOP), "{bytes:02x?}");
}

#[test]
fn sites_call_through_their_slots() {
    restore_fl(EFLAGS_IF);
    assert_eq!(FLAGS.get(), EFLAGS_IF);
    assert_eq!(save_fl(), EFLAGS_IF);
    restore_fl(0);
    assert_eq!(save_fl(), 0);
    flush_single(0x7000);
    assert_eq!(FLUSHED.get(), 0x7000);
}

#[test]
fn records_name_op_length_and_clobbers() {
    let r = record(PvOpId::IrqSaveFl);
    // pushf's longest form (the abs32 one) is 7 bytes: one NOP after the 6-byte call.
    assert_eq!(
        usize::from(r.len),
        site_len(PvOpId::IrqSaveFl).max(CALL_LEN)
    );
    assert_eq!(r.len, 7);
    assert_eq!(r.clobbers, clobber::CALLEE_SAVE);
    check_site(r, &SAVE_FL);

    let r = record(PvOpId::IrqRestoreFl);
    assert_eq!(
        usize::from(r.len),
        site_len(PvOpId::IrqRestoreFl).max(CALL_LEN)
    );
    assert_eq!(r.clobbers, clobber::RAX);
    check_site(r, &RESTORE_FL);

    // No template: just the call; an ordinary op may clobber what a C call may.
    let r = record(PvOpId::MmuFlushTlbSingle);
    assert_eq!(usize::from(r.len), CALL_LEN);
    assert_eq!(r.clobbers, clobber::CALLER_SAVED);
    assert_eq!(
        clobber::names(r.clobbers).collect::<Vec<_>>(),
        ["rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"]
    );
    check_site(r, &FLUSH_TLB_SINGLE);

    // sti's longest form is 11 bytes.
    let r = record(PvOpId::IrqIrqEnable);
    assert_eq!(usize::from(r.len), site_len(PvOpId::IrqIrqEnable));
    assert_eq!(r.len, 11);
    check_site(r, &IRQ_ENABLE);

    assert_eq!(pv_sites::sites().len(), 4, "one record per site");
    assert!(pv_sites::iter().all(|r| r.reserved == [0; 3]));
}

#[test]
fn records_point_into_the_site_functions() {
    let r = record(PvOpId::IrqSaveFl);
    let f = save_fl as *const () as usize;
    assert!(
        (f..f + 64).contains(&r.addr()),
        "{:#x} in save_fl at {f:#x}",
        r.addr()
    );
}

#[test]
fn a_repointed_slot_is_called() {
    // What a kernel does for a site it does not patch inline: repoint the slot. This
    // site is irq_enable's; pointing its slot at irq_disable's thunk must show.
    FLAGS.set(0);
    irq_enable();
    assert_eq!(FLAGS.get(), EFLAGS_IF);
    assert_eq!(IRQ_ENABLE.get(), Guest::irq_enable_callee_save as *const ());
    // SAFETY: irq_disable's thunk has irq_enable's signature and is callee-save too.
    unsafe { IRQ_ENABLE.set(Guest::irq_disable_callee_save as *const ()) };
    irq_enable();
    assert_eq!(FLAGS.get(), 0);
    // SAFETY: as above, back to irq_enable's own thunk.
    unsafe { IRQ_ENABLE.set(Guest::irq_enable_callee_save as *const ()) };
}
