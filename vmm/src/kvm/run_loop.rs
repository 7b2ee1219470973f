//! Room: the run loop. Enter the guest, take one exit, serve it: a hypercall (through the
//! reference host), a trap from a ring-0 stub, a benchmark mark, or a kill; the watchdog
//! and interrupt delivery between entries.

use std::time::{Duration, Instant};

use host_stubs::clock::Clock;
use host_stubs::{Kill, Next};
use kvm_ioctls::VcpuExit;
use lguest_abi::guest::Pio;
use lguest_kernel::params::MARK_PORT;
use lguest_kernel::workload::Phase;

use crate::layout;
use crate::run::{Config, host_total_calls};

use super::kicker::Kicker;
use super::vcpu::Cpu;
use super::{Machine, VmError};

impl Machine {
    /// Runs the guest until it stops: between entries the limits (the run's time limit, the
    /// watchdog, the host's busy time), table changes and interrupt delivery; then one
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
            if let Some(k) = progress.check(cfg, host_total_calls(&self.host), deadline) {
                self.kill(k);
                return Ok(());
            }
            self.sync_tables()?;
            if self.host.stopped().is_some() {
                return Ok(());
            }
            if self.host.halted() {
                progress.idle();
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
            let mut kick = self.kick_deadline(progress.last_call + cfg.watchdog);
            if let Some(d) = deadline {
                kick = kick.min(d);
            }
            kicker.arm(Some(kick));
            progress.host_time();
            let exit = self.enter()?;
            progress.guest_time();
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

    /// One KVM_RUN, and what ended it.
    fn enter(&mut self) -> Result<Exit, VmError> {
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
}

/// What the limits between entries measure. Hypercalls are progress for the watchdog, but
/// not for the host's busy time: that counts the host's own time serving exits since the
/// guest last went idle (halted), so an exit storm that keeps the host busy cannot keep the
/// watchdog reset forever.
struct Progress {
    /// Hypercalls at the last check, and when they last changed.
    calls: u64,
    last_call: Instant,
    /// The host's time serving exits since the guest last halted.
    busy: Duration,
    /// Exits since the guest last halted.
    exits: u64,
    /// When the host last got the vCPU back.
    back: Instant,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            calls: 0,
            last_call: now,
            busy: Duration::ZERO,
            exits: 0,
            back: now,
        }
    }

    /// The guest went idle: both clocks start again.
    fn idle(&mut self) {
        let now = Instant::now();
        self.last_call = now;
        self.busy = Duration::ZERO;
        self.exits = 0;
        self.back = now;
    }

    /// The host is about to enter the guest: its time since it got the vCPU back was its own.
    fn host_time(&mut self) {
        self.busy += self.back.elapsed();
    }

    /// The guest just exited.
    fn guest_time(&mut self) {
        self.back = Instant::now();
    }

    /// Which limit, if any, the run has reached.
    fn check(&mut self, cfg: &Config, calls: u64, deadline: Option<Instant>) -> Option<Kill> {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let ms = cfg.timeout.unwrap_or_default().as_millis() as u64;
            return Some(Kill::Timeout { ms });
        }
        if calls != self.calls {
            self.calls = calls;
            self.last_call = now;
        } else if now.duration_since(self.last_call) > cfg.watchdog {
            return Some(Kill::Watchdog {
                ms: cfg.watchdog.as_millis() as u64,
            });
        }
        let busy = self.busy + self.back.elapsed();
        if busy > cfg.watchdog {
            return Some(Kill::HostBusy {
                ms: busy.as_millis() as u64,
                exits: self.exits,
            });
        }
        None
    }
}
