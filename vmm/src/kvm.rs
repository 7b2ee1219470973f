//! The KVM backend: one vCPU running the kernel at ring 3, every exit served by the
//! reference host through the generated dispatch.
//!
//! The split of work follows lguest's. The guest runs with the host's GDT, IDT and TSS (built
//! from what it loaded: [`crate::layout`]), so every exception it takes lands in a ring-0
//! stub that tells the host; the host then delivers it to the guest's own handler by
//! pushing a trap frame on the guest's stack, as lguest's `push_guest_interrupt_stack`
//! does, and interrupts (the timer) arrive the same way. A hypercall is an `out` to the
//! spec's port; the host drains the async ring on every such exit. HALT puts the vCPU
//! thread to sleep until the clock event is due. A second thread kicks the vCPU out of
//! `KVM_RUN` when the timer fires, or when the watchdog runs out, while the guest computes.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use guest::abi::guest::Pio;
use host_stubs::abi::numbers::{Hypercall, PAGE_SIZE};
use host_stubs::abi::shared::LguestData;
use host_stubs::clock::{Clock, SystemClock};
use host_stubs::desc::{Gate, INTERRUPT_GATE, Segment};
use host_stubs::host::Delivery;
use host_stubs::{GuestMem, Host, HostConfig, Kill, Next, Stop};
use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY, kvm_regs, kvm_run, kvm_sregs,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};
use lguest_kernel::params::MARK_PORT;
use lguest_kernel::workload::Phase;

use crate::elf::{self, ElfError};
use crate::layout::{self, BOOT_BLOCK, BOOT_CS, BOOT_DS, HOST_SIZE, RO_SIZE, STACK_OFF, TSS_SEL};
use crate::run::{Backend, Config, Report, Snapshot, host_counts, host_total_calls};

/// Why the VM could not be set up or run (as opposed to the guest being stopped, which
/// ends in a [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm is missing, not accessible, or lacks what this VMM needs.
    #[error("KVM is not usable here: {0}")]
    NoKvm(String),
    /// A KVM call failed.
    #[error("KVM {what} failed: {err}")]
    Kvm {
        /// The call.
        what: &'static str,
        /// The error.
        err: kvm_ioctls::Error,
    },
    /// The kernel image is bad.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// Guest memory could not be set up.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The configuration is bad.
    #[error("configuration: {0}")]
    Config(String),
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |err| VmError::Kvm { what, err }
}

const RFLAGS_IF: u64 = 0x200;
const RFLAGS_TF: u64 = 0x100;
/// CR3's page-level write-through bit.
const CR3_PWT: u64 = 0x8;
/// Bytes below the interrupted stack pointer left alone when pushing a frame: the System V
/// red zone, which the prebuilt `core` may use in leaf functions.
const RED_ZONE: u64 = 128;

/// Registers through the `kvm_run` sync area where KVM offers it (no ioctl per access),
/// KVM_GET/SET_(S)REGS otherwise.
struct Cpu {
    vcpu: VcpuFd,
    sync: bool,
}

impl Cpu {
    fn regs(&self) -> Result<kvm_regs, VmError> {
        if self.sync {
            Ok(self.vcpu.sync_regs().regs)
        } else {
            self.vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))
        }
    }

    fn set_regs(&mut self, r: &kvm_regs) -> Result<(), VmError> {
        if self.sync {
            self.vcpu.sync_regs_mut().regs = *r;
            self.vcpu.set_sync_dirty_reg(SyncReg::Register);
            Ok(())
        } else {
            self.vcpu.set_regs(r).map_err(kvm_err("KVM_SET_REGS"))
        }
    }

    fn sregs(&self) -> Result<kvm_sregs, VmError> {
        if self.sync {
            Ok(self.vcpu.sync_regs().sregs)
        } else {
            self.vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))
        }
    }

    fn set_sregs(&mut self, s: &kvm_sregs) -> Result<(), VmError> {
        if self.sync {
            self.vcpu.sync_regs_mut().sregs = *s;
            self.vcpu.set_sync_dirty_reg(SyncReg::SystemRegister);
            Ok(())
        } else {
            self.vcpu.set_sregs(s).map_err(kvm_err("KVM_SET_SREGS"))
        }
    }

    /// The 16 general registers in x86 encoding order, as the generated transport
    /// constants number them.
    fn gprs(r: &kvm_regs) -> [u64; 16] {
        [
            r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ]
    }

    fn set_gpr(r: &mut kvm_regs, index: usize, v: u64) {
        let slot = match index {
            0 => &mut r.rax,
            1 => &mut r.rcx,
            2 => &mut r.rdx,
            3 => &mut r.rbx,
            4 => &mut r.rsp,
            5 => &mut r.rbp,
            6 => &mut r.rsi,
            7 => &mut r.rdi,
            8 => &mut r.r8,
            9 => &mut r.r9,
            10 => &mut r.r10,
            11 => &mut r.r11,
            12 => &mut r.r12,
            13 => &mut r.r13,
            14 => &mut r.r14,
            _ => &mut r.r15,
        };
        *slot = v;
    }
}

// ----- Kicking the vCPU out of KVM_RUN -----

const KICK_SIGNAL: libc::c_int = libc::SIGUSR1;

thread_local! {
    /// This thread's vCPU's `kvm_run`, for the kick handler.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `run` is this thread's vCPU's kvm_run mapping, set while the vCPU lives
        // (and cleared before it goes); a one-byte volatile store is async-signal-safe. If
        // the signal lands outside KVM_RUN, the next KVM_RUN returns at once.
        unsafe { (&raw mut (*run).immediate_exit).write_volatile(1) };
    }
}

fn install_kick_handler() -> Result<(), VmError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with our handler and an empty mask is valid; the
        // handler only does an async-signal-safe store. No SA_RESTART: KVM_RUN must return.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(KICK_SIGNAL, &sa, std::ptr::null_mut()) != 0 {
                result = Err(VmError::NoKvm(format!(
                    "cannot install the vCPU kick handler: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
    });
    result
}

#[derive(Default)]
struct KickState {
    deadline: Option<Instant>,
    quit: bool,
}

/// A thread that signals the vCPU thread at a deadline.
struct Kicker {
    state: Arc<(Mutex<KickState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Kicker {
    fn new(target: libc::pthread_t) -> Kicker {
        let state = Arc::new((Mutex::new(KickState::default()), Condvar::new()));
        let s = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*s;
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if st.quit {
                    return;
                }
                match st.deadline {
                    None => st = cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            st.deadline = None;
                            // SAFETY: `target` is the vCPU thread, which outlives this
                            // thread (Drop joins us before the vCPU thread goes on).
                            unsafe { libc::pthread_kill(target, KICK_SIGNAL) };
                        } else {
                            st = cv
                                .wait_timeout(st, d - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
            }
        });
        Kicker {
            state,
            thread: Some(thread),
        }
    }

    /// Sets the deadline. The thread is woken only when it must kick sooner than it
    /// planned: a later deadline (the watchdog's, pushed back by every hypercall) it finds
    /// when it wakes, which keeps a cross-thread wake-up off every exit.
    fn arm(&self, deadline: Option<Instant>) {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let sooner = match (deadline, st.deadline) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        st.deadline = deadline;
        if sooner {
            cv.notify_one();
        }
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.state;
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            st.quit = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ----- The machine -----

/// The VM. Fields drop in order: the vCPU and VM before the memory they map.
struct Machine {
    cpu: Cpu,
    _vm: VmFd,
    host: Host<SystemClock>,
    /// The host's region (tables, stubs, its page tables, the ring-0 stack).
    region: GuestMem,
    host_gpa: u64,
    /// The top-level table in CR3.
    cr3: u64,
    gdt_seen: Vec<Segment>,
    idt_seen: Vec<Gate>,
    /// Page-table calls (SET_PTE, SET_PMD, FLUSH_TLB, NEW_PGTABLE) the host has run.
    mmu_calls_seen: u64,
    /// CR3's write-through bit, flipped to make KVM take a CR3 load.
    cr3_flip: u64,
    exits: u64,
    kicks: u64,
    ticks: u64,
    traps: u64,
    start: Instant,
    marks: Vec<(Phase, Snapshot)>,
    console_shown: usize,
}

/// Boots `kernel` under KVM with `cfg` and runs it to its end.
pub fn run(cfg: &Config, kernel: &[u8]) -> Result<Report, VmError> {
    run_with(cfg, kernel, |_| ()).map(|(r, ())| r)
}

/// [`run`], then `inspect` looks at the host (and guest memory) as the run left them.
pub fn run_with<T>(
    cfg: &Config,
    kernel: &[u8],
    inspect: impl FnOnce(&Host<SystemClock>) -> T,
) -> Result<(Report, T), VmError> {
    cfg.check().map_err(VmError::Config)?;
    install_kick_handler()?;
    let mut m = Machine::new(cfg, kernel)?;
    let kicker = Kicker::new(
        // SAFETY: pthread_self has no preconditions.
        unsafe { libc::pthread_self() },
    );
    KVM_RUN.with(|c| c.set(std::ptr::from_mut(m.cpu.vcpu.get_kvm_run())));
    let result = m.run_loop(cfg, &kicker);
    if cfg.live_console {
        crate::run::show_console(m.host.console(), &mut m.console_shown);
    }
    KVM_RUN.with(|c| c.set(std::ptr::null_mut()));
    drop(kicker);
    result?;
    let seen = inspect(&m.host);
    Ok((m.report(), seen))
}

impl Machine {
    fn new(cfg: &Config, kernel: &[u8]) -> Result<Machine, VmError> {
        // LGUEST_KVM_DEVICE names another device node (tests use a missing one to see the
        // fallback).
        let path = std::env::var("LGUEST_KVM_DEVICE").unwrap_or_else(|_| "/dev/kvm".into());
        let cpath = std::ffi::CString::new(path.clone())
            .map_err(|_| VmError::NoKvm(format!("{path:?} is not a path")))?;
        let kvm = Kvm::new_with_path(&cpath)
            .map_err(|e| VmError::NoKvm(format!("opening {path}: {e}")))?;
        for (cap, name) in [
            (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(VmError::NoKvm(format!("the kernel's KVM lacks {name}")));
            }
        }
        let vm = kvm
            .create_vm()
            .map_err(|e| VmError::NoKvm(format!("creating a VM: {e}")))?;
        let mem = GuestMem::new(cfg.mem).map_err(|e| VmError::Memory(e.to_string()))?;
        let region = GuestMem::new(HOST_SIZE).map_err(|e| VmError::Memory(e.to_string()))?;
        let host_gpa = cfg.mem;
        let readonly = kvm.check_extension(Cap::ReadonlyMem);
        let slots = [
            (0, 0, cfg.mem, &mem, 0, 0),
            (
                1,
                host_gpa,
                RO_SIZE,
                &region,
                0,
                if readonly { KVM_MEM_READONLY } else { 0 },
            ),
            (
                2,
                host_gpa + STACK_OFF,
                HOST_SIZE - STACK_OFF,
                &region,
                STACK_OFF,
                0,
            ),
        ];
        for (slot, gpa, size, backing, offset, flags) in slots {
            let ptr = backing
                .host_ptr(offset, size)
                .map_err(|e| VmError::Memory(e.to_string()))?;
            let r = kvm_userspace_memory_region {
                slot,
                flags,
                guest_phys_addr: gpa,
                memory_size: size,
                userspace_addr: ptr.as_ptr() as u64,
            };
            // SAFETY: the range is a live anonymous mapping owned by `mem` or `region`,
            // which the Machine keeps until after the VM is closed (field order), and
            // nothing else in this process aliases it as a Rust reference.
            unsafe { vm.set_user_memory_region(r) }
                .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        }

        // The kernel, its boot block, the boot page tables, the host's region.
        let tables_at = cfg.mem - layout::BOOT_TABLE_PAGES * PAGE_SIZE;
        let loaded = elf::load(kernel, &mem, tables_at)?;
        if loaded.end <= BOOT_BLOCK + PAGE_SIZE {
            return Err(VmError::Config("the kernel overlaps the boot block".into()));
        }
        let params = cfg.boot_params().to_bytes();
        mem.write(BOOT_BLOCK, &params)
            .map_err(|e| VmError::Memory(e.to_string()))?;
        let (boot_pgdir, tables) = layout::boot_tables(cfg.mem, host_gpa);
        mem.write(tables_at, &tables)
            .map_err(|e| VmError::Memory(e.to_string()))?;
        region
            .write(0, &layout::host_region(host_gpa))
            .map_err(|e| VmError::Memory(e.to_string()))?;
        let gdt = layout::real_gdt(&[]);
        write_gdt(&region, &gdt)?;
        region
            .write(layout::IDT_OFF, &layout::real_idt(&[]))
            .map_err(|e| VmError::Memory(e.to_string()))?;

        let vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
        let tsc_khz = vcpu.get_tsc_khz().unwrap_or(0);

        // Long mode, paging on the boot tables, ring 3 in the boot segments.
        let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
        sregs.cr0 = 0x8000_0033; // PG | NE | ET | MP | PE
        sregs.cr4 = 0x620; // OSXMMEXCPT | OSFXSR | PAE
        sregs.efer = 0x500; // LMA | LME
        sregs.cr3 = boot_pgdir;
        sregs.cs = layout::kvm_segment(BOOT_CS, gdt[usize::from(BOOT_CS >> 3)]);
        let ds = layout::kvm_segment(BOOT_DS, gdt[usize::from(BOOT_DS >> 3)]);
        (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (ds, ds, ds, ds, ds);
        let t = usize::from(TSS_SEL >> 3);
        sregs.tr = layout::kvm_segment(TSS_SEL, gdt[t]);
        sregs.tr.base |= gdt[t + 1] << 32;
        sregs.tr.s = 0;
        sregs.ldt.unusable = 1;
        sregs.gdt.base = layout::va(layout::GDT_OFF);
        sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
        sregs.idt.base = layout::va(layout::IDT_OFF);
        sregs.idt.limit = 4095;
        vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;
        let regs = kvm_regs {
            rip: loaded.entry,
            rsp: BOOT_BLOCK,
            rdi: BOOT_BLOCK,
            rflags: 0x2 | RFLAGS_IF,
            ..Default::default()
        };
        vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;

        let mut vcpu = vcpu;
        let sync = kvm.check_extension(Cap::SyncRegs);
        if sync {
            vcpu.set_sync_valid_reg(SyncReg::Register);
            vcpu.set_sync_valid_reg(SyncReg::SystemRegister);
        }
        let host = Host::new(
            mem,
            SystemClock::with_tsc_khz(tsc_khz),
            HostConfig {
                boot_pgdir,
                ..HostConfig::default()
            },
        );
        let gdt_seen = host.gdt().to_vec();
        let idt_seen = host.idt().to_vec();
        Ok(Machine {
            cpu: Cpu { vcpu, sync },
            _vm: vm,
            host,
            region,
            host_gpa,
            cr3: boot_pgdir,
            gdt_seen,
            idt_seen,
            mmu_calls_seen: 0,
            cr3_flip: 0,
            exits: 0,
            kicks: 0,
            ticks: 0,
            traps: 0,
            start: Instant::now(),
            marks: Vec::new(),
            console_shown: 0,
        })
    }

    fn kill(&mut self, reason: Kill) {
        self.host.kill_from_vmm(reason);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            exits: self.exits,
            hypercalls: host_total_calls(&self.host),
            ring_drained: self.host.ring_drained(),
            wall_ns: self.start.elapsed().as_nanos() as u64,
        }
    }

    fn run_loop(&mut self, cfg: &Config, kicker: &Kicker) -> Result<(), VmError> {
        self.start = Instant::now();
        let mut last_calls = 0;
        let mut last_progress = Instant::now();
        loop {
            self.cpu.vcpu.set_kvm_immediate_exit(0);
            if self.host.stopped().is_some() {
                return Ok(());
            }
            self.sync_tables()?;
            if self.host.stopped().is_some() {
                return Ok(());
            }
            // The watchdog: hypercalls are progress.
            let calls = host_total_calls(&self.host);
            if calls != last_calls {
                last_calls = calls;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > cfg.watchdog {
                self.kill(Kill::Watchdog {
                    ms: cfg.watchdog.as_millis() as u64,
                });
                return Ok(());
            }
            // Interrupts, only while the guest is at ring 3 (not inside a host stub).
            let sregs = self.cpu.sregs()?;
            if sregs.cs.selector & 3 == 3 {
                let rip = self.cpu.regs()?.rip;
                match self.host.next(rip) {
                    Err(_) => return Ok(()),
                    Ok(Next::Run) => {}
                    Ok(Next::Sleep { until: None }) => {
                        self.kill(Kill::HaltedForever);
                        return Ok(());
                    }
                    Ok(Next::Sleep { until: Some(t) }) => {
                        let now = self.host.clock().now_ns();
                        std::thread::sleep(Duration::from_nanos(t.saturating_sub(now)));
                        last_progress = Instant::now();
                        continue;
                    }
                    Ok(Next::Deliver(d)) => {
                        self.deliver(d)?;
                    }
                }
            }
            kicker.arm(Some(self.kick_deadline(last_progress + cfg.watchdog)));
            let exit = match self.cpu.vcpu.run() {
                Ok(VcpuExit::IoOut(port, data)) => Exit::Out(port, data.first().copied()),
                Ok(VcpuExit::IoIn(port, _)) => Exit::In(port),
                Ok(VcpuExit::MmioWrite(addr, data)) => Exit::MmioWrite(addr, data.len()),
                Ok(VcpuExit::MmioRead(addr, _)) => Exit::MmioRead(addr),
                Ok(VcpuExit::Hlt) => Exit::Cpu("hlt at ring 0".into()),
                Ok(VcpuExit::Shutdown) => Exit::Cpu("shutdown (a triple fault)".into()),
                Ok(VcpuExit::FailEntry(reason, _)) => {
                    Exit::Cpu(format!("VM entry failed, hardware reason {reason:#x}"))
                }
                Ok(VcpuExit::InternalError) => Exit::Cpu("KVM internal error".into()),
                Ok(other) => Exit::Cpu(format!("unexpected exit {other:?}")),
                Err(e) if e.errno() == libc::EINTR => Exit::Kicked,
                Err(e) if e.errno() == libc::EAGAIN => Exit::Kicked,
                Err(err) => {
                    return Err(VmError::Kvm {
                        what: "KVM_RUN",
                        err,
                    });
                }
            };
            if exit != Exit::Kicked {
                self.exits += 1;
            }
            if cfg.live_console {
                crate::run::show_console(self.host.console(), &mut self.console_shown);
            }
            match exit {
                Exit::Kicked => self.kicks += 1,
                Exit::Out(port, _) if port == Pio::PORT => self.hypercall()?,
                Exit::Out(port, _) if port == layout::TRAP_PORT => self.trap()?,
                Exit::Out(port, Some(byte)) if port == MARK_PORT => {
                    if let Some(p) = Phase::from_raw(byte) {
                        let s = self.snapshot();
                        self.marks.push((p, s));
                    }
                }
                Exit::Out(port, _) | Exit::In(port) => self.kill(Kill::BadPort { port }),
                Exit::MmioWrite(gpa, len) => {
                    if (self.host_gpa..self.host_gpa + HOST_SIZE).contains(&gpa) {
                        self.kill(Kill::HostMemory {
                            gpa,
                            len: len as u64,
                        });
                    } else {
                        self.kill(Kill::Cpu {
                            what: format!("write to unbacked guest-physical {gpa:#x}"),
                        });
                    }
                }
                Exit::MmioRead(gpa) => self.kill(Kill::Cpu {
                    what: format!("read of unbacked guest-physical {gpa:#x}"),
                }),
                Exit::Cpu(what) => {
                    // A guest that took away the host's mapping triple-faults at its next
                    // event: name the cause, not just the symptom.
                    self.check_host_entry();
                    self.kill(Kill::Cpu { what });
                }
            }
        }
    }

    /// When the kicker must interrupt the running guest: the clock event, a pending
    /// interrupt that could not be delivered yet (every millisecond, like a host tick), or
    /// the watchdog.
    fn kick_deadline(&self, watchdog: Instant) -> Instant {
        let now_ns = self.host.clock().now_ns();
        let start = self.host.clock().start();
        let mut d = watchdog;
        if let Some(t) = self.host.timer() {
            d = d.min(start + Duration::from_nanos(t.max(now_ns)));
        }
        if self.host.pending_irqs() != 0 {
            d = d.min(Instant::now() + Duration::from_millis(1));
        }
        d
    }

    /// A hypercall exit: read the call from the spec's registers, run it (after the ring),
    /// put the result back.
    fn hypercall(&mut self) -> Result<(), VmError> {
        let mut regs = self.cpu.regs()?;
        let gprs = Cpu::gprs(&regs);
        let nr = gprs[Pio::NR_REG];
        let args = Pio::ARG_REGS.map(|r| gprs[r]);
        match self.host.hypercall(nr, args) {
            Ok(ret) => {
                Cpu::set_gpr(&mut regs, Pio::RET_REG, ret);
                self.cpu.set_regs(&regs)?;
            }
            Err(_) => return Ok(()),
        }
        // An interrupt may go in before the guest runs again: let KVM finish the `out`
        // first, so the frame returns past it.
        let due = self
            .host
            .timer()
            .is_some_and(|t| t <= self.host.clock().now_ns());
        if self.host.halted() || self.host.pending_irqs() != 0 || due {
            self.complete_io()?;
        }
        Ok(())
    }

    /// KVM_RUN with immediate_exit set: completes the pending port write (advancing rip)
    /// and returns without running the guest.
    fn complete_io(&mut self) -> Result<(), VmError> {
        self.cpu.vcpu.set_kvm_immediate_exit(1);
        let r = match self.cpu.vcpu.run() {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            Err(err) => Err(VmError::Kvm {
                what: "KVM_RUN",
                err,
            }),
            Ok(exit) => Err(VmError::NoKvm(format!(
                "KVM ran the guest despite immediate_exit ({exit:?})"
            ))),
        };
        self.cpu.vcpu.set_kvm_immediate_exit(0);
        r
    }

    /// Follows what the guest's hypercalls changed: the real GDT and IDT, the page tables
    /// in CR3 (and a reload after a TLB flush), and checks the host's entry is still in
    /// them.
    fn sync_tables(&mut self) -> Result<(), VmError> {
        if self.host.gdt() != self.gdt_seen.as_slice() {
            self.gdt_seen = self.host.gdt().to_vec();
            write_gdt(&self.region, &layout::real_gdt(&self.gdt_seen))?;
        }
        if self.host.idt() != self.idt_seen.as_slice() {
            self.idt_seen = self.host.idt().to_vec();
            self.region
                .write(layout::IDT_OFF, &layout::real_idt(&self.idt_seen))
                .map_err(|e| VmError::Memory(e.to_string()))?;
        }
        // The guest changed its page tables and told the host: as lguest's host updates
        // its shadow, this one makes KVM drop what it cached of the old entries (the guest
        // cannot: invlpg and CR3 writes are privileged). A CR3 load does that; flipping the
        // table's write-through bit (which only affects how the PML4 itself is cached)
        // makes each one a load KVM cannot skip.
        let mmu_calls = self.mmu_calls();
        let pgdir = self.host.pgdir();
        if mmu_calls != self.mmu_calls_seen {
            self.mmu_calls_seen = mmu_calls;
            if pgdir != 0 && pgdir != self.cr3 {
                // The host's slot in the guest's new table (NEW_PGTABLE checked the page).
                let entry = layout::host_pml4_entry(self.host_gpa);
                if self.host.mem().write_u64(pgdir + 511 * 8, entry).is_err() {
                    self.kill(Kill::HostMapping { pgdir, entry: 0 });
                    return Ok(());
                }
                self.cr3 = pgdir;
            }
            self.cr3_flip ^= CR3_PWT;
            let mut s = self.cpu.sregs()?;
            s.cr3 = self.cr3 | self.cr3_flip;
            self.cpu.set_sregs(&s)?;
        }
        self.check_host_entry();
        Ok(())
    }

    /// Kills the guest if the host's entry is gone from its current top-level table.
    fn check_host_entry(&mut self) {
        let want = layout::host_pml4_entry(self.host_gpa);
        match self.host.mem().read_u64(self.cr3 + 511 * 8) {
            Ok(e) if e == want => {}
            Ok(entry) => self.kill(Kill::HostMapping {
                pgdir: self.cr3,
                entry,
            }),
            Err(_) => self.kill(Kill::HostMapping {
                pgdir: self.cr3,
                entry: 0,
            }),
        }
    }

    /// Delivers interrupt `d` as lguest does: a frame on the guest's stack, rip at its
    /// handler. The host already cleared `irq_enabled` for an interrupt gate; the frame's
    /// interrupt flag says interrupts were on (they were, or it would not be delivered).
    fn deliver(&mut self, d: Delivery) -> Result<(), VmError> {
        if d.line == 0 {
            self.ticks += 1;
        }
        let regs = self.cpu.regs()?;
        let sregs = self.cpu.sregs()?;
        let frame = Frame {
            rip: regs.rip,
            cs: u64::from(sregs.cs.selector),
            rflags: regs.rflags | RFLAGS_IF,
            rsp: regs.rsp,
            ss: u64::from(sregs.ss.selector),
        };
        match push_frame(self.host.mem(), sregs.cr3, &frame, None) {
            Ok(sp) => self.enter_handler(d.gate, sp, regs, sregs),
            Err(why) => {
                self.kill(Kill::Trap {
                    vector: d.vector,
                    error: 0,
                    rip: regs.rip,
                    why: format!("delivering interrupt line {}: {why}", d.line),
                });
                Ok(())
            }
        }
    }

    /// Points the vCPU at `gate`'s handler with the stack at `sp`.
    fn enter_handler(
        &mut self,
        gate: Gate,
        sp: u64,
        mut regs: kvm_regs,
        mut sregs: kvm_sregs,
    ) -> Result<(), VmError> {
        regs.rip = gate.offset();
        regs.rsp = sp;
        regs.rflags &= !RFLAGS_TF;
        self.cpu.set_regs(&regs)?;
        let sel = gate.selector();
        if sel != sregs.cs.selector {
            sregs.cs = layout::kvm_segment(sel, self.real_gdt_entry(sel));
            self.cpu.set_sregs(&sregs)?;
        }
        Ok(())
    }

    /// Page-table hypercalls the host has run so far.
    fn mmu_calls(&self) -> u64 {
        let (counts, _) = self.host.counts();
        counts
            .filter(|(c, _)| {
                matches!(
                    c,
                    Hypercall::SetPte
                        | Hypercall::SetPmd
                        | Hypercall::FlushTlb
                        | Hypercall::NewPgtable
                )
            })
            .map(|(_, n)| n)
            .sum()
    }

    fn real_gdt_entry(&self, sel: u16) -> u64 {
        layout::real_gdt(&self.gdt_seen)
            .get(usize::from(sel >> 3))
            .copied()
            .unwrap_or(0)
    }

    /// A trap exit from a ring-0 stub: the CPU's frame is on the host's stack. Reflect it
    /// into the guest's handler (rewriting that frame, which the stub returns through), or
    /// kill the guest.
    fn trap(&mut self) -> Result<(), VmError> {
        let top = STACK_OFF + layout::STACK_SIZE;
        let mut f = [0u64; 7];
        for (i, w) in f.iter_mut().enumerate() {
            *w = self
                .region
                .read_u64(top - 56 + 8 * i as u64)
                .map_err(|e| VmError::Memory(e.to_string()))?;
        }
        let [vector, error, rip, cs, rflags, rsp, ss] = f;
        if cs & 3 != 3 || vector > 255 {
            self.kill(Kill::Cpu {
                what: format!(
                    "exception {vector} in the host's ring-0 code at {rip:#x} (error {error:#x})"
                ),
            });
            return Ok(());
        }
        self.traps += 1;
        let frame = Frame {
            rip,
            cs,
            rflags,
            rsp,
            ss,
        };
        match self.reflect(vector as u8, error, &frame)? {
            Ok(new) => {
                // Rewrite the ring-0 frame: the stub's iretq lands in the guest's handler.
                for (i, w) in new.iter().enumerate() {
                    self.region
                        .write_u64(top - 40 + 8 * i as u64, *w)
                        .map_err(|e| VmError::Memory(e.to_string()))?;
                }
            }
            Err(why) => self.kill(Kill::Trap {
                vector: vector as u8,
                error,
                rip,
                why,
            }),
        }
        Ok(())
    }

    /// lguest's `deliver_trap`: the guest's gate for `vector`, cr2 into the shared page for
    /// a page fault, the frame (with the virtual interrupt flag) on the guest's stack, the
    /// virtual flag cleared for an interrupt gate. Returns the iretq frame that enters the
    /// handler, or why the trap cannot be delivered.
    fn reflect(
        &self,
        vector: u8,
        error: u64,
        f: &Frame,
    ) -> Result<Result<[u64; 5], String>, VmError> {
        let Some(page) = self.host.shared_page() else {
            return Ok(Err("before LGUEST_INIT, the guest has no handlers".into()));
        };
        let gate = self
            .host
            .idt()
            .get(usize::from(vector))
            .copied()
            .unwrap_or_default();
        if !gate.present() {
            return Ok(Err("the guest has no handler for it".into()));
        }
        let sregs = self.cpu.sregs()?;
        let mem = self.host.mem();
        let gone = || "the shared page is gone".to_string();
        if vector == 14
            && mem
                .write_u64(page + LguestData::CR2_OFFSET as u64, sregs.cr2)
                .is_err()
        {
            return Ok(Err(gone()));
        }
        let irq_at = page + LguestData::IRQ_ENABLED_OFFSET as u64;
        let Ok(irq_on) = mem.load_u32(irq_at, Ordering::Acquire) else {
            return Ok(Err(gone()));
        };
        let pushed = Frame {
            rflags: if irq_on != 0 {
                f.rflags | RFLAGS_IF
            } else {
                f.rflags & !RFLAGS_IF
            },
            ..*f
        };
        let code = layout::has_error_code(vector).then_some(error);
        let sp = match push_frame(mem, sregs.cr3, &pushed, code) {
            Ok(sp) => sp,
            Err(why) => return Ok(Err(format!("pushing the trap frame: {why}"))),
        };
        if gate.gate_type() == INTERRUPT_GATE
            && mem.store_u32(irq_at, 0, Ordering::Release).is_err()
        {
            return Ok(Err(gone()));
        }
        Ok(Ok([
            gate.offset(),
            u64::from(gate.selector()),
            (f.rflags & !RFLAGS_TF) | RFLAGS_IF,
            sp,
            f.ss,
        ]))
    }

    fn report(&self) -> Report {
        let (hypercalls, unknown, ring_drained, interrupts, pages_mapped) = host_counts(&self.host);
        let start = self.marks.iter().find(|(p, _)| *p == Phase::MmuStart);
        let end = self.marks.iter().find(|(p, _)| *p == Phase::MmuEnd);
        let workload = match (start, end) {
            (Some((_, a)), Some((_, b))) => {
                // The end mark's own exit is not the workload's.
                let mut d = b.since(a);
                d.exits = d.exits.saturating_sub(1);
                Some(d)
            }
            _ => None,
        };
        Report {
            backend: Backend::Kvm,
            exits: self.exits,
            kicks: self.kicks,
            hypercalls,
            unknown_hypercalls: unknown,
            ring_drained,
            interrupts,
            ticks: self.ticks,
            pages_mapped,
            traps: self.traps,
            wall_ns: self.start.elapsed().as_nanos() as u64,
            console: self.host.console().to_string(),
            stop: self.host.stopped().cloned().unwrap_or_else(|| {
                Stop::Killed(host_stubs::Killed {
                    reason: Kill::Cpu {
                        what: "the run ended without a stop".into(),
                    },
                    origin: host_stubs::Origin::Entry,
                })
            }),
            workload,
            boots: 1,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Out(u16, Option<u8>),
    In(u16),
    MmioWrite(u64, usize),
    MmioRead(u64),
    Cpu(String),
    Kicked,
}

/// An interrupt frame, as `iretq` pops it.
#[derive(Clone, Copy)]
struct Frame {
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Pushes `frame` (and an error code) below the red zone of the guest stack, 16-aligned as
/// the CPU aligns it, through the guest's page tables at `cr3`. Returns the new stack
/// pointer. Every word goes through a checked translation and a bounds-checked write.
fn push_frame(mem: &GuestMem, cr3: u64, f: &Frame, error: Option<u64>) -> Result<u64, String> {
    let mut sp = (f.rsp.wrapping_sub(RED_ZONE)) & !15;
    let mut words = vec![f.ss, f.rsp, f.rflags, f.cs, f.rip];
    words.extend(error);
    for w in words {
        sp = sp.wrapping_sub(8);
        let pa = translate(mem, cr3, sp)?;
        mem.write_u64(pa, w)
            .map_err(|_| format!("stack address {sp:#x} maps outside guest memory"))?;
    }
    Ok(sp)
}

/// The guest-physical address of `va` under `cr3`, which the guest itself may write (present,
/// writable and user at every level; 1 GiB, 2 MiB and 4 KiB pages).
fn translate(mem: &GuestMem, cr3: u64, va: u64) -> Result<u64, String> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let mut table = cr3 & ADDR;
    for level in 0..4u32 {
        let index = (va >> (39 - 9 * level)) & 511;
        let e = mem
            .read_u64(table + index * 8)
            .map_err(|_| format!("the page tables for {va:#x} leave guest memory"))?;
        if e & 7 != 7 {
            return Err(format!(
                "stack address {va:#x} is not mapped writable for the guest"
            ));
        }
        let huge = e & 0x80 != 0;
        match level {
            1 if huge => return Ok((e & 0x000f_ffff_c000_0000) | (va & 0x3fff_ffff)),
            2 if huge => return Ok((e & 0x000f_ffff_ffe0_0000) | (va & 0x1f_ffff)),
            3 => return Ok((e & ADDR) | (va & 0xfff)),
            _ => table = e & ADDR,
        }
    }
    Err(format!("stack address {va:#x} has no leaf entry"))
}

fn write_gdt(region: &GuestMem, gdt: &[u64]) -> Result<(), VmError> {
    let bytes: Vec<u8> = gdt.iter().flat_map(|e| e.to_le_bytes()).collect();
    region
        .write(layout::GDT_OFF, &bytes)
        .map_err(|e| VmError::Memory(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_below_the_red_zone_aligned_and_translated() {
        let mem = GuestMem::new(0x40_0000).unwrap();
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> 2 MiB page at 0.
        mem.write_u64(0x1000, 0x2007).unwrap();
        mem.write_u64(0x2000, 0x3007).unwrap();
        mem.write_u64(0x3000, 0x87).unwrap();
        let f = Frame {
            rip: 0x1111,
            cs: 0x13,
            rflags: 0x202,
            rsp: 0x10_0008,
            ss: 0x1b,
        };
        let sp = push_frame(&mem, 0x1000, &f, Some(0xe)).unwrap();
        assert_eq!(sp, ((0x10_0008 - 128) & !15) - 48);
        let words: Vec<u64> = (0..6).map(|i| mem.read_u64(sp + 8 * i).unwrap()).collect();
        assert_eq!(words, [0xe, 0x1111, 0x13, 0x202, 0x10_0008, 0x1b]);
        // A stack the guest cannot write (no user bit) is refused, not written.
        mem.write_u64(0x3000, 0x83).unwrap();
        assert!(push_frame(&mem, 0x1000, &f, None).is_err());
    }
}
