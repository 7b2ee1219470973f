//! Room: the run loop. Enter the guest, take one exit, serve it: a hypercall (through the
//! reference host), a trap from a ring-0 stub, a benchmark mark, or a kill; the watchdog
//! and interrupt delivery between entries.

use std::time::{Duration, Instant};

use host_stubs::clock::Clock;
use host_stubs::{Kill, Next};
use kvm_ioctls::VcpuExit;
use lguest_abi::guest::Pio;
use lguest_abi::numbers::GUEST_PL;
use lguest_kernel::params::MARK_PORT;
use lguest_kernel::params::Phase;

use crate::layout;
use crate::run::Config;

use super::kicker::Kicker;
use super::vcpu::Cpu;
use super::{Machine, RPL_MASK, VmError};

impl Machine {
    /// Runs the guest until it stops: between entries the limits (the run's time limit, the
    /// watchdog since the guest last went idle), table changes and interrupt delivery; then one
    /// exit, served. A stop recorded anywhere (a handler, a trap that cannot be delivered,
    /// a limit) ends the loop before the guest runs again.
    pub(super) fn run_loop(&mut self, cfg: &Config, kicker: &Kicker) -> Result<(), VmError> {
        self.start = Instant::now();
        let deadline = cfg.timeout.map(|t| self.start + t);
        let mut progress = Progress::new();
        loop {
            self.cpu.vcpu.set_kvm_immediate_exit(0);
            if self.host.stopped().is_some() {
                return Ok(());
            }
            if let Some(k) = progress.check(cfg, deadline) {
                self.kill(k);
                return Ok(());
            }
            self.sync_tables()?;
            if self.host.stopped().is_some() {
                return Ok(());
            }
            // Interrupts, only while the guest is at ring 3 (not inside a host stub).
            let sregs = self.cpu.sregs()?;
            if u64::from(sregs.cs.selector) & RPL_MASK == GUEST_PL {
                let rip = self.cpu.regs()?.rip;
                match self.host.next(rip) {
                    Err(_) => return Ok(()),
                    Ok(Next::Run) => {}
                    Ok(Next::Sleep { until: None }) => {
                        self.kill(Kill::HaltedForever);
                        return Ok(());
                    }
                    Ok(Next::Sleep { until: Some(t) }) => {
                        // The host bounded `t` (its halt limit); the run's deadline bounds
                        // it too.
                        let now = self.host.clock().now_ns();
                        let mut nap = Duration::from_nanos(t.saturating_sub(now));
                        if let Some(d) = deadline {
                            nap = nap.min(d.saturating_duration_since(Instant::now()));
                        }
                        std::thread::sleep(nap);
                        progress.idle();
                        continue;
                    }
                    Ok(Next::Deliver(d)) => {
                        self.deliver(d)?;
                        if self.host.stopped().is_some() {
                            return Ok(());
                        }
                    }
                }
            }
            let mut kick = self.kick_deadline(progress.watchdog_at(cfg));
            if let Some(d) = deadline {
                kick = kick.min(d);
            }
            kicker.arm(Some(kick));
            let exit = self.enter()?;
            if exit == Exit::Stopped {
                return Ok(());
            }
            if exit != Exit::Kicked {
                self.exits += 1;
                progress.exits += 1;
            }
            if cfg.live_console {
                crate::run::show_console(self.host.console(), &mut self.console_shown);
            }
            self.serve(exit)?;
        }
    }

    /// One KVM_RUN, and what ended it. The one place the guest runs: a stopped guest never
    /// does (whatever path recorded the stop, it ends the run here at the latest).
    fn enter(&mut self) -> Result<Exit, VmError> {
        if self.host.stopped().is_some() {
            return Ok(Exit::Stopped);
        }
        Ok(match self.cpu.vcpu.run() {
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
        })
    }

    /// Serves one exit: a hypercall, a trap from a host stub, a benchmark mark, or a kill.
    fn serve(&mut self, exit: Exit) -> Result<(), VmError> {
        match exit {
            Exit::Kicked => self.kicks += 1,
            Exit::Stopped => {}
            Exit::Out(port, _) if port == Pio::PORT => self.hypercall()?,
            Exit::Out(port, _) if port == layout::TRAP_PORT => self.trap()?,
            Exit::Out(port, Some(byte)) if port == MARK_PORT => {
                if let Some(p) = Phase::from_raw(byte) {
                    let s = self.snapshot();
                    self.marks.push((p, s));
                }
            }
            Exit::In(port) if port == Pio::PORT => self.kill(Kill::HypercallIn { port }),
            Exit::Out(port, _) | Exit::In(port) => self.kill(Kill::BadPort { port }),
            Exit::MmioWrite(gpa, len) => {
                if self.is_host_memory(gpa) {
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
            Exit::Cpu(what) => self.kill(Kill::Cpu { what }),
        }
        Ok(())
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
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Out(u16, Option<u8>),
    In(u16),
    MmioWrite(u64, usize),
    MmioRead(u64),
    Cpu(String),
    Kicked,
    /// Not entered: the guest is stopped.
    Stopped,
}

/// What the limits between entries measure: the run's time limit from its start, and the
/// watchdog from the last time the guest went idle.
///
/// Going idle (HALT with nothing to deliver, so the host sleeps until the clock event) is
/// the guest's only progress: exits, hypercalls, traps and interrupts are not, so no exit
/// storm, however cheap or slow, keeps the watchdog from running out. A guest that has not
/// gone idle for `watchdog` is killed at the first check after that: the kicker takes the
/// vCPU out of `KVM_RUN` at the deadline, so the kill comes at most one exit's handling
/// (bounded: `host-stubs/tests/worst_exit.rs`) and the kick's latency after it.
struct Progress {
    /// When the guest last went idle (or the run started).
    idle_at: Instant,
    /// Exits since then.
    exits: u64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            idle_at: Instant::now(),
            exits: 0,
        }
    }

    /// The guest went idle: the watchdog starts again.
    fn idle(&mut self) {
        self.idle_at = Instant::now();
        self.exits = 0;
    }

    /// When the watchdog runs out.
    fn watchdog_at(&self, cfg: &Config) -> Instant {
        self.idle_at + cfg.watchdog
    }

    /// Which limit, if any, the run has reached.
    fn check(&self, cfg: &Config, deadline: Option<Instant>) -> Option<Kill> {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let ms = cfg.timeout.unwrap_or_default().as_millis() as u64;
            return Some(Kill::Timeout { ms });
        }
        if now >= self.watchdog_at(cfg) {
            return Some(Kill::Watchdog {
                ms: cfg.watchdog.as_millis() as u64,
                exits: self.exits,
            });
        }
        None
    }
}
