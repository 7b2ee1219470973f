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
//!
//! The backend is several rooms, one file each:
//! - this file: the `Machine` (its state), [`run`] and the report;
//! - `setup.rs`: building the VM (KVM, memory slots, the images, the vCPU's first state);
//! - `vcpu.rs`: the vCPU's registers, through the sync area or ioctls;
//! - `kicker.rs`: the thread and signal that kick the vCPU out of `KVM_RUN`;
//! - `run_loop.rs`: the run loop, one exit at a time, and hypercall exits;
//! - `tables.rs`: the real GDT and IDT, rebuilt from what the guest loaded;
//! - `paging.rs`: the shadow page tables under the guest: CR3, page faults, and making
//!   KVM forget shadow entries the host weakened;
//! - `traps.rs`: reflecting traps and delivering interrupts to the guest's handlers.

mod kicker;
mod paging;
mod run_loop;
mod setup;
mod tables;
mod traps;
mod vcpu;

use std::time::Instant;

use host_stubs::clock::SystemClock;
use host_stubs::desc::{Gate, Segment};
use host_stubs::{GuestMem, Host, Kill, Stop};
use kvm_ioctls::VmFd;
use lguest_kernel::params::Phase;

use crate::elf::ElfError;
use crate::run::{Backend, Config, Report, Snapshot, host_counts, host_total_calls};

use kicker::{KVM_RUN, Kicker, install_kick_handler};
use vcpu::Cpu;

/// The interrupt flag, the spec's (the value of `irq_enabled` is the flag's bit).
const EFLAGS_IF: u64 = lguest_abi::numbers::EFLAGS_IF;
/// The trap flag (x86 architecture).
const RFLAGS_TF: u64 = x86::bits64::rflags::RFlags::FLAGS_TF.bits();
/// A selector's requested privilege level (x86 architecture): the ring code runs at, in CS.
const RPL_MASK: u64 = 0b11;

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

/// The VM. Fields drop in order: the vCPU and VM before the memory they map.
struct Machine {
    cpu: Cpu,
    vm: VmFd,
    /// Whether memslots can be read-only (the shadow pool's is, where they can).
    readonly: bool,
    host: Host<SystemClock>,
    /// The host's region (tables, stubs, its page tables, the ring-0 stack).
    region: GuestMem,
    host_gpa: u64,
    /// The shadow root in CR3.
    cr3: u64,
    /// Times KVM was made to forget the shadow pool.
    pool_reloads: u64,
    gdt_seen: Vec<Segment>,
    idt_seen: Vec<Gate>,
    /// Where `syscall` would jump (the vCPU's LSTAR, which nothing sets up).
    lstar: u64,
    /// Whether the real CR0.TS is set (the guest's TS hypercall).
    ts_seen: bool,
    /// What the ring-0 stub last returned through, as the host left it: the vector, and the
    /// code and stack selectors of its iretq frame. A fault in that iretq overwrites the
    /// stack words, so the host reports from here, not from the stack.
    stub_return: Option<(u64, u64, u64)>,
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
    pub(super) fn kill(&mut self, reason: Kill) {
        self.host.kill_from_vmm(reason);
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            exits: self.exits,
            hypercalls: host_total_calls(&self.host),
            ring_drained: self.host.ring_drained(),
            wall_ns: self.start.elapsed().as_nanos() as u64,
            faults: {
                let s = self.host.shadow().stats();
                s.filled + s.reflected
            },
        }
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
            shadow: crate::run::ShadowCounts::of(&self.host, self.pool_reloads),
        }
    }
}
