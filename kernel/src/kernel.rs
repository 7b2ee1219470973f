//! Room: the kernel binary itself. Its one `'static` guest (shared page, scratch, transport),
//! the [`Platform`] of a real ring-3 CPU (pages, patching in place, phase marks), and the
//! entry points the host jumps to: `_start`, the timer and exception stubs (assembly, at the
//! end) with the Rust they call, and the panic handler. What any freestanding Rust binary
//! needs from a C runtime is `runtime.rs`.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use guest::{DirectMap, Instance, IrqGates, Lguest, NativeCpuid, Scratch};
use lguest_abi::guest::Pio;
use lguest_abi::numbers::{ERROR_CODE_VECTORS, IRQS, PAGE_SIZE, SHUTDOWN_REASON_MAX};
use lguest_abi::shared::LguestData;
use lguest_kernel::console::CBuf;
use lguest_kernel::params::{BootParams, MARK_PORT};
use lguest_kernel::workload::{self, EXCEPTIONS, KERNEL_CS, Phase, Platform};

/// The device-not-available exception (x86).
const NM_VECTOR: u64 = x86::irq::DEVICE_NOT_AVAILABLE_VECTOR as u64;

/// Bytes of the kernel stack.
const STACK_SIZE: usize = 64 * 1024;
/// Pages for page tables.
const POOL_PAGES: usize = 512;

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE as usize]);

#[repr(C, align(4096))]
struct Pages<const N: usize>(core::cell::UnsafeCell<[Page; N]>);
// SAFETY: single CPU; the kernel hands each page out once (POOL_NEXT) and the host only
// reads guest memory while the guest is stopped.
unsafe impl<const N: usize> Sync for Pages<N> {}

static STACK: Pages<{ STACK_SIZE / PAGE_SIZE as usize }> = Pages(core::cell::UnsafeCell::new(
    [const { Page([0; PAGE_SIZE as usize]) }; STACK_SIZE / PAGE_SIZE as usize],
));
static POOL: Pages<POOL_PAGES> = Pages(core::cell::UnsafeCell::new(
    [const { Page([0; PAGE_SIZE as usize]) }; POOL_PAGES],
));
static FRAME: Pages<1> = Pages(core::cell::UnsafeCell::new(
    [const { Page([0; PAGE_SIZE as usize]) }; 1],
));
static POOL_NEXT: AtomicU64 = AtomicU64::new(0);

// The shared page and the scratch buffers: the seed's `lguest_data` and friends.
static DATA: LguestData = LguestData::new();
static SCRATCH: Scratch = Scratch::new();
static LG: Lguest<'static, Pio, NativeCpuid, DirectMap> = Lguest::new(
    &DATA,
    &SCRATCH,
    // SAFETY: this program only runs as a guest of lguest-run, whose host implements the
    // ABI over `out`.
    unsafe { Pio::new() },
    NativeCpuid,
    DirectMap::new(0, 0),
);

/// The one guest.
struct K;

unsafe extern "C" {
    /// Entry points of exception vectors 0..EXCEPTIONS (below, in assembly).
    static exc_table: [u64; EXCEPTIONS];
    /// Entry points of interrupt lines 0..IRQS.
    static irq_table: [u64; IRQS as usize];
    static __kernel_end: u8;
}

impl Instance for K {
    type Transport = Pio;
    type Cpuid = NativeCpuid;
    type Translate = DirectMap;

    fn lguest() -> &'static Lguest<'static, Pio, NativeCpuid, DirectMap> {
        &LG
    }

    fn irq_gates() -> IrqGates<'static> {
        // SAFETY: the IDT is the kernel's live, writable table of IDT_ENTRIES gates, and
        // `irq_table` is a static array the assembly below fills with entry points.
        unsafe { IrqGates::new(workload::idt(), KERNEL_CS, &irq_table) }
    }
}

/// The real CPU at ring 3.
struct Native;

impl Platform for Native {
    fn identity(&self) -> core::ops::Range<u64> {
        // Page 0 stays unmapped; the boot block sits below the image.
        PAGE_SIZE..(&raw const __kernel_end) as u64
    }

    fn alloc_page(&self) -> Option<u64> {
        let i = POOL_NEXT.fetch_add(1, Ordering::Relaxed) as usize;
        (i < POOL_PAGES).then(|| POOL.0.get() as u64 + (i as u64) * PAGE_SIZE)
    }

    fn va(&self, pa: u64) -> *mut u64 {
        pa as *mut u64
    }

    fn frame(&self) -> u64 {
        FRAME.0.get() as u64
    }

    fn mappings_live(&self) -> bool {
        true
    }

    fn code_writable(&self) -> bool {
        true
    }

    fn now_ns(&self) -> u64 {
        let khz = LG.tsc_khz();
        if khz == 0 {
            panic!("the host gave no TSC frequency to time a busy wait with");
        }
        // SAFETY: rdtsc reads the time-stamp counter; it runs at ring 3 (CR4.TSD clear).
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        (u128::from(tsc) * 1_000_000 / u128::from(khz)) as u64
    }

    fn mark(&self, phase: Phase) {
        // SAFETY: the host's TSS allows this port; the write exits to the host, which
        // snapshots its counters and changes no register.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") MARK_PORT, in("al") phase as u8,
                options(nomem, nostack, preserves_flags))
        }
    }

    fn exception_handlers(&self) -> Option<&'static [u64; EXCEPTIONS]> {
        // SAFETY: a static array of addresses, filled by the assembler.
        Some(unsafe { &exc_table })
    }

    fn stack_top(&self) -> u64 {
        STACK.0.get() as u64 + STACK_SIZE as u64
    }

    fn emulated_nm(&self) -> Option<bool> {
        None
    }
}

/// Rust's entry, from `_start`.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(params: u64) -> ! {
    // SAFETY: the host put the boot block at `params`, identity-mapped, before entry.
    let raw: BootParams = unsafe { core::ptr::read_volatile(params as *const BootParams) };
    let checked = match raw.check() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match workload::run::<K, Native>(&Native, &checked) {
        Ok(()) => panic!("the kernel ran past its end"),
        Err(e) => panic!("{e}"),
    }
}

/// The timer line's handler, called from `irq0_entry`.
extern "C" fn timer_irq() {
    workload::timer_irq::<K>();
}

/// An exception the host reflected to us: the kernel has no way to recover, so it says
/// what happened and panics. `frame` points at the error code, then rip, cs, rflags.
extern "C" fn exception(vector: u64, frame: *const u64) -> ! {
    if vector == NM_VECTOR {
        // Device not available: the task-switched bit is set. Clear it first, as Linux's
        // math_state_restore does, so the report below may use SSE registers.
        (workload::pv().cpu.clts)();
    }
    // SAFETY: the entry code passes the frame the host pushed: error code, rip, cs,
    // rflags, rsp, ss.
    let (err, rip) = unsafe { (frame.read(), frame.add(1).read()) };
    let cs: u64;
    // SAFETY: reading cs has no side effects; it says which ring this handler runs in.
    unsafe {
        core::arch::asm!("mov {}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    panic!(
        "exception {vector} (error {err:#x}) at rip {rip:#x}, handled at ring {}, cr2 {:#x}",
        cs & 3,
        DATA.cr2.load(Ordering::Relaxed)
    );
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if !PANICKING.swap(true, Ordering::Relaxed) {
        let mut msg = CBuf::<{ SHUTDOWN_REASON_MAX as usize }>::new();
        let _ = write!(msg, "{}", info.message());
        // Straight to the guest, not the pv_ops: they may not be installed yet.
        LG.panic(msg.as_cstr());
    }
    // The host never returns from SHUTDOWN; if it did, its watchdog ends us.
    loop {
        core::hint::spin_loop();
    }
}

core::arch::global_asm!(
    // _start: our stack, then Rust. rdi (the boot block) passes through.
    ".pushsection .text._start, \"ax\"",
    ".globl _start",
    "_start:",
    "lea rsp, [rip + {stack} + {stack_size}]",
    "call {main}",
    "ud2",
    ".popsection",
    // Interrupt line 0. The host pushed ss, rsp, rflags, cs, rip 16-aligned, so rsp is 8
    // off alignment here; nine pushes fix that. The handler may use SSE, so save it too.
    ".globl irq0_entry",
    "irq0_entry:",
    "push rax", "push rcx", "push rdx", "push rsi", "push rdi",
    "push r8", "push r9", "push r10", "push r11",
    "sub rsp, 512",
    "fxsave64 [rsp]",
    "call {timer}",
    "fxrstor64 [rsp]",
    "add rsp, 512",
    "pop r11", "pop r10", "pop r9", "pop r8",
    "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rax",
    "jmp {iret}",
    // Any other line: nothing to do but return (restoring the interrupt flag).
    "spurious_entry:",
    "jmp {iret}",
    // Exceptions: push a zero error code where the CPU pushes none (the spec's
    // ERROR_CODE_VECTORS says where it does), then the vector. The assembler has no loop
    // that makes labels, so the vectors are listed; `.error` stops the build if the spec's
    // FIRST_EXTERNAL_VECTOR (EXCEPTIONS) ever disagrees with the list.
    ".if {exceptions} != 32",
    ".error \"the exception stubs list 32 vectors, the spec has another count\"",
    ".endif",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "exc_\\v:",
    ".if (({error_code_vectors} >> \\v) & 1) == 0",
    "push 0",
    ".endif",
    "push \\v",
    "jmp exc_common",
    ".endr",
    "exc_common:",
    "pop rdi",
    "mov rsi, rsp",
    "and rsp, -16",
    "call {exception}",
    "ud2",
    ".pushsection .rodata",
    ".balign 8",
    ".globl exc_table",
    "exc_table:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".quad exc_\\v",
    ".endr",
    ".globl irq_table",
    "irq_table:",
    ".quad irq0_entry",
    ".rept {irqs} - 1",
    ".quad spurious_entry",
    ".endr",
    ".popsection",
    stack = sym STACK,
    stack_size = const STACK_SIZE,
    main = sym kernel_main,
    timer = sym timer_irq,
    iret = sym guest::init::lguest_iret,
    exception = sym exception,
    irqs = const IRQS,
    exceptions = const EXCEPTIONS,
    error_code_vectors = const ERROR_CODE_VECTORS,
);
