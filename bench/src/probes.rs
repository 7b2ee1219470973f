//! Out-of-line functions that exist to be measured, each under an unmangled name:
//!
//! - `pvb_typed_*` / `pvb_lazy_*` / `pvb_guest_lazy`: what `callgrind_probe` runs under
//!   valgrind (the raw twins live in that binary: a separate crate, so LLVM cannot merge an
//!   identical pair into one symbol);
//! - `pvb_size_*`: never called; `bench/size.sh` reads their sizes with `nm`, one per
//!   generated wrapper and lazy variant over the real `vmcall` transport, plus a raw
//!   `Transport::hypercall` twin of each wrapper.

use core::ffi::CStr;

use guest::abi::guest::{LguestHypercalls, Transport, Vmcall};
use guest::abi::lazy::{Batch, LguestLazyHypercalls, Sent};
use guest::abi::numbers;
use guest::abi::structs::TlsDescriptor;
use guest::abi::types::{FlushScope, Gpa, Gva, ShutdownKind, TsState};
use guest::{DirectMap, Lguest, NativeCpuid, Translate};

use crate::fixture::{Loop, Recorder};

/// SET_PTE through the generated typed wrapper, on the minimal transport.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_typed_recorder(t: &Recorder, pgdir: Gpa, vaddr: Gva, pte: u64) {
    t.set_pte(pgdir, vaddr, pte);
}

/// SET_CLOCKEVENT through the generated typed wrapper, into the reference host.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_typed_loopback(t: &Loop<'_>, delta: u64) {
    t.set_clockevent(delta);
}

/// Queues SET_PTE with the generated lazy variant (a `Batch` in lazy mode).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_lazy_set_pte(b: &Batch<'_, Recorder>, pgdir: Gpa, vaddr: Gva, pte: u64) -> Sent {
    b.set_pte(pgdir, vaddr, pte)
}

/// A cursor for [`pvb_lazy_by_hand`].
#[derive(Debug, Default)]
pub struct HandCursor(pub std::sync::atomic::AtomicUsize);

/// Not generated: the generated `Batch::call`/`queue` for SET_PTE written out by hand over
/// the same page, the same steps in the same order, with the cursor and page passed in
/// registers instead of through a `Batch`. Written when the generated `RingCursor::slot`
/// was a cross-crate call; kept as the hand-written reference for the generated queue.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_lazy_by_hand(
    t: &Recorder,
    page: &guest::abi::shared::LguestData,
    cursor: &HandCursor,
    lazy: bool,
    pgdir: Gpa,
    vaddr: Gva,
    pte: u64,
) -> Sent {
    use guest::abi::shared::{RING_DONE, RING_READY, RING_SIZE};
    use std::sync::atomic::Ordering;
    let direct = || {
        t.hypercall(numbers::SET_PTE, [pgdir, vaddr, pte, 0]);
        Sent::Direct
    };
    if !lazy {
        return direct();
    }
    let i = cursor.0.load(Ordering::Relaxed) % RING_SIZE;
    let status = &page.hcall_status[i];
    if status.load(Ordering::Acquire) != RING_DONE {
        return direct();
    }
    let slot = &page.hcalls[i];
    slot.nr.store(numbers::SET_PTE, Ordering::Relaxed);
    for (a, v) in slot.args.iter().zip([pgdir, vaddr, pte]) {
        a.store(v, Ordering::Relaxed);
    }
    status.store(RING_READY, Ordering::Release);
    cursor.0.store((i + 1) % RING_SIZE, Ordering::Relaxed);
    Sent::Queued(i)
}

/// The guest crate's whole lazy path for one call: `Lguest::load_sp0` (SET_STACK) in lazy
/// mode, i.e. save the interrupt flag, disable, lock the cursor, queue, unlock, restore.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_guest_lazy(g: &Lguest<'_, Recorder, NativeCpuid, DirectMap>, sp0: u64) -> Sent {
    g.load_sp0(sp0)
}

macro_rules! size_probes {
    ($( $name:ident $wrap:ident $raw:ident $nr:ident ($($a:ident: $t:ty),*) [$($z:literal),*] ;)*) => {$(
        #[doc = concat!("`", stringify!($name), "` through its generated wrapper (size probe).")]
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub fn $wrap(t: &Vmcall, $($a: $t),*) {
            t.$name($($a),*);
        }

        #[doc = concat!("`", stringify!($name), "` as a raw `Transport::hypercall` (size probe).")]
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub fn $raw(t: &Vmcall, $($a: u64),*) {
            Transport::hypercall(t, numbers::$nr, [$($a,)* $($z),*]);
        }
    )*};
}

size_probes! {
    flush_async pvb_size_wrap_flush_async pvb_size_raw_flush_async FLUSH_ASYNC () [0, 0, 0, 0];
    lguest_init pvb_size_wrap_lguest_init pvb_size_raw_lguest_init LGUEST_INIT (data: Gpa) [0, 0, 0];
    new_pgtable pvb_size_wrap_new_pgtable pvb_size_raw_new_pgtable NEW_PGTABLE (pgdir: Gpa) [0, 0, 0];
    flush_tlb pvb_size_wrap_flush_tlb pvb_size_raw_flush_tlb FLUSH_TLB (scope: FlushScope) [0, 0, 0];
    load_idt_entry pvb_size_wrap_load_idt_entry pvb_size_raw_load_idt_entry LOAD_IDT_ENTRY (vector: u64, lo: u64, hi: u64) [0];
    set_stack pvb_size_wrap_set_stack pvb_size_raw_set_stack SET_STACK (ss: u64, sp: Gva, pages: u64) [0];
    ts pvb_size_wrap_ts pvb_size_raw_ts TS (state: TsState) [0, 0, 0];
    set_clockevent pvb_size_wrap_set_clockevent pvb_size_raw_set_clockevent SET_CLOCKEVENT (delta: u64) [0, 0, 0];
    halt pvb_size_wrap_halt pvb_size_raw_halt HALT () [0, 0, 0, 0];
    set_pte pvb_size_wrap_set_pte pvb_size_raw_set_pte SET_PTE (pgdir: Gpa, vaddr: Gva, pte: u64) [0];
    set_pmd pvb_size_wrap_set_pmd pvb_size_raw_set_pmd SET_PMD (table: Gpa, index: u64) [0, 0];
    load_gdt_entry pvb_size_wrap_load_gdt_entry pvb_size_raw_load_gdt_entry LOAD_GDT_ENTRY (index: u64, lo: u64, hi: u64) [0];
}

/// `shutdown` through its generated wrapper: a string in guest memory, its address from
/// the direct map (size probe).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_size_wrap_shutdown(t: &Vmcall, xlate: &DirectMap, reason: &CStr, kind: ShutdownKind) {
    t.shutdown(xlate, reason, kind);
}

/// `shutdown` as a raw `Transport::hypercall`, the address translated by hand (size probe).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_size_raw_shutdown(t: &Vmcall, xlate: &DirectMap, reason: &CStr, kind: u64) {
    let reason = Translate::pa(xlate, reason.as_ptr().cast());
    Transport::hypercall(t, numbers::SHUTDOWN, [reason, kind, 0, 0]);
}

/// `notify` through its generated wrapper (size probe).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_size_wrap_notify(t: &Vmcall, xlate: &DirectMap, text: &CStr) {
    t.notify(xlate, text);
}

/// `notify` as a raw `Transport::hypercall` (size probe).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_size_raw_notify(t: &Vmcall, xlate: &DirectMap, text: &CStr) {
    let text = Translate::pa(xlate, text.as_ptr().cast());
    Transport::hypercall(t, numbers::NOTIFY, [text, 0, 0, 0]);
}

macro_rules! lazy_size_probes {
    ($( $name:ident $sym:ident ($($a:ident: $t:ty),*) ;)*) => {$(
        #[doc = concat!("The lazy variant of `", stringify!($name), "` (size probe).")]
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub fn $sym(b: &Batch<'_, Vmcall>, $($a: $t),*) -> Sent {
            LguestLazyHypercalls::$name(b, $($a),*)
        }
    )*};
}

lazy_size_probes! {
    new_pgtable pvb_size_lazy_new_pgtable (pgdir: Gpa);
    flush_tlb pvb_size_lazy_flush_tlb (scope: FlushScope);
    set_stack pvb_size_lazy_set_stack (ss: u64, sp: Gva, pages: u64);
    ts pvb_size_lazy_ts (state: TsState);
    set_pte pvb_size_lazy_set_pte (pgdir: Gpa, vaddr: Gva, pte: u64);
    set_pmd pvb_size_lazy_set_pmd (table: Gpa, index: u64);
}

/// The TLS descriptors `load_tls` passes, as the guest kernel holds them.
type Tls = [TlsDescriptor; numbers::TLS_ENTRIES as usize];

/// `load_tls` through its generated wrapper: the descriptors in guest memory, their address
/// from the direct map (size probe).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_size_wrap_load_tls(t: &Vmcall, xlate: &DirectMap, tls: &Tls, cpu: u64) {
    t.load_tls(xlate, tls, cpu);
}

/// `load_tls` as a raw `Transport::hypercall`, the address translated by hand (size probe).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_size_raw_load_tls(t: &Vmcall, xlate: &DirectMap, tls: &Tls, cpu: u64) {
    let tls = Translate::pa(xlate, tls.as_ptr().cast());
    Transport::hypercall(t, numbers::LOAD_TLS, [tls, cpu, 0, 0]);
}

/// The lazy variant of `load_tls` (size probe).
///
/// # Safety
///
/// The generated wrapper's: `tls` stays valid and unchanged until the ring is drained.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn pvb_size_lazy_load_tls(
    b: &Batch<'_, Vmcall>,
    xlate: &DirectMap,
    tls: &Tls,
    cpu: u64,
) -> Sent {
    // SAFETY: the caller's promise is the wrapper's.
    unsafe { LguestLazyHypercalls::load_tls(b, xlate, tls, cpu) }
}
