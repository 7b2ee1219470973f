//! The in-process backend: the kernel's [`workload::run`] in this process, its hypercalls
//! going through a loopback transport straight into the reference host, its shared page,
//! scratch buffers and page tables living in the host's guest memory.
//!
//! Every transport call stands for an exit: the host drains the ring and runs the call,
//! then decides on interrupts as it would before re-entering a VM, and delivers the timer
//! by calling the kernel's handler (then restoring the interrupt flag, as `lguest_iret`
//! does). What cannot happen without a CPU is said in the report's console: sites are
//! patched on copies (code is not writable), pages mapped are not dereferenced, and a
//! guest that computes without exiting is not interrupted (no kicks).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use guest::{DirectMap, Instance, IrqGates, Lguest, NativeCpuid, Scratch};
use host_stubs::clock::{Clock, SystemClock};
use host_stubs::loopback::Loopback;
use host_stubs::{GuestMem, Host, HostConfig, Kill, Next, Stop};
use lguest_abi::guest::Transport;
use lguest_abi::numbers::{ARG_REGS, EFLAGS_IF, IRQS, PAGE_SIZE};
use lguest_abi::shared::LguestData;
use lguest_abi::types::TsState;
use lguest_kernel::params::Phase;
use lguest_kernel::workload::{self, EXCEPTIONS, KERNEL_CS, Platform};

use crate::run::{Backend, Config, Report, Snapshot, host_counts, host_total_calls};

const DATA: u64 = 0x1000;
const SCRATCH: u64 = 0x2000;
const FRAME: u64 = 0x3000;
const BOOT_PGDIR: u64 = 0x4000;
/// Where a panic message goes, and its longest length with the NUL.
const PANIC_MSG: u64 = 0x5000;
const PANIC_MAX: usize = lguest_abi::numbers::SHUTDOWN_REASON_MAX as usize;
const STACK_TOP: u64 = 0x1_0000;
/// What the kernel "maps at the same address": the low 2 MiB, as its image would be.
const IDENTITY: std::ops::Range<u64> = PAGE_SIZE..0x20_0000;
/// Page tables come from here up.
const POOL: u64 = 0x20_0000;
/// An address outside `lguest_iret`'s window: in process, the guest is never inside it
/// when it exits.
const RIP: u64 = 0;

/// The guest stopped: unwinds out of the kernel code back to [`run`].
struct GuestStopped;

/// One in-process run's state, reached by the kernel through [`InProc`].
struct World {
    lb: Loopback<SystemClock>,
    base: u64,
    mem_size: u64,
    next_page: Cell<u64>,
    exits: Cell<u64>,
    live_console: bool,
    console_shown: Cell<usize>,
    ticks: Cell<u64>,
    marks: RefCell<Vec<(Phase, Snapshot)>>,
    start: Instant,
    watchdog: Duration,
    deadline: Option<(Instant, Duration)>,
    /// When the guest last went idle (the host slept for it), and its exits since.
    idle_at: Cell<Instant>,
    exits_since_idle: Cell<u64>,
    lg: Lguest<'static, Loop, NativeCpuid, DirectMap>,
}

static WORLD: AtomicPtr<World> = AtomicPtr::new(std::ptr::null_mut());
/// One in-process guest at a time: the kernel's statics are per process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn world() -> &'static World {
    let w = WORLD.load(Ordering::Acquire);
    assert!(
        !w.is_null(),
        "the in-process guest ran outside `inproc::run`"
    );
    // SAFETY: `run` sets WORLD to a live World for the whole time kernel code runs, on
    // this thread only (ONE_AT_A_TIME), and clears it before the World is dropped.
    unsafe { &*w }
}

/// The transport: every call is an exit into the host.
struct Loop;

impl Transport for Loop {
    fn hypercall(&self, nr: u64, args: [u64; ARG_REGS]) -> u64 {
        let w = world();
        w.check_limits();
        w.exits.set(w.exits.get() + 1);
        w.exits_since_idle.set(w.exits_since_idle.get() + 1);
        let result = w.lb.call(nr, args);
        w.show_console();
        match result {
            Ok(ret) => {
                w.before_entry();
                ret
            }
            Err(_) => resume_unwind(Box::new(GuestStopped)),
        }
    }
}

impl World {
    /// What the host does before it would re-enter the guest: sleep through HALT, deliver
    /// what is due.
    fn before_entry(&self) {
        loop {
            let next = self.lb.host_mut().next(RIP);
            match next {
                Ok(Next::Run) => return,
                Ok(Next::Sleep { until: None }) => {
                    self.lb.host_mut().kill_from_vmm(Kill::HaltedForever);
                    resume_unwind(Box::new(GuestStopped));
                }
                Ok(Next::Sleep { until: Some(t) }) => {
                    // The host bounded `t` (its halt limit); the run's deadline bounds it too.
                    let now = self.lb.host().clock().now_ns();
                    let mut nap = Duration::from_nanos(t.saturating_sub(now));
                    if let Some((d, _)) = self.deadline {
                        nap = nap.min(d.saturating_duration_since(Instant::now()));
                    }
                    std::thread::sleep(nap);
                    // Gone idle: the watchdog starts again.
                    self.idle_at.set(Instant::now());
                    self.exits_since_idle.set(0);
                    self.check_limits();
                }
                Ok(Next::Deliver(d)) => {
                    if d.line == 0 {
                        self.ticks.set(self.ticks.get() + 1);
                        workload::timer_irq::<InProc>();
                    }
                    // lguest_iret: the interrupted code had interrupts on.
                    self.lg
                        .shared()
                        .irq_enabled
                        .store(EFLAGS_IF as u32, Ordering::Release);
                }
                Err(_) => resume_unwind(Box::new(GuestStopped)),
            }
        }
    }

    /// Ends the run once its time limit is past, or the guest has not gone idle for the
    /// watchdog's period (as the KVM backend's run loop; in process, checked on every exit
    /// and every time the kernel reads the time, since nothing can interrupt it).
    fn check_limits(&self) {
        let kill = if let Some((d, t)) = self.deadline
            && Instant::now() >= d
        {
            Kill::Timeout {
                ms: t.as_millis() as u64,
            }
        } else if self.idle_at.get().elapsed() >= self.watchdog {
            Kill::Watchdog {
                ms: self.watchdog.as_millis() as u64,
                exits: self.exits_since_idle.get(),
            }
        } else {
            return;
        };
        self.lb.host_mut().kill_from_vmm(kill);
        resume_unwind(Box::new(GuestStopped));
    }

    fn show_console(&self) {
        if self.live_console {
            let mut shown = self.console_shown.get();
            crate::run::show_console(self.lb.host().console(), &mut shown);
            self.console_shown.set(shown);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let host = self.lb.host();
        Snapshot {
            exits: self.exits.get(),
            hypercalls: host_total_calls(&host),
            ring_drained: host.ring_drained(),
            wall_ns: self.start.elapsed().as_nanos() as u64,
            faults: 0,
        }
    }
}

/// The in-process guest instance.
struct InProc;

impl Instance for InProc {
    type Transport = Loop;
    type Cpuid = NativeCpuid;
    type Translate = DirectMap;

    fn lguest() -> &'static Lguest<'static, Loop, NativeCpuid, DirectMap> {
        &world().lg
    }

    fn irq_gates() -> IrqGates<'static> {
        static HANDLERS: OnceLock<[u64; IRQS as usize]> = OnceLock::new();
        let h = HANDLERS.get_or_init(|| {
            let mut h = [0u64; IRQS as usize];
            h[0] = workload::timer_irq::<InProc> as fn() as usize as u64;
            h
        });
        // SAFETY: the IDT is the kernel's static table of IDT_ENTRIES gates.
        unsafe { IrqGates::new(workload::idt(), KERNEL_CS, h) }
    }
}

impl Platform for World {
    fn identity(&self) -> std::ops::Range<u64> {
        IDENTITY
    }

    fn alloc_page(&self) -> Option<u64> {
        let p = self.next_page.get();
        (p + PAGE_SIZE <= self.mem_size).then(|| {
            self.next_page.set(p + PAGE_SIZE);
            p
        })
    }

    fn va(&self, pa: u64) -> *mut u64 {
        (self.base + pa) as *mut u64
    }

    fn frame(&self) -> u64 {
        FRAME
    }

    fn mappings_live(&self) -> bool {
        false
    }

    fn code_writable(&self) -> bool {
        false
    }

    fn now_ns(&self) -> u64 {
        self.check_limits();
        self.start.elapsed().as_nanos() as u64
    }

    fn mark(&self, phase: Phase) {
        let s = self.snapshot();
        self.marks.borrow_mut().push((phase, s));
    }

    fn exception_handlers(&self) -> Option<&'static [u64; EXCEPTIONS]> {
        None
    }

    fn stack_top(&self) -> u64 {
        STACK_TOP
    }

    fn emulated_nm(&self) -> Option<bool> {
        // lguest's rule: #NM reaches the guest exactly while its TS is set.
        Some(self.lb.host().ts() == TsState::Set)
    }
}

/// Runs the kernel's workload for `cfg` in this process.
pub fn run(cfg: &Config) -> Result<Report, String> {
    run_with(cfg, |_| ()).map(|(r, ())| r)
}

/// [`run`], then `inspect` looks at the host (and guest memory) as the run left them.
pub fn run_with<T>(
    cfg: &Config,
    inspect: impl FnOnce(&Host<SystemClock>) -> T,
) -> Result<(Report, T), String> {
    cfg.check()?;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mem = GuestMem::new(cfg.mem).map_err(|e| e.to_string())?;
    let base = mem
        .host_ptr(0, cfg.mem)
        .map_err(|e| e.to_string())?
        .as_ptr() as u64;
    let host = Host::new(
        mem,
        SystemClock::new(),
        HostConfig {
            boot_pgdir: BOOT_PGDIR,
            ..HostConfig::default()
        },
    );
    let data = (base + DATA) as *mut LguestData;
    let scratch = (base + SCRATCH) as *mut Scratch;
    const _: () = assert!(size_of::<Scratch>() as u64 <= FRAME - SCRATCH);
    // SAFETY: both lie inside guest memory (which `host` owns and keeps mapped until it is
    // dropped at the end of this function, after WORLD is cleared), page-aligned, and
    // nothing references them yet. The host touches the shared page only with atomic
    // accesses of the fields' sizes, so the guest's `&LguestData` sees no data race.
    let (data, scratch) = unsafe {
        data.write(LguestData::new());
        scratch.write(Scratch::new());
        (&*data, &*scratch)
    };
    let the_world = Box::new(World {
        lb: Loopback::new(host),
        base,
        mem_size: cfg.mem,
        next_page: Cell::new(POOL),
        exits: Cell::new(0),
        live_console: cfg.live_console,
        console_shown: Cell::new(0),
        ticks: Cell::new(0),
        marks: RefCell::new(Vec::new()),
        start: Instant::now(),
        watchdog: cfg.watchdog,
        deadline: cfg.timeout.map(|t| (Instant::now() + t, t)),
        idle_at: Cell::new(Instant::now()),
        exits_since_idle: Cell::new(0),
        lg: Lguest::new(data, scratch, Loop, NativeCpuid, DirectMap::new(base, 0)),
    });
    let params = cfg
        .boot_params()
        .check()
        .map_err(|e| format!("boot block: {e}"))?;
    WORLD.store(
        std::ptr::from_ref(&*the_world).cast_mut(),
        Ordering::Release,
    );
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let w = world();
        if let Err(e) = workload::run::<InProc, World>(w, &params) {
            // As the kernel's panic handler: the message through the machine's panic op,
            // from guest memory (the host reads it by its guest-physical address).
            let mut bytes = e.as_bytes()[..e.len().min(PANIC_MAX - 1)].to_vec();
            bytes.push(0);
            if w.lb.host().mem().write(PANIC_MSG, &bytes).is_ok() {
                // SAFETY: the NUL-terminated message was just written at PANIC_MSG, inside
                // guest memory, which outlives this call.
                let msg = unsafe { std::ffi::CStr::from_ptr((w.base + PANIC_MSG) as *const _) };
                w.lg.panic(msg);
            }
        }
    }));
    WORLD.store(std::ptr::null_mut(), Ordering::Release);
    if let Err(payload) = outcome
        && !payload.is::<GuestStopped>()
    {
        resume_unwind(payload);
    }
    let seen = inspect(&the_world.lb.host());
    Ok((report(&the_world), seen))
}

fn report(w: &World) -> Report {
    let host = w.lb.host();
    let (hypercalls, unknown, ring_drained, interrupts, pages_mapped) = host_counts(&host);
    let marks = w.marks.borrow();
    let find = |p| marks.iter().find(|(q, _)| *q == p).map(|(_, s)| *s);
    let workload = match (find(Phase::MmuStart), find(Phase::MmuEnd)) {
        (Some(a), Some(b)) => Some(b.since(&a)),
        _ => None,
    };
    Report {
        backend: Backend::InProcess,
        exits: w.exits.get(),
        kicks: 0,
        hypercalls,
        unknown_hypercalls: unknown,
        ring_drained,
        interrupts,
        ticks: w.ticks.get(),
        pages_mapped,
        traps: 0,
        wall_ns: w.start.elapsed().as_nanos() as u64,
        console: host.console().to_string(),
        stop: host.stopped().cloned().unwrap_or_else(|| {
            Stop::Killed(host_stubs::Killed {
                reason: Kill::Cpu {
                    what: "the kernel returned without stopping".into(),
                },
                origin: host_stubs::Origin::Entry,
            })
        }),
        workload,
        boots: 1,
        shadow: crate::run::ShadowCounts::of(&host, 0),
    }
}
