//! Once we get to lguest_init(), we know we're a Guest. The various pv_ops structures in
//! the kernel provide points for (almost) every routine we have to override to avoid
//! privileged instructions.
//!
//! This module holds the first hypercall ([`Lguest::lguest_init`], the seed's
//! `lguest_entry`), the `lguest_iret` entry with its no-interrupt window, and [`Ops`]: the
//! generated pv_op traits implemented over one `'static` guest, from which
//! `abi::pv_ops::PvOps::of::<Ops<I>>()` builds the function-pointer tables.

use core::ffi::{CStr, c_void};
use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use x86::bits64::paging::{PDEntry, PML4Entry, PTEntry};
use x86::dtables::DescriptorTablePointer;
use x86::segmentation::Descriptor;

use crate::abi::guest::{LguestHypercalls, Transport};
use crate::abi::numbers::{EFLAGS_IF, SYSCALL_VECTOR, TLS_ENTRIES};
use crate::abi::pv_ops::{ApicOps, CpuOps, InitOps, IrqOps, MachineOps, MmuOps, PvOps, TimeOps};
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;
pub use crate::pic::IrqGates;

/// `pv_info.name`.
pub const PV_NAME: &str = "lguest";

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// The first hypercall (the seed's `lguest_entry`): fill in what the host reads from
    /// the shared page, then tell it where the page is. The host answers by writing
    /// `tsc_khz`, the time, `reserve_mem` and `pgdir`.
    ///
    /// `kernel_address` is where the kernel's half of the address space starts
    /// (PAGE_OFFSET); `noirq` is the guest code where the host must never inject an
    /// interrupt (see [`noirq_window`]).
    pub fn lguest_init(&self, kernel_address: u64, noirq: Range<u64>) {
        let d = self.data;
        d.noirq_start.store(noirq.start, Ordering::Relaxed);
        d.noirq_end.store(noirq.end, Ordering::Relaxed);
        d.kernel_address.store(kernel_address, Ordering::Relaxed);
        d.syscall_vec
            .store(SYSCALL_VECTOR as u32, Ordering::Relaxed);
        self.transport.lguest_init(self.pa(core::ptr::from_ref(d)));
    }

    /// The Host<->Guest Switcher lives at the top of our address space, and the Host told us
    /// how big it is when we made LGUEST_INIT hypercall: the kernel must not use these
    /// bytes at the top of its address space.
    pub fn reserve_mem(&self) -> u64 {
        self.data.reserve_mem.load(Ordering::Relaxed)
    }
}

/// The `irq_enabled` word `lguest_iret` writes: set by [`Ops::boot`].
static IRET_IRQ_ENABLED: AtomicPtr<AtomicU32> = AtomicPtr::new(core::ptr::null_mut());

/// The pv `iret` (the seed's `lguest_iret` in i386_head.S, for x86_64): restore the virtual
/// interrupt flag from the saved rflags, then `iretq`.
///
/// The store and the `iretq` sit between `lguest_noirq_start` and `lguest_noirq_end`, where
/// the host never injects an interrupt: one arriving after interrupts are "on" but before
/// the `iretq` would run the handler on the stack we are about to leave. The port stores
/// `rflags & EFLAGS_IF` (the seed stored the whole word), so `irq_enabled` only ever holds
/// `EFLAGS_IF` or 0.
///
/// # Safety
///
/// Jump (do not call) here with an interrupt frame on the stack, after [`Ops::boot`].
#[unsafe(naked)]
pub unsafe extern "C" fn lguest_iret() {
    core::arch::naked_asm!(
        "push rax",
        "push rcx",
        "mov rcx, qword ptr [rip + {page}]",
        // The saved rflags: rip, cs, rflags, plus our two pushes.
        "mov rax, qword ptr [rsp + 32]",
        "and eax, {eflags_if}",
        ".globl lguest_noirq_start",
        "lguest_noirq_start:",
        "mov dword ptr [rcx], eax",
        "pop rcx",
        "pop rax",
        "iretq",
        ".globl lguest_noirq_end",
        "lguest_noirq_end:",
        page = sym IRET_IRQ_ENABLED,
        eflags_if = const EFLAGS_IF,
    )
}

unsafe extern "C" {
    static lguest_noirq_start: u8;
    static lguest_noirq_end: u8;
}

/// The no-interrupt window of [`lguest_iret`], as addresses of this program.
pub fn noirq_window() -> Range<u64> {
    (&raw const lguest_noirq_start) as u64..(&raw const lguest_noirq_end) as u64
}

/// Names the one guest a kernel runs, for the function-pointer tables of [`Ops`].
pub trait Instance: 'static {
    /// How the guest makes hypercalls.
    type Transport: Transport + 'static;
    /// The raw `cpuid`.
    type Cpuid: RawCpuid + 'static;
    /// `__pa()`.
    type Translate: Translate + 'static;

    /// The guest.
    fn lguest() -> &'static Lguest<'static, Self::Transport, Self::Cpuid, Self::Translate>;

    /// The IDT and interrupt entry stubs `init_irq` installs.
    fn irq_gates() -> IrqGates<'static>;
}

/// The generated pv_op traits, implemented by delegating to `I::lguest()`.
///
/// `PvOps::of::<Ops<I>>()` gives the tables a kernel installs (the seed's `lguest_init()`
/// assignments). The `IrqOps` impl is the one a callee-save attribute belongs on: its four
/// callee-save ops only load or store `irq_enabled`.
pub struct Ops<I>(PhantomData<I>);

impl<I: Instance> Ops<I> {
    /// Every pv_op table, pointing at this instance.
    pub const TABLES: PvOps = PvOps::of::<Ops<I>>();

    /// The seed's `lguest_entry`: point `lguest_iret` at this guest's shared page, then make
    /// the first hypercall with its no-interrupt window.
    pub fn boot(kernel_address: u64) {
        let lg = I::lguest();
        IRET_IRQ_ENABLED.store(
            core::ptr::from_ref(&lg.shared().irq_enabled).cast_mut(),
            Ordering::Release,
        );
        lg.lguest_init(kernel_address, noirq_window());
    }
}

// The attribute checks against the spec that every op of each table is implemented, and
// for the callee-save ops of `irq` (save_fl, restore_fl, irq_disable, irq_enable) makes
// `Ops::<I>::<op>_callee_save`: naked entry points that change no register but rax, the
// seed's PV_CALLEE_SAVE_REGS_THUNK. Those are what a kernel puts in its irq slots.
#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> IrqOps for Ops<I> {
    fn save_fl() -> u64 {
        I::lguest().save_fl()
    }
    fn restore_fl(flags: u64) {
        I::lguest().restore_fl(flags)
    }
    fn irq_disable() {
        I::lguest().irq_disable()
    }
    fn irq_enable() {
        I::lguest().irq_enable()
    }
    fn safe_halt() {
        I::lguest().safe_halt()
    }
    fn init_irq() {
        // SAFETY: `IrqGates::new`'s caller promised the live, writable IDT.
        unsafe { I::lguest().init_irq(&I::irq_gates()) }
    }
}

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> InitOps for Ops<I> {
    fn patch(op: u8, clobbers: u16, site: &mut [u8], addr: u64) -> usize {
        I::lguest().patch(op, clobbers, site, addr)
    }
    fn memory_setup() -> &'static str {
        I::lguest().memory_setup()
    }
}

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> CpuOps for Ops<I> {
    unsafe fn load_gdt(desc: &DescriptorTablePointer<Descriptor>) {
        // SAFETY: this op's contract is `Lguest::load_gdt`'s.
        unsafe { I::lguest().load_gdt(desc) }
    }
    fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
        I::lguest().cpuid(leaf, subleaf)
    }
    unsafe fn load_idt(desc: &DescriptorTablePointer<u128>) {
        // SAFETY: this op's contract is `Lguest::load_idt`'s.
        unsafe { I::lguest().load_idt(desc) }
    }
    fn iret() {
        // This op is jumped to with an interrupt frame on the stack; all it does is jump on.
        // SAFETY: `lguest_iret` returns from that frame.
        unsafe { core::arch::asm!("jmp {}", sym lguest_iret, options(noreturn)) }
    }
    fn load_sp0(sp0: u64) {
        I::lguest().load_sp0(sp0);
    }
    fn load_tr_desc() {
        I::lguest().load_tr_desc()
    }
    fn set_ldt(base: u64, entries: u32) {
        I::lguest().set_ldt(base, entries)
    }
    unsafe fn load_tls(tls: &[Descriptor; TLS_ENTRIES as usize], cpu: u32) {
        // SAFETY: this op's contract is `Lguest::load_tls`'s.
        unsafe { I::lguest().load_tls(tls, cpu) };
    }
    fn set_debugreg(regno: u8, value: u64) {
        I::lguest().set_debugreg(regno, value)
    }
    fn clts() {
        I::lguest().clts();
    }
    fn read_cr0() -> u64 {
        I::lguest().read_cr0()
    }
    fn write_cr0(value: u64) {
        I::lguest().write_cr0(value);
    }
    fn read_cr4() -> u64 {
        I::lguest().read_cr4()
    }
    fn write_cr4(value: u64) {
        I::lguest().write_cr4(value)
    }
    unsafe fn write_gdt_entry(gdt: *mut Descriptor, entry: usize, desc: Descriptor) {
        // SAFETY: this op's contract is `Lguest::write_gdt_entry`'s.
        unsafe { I::lguest().write_gdt_entry(gdt, entry, desc) }
    }
    unsafe fn write_idt_entry(idt: *mut u128, entry: usize, gate: u128) {
        // SAFETY: this op's contract is `Lguest::write_idt_entry`'s.
        unsafe { I::lguest().write_idt_entry(idt, entry, gate) }
    }
    fn wbinvd() {
        I::lguest().wbinvd()
    }
    fn start_context_switch(_prev: *const c_void) {
        I::lguest().start_context_switch()
    }
    fn end_context_switch(_next: *const c_void) {
        I::lguest().end_context_switch()
    }
}

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> MmuOps for Ops<I> {
    unsafe fn write_cr3(cr3: u64) {
        // SAFETY: this op's contract is `Lguest::write_cr3`'s.
        unsafe { I::lguest().write_cr3(cr3) };
    }
    fn read_cr3() -> u64 {
        I::lguest().read_cr3()
    }
    fn read_cr2() -> u64 {
        I::lguest().read_cr2()
    }
    fn flush_tlb_user() {
        I::lguest().flush_tlb_user();
    }
    fn flush_tlb_kernel() {
        I::lguest().flush_tlb_kernel();
    }
    fn flush_tlb_single(addr: u64) {
        I::lguest().flush_tlb_single(addr);
    }
    unsafe fn set_pte(ptep: *mut PTEntry, pte: PTEntry) {
        // SAFETY: this op's contract is `Lguest::set_pte`'s.
        unsafe { I::lguest().set_pte(ptep, pte) };
    }
    unsafe fn set_pte_at(pgd: *mut PML4Entry, addr: u64, ptep: *mut PTEntry, pte: PTEntry) {
        // SAFETY: this op's contract is `Lguest::set_pte_at`'s.
        unsafe { I::lguest().set_pte_at(pgd, addr, ptep, pte) };
    }
    unsafe fn pte_update(pgd: *mut PML4Entry, addr: u64, ptep: *mut PTEntry) {
        // SAFETY: this op's contract is `Lguest::pte_update`'s.
        unsafe { I::lguest().pte_update(pgd, addr, ptep) };
    }
    unsafe fn pte_update_defer(pgd: *mut PML4Entry, addr: u64, ptep: *mut PTEntry) {
        // SAFETY: this op's contract is `Lguest::pte_update`'s.
        unsafe { I::lguest().pte_update(pgd, addr, ptep) };
    }
    unsafe fn set_pmd(pmdp: *mut PDEntry, pmd: PDEntry) {
        // SAFETY: this op's contract is `Lguest::set_pmd`'s.
        unsafe { I::lguest().set_pmd(pmdp, pmd) };
    }
    fn lazy_mode_enter() {
        I::lguest().enter_lazy_mmu()
    }
    fn lazy_mode_leave() {
        I::lguest().leave_lazy_mmu()
    }
}

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> TimeOps for Ops<I> {
    fn time_init() {
        I::lguest().time_init()
    }
    fn get_wallclock() -> u64 {
        I::lguest().get_wallclock()
    }
    fn get_tsc_khz() -> u64 {
        I::lguest().tsc_khz()
    }
}

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> ApicOps for Ops<I> {
    fn read(reg: u32) -> u32 {
        I::lguest().apic_read(reg)
    }
    fn write(reg: u32, value: u32) {
        I::lguest().apic_write(reg, value)
    }
    fn icr_read() -> u64 {
        I::lguest().apic_icr_read()
    }
    fn icr_write(low: u32, high: u32) {
        I::lguest().apic_icr_write(low, high)
    }
    fn wait_icr_idle() {
        I::lguest().apic_wait_icr_idle()
    }
    fn safe_wait_icr_idle() -> u32 {
        I::lguest().apic_safe_wait_icr_idle()
    }
}

#[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
impl<I: Instance> MachineOps for Ops<I> {
    fn power_off() {
        I::lguest().power_off()
    }
    fn restart(reason: &CStr) {
        I::lguest().restart(reason)
    }
    fn panic(message: &CStr) {
        I::lguest().panic(message)
    }
}
