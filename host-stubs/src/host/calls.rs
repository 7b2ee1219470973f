//! Room: the VMM-facing entry points of the reference host. [`Host::hypercall`] on every
//! hypercall exit (drain the ring, then dispatch), [`Host::drain_ring`], [`Host::raise_irq`],
//! [`Host::next`] before every guest entry, and [`Host::kill_from_vmm`].

use std::sync::Arc;

use crate::abi::host::{Call, decode, run};
use crate::abi::numbers::{ARG_REGS, FIRST_EXTERNAL_VECTOR, Hypercall, IRQS};
use crate::abi::shared::{RING_ARGS, RING_DONE, RING_READY, RING_SIZE};
use crate::clock::Clock;
use crate::desc::INTERRUPT_GATE;
use crate::irq::{Decision, View, decide, fire_timer};
use crate::kill::{HostAccess, Kill, Origin, Stop};

use super::handlers::Handlers;
use super::shared::{BLOCKED_INTERRUPTS, IRQ_ENABLED};
use super::{BadLine, Delivery, Drain, Host, Next};

const _: () = assert!(
    RING_ARGS <= ARG_REGS,
    "a ring slot's arguments fit the registers"
);

impl<C: Clock> Host<C> {
    /// Handles a synchronous hypercall: drains the async ring first (as every exit does in
    /// the original), then runs the call through the generated decode and run (see
    /// `serve`). Returns the result register, or why the guest stopped.
    ///
    /// A NOTIFY in the ring stops the walk; this host serves it at once (it keeps the text
    /// and the address), then walks on, and runs the synchronous call after the ring is
    /// empty, which is the order the original reaches once its Launcher has served the
    /// notification.
    pub fn hypercall(&mut self, nr: u64, args: [u64; ARG_REGS]) -> Result<u64, Stop> {
        self.check_running()?;
        // Each pass runs at least the NOTIFY it stopped on, so RING_SIZE passes empty it.
        for _ in 0..RING_SIZE {
            if self.drain_ring()?.notify.is_none() {
                break;
            }
        }
        self.log(nr, &args, Origin::Direct);
        match self.serve(nr, args) {
            Ok(v) => {
                self.check_running()?;
                Ok(v)
            }
            Err(k) => Err(self.kill(k, Origin::Direct)),
        }
    }

    /// Runs one call, synchronous or from the ring, through the generated code: `decode`
    /// checks the registers and copies memory arguments (SHUTDOWN's reason, NOTIFY's text)
    /// out of guest memory once, into the host's scratch space; `run` hands the typed call
    /// to its handler, which checks only what the spec cannot say (the host's own tables,
    /// the guest's state). A NOTIFY's address is kept for the ring walk and the VMM.
    fn serve(&mut self, nr: u64, args: [u64; ARG_REGS]) -> Result<u64, Kill> {
        // Before LGUEST_INIT only LGUEST_INIT runs: any other known call is refused before
        // its arguments are read, as the original did (an unknown number stays unknown).
        if self.shared.is_none()
            && let Ok(call) = Hypercall::try_from(nr)
            && call != Hypercall::LguestInit
        {
            return Err(Kill::BeforeInit { call });
        }
        let mem = Arc::clone(&self.mem);
        let size = mem.size();
        let mut scratch = self.scratch.take().unwrap_or_default();
        let result = match decode(&*mem, &mut scratch, nr, args) {
            Err(e) => Err(Kill::dispatch(e.for_host(), size)),
            Ok(call) => {
                let notified = match &call {
                    Call::Notify { addr } => Some(addr.addr),
                    _ => None,
                };
                let r = run(&mut Handlers(self), &*mem, call).map_err(|e| Kill::dispatch(e, size));
                if let (Ok(_), Some(addr)) = (&r, notified) {
                    self.notified(addr);
                }
                r
            }
        };
        self.scratch = Some(scratch);
        result
    }

    /// Runs the ready slots of the async ring from the host's cursor, in order, each
    /// through the same generated dispatch; stops at the first slot that is done, after a
    /// NOTIFY, or at a kill. Before LGUEST_INIT there is no ring and nothing happens.
    ///
    /// Each slot's status byte is read once, then its call number and arguments are copied
    /// once into locals, and only the locals are used. A status byte that is neither ready
    /// nor done, or a ready slot the cursor cannot reach (the guest's cursor is out of
    /// step), kills the guest: the original treated any byte but `0xff` as ready, and left
    /// stranded slots waiting forever.
    pub fn drain_ring(&mut self) -> Result<Drain, Stop> {
        self.check_running()?;
        let Some(page) = self.shared else {
            return Ok(Drain::default());
        };
        let mut d = Drain::default();
        self.pending_notify = None;
        for _ in 0..RING_SIZE {
            let slot = self.cursor;
            let status = self.status(page, slot)?;
            if status == RING_DONE {
                break;
            }
            if status != RING_READY {
                return Err(self.kill(
                    Kill::RingStatus {
                        slot,
                        value: status,
                    },
                    Origin::Ring(slot),
                ));
            }
            // Advance first, as the original does: a slot is never run twice.
            self.cursor = (slot + 1) % RING_SIZE;
            let (nr, args) = self.read_slot(page, slot)?;
            self.log(nr, &args, Origin::Ring(slot));
            // Ring calls run only after LGUEST_INIT (there is no ring before it), with 0 in
            // the registers a slot does not hold.
            let mut regs = [0; ARG_REGS];
            regs[..RING_ARGS].copy_from_slice(&args);
            if let Err(k) = self.serve(nr, regs) {
                return Err(self.kill(k, Origin::Ring(slot)));
            }
            self.set_status(page, slot, RING_DONE)?;
            d.ran += 1;
            self.ring_ran += 1;
            // A SHUTDOWN from the ring ends the run here.
            self.check_running()?;
            if let Some(addr) = self.pending_notify {
                d.notify = Some(addr);
                return Ok(d);
            }
        }
        // The walk stopped at a done slot (or went all the way round): every other slot
        // must be done too, since the guest fills them in order from the same cursor.
        for slot in 0..RING_SIZE {
            match self.status(page, slot)? {
                RING_DONE => {}
                RING_READY => {
                    let cursor = self.cursor;
                    return Err(self.kill(Kill::RingOutOfStep { cursor, slot }, Origin::Ring(slot)));
                }
                value => {
                    return Err(self.kill(Kill::RingStatus { slot, value }, Origin::Ring(slot)));
                }
            }
        }
        Ok(d)
    }

    /// Marks interrupt `line` pending (the Launcher's `LHREQ_IRQ`).
    pub fn raise_irq(&mut self, line: u32) -> Result<(), BadLine> {
        if u64::from(line) >= IRQS {
            return Err(BadLine(line));
        }
        self.pending |= 1 << line;
        Ok(())
    }

    /// Decides what happens before the next guest entry, with the guest at instruction
    /// pointer `rip`: fires the clock event if due, then applies lguest's delivery rules
    /// (see [`crate::irq::decide`]). For a delivery, the host has already done its part
    /// (line no longer pending, halted guest woken, timestamp written, `irq_enabled`
    /// cleared for an interrupt gate); building the frame is the caller's. A halted guest
    /// whose clock event is further off than [`super::HostConfig::max_halt_ns`] is killed
    /// here.
    pub fn next(&mut self, rip: u64) -> Result<Next, Stop> {
        self.check_running()?;
        fire_timer(&mut self.timer, self.clock.now_ns(), &mut self.pending);
        let Some(page) = self.shared else {
            // No shared page yet, so no way to know what the guest blocks.
            return Ok(Next::Run);
        };
        let blocked = self.page_u64(page, BLOCKED_INTERRUPTS, HostAccess::InterruptState)?;
        let irq_enabled = self.page_u32(page, IRQ_ENABLED, HostAccess::InterruptState)?;
        let mut handled = 0u64;
        for line in 0..IRQS {
            if self.gate(FIRST_EXTERNAL_VECTOR + line).present() {
                handled |= 1 << line;
            }
        }
        let view = View {
            pending: self.pending,
            blocked,
            irq_enabled,
            halted: self.halted,
            in_noirq_window: self.noirq.0 <= rip && rip < self.noirq.1,
            handled,
            timer: self.timer,
        };
        match decide(&view) {
            Decision::Run => Ok(Next::Run),
            Decision::Sleep { until: Some(t) } => {
                let due_ns = t.saturating_sub(self.clock.now_ns());
                if due_ns > self.cfg.max_halt_ns {
                    let limit_ms = self.cfg.max_halt_ns / 1_000_000;
                    return Err(self.kill(Kill::HaltedTooLong { due_ns, limit_ms }, Origin::Entry));
                }
                Ok(Next::Sleep { until: Some(t) })
            }
            Decision::Sleep { until: None } => Ok(Next::Sleep { until: None }),
            Decision::Wake => {
                self.wake(page)?;
                Ok(Next::Run)
            }
            Decision::Deliver { line, vector, wake } => {
                if wake {
                    self.wake(page)?;
                }
                self.pending &= !(1 << line);
                self.write_time(page)?;
                let gate = self.gate(u64::from(vector));
                if gate.gate_type() == INTERRUPT_GATE {
                    let during = HostAccess::DeliverInterrupt { line };
                    self.store_page_u32(page, IRQ_ENABLED, 0, during)?;
                }
                self.delivered += 1;
                Ok(Next::Deliver(Delivery { line, vector, gate }))
            }
        }
    }

    /// Stops the guest for a reason the VMM found (a trap it cannot deliver, its watchdog,
    /// an exit the ABI has no place for). The first stop stands; returns it.
    pub fn kill_from_vmm(&mut self, reason: Kill) -> Stop {
        self.kill(reason, Origin::Entry)
    }
}
