//! The kernel's life, in the order the seed's guest lives it: `lguest_init()` (the
//! handshake and the pv_ops), patching, descriptor tables, its own page tables, the clock,
//! then idle, and the end the host asked for.
//!
//! Everything privileged goes through the installed pv_ops tables or the `pv_call!` sites,
//! as in a kernel; what the two backends do differently (where pages come from, whether code
//! can be patched in place, how a phase is marked) is [`Platform`].

use core::fmt::Write as _;
use core::ops::Range;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use guest::pic::{INTERRUPT_GATE, TRAP_GATE, encode_gate};
use guest::{Instance, Ops};
use lguest_abi::guest::{LguestHypercalls, Pio, Transport};
use lguest_abi::numbers::{
    FIRST_EXTERNAL_VECTOR, GDT_ENTRIES, IDT_ENTRIES, NOTIFY, PAGE_SIZE, RESERVE_MEM,
    SHUTDOWN_REASON_MAX,
};
use lguest_abi::pv_ops::PvOps;
use lguest_abi::shared::RING_SIZE;
use pv_sites::Slot;
use x86::bits64::paging::{PDEntry, PML4Entry, PTEntry};
use x86::dtables::DescriptorTablePointer;
use x86::irq::PAGE_FAULT_VECTOR;
use x86::segmentation::Descriptor;

use crate::console::CBuf;
use crate::params::{Checked, Fault, Mode, Workload};

/// Where the kernel's half of the address space starts (Linux's PAGE_OFFSET): the upper
/// half of the lower canonical half. KVM on paging-virtualised hosts (kvm_pvm) runs ring-3
/// guest code as host user code, which cannot reach the upper canonical half at all, so a
/// ring-3 kernel keeps its "upper half" below 2^47.
pub const KERNEL_ADDRESS: u64 = 0x0000_4000_0000_0000;
/// Pages the boot workload maps and unmaps through pv_mmu_ops.
pub const BOOT_MMU_PAGES: u64 = 64;
/// Where the mmu workload maps its pages: 1 GiB into the kernel's half.
pub const MMU_BASE: u64 = KERNEL_ADDRESS + (1 << 30);
/// The first address the host keeps for itself: `RESERVE_MEM` below the top of the
/// address space.
pub(crate) const HOST_VA: u64 = 0u64.wrapping_sub(RESERVE_MEM);
/// The top-level slot the host keeps for itself: the one [`HOST_VA`] falls in.
pub(crate) const HOST_PML4_SLOT: usize = paging::index(0, HOST_VA);
/// An address the kernel never maps.
pub const UNMAPPED: u64 = 0x0000_0000_dead_0000;
/// The kernel code segment selector (the spec's `KERNEL_CS`).
pub const KERNEL_CS: u16 = lguest_abi::numbers::KERNEL_CS as u16;
/// Exceptions the kernel installs handlers for: every vector below the first external one.
pub const EXCEPTIONS: usize = FIRST_EXTERNAL_VECTOR as usize;

/// Present, writable, user: upper-level entries (the kernel runs at ring 3, so every level
/// needs the user bit).
pub(crate) const UPPER: u64 = paging::P | paging::RW | paging::US;
/// Present, writable, user, accessed, dirty: leaves.
pub(crate) const LEAF: u64 = UPPER | paging::A | paging::D;

// The phase marks are the kernel's contract with the host, with the mark port.
pub use crate::params::Phase;

/// What differs between the freestanding kernel and the in-process run.
pub trait Platform {
    /// The guest-physical range the kernel must keep mapped at the same virtual address in
    /// its own page tables (its image, stack and boot block).
    fn identity(&self) -> Range<u64>;
    /// A zeroed page, by guest-physical address.
    fn alloc_page(&self) -> Option<u64>;
    /// Where the kernel reaches guest-physical `pa`.
    fn va(&self, pa: u64) -> *mut u64;
    /// The guest-physical page the mmu workload maps over and over.
    fn frame(&self) -> u64;
    /// Whether addresses the kernel maps can be dereferenced (only on a real CPU).
    fn mappings_live(&self) -> bool;
    /// Whether call sites can be patched in place (only where code is writable).
    fn code_writable(&self) -> bool;
    /// A monotonic time in ns, for busy waits.
    fn now_ns(&self) -> u64;
    /// Tells the host a phase boundary was reached.
    fn mark(&self, phase: Phase);
    /// Entry points for exception vectors 0..EXCEPTIONS, if the platform takes exceptions.
    fn exception_handlers(&self) -> Option<&'static [u64; EXCEPTIONS]>;
    /// The stack the host switches to (SET_STACK): its top.
    fn stack_top(&self) -> u64;
    /// Where no CPU raises #NM (in process), whether the next FPU or SSE instruction would
    /// (the host's record of the guest's TS bit); `None` on a real CPU, which traps itself.
    fn emulated_nm(&self) -> Option<bool>;
}

// ----- The installed pv_ops and the patchable sites -----

static PV: AtomicPtr<PvOps> = AtomicPtr::new(core::ptr::null_mut());

/// The installed pv_ops (the seed's `pv_*_ops` after `lguest_init()` filled them in).
///
/// # Panics
///
/// Before [`run`] installs them.
pub fn pv() -> &'static PvOps {
    let p = PV.load(Ordering::Acquire);
    assert!(!p.is_null(), "pv_ops used before they were installed");
    // SAFETY: only `install` stores here, a pointer to a `'static` table.
    unsafe { &*p }
}

// The hot irq ops are called through patchable sites, as the kernel's `arch_local_*`.
static SAVE_FL: Slot = Slot::new(core::ptr::null());
static RESTORE_FL: Slot = Slot::new(core::ptr::null());
static IRQ_DISABLE: Slot = Slot::new(core::ptr::null());
static IRQ_ENABLE: Slot = Slot::new(core::ptr::null());

/// `arch_local_save_flags`.
#[inline(never)]
pub fn save_fl() -> u64 {
    // SAFETY: `install` put save_fl's callee-save thunk in SAVE_FL before any caller runs.
    unsafe { pv_macros::pv_call!(spec = "../spec/lguest.toml", slot = SAVE_FL, irq.save_fl()) }
}

/// `arch_local_irq_restore`.
#[inline(never)]
pub fn restore_fl(flags: u64) {
    // SAFETY: `install` put restore_fl's callee-save thunk in RESTORE_FL.
    unsafe {
        pv_macros::pv_call!(
            spec = "../spec/lguest.toml",
            slot = RESTORE_FL,
            irq.restore_fl(flags)
        )
    }
}

/// `arch_local_irq_disable`.
#[inline(never)]
pub fn irq_disable() {
    // SAFETY: `install` put irq_disable's callee-save thunk in IRQ_DISABLE.
    unsafe {
        pv_macros::pv_call!(
            spec = "../spec/lguest.toml",
            slot = IRQ_DISABLE,
            irq.irq_disable()
        )
    }
}

/// `arch_local_irq_enable`.
#[inline(never)]
pub fn irq_enable() {
    // SAFETY: `install` put irq_enable's callee-save thunk in IRQ_ENABLE.
    unsafe {
        pv_macros::pv_call!(
            spec = "../spec/lguest.toml",
            slot = IRQ_ENABLE,
            irq.irq_enable()
        )
    }
}

/// The second half of `lguest_init()`: point every pv_op at the lguest versions.
fn install<I: Instance>() {
    struct Tables<I>(core::marker::PhantomData<I>);
    impl<I: Instance> Tables<I> {
        const PV: PvOps = Ops::<I>::TABLES;
    }
    PV.store(
        core::ptr::from_ref(&Tables::<I>::PV).cast_mut(),
        Ordering::Release,
    );
    // SAFETY: each slot gets its own op's callee-save thunk, which changes no register but
    // rax, as the sites' clobber masks say.
    unsafe {
        SAVE_FL.set(Ops::<I>::save_fl_callee_save as *const ());
        RESTORE_FL.set(Ops::<I>::restore_fl_callee_save as *const ());
        IRQ_DISABLE.set(Ops::<I>::irq_disable_callee_save as *const ());
        IRQ_ENABLE.set(Ops::<I>::irq_enable_callee_save as *const ());
    }
}

/// `apply_paravirt()`: offer every recorded site to the `patch` op; what it does not use of
/// a site becomes NOPs. Returns (patched, sites). Where code is not writable, the sites are
/// patched on copies (which checks the templates fit) and left calling their slots.
fn patch_sites<P: Platform>(p: &P) -> (usize, usize) {
    let mut patched = 0;
    let sites = pv_sites::sites();
    for r in sites {
        let len = usize::from(r.len);
        // The longest site a record can describe (its `len` is a byte).
        let mut copy = [pv_sites::NOP; u8::MAX as usize];
        let buf: &mut [u8] = if p.code_writable() {
            // SAFETY: the record points at `len` bytes of this program's code, mapped
            // writable (the kernel maps its image read-write), and nothing executes them
            // while they change: the kernel is single-threaded and no interrupt is
            // deliverable yet (interrupts are blocked until the clock is set up).
            unsafe { core::slice::from_raw_parts_mut(r.addr() as *mut u8, len) }
        } else {
            // SAFETY: as for `site()`: the record's bytes are mapped readable.
            let site = unsafe { r.site() };
            copy[..len].copy_from_slice(site);
            &mut copy[..len]
        };
        let Ok(op) = u8::try_from(r.op) else {
            continue;
        };
        let used = (pv().init.patch)(op, r.clobbers, buf, r.addr() as u64);
        if used > 0 {
            buf[used..].fill(pv_sites::NOP);
            patched += 1;
        }
    }
    if p.code_writable() && patched > 0 {
        // The CPU sees its own stores to code, but a serialising instruction makes sure
        // nothing stale was fetched ahead (Linux's sync_core()).
        let _ = core::arch::x86_64::__cpuid(0);
    }
    (patched, sites.len())
}

// ----- Descriptor tables -----

/// A table the kernel writes and hands to a pv_op by pointer.
#[repr(C, align(4096))]
struct Table<T>(core::cell::UnsafeCell<T>);
// SAFETY: the kernel is single-threaded; the tables are written only by `run`.
unsafe impl<T> Sync for Table<T> {}

/// The GDT the kernel loads, x86_64 Linux's layout: entries 1 (32-bit kernel code, which
/// the host keeps for itself), 2 kernel code, 3 kernel data, 4-6 user code and data; TSS,
/// LDT and TLS come later or never. The host fixes the privilege levels (and starts the
/// kernel on entries 2 and 3 of this table).
pub const GDT_INIT: [u64; GDT_ENTRIES as usize] = [
    0,
    0x00cf_9b00_0000_ffff,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x00cf_fb00_0000_ffff,
    0x00cf_f300_0000_ffff,
    0x00af_fb00_0000_ffff,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
];

static GDT: Table<[u64; GDT_ENTRIES as usize]> = Table(core::cell::UnsafeCell::new(GDT_INIT));

static IDT: Table<[u128; IDT_ENTRIES as usize]> =
    Table(core::cell::UnsafeCell::new([0; IDT_ENTRIES as usize]));

/// The IDT, for [`Instance::irq_gates`].
pub fn idt() -> *mut u128 {
    IDT.0.get().cast()
}

fn load_tables<P: Platform>(p: &P) {
    let gdt = GDT.0.get();
    let gdt_ptr = DescriptorTablePointer::<Descriptor> {
        limit: (size_of::<[u64; GDT_ENTRIES as usize]>() - 1) as u16,
        base: gdt.cast(),
    };
    // SAFETY: the pointer describes GDT, 16 initialised 8-byte descriptors.
    unsafe { (pv().cpu.load_gdt)(&gdt_ptr) };
    if let Some(handlers) = p.exception_handlers() {
        // SAFETY: single-threaded, and the table is not yet loaded: nothing else reads it.
        let idt = unsafe { &mut *IDT.0.get() };
        for (v, h) in handlers.iter().enumerate() {
            // Page faults come in with interrupts off, so cr2 cannot change under the
            // handler; the rest are trap gates, as Linux has them.
            let ty = if v == usize::from(PAGE_FAULT_VECTOR) {
                INTERRUPT_GATE
            } else {
                TRAP_GATE
            };
            idt[v] = encode_gate(*h, KERNEL_CS, ty, 0);
        }
    }
    let idt_ptr = DescriptorTablePointer::<u128> {
        limit: (size_of::<[u128; IDT_ENTRIES as usize]>() - 1) as u16,
        base: IDT.0.get().cast(),
    };
    // SAFETY: the pointer describes IDT, IDT_ENTRIES initialised gates.
    unsafe { (pv().cpu.load_idt)(&idt_ptr) };
    // The external vectors, through the IDT's live copy.
    (pv().irq.init_irq)();
    (pv().cpu.load_sp0)(p.stack_top());
}

// ----- Page tables -----

/// The kernel's own page tables, as the one page walk ([`paging::walk`]) reads them.
struct Own<'a, P>(&'a P);

impl<P: Platform> paging::Tables for Own<'_, P> {
    type Error = core::convert::Infallible;
    fn entry(&self, table: u64, index: usize) -> Result<u64, Self::Error> {
        // SAFETY: the walk only follows entries of this kernel's tables, which are its own
        // pages, reachable at `va`; page-table entries are read with plain loads by the CPU
        // too.
        Ok(unsafe { self.0.va(table).add(index).read_volatile() })
    }
}

/// Where `step`'s entry is, for the kernel to write.
fn entry_ptr<P: Platform>(p: &P, step: paging::Step) -> *mut u64 {
    // SAFETY: `step` came from a walk of this kernel's tables: its table is one of our pages
    // and its index is below 512, so the entry is inside that page.
    unsafe { p.va(step.table).add(step.index) }
}

/// The leaf entry for `vaddr` under `pgdir` (present or not), if the tables reach down to a
/// page table.
pub fn leaf_ptr<P: Platform>(p: &P, pgdir: u64, vaddr: u64) -> Option<*mut u64> {
    let Ok(w) = paging::walk(&Own(p), pgdir, vaddr);
    (w.depth == paging::LEVELS).then(|| entry_ptr(p, w.last()))
}

/// Maps `vaddr` to `frame` in the tables under `pgdir` as the kernel does: missing
/// upper-level tables through `set_pmd`, the leaf through `set_pte_at`.
pub fn map<P: Platform>(p: &P, pgdir: u64, vaddr: u64, pte: u64) -> Result<(), &'static str> {
    // Each round adds one missing table; the fourth reaches the leaf.
    for _ in 0..paging::LEVELS {
        let Ok(w) = paging::walk(&Own(p), pgdir, vaddr);
        let entry = entry_ptr(p, w.last());
        match w.end {
            paging::End::NotPresent { level } if level < paging::PT => {
                let t = p.alloc_page().ok_or("out of page-table pages")?;
                // SAFETY: `entry` is the live entry of a table under `pgdir`.
                unsafe { (pv().mmu.set_pmd)(entry.cast(), PDEntry(t | UPPER)) };
            }
            paging::End::NotPresent { .. }
            | paging::End::Leaf(paging::Leaf {
                level: paging::PT, ..
            }) => {
                // SAFETY: `entry` is the live leaf entry mapping `vaddr` under `pgdir`.
                unsafe {
                    (pv().mmu.set_pte_at)(
                        p.va(pgdir).cast::<PML4Entry>(),
                        vaddr,
                        entry.cast(),
                        PTEntry(pte),
                    )
                };
                return Ok(());
            }
            paging::End::Leaf(_) => return Err("a huge page is in the way"),
        }
    }
    Err("the page tables did not reach a leaf")
}

/// Builds the kernel's own 4-level tables (4 KiB pages over the identity range, in lazy
/// mode) and switches to them. Returns (pgdir, pages mapped).
fn own_page_tables<P: Platform>(p: &P) -> Result<(u64, u64), &'static str> {
    let pgdir = p.alloc_page().ok_or("out of page-table pages")?;
    let range = p.identity();
    (pv().mmu.lazy_mode_enter)();
    let mut pages = 0;
    let mut at = range.start & !(PAGE_SIZE - 1);
    while at < range.end {
        map(p, pgdir, at, at | LEAF)?;
        at += PAGE_SIZE;
        pages += 1;
    }
    (pv().mmu.lazy_mode_leave)();
    // SAFETY: the new tables map everything the kernel touches at the same addresses.
    unsafe { (pv().mmu.write_cr3)(pgdir) };
    Ok((pgdir, pages))
}

// ----- The clock and the timer interrupt -----

static TICKS: AtomicU32 = AtomicU32::new(0);
static TICK_TARGET: AtomicU32 = AtomicU32::new(0);
static TICK_NS: AtomicU64 = AtomicU64::new(1_000_000);

/// Timer interrupts taken so far.
pub fn ticks() -> u32 {
    TICKS.load(Ordering::Relaxed)
}

/// Interrupt line 0: the clock event. Counts a tick and, while the idle loop wants more,
/// re-arms the one-shot timer (the seed's `lguest_time_irq` calling the event handler).
pub fn timer_irq<I: Instance>() {
    I::lguest().timer_interrupt(|| {
        let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
        if n < TICK_TARGET.load(Ordering::Relaxed) {
            let _ = I::lguest().set_next_event(TICK_NS.load(Ordering::Relaxed));
        }
    });
}

fn spin_until<P: Platform>(p: &P, deadline: u64) {
    while p.now_ns() < deadline {
        core::hint::spin_loop();
    }
}

/// Waits, halting, for the tick count to pass `n`.
fn idle_until(n: u32) {
    while ticks() <= n {
        (pv().irq.safe_halt)();
    }
}

// ----- The whole life -----

/// Why the kernel stopped before its end.
pub type Failure = &'static str;

/// How a fault that only a real CPU can show ends in process, where nothing is mapped.
pub const NEEDS_CPU: Failure = "this fault needs a real CPU: in process nothing is mapped";

/// Runs the kernel for `params` on platform `p`, as guest `I`. Returns only if the host
/// lets the kernel run on after the end it asked for (which a correct host never does).
pub fn run<I: Instance, P: Platform>(p: &P, params: &Checked) -> Result<(), Failure> {
    let lg = I::lguest();
    let raw = &params.raw;
    // A fresh count: the in-process backend runs this more than once per process.
    TICKS.store(0, Ordering::Relaxed);
    if params.fault == Fault::BeforeInit {
        // Broken on purpose: a hypercall before the shared page exists.
        lg.transport().halt();
        return Err("the host ran a hypercall before LGUEST_INIT");
    }

    // lguest_init(): the handshake, then the pv_ops.
    Ops::<I>::boot(KERNEL_ADDRESS);
    install::<I>();
    crate::println!(I, "lguest: booting, tsc {} kHz", (pv().time.get_tsc_khz)());
    commit_fault::<I>(params)?;

    let (patched, sites) = patch_sites(p);
    crate::println!(I, "patched {patched} of {sites} pv call sites");
    load_tables(p);
    crate::println!(I, "GDT and IDT loaded");
    let (pgdir, pages) = own_page_tables(p)?;
    crate::println!(I, "own page tables: {pages} pages");
    if (pv().mmu.read_cr3)() != pgdir {
        return Err("read_cr3 does not give the table the kernel switched to");
    }
    crate::hostile::commit::<I, P>(p, params.fault)?;
    crate::escapes::commit::<P>(p, pgdir, params)?;
    match params.fault {
        Fault::Hang => {
            irq_disable();
            loop {
                // Time passes (and, in process, the watchdog is checked) but nothing exits.
                let _ = p.now_ns();
                core::hint::spin_loop();
            }
        }
        Fault::PageFault | Fault::BadPort | Fault::HostWrite | Fault::HostEntry
            if !p.mappings_live() =>
        {
            return Err(NEEDS_CPU);
        }
        Fault::HostEntry => {
            // SAFETY: deliberately wrong: the last entry of our own top-level table is where
            // the host's region is (RESERVE_MEM). The host keeps its own entry in its shadow
            // and never reads ours, so the page fault below still reaches our handler
            // through the host's stubs.
            unsafe { p.va(pgdir).add(HOST_PML4_SLOT).write_volatile(0) };
            (pv().mmu.flush_tlb_kernel)();
            // SAFETY: deliberately not safe: the address is unmapped; the fault ends us.
            let v = unsafe { (UNMAPPED as *const u64).read_volatile() };
            return Err(if v == 0 {
                "read an unmapped page"
            } else {
                "read an unmapped page!"
            });
        }
        Fault::PageFault => {
            // SAFETY: deliberately not safe: the address is unmapped, and the fault it
            // takes ends the kernel through its exception handler.
            let v = unsafe { (UNMAPPED as *const u64).read_volatile() };
            return Err(if v == 0 {
                "read an unmapped page"
            } else {
                "read an unmapped page!"
            });
        }
        Fault::BadPort => {
            let stray = Pio::PORT + Pio::PORT_BYTES - 1;
            // SAFETY: deliberately wrong: a port the I/O bitmap opens (the last of those
            // the hypercall's `out` writes) but the ABI does not define; the host ends the
            // guest.
            unsafe {
                core::arch::asm!("out dx, al", in("dx") stray, in("al") 0u8,
                    options(nomem, nostack, preserves_flags))
            };
            return Err("the host let a write to a stray port through");
        }
        Fault::HostWrite => {
            // Map the first page past RAM without telling the host (a native write, no
            // SET_PTE, which would be refused), then write to it.
            map(p, pgdir, UNMAPPED, 0)?;
            let leaf = leaf_ptr(p, pgdir, UNMAPPED).ok_or("no leaf for UNMAPPED")?;
            // SAFETY: deliberately wrong: the leaf for UNMAPPED, pointed past guest RAM.
            unsafe {
                leaf.write_volatile(params.raw.mem_size | LEAF);
                (UNMAPPED as *mut u64).write_volatile(0x0062_6164);
            }
            return Err("the host let a write to its own memory through");
        }
        _ => {}
    }

    // Map and unmap pages through pv_mmu_ops: a few at boot, as many as asked for the mmu
    // workload.
    let pages = match params.workload {
        Workload::Mmu | Workload::Touch => raw.pages,
        Workload::Boot => BOOT_MMU_PAGES,
    };
    let touch = params.workload == Workload::Touch;
    mmu_workload::<I, P>(p, pgdir, pages, raw.eager != 0, touch)?;

    // time_init(): the clock source and clock event, then unblock the timer line.
    (pv().time.time_init)();
    TICK_NS.store(raw.tick_ns, Ordering::Relaxed);
    TICK_TARGET.store(raw.ticks, Ordering::Relaxed);
    if raw.ticks > 0 {
        let start = ticks();
        lg.set_next_event(raw.tick_ns)
            .map_err(|_| "the clock event refused the tick")?;
        while ticks() < start + raw.ticks {
            (pv().irq.safe_halt)();
        }
        crate::println!(I, "timer: {} ticks", ticks());
    }
    TICK_TARGET.store(0, Ordering::Relaxed);
    masking::<I, P>(p, raw.tick_ns)?;

    let wall = (pv().time.get_wallclock)();
    let clock = lg.clock_read();
    crate::println!(
        I,
        "clock: {}.{:09} s, wallclock {} s",
        clock / 1_000_000_000,
        clock % 1_000_000_000,
        wall
    );

    match params.mode {
        Mode::PowerOff => {
            crate::println!(I, "power off");
            (pv().machine.power_off)();
        }
        Mode::Panic => {
            let mut msg = CBuf::<{ SHUTDOWN_REASON_MAX as usize }>::new();
            let _ = write!(msg, "panic on request after {} ticks", ticks());
            (pv().machine.panic)(msg.as_cstr());
        }
        Mode::Restart => (pv().machine.restart)(c"restart on request"),
    }
    Err("the host returned from SHUTDOWN")
}

/// Maps and unmaps `pages` pages at [`MMU_BASE`] through the mmu pv_ops, in lazy mode
/// unless `eager`, between the two marks the host counts between; with `touch`, reads each
/// page once in between (where mappings are live).
fn mmu_workload<I: Instance, P: Platform>(
    p: &P,
    pgdir: u64,
    pages: u64,
    eager: bool,
    touch: bool,
) -> Result<(), Failure> {
    let frame = p.frame();
    // Upper-level tables first, so the marked phase is only leaf updates.
    map(p, pgdir, MMU_BASE, 0)?;
    if pages > 1 {
        map(p, pgdir, MMU_BASE + (pages - 1) * PAGE_SIZE, 0)?;
        // One page per leaf table: its entries each map a page.
        for i in (0..pages).step_by(paging::ENTRIES) {
            map(p, pgdir, MMU_BASE + i * PAGE_SIZE, 0)?;
        }
    }
    (pv().mmu.flush_tlb_kernel)();
    p.mark(Phase::MmuStart);
    if !eager {
        (pv().mmu.lazy_mode_enter)();
    }
    for i in 0..pages {
        map(p, pgdir, MMU_BASE + i * PAGE_SIZE, frame | LEAF)?;
    }
    if p.mappings_live() && pages > 0 {
        // The last page, written through its new mapping, read back through the frame.
        let va = (MMU_BASE + (pages - 1) * PAGE_SIZE) as *mut u64;
        // SAFETY: `va` was just mapped (present, writable) to `frame`, a page of ours.
        unsafe { va.write_volatile(0x6c67_7565_7374_2121) };
        // SAFETY: `frame` is mapped at `p.va(frame)` too.
        if unsafe { p.va(frame).read_volatile() } != 0x6c67_7565_7374_2121 {
            return Err("a page mapped through pv_mmu_ops does not reach its frame");
        }
        if touch {
            for i in 0..pages {
                // SAFETY: every page at MMU_BASE was just mapped to `frame`, readable.
                let v = unsafe { ((MMU_BASE + i * PAGE_SIZE) as *const u64).read_volatile() };
                if v != 0x6c67_7565_7374_2121 {
                    return Err("a touched page does not reach its frame");
                }
            }
        }
    }
    for i in 0..pages {
        map(p, pgdir, MMU_BASE + i * PAGE_SIZE, 0)?;
    }
    if !eager {
        (pv().mmu.lazy_mode_leave)();
    }
    p.mark(Phase::MmuEnd);
    crate::println!(
        I,
        "mmu: {pages} pages mapped and unmapped, {}",
        if eager { "eager" } else { "lazy" }
    );
    Ok(())
}

/// Masks the timer two ways and checks that it waits: with the virtual interrupt flag off
/// (the patched `cli`), and with its line blocked (the irq_chip's mask).
fn masking<I: Instance, P: Platform>(p: &P, tick_ns: u64) -> Result<(), Failure> {
    let lg = I::lguest();
    // The interrupt flag.
    let before = ticks();
    let flags = save_fl();
    irq_disable();
    lg.set_next_event(tick_ns)
        .map_err(|_| "the clock event refused the tick")?;
    spin_until(p, p.now_ns() + 3 * tick_ns);
    let during = ticks();
    restore_fl(flags);
    irq_enable();
    if during != before {
        return Err("a timer interrupt arrived with interrupts disabled");
    }
    idle_until(before);
    // The blocked-interrupt bitmap.
    let before = ticks();
    lg.mask_irq(0).map_err(|_| "line 0 is not a line")?;
    lg.set_next_event(tick_ns)
        .map_err(|_| "the clock event refused the tick")?;
    spin_until(p, p.now_ns() + 3 * tick_ns);
    let during = ticks();
    lg.unmask_irq(0).map_err(|_| "line 0 is not a line")?;
    if during != before {
        return Err("a timer interrupt arrived on a blocked line");
    }
    idle_until(before);
    crate::println!(I, "masked timer waited: irq flag, blocked line");
    Ok(())
}

/// The broken-on-purpose behaviours that need the shared page.
fn commit_fault<I: Instance>(params: &Checked) -> Result<(), Failure> {
    let lg = I::lguest();
    let t = lg.transport();
    match params.fault {
        Fault::IdtVector => {
            t.load_idt_entry(IDT_ENTRIES, 0, 0);
        }
        Fault::RingGarbage => {
            for s in lg.shared().hcall_status.iter().take(RING_SIZE) {
                s.store(0x42, Ordering::Release);
            }
            t.flush_async();
        }
        Fault::OutsideMemory => {
            t.hypercall(NOTIFY, [params.raw.mem_size + PAGE_SIZE, 0, 0, 0]);
        }
        // The others come later (`run`, `crate::hostile`).
        _ => return Ok(()),
    }
    Err("the host ran a broken hypercall")
}
