//! The reference host: lguest's `drivers/lguest/hypercalls.c` and friends behind the
//! generated [`LguestHost`] trait, with the original's bugs fixed.
//!
//! A VMM drives it with three calls:
//! - [`Host::hypercall`] on every hypercall exit: drains the async ring, then runs the call
//!   through the generated [`dispatch`];
//! - [`Host::next`] before every guest entry: what to inject, or how long to sleep;
//! - [`Host::raise_irq`] when a device interrupts.
//!
//! Every one returns [`Stop`] once the guest has shut down or been killed, and from then on
//! the host refuses to run anything.

use std::sync::atomic::Ordering;

use crate::abi::host::{DecodeError, LguestHost, Violation, decode, dispatch, dispatch_slot};
use crate::abi::numbers::{
    ARG_REGS, EFLAGS_IF, FIRST_EXTERNAL_VECTOR, GDT_ENTRIES, GUEST_PL, Hypercall, IDT_ENTRIES,
    IRQS, NOTIFY_MAX, PAGE_SIZE, RESERVE_MEM, SHUTDOWN_REASON_MAX, SYSCALL_VECTOR, TLS_ENTRIES,
    TLS_FIRST,
};
use crate::abi::shared::{
    FieldInfo, LguestData, RING_ARGS, RING_DONE, RING_READY, RING_SIZE, RingSlot,
};
use crate::abi::types::{FlushScope, Gpa, Gva, ShutdownKind, TsState};
use crate::clock::Clock;
use crate::desc::{Gate, INTERRUPT_GATE, Segment, fix_gate, fix_segment};
use crate::irq::{Decision, View, decide, fire_timer};
use crate::kill::{Arg, HostAccess, Kill, Killed, Origin, Shutdown, Stop, arg, field_at};
use crate::memory::GuestMem;
use crate::shadow::{self, Shadow, Walk};

const IDT_LEN: usize = IDT_ENTRIES as usize;
const GDT_LEN: usize = GDT_ENTRIES as usize;
const TLS_BYTES: usize = TLS_ENTRIES as usize * 8;
const _: () = assert!(TLS_FIRST + TLS_ENTRIES <= GDT_ENTRIES);
const _: () = assert!(FIRST_EXTERNAL_VECTOR + IRQS <= IDT_ENTRIES);

// The shared-page fields the host reads or writes, named by the generated layout.
const IRQ_ENABLED: FieldInfo = field_at(LguestData::IRQ_ENABLED_OFFSET);
const BLOCKED_INTERRUPTS: FieldInfo = field_at(LguestData::BLOCKED_INTERRUPTS_OFFSET);
const TIME_SEC: FieldInfo = field_at(LguestData::TIME_SEC_OFFSET);
const TIME_NSEC: FieldInfo = field_at(LguestData::TIME_NSEC_OFFSET);
const HCALL_STATUS: FieldInfo = field_at(LguestData::HCALL_STATUS_OFFSET);
const HCALLS: FieldInfo = field_at(LguestData::HCALLS_OFFSET);
const SYSCALL_VEC: FieldInfo = field_at(LguestData::SYSCALL_VEC_OFFSET);
const NOIRQ_END: FieldInfo = field_at(LguestData::NOIRQ_END_OFFSET);
const KERNEL_ADDRESS: FieldInfo = field_at(LguestData::KERNEL_ADDRESS_OFFSET);

/// LGUEST_INIT's shared-page argument.
const INIT_DATA: Arg = arg!(LguestInit, data);

/// Settings the host (not the guest) chooses.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The guest-physical address of the initial top-level page table, which LGUEST_INIT
    /// writes into the shared page's `pgdir` (the original's boot page tables).
    pub boot_pgdir: Gpa,
    /// Most calls kept in [`Host::calls`]; later ones are only counted.
    pub call_log: usize,
    /// Most bytes of console text kept; later text is only counted.
    pub console_limit: usize,
    /// Most pages kept in the page-table record; beyond it the table being added to is
    /// dropped and re-recorded from scratch, as a shadow cache would.
    pub shadow_limit: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            boot_pgdir: 0,
            call_log: 1 << 16,
            console_limit: 1 << 20,
            shadow_limit: 1 << 20,
        }
    }
}

/// The kernel stack SET_STACK named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// Stack segment (RPL `GUEST_PL`).
    pub ss: u64,
    /// Top of the stack.
    pub sp: Gva,
    /// Pages in it.
    pub pages: u64,
}

/// One call the host ran (or refused), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The call number, as the guest sent it.
    pub nr: u64,
    /// The argument registers (ring slots: their arguments, then 0).
    pub args: [u64; ARG_REGS],
    /// Synchronous or from which ring slot.
    pub origin: Origin,
}

impl CallRecord {
    /// The hypercall, if `nr` names one.
    pub fn call(&self) -> Option<Hypercall> {
        Hypercall::try_from(self.nr).ok()
    }
}

/// What one pass over the async ring did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drain {
    /// Slots run.
    pub ran: usize,
    /// The walk stopped after a NOTIFY of this address.
    pub notify: Option<Gpa>,
}

/// An interrupt to inject now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The interrupt line.
    pub line: u32,
    /// Its vector.
    pub vector: u8,
    /// The guest's gate for it (an interrupt gate has already cleared `irq_enabled`).
    pub gate: Gate,
}

/// What to do before entering the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Enter the guest.
    Run,
    /// Inject this interrupt, then enter the guest.
    Deliver(Delivery),
    /// The guest is halted with nothing to deliver: sleep until the clock-event deadline
    /// (in [`Clock::now_ns`] time) or, for `None`, until [`Host::raise_irq`].
    Sleep {
        /// The deadline.
        until: Option<u64>,
    },
}

/// A line number the host cannot deliver (a VMM bug, not the guest's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interrupt line {0} is not below IRQS")]
pub struct BadLine(pub u32);

/// The reference lguest host for one uniprocessor guest.
#[derive(Debug)]
pub struct Host<C: Clock> {
    mem: GuestMem,
    clock: C,
    cfg: HostConfig,
    shared: Option<Gpa>,
    noirq: (Gva, Gva),
    kernel_address: Gva,
    idt: Vec<Gate>,
    gdt: Vec<Segment>,
    stack: Option<Stack>,
    ts: TsState,
    pgdir: Gpa,
    shadow: Shadow,
    shadow_overflows: u64,
    timer: Option<u64>,
    halted: bool,
    pending: u64,
    cursor: usize,
    pending_notify: Option<Gpa>,
    notifications: Vec<Gpa>,
    console: String,
    console_dropped: u64,
    calls: Vec<CallRecord>,
    calls_dropped: u64,
    flushes: [u64; 2],
    counts: [u64; Hypercall::ALL.len()],
    unknown_calls: u64,
    ring_ran: u64,
    delivered: u64,
    mapped: u64,
    stop: Option<Stop>,
}

impl<C: Clock> Host<C> {
    /// A host for a guest with memory `mem`, before its first hypercall.
    pub fn new(mem: GuestMem, clock: C, cfg: HostConfig) -> Self {
        Host {
            mem,
            clock,
            cfg,
            shared: None,
            noirq: (0, 0),
            kernel_address: 0,
            idt: vec![Gate::default(); IDT_LEN],
            gdt: vec![Segment::default(); GDT_LEN],
            stack: None,
            ts: TsState::Clear,
            pgdir: 0,
            shadow: Shadow::default(),
            shadow_overflows: 0,
            timer: None,
            halted: false,
            pending: 0,
            cursor: 0,
            pending_notify: None,
            notifications: Vec::new(),
            console: String::new(),
            console_dropped: 0,
            calls: Vec::new(),
            calls_dropped: 0,
            flushes: [0; 2],
            counts: [0; Hypercall::ALL.len()],
            unknown_calls: 0,
            ring_ran: 0,
            delivered: 0,
            mapped: 0,
            stop: None,
        }
    }

    // ----- The VMM's side -----

    /// Handles a synchronous hypercall: drains the async ring first (as every exit does in
    /// the original), then runs the call through the generated dispatch. Returns the result
    /// register, or why the guest stopped.
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
        self.log(nr, args, Origin::Direct);
        match dispatch(self, nr, args) {
            Ok(v) => {
                self.check_running()?;
                Ok(v)
            }
            Err(e) => Err(self.kill(e.into(), Origin::Direct)),
        }
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
            self.log(nr, [args[0], args[1], args[2], 0], Origin::Ring(slot));
            if let Err(e) = dispatch_slot(self, nr, args) {
                return Err(self.kill(e.into(), Origin::Ring(slot)));
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
    /// cleared for an interrupt gate); building the frame is the caller's.
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
            Decision::Sleep { until } => Ok(Next::Sleep { until }),
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

    // ----- State, for the VMM and for tests -----

    /// Guest memory.
    pub fn mem(&self) -> &GuestMem {
        &self.mem
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Why the guest stopped, if it has.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The shared page's guest-physical address, after LGUEST_INIT.
    pub fn shared_page(&self) -> Option<Gpa> {
        self.shared
    }

    /// The guest's no-interrupt window `[start, end)`, read at LGUEST_INIT.
    pub fn noirq(&self) -> (Gva, Gva) {
        self.noirq
    }

    /// Where the guest kernel's half of the address space starts, read at LGUEST_INIT.
    pub fn kernel_address(&self) -> Gva {
        self.kernel_address
    }

    /// The IDT, `IDT_ENTRIES` gates as fixed up.
    pub fn idt(&self) -> &[Gate] {
        &self.idt
    }

    /// The GDT, `GDT_ENTRIES` entries as fixed up (TLS included).
    pub fn gdt(&self) -> &[Segment] {
        &self.gdt
    }

    /// The TLS entries: `TLS_ENTRIES` GDT entries from `TLS_FIRST`.
    pub fn tls(&self) -> &[Segment] {
        self.gdt
            .get(TLS_FIRST as usize..(TLS_FIRST + TLS_ENTRIES) as usize)
            .unwrap_or(&[])
    }

    /// The kernel stack, once SET_STACK came.
    pub fn stack(&self) -> Option<Stack> {
        self.stack
    }

    /// The guest's cr0.TS.
    pub fn ts(&self) -> TsState {
        self.ts
    }

    /// The current top-level page table.
    pub fn pgdir(&self) -> Gpa {
        self.pgdir
    }

    /// The record of the guest's page tables.
    pub fn shadow(&self) -> &Shadow {
        &self.shadow
    }

    /// How often the record outgrew `shadow_limit`.
    pub fn shadow_overflows(&self) -> u64 {
        self.shadow_overflows
    }

    /// The clock-event deadline, if armed.
    pub fn timer(&self) -> Option<u64> {
        self.timer
    }

    /// Whether the guest is halted.
    pub fn halted(&self) -> bool {
        self.halted
    }

    /// Lines raised and not yet delivered.
    pub fn pending_irqs(&self) -> u64 {
        self.pending
    }

    /// The host's ring cursor: the next slot it will look at.
    pub fn ring_cursor(&self) -> usize {
        self.cursor
    }

    /// Console text from NOTIFY.
    pub fn console(&self) -> &str {
        &self.console
    }

    /// Console bytes dropped beyond `console_limit`.
    pub fn console_dropped(&self) -> u64 {
        self.console_dropped
    }

    /// Every non-zero NOTIFY address, in order (up to `call_log` of them).
    pub fn notifications(&self) -> &[Gpa] {
        &self.notifications
    }

    /// The calls the host saw, in order (up to `call_log`).
    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    /// Calls not logged beyond `call_log`.
    pub fn calls_dropped(&self) -> u64 {
        self.calls_dropped
    }

    /// How many calls of each hypercall the host ran or refused (sync and from the ring),
    /// in spec order, and how many numbers named none.
    pub fn counts(&self) -> (impl Iterator<Item = (Hypercall, u64)> + '_, u64) {
        (
            Hypercall::ALL
                .iter()
                .copied()
                .zip(self.counts.iter().copied()),
            self.unknown_calls,
        )
    }

    /// Ring slots run, in all.
    pub fn ring_drained(&self) -> u64 {
        self.ring_ran
    }

    /// SET_PTE calls that mapped a present page.
    pub fn pages_mapped(&self) -> u64 {
        self.mapped
    }

    /// Interrupts delivered ([`Next::Deliver`] returned), in all.
    pub fn interrupts_delivered(&self) -> u64 {
        self.delivered
    }

    /// Stops the guest for a reason the VMM found (a trap it cannot deliver, its watchdog,
    /// an exit the ABI has no place for). The first stop stands; returns it.
    pub fn kill_from_vmm(&mut self, reason: Kill) -> Stop {
        self.kill(reason, Origin::Entry)
    }

    /// How many FLUSH_TLB calls of each scope (`[user, all]`).
    pub fn flushes(&self) -> [u64; 2] {
        self.flushes
    }

    // ----- Internals -----

    fn check_running(&self) -> Result<(), Stop> {
        match &self.stop {
            Some(s) => Err(s.clone()),
            None => Ok(()),
        }
    }

    /// Records a kill (only the first counts) and returns the stop that stands.
    fn kill(&mut self, reason: Kill, origin: Origin) -> Stop {
        self.stop
            .get_or_insert(Stop::Killed(Killed { reason, origin }))
            .clone()
    }

    fn log(&mut self, nr: u64, args: [u64; ARG_REGS], origin: Origin) {
        match Hypercall::ALL.iter().position(|c| c.nr() == nr) {
            Some(i) => self.counts[i] += 1,
            None => self.unknown_calls += 1,
        }
        if self.calls.len() < self.cfg.call_log {
            self.calls.push(CallRecord { nr, args, origin });
        } else {
            self.calls_dropped += 1;
        }
    }

    /// Where every handler starts: refuses after a stop, and re-runs the spec's checks on
    /// the call's arguments (in register order). Through [`dispatch`] that repeats what it
    /// checked; but the trait is public, and a caller that reaches a handler directly gets
    /// the same kill, naming the same argument, as through [`dispatch`].
    fn checked(&self, call: Hypercall, args: &[u64]) -> Result<(), Kill> {
        if self.stop.is_some() {
            return Err(Kill::AfterStop { nr: call.nr() });
        }
        spec_check(call, args)
    }

    /// [`Host::checked`], then the shared page: refuses before LGUEST_INIT.
    fn ready(&self, call: Hypercall, args: &[u64]) -> Result<Gpa, Kill> {
        self.checked(call, args)?;
        self.shared.ok_or(Kill::BeforeInit { call })
    }

    fn gate(&self, vector: u64) -> Gate {
        usize::try_from(vector)
            .ok()
            .and_then(|v| self.idt.get(v))
            .copied()
            .unwrap_or_default()
    }

    fn outside(&self, arg: Arg, value: Gpa, len: u64) -> Kill {
        Kill::outside(arg, value, len, self.mem.size())
    }

    /// A shared-page access of the host's own failed. INIT checked the whole page, so only a
    /// VMM that withdrew part of it gets here; the kill says what the host was doing and
    /// which field it touched, not the INIT that once passed.
    fn page_fault(
        &mut self,
        during: HostAccess,
        field: FieldInfo,
        at: crate::memory::OutOfRange,
        origin: Origin,
    ) -> Stop {
        let k = Kill::SharedPage {
            during,
            field: field.name,
            gpa: at.gpa,
            len: at.len,
            size: self.mem.size(),
        };
        self.kill(k, origin)
    }

    fn page_u64(&mut self, page: Gpa, f: FieldInfo, during: HostAccess) -> Result<u64, Stop> {
        match self.mem.load_u64(page + f.offset as u64, Ordering::Acquire) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.page_fault(during, f, e, Origin::Entry)),
        }
    }

    fn page_u32(&mut self, page: Gpa, f: FieldInfo, during: HostAccess) -> Result<u32, Stop> {
        match self.mem.load_u32(page + f.offset as u64, Ordering::Acquire) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.page_fault(during, f, e, Origin::Entry)),
        }
    }

    fn store_page_u32(
        &mut self,
        page: Gpa,
        f: FieldInfo,
        v: u32,
        during: HostAccess,
    ) -> Result<(), Stop> {
        match self
            .mem
            .store_u32(page + f.offset as u64, v, Ordering::Release)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.page_fault(during, f, e, Origin::Entry)),
        }
    }

    fn status(&mut self, page: Gpa, slot: usize) -> Result<u8, Stop> {
        let at = page + (HCALL_STATUS.offset + slot) as u64;
        match self.mem.load_u8(at, Ordering::Acquire) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.page_fault(
                HostAccess::RingDrain { slot },
                HCALL_STATUS,
                e,
                Origin::Ring(slot),
            )),
        }
    }

    fn set_status(&mut self, page: Gpa, slot: usize, v: u8) -> Result<(), Stop> {
        let at = page + (HCALL_STATUS.offset + slot) as u64;
        match self.mem.store_u8(at, v, Ordering::Release) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.page_fault(
                HostAccess::RingDrain { slot },
                HCALL_STATUS,
                e,
                Origin::Ring(slot),
            )),
        }
    }

    /// Copies slot `slot`'s call number and arguments once.
    fn read_slot(&mut self, page: Gpa, slot: usize) -> Result<(u64, [u64; RING_ARGS]), Stop> {
        let base = page + (HCALLS.offset + slot * RingSlot::SIZE) as u64;
        let load = |off: usize| self.mem.load_u64(base + off as u64, Ordering::Relaxed);
        let mut args = [0u64; RING_ARGS];
        let mut read = || -> Result<u64, crate::memory::OutOfRange> {
            for (i, a) in args.iter_mut().enumerate() {
                *a = load(RingSlot::ARGS_OFFSET + 8 * i)?;
            }
            load(RingSlot::NR_OFFSET)
        };
        match read() {
            Ok(nr) => Ok((nr, args)),
            Err(e) => Err(self.page_fault(
                HostAccess::RingDrain { slot },
                HCALLS,
                e,
                Origin::Ring(slot),
            )),
        }
    }

    fn wake(&mut self, page: Gpa) -> Result<(), Stop> {
        self.halted = false;
        self.store_page_u32(page, IRQ_ENABLED, EFLAGS_IF as u32, HostAccess::Wake)
    }

    fn write_time(&mut self, page: Gpa) -> Result<(), Stop> {
        let t = self.clock.wall();
        // Nanoseconds first: a reader that sees the new seconds sees the new nanoseconds.
        for (f, v) in [(TIME_NSEC, t.nsec), (TIME_SEC, t.sec)] {
            if let Err(e) = self
                .mem
                .store_u64(page + f.offset as u64, v, Ordering::Release)
            {
                return Err(self.page_fault(HostAccess::WriteTime, f, e, Origin::Entry));
            }
        }
        Ok(())
    }

    /// Walks `pgdir`'s tables for `page` and checks the leaf it finds. `Ok(None)`: nothing
    /// mapped there.
    fn record_for(&self, pgdir: Gpa, page: Gva) -> Result<Option<shadow::Entry>, shadow::BadEntry> {
        match shadow::walk(&self.mem, pgdir, page)? {
            Walk::Unmapped => Ok(None),
            Walk::Leaf(e) if !shadow::pte_present(e.pte) => Ok(None),
            Walk::Leaf(e) => {
                if self.mem.check(shadow::pte_frame(e.pte), PAGE_SIZE).is_err() {
                    return Err(shadow::BadEntry {
                        table: e.tables[shadow::LEVELS - 1],
                        index: shadow::index_at(shadow::LEVELS - 1, page),
                        entry: e.pte,
                    });
                }
                Ok(Some(e))
            }
        }
    }

    fn apply(&mut self, pgdir: Gpa, page: Gva, e: Option<shadow::Entry>) {
        let limit = self.cfg.shadow_limit;
        let total = self.shadow.len();
        let mut overflow = false;
        if let Some(t) = self.shadow.table_mut(pgdir) {
            match e {
                Some(e) => {
                    if !t.contains_key(&page) && total >= limit {
                        t.clear();
                        overflow = true;
                    }
                    t.insert(page, e);
                }
                None => {
                    t.remove(&page);
                }
            }
        }
        if overflow {
            self.shadow_overflows += 1;
        }
    }

    /// Starts following `pgdir` (or marks it most recently used). A table followed for the
    /// first time starts with the kernel pages already recorded elsewhere, read from its own
    /// entries: the kernel's half is shared by every address space, and the guest reported
    /// those pages before this table existed. (The original's fresh shadow starts empty and
    /// faults them in.)
    fn follow(&mut self, pgdir: Gpa) {
        let new = !self.shadow.pgdirs().any(|p| p == pgdir);
        self.shadow.touch(pgdir);
        if !new {
            return;
        }
        let mut kernel_pages: Vec<Gva> = self
            .shadow
            .pgdirs()
            .filter(|p| *p != pgdir)
            .filter_map(|p| self.shadow.table(p))
            .flat_map(|t| t.range(self.kernel_address..).map(|(v, _)| *v))
            .collect();
        kernel_pages.sort_unstable();
        kernel_pages.dedup();
        for page in kernel_pages {
            // A page this table does not map cleanly is simply not recorded yet: SET_PTE
            // for it checks it properly.
            if let Ok(Some(e)) = self.record_for(pgdir, page) {
                self.apply(pgdir, page, Some(e));
            }
        }
    }

    /// Re-reads recorded pages from the guest's tables: every page of every table for
    /// `FlushScope::All`, the current table's user pages for `User`. A walk that goes wrong
    /// in the current table kills the guest; another table is dropped from the record (the
    /// guest may have reused its pages).
    fn resync(&mut self, scope: FlushScope) -> Result<(), Kill> {
        let pgdirs: Vec<Gpa> = match scope {
            FlushScope::All => self.shadow.pgdirs().collect(),
            FlushScope::User => vec![self.pgdir],
        };
        let mut updates = Vec::new();
        let mut stale = Vec::new();
        for pgdir in pgdirs {
            let pages: Vec<Gva> = self
                .shadow
                .table(pgdir)
                .map(|t| t.keys().copied().collect())
                .unwrap_or_default();
            for page in pages {
                if scope == FlushScope::User && page >= self.kernel_address {
                    continue;
                }
                match self.record_for(pgdir, page) {
                    Ok(e) => updates.push((pgdir, page, e)),
                    Err(b) if pgdir == self.pgdir => {
                        return Err(Kill::bad_table(arg!(FlushTlb, scope), pgdir, b));
                    }
                    Err(_) => {
                        stale.push(pgdir);
                        break;
                    }
                }
            }
        }
        for (pgdir, page, e) in updates {
            if !stale.contains(&pgdir) {
                self.apply(pgdir, page, e);
            }
        }
        for pgdir in stale {
            if let Some(t) = self.shadow.table_mut(pgdir) {
                t.clear();
            }
        }
        Ok(())
    }
}

/// Checks a guest-virtual address: canonical for 4-level paging, and not in the top
/// `RESERVE_MEM` bytes the host keeps (the original's switcher pages).
fn check_vaddr(v: Gva) -> Result<(), &'static str> {
    // 48-bit virtual addresses: bits 63..47 all equal.
    let top = v >> 47;
    if top != 0 && top != (1 << 17) - 1 {
        return Err("not a canonical address");
    }
    if v >= 0u64.wrapping_sub(RESERVE_MEM) {
        return Err("inside the top RESERVE_MEM bytes the host keeps for itself");
    }
    Ok(())
}

/// Text up to the first NUL of `buf`, at most `max` bytes, lossily decoded.
fn c_text(buf: &[u8], max: usize) -> String {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(buf.len())
        .min(max);
    String::from_utf8_lossy(buf.get(..end).unwrap_or(&[])).into_owned()
}

/// Runs the generated checks on `args` (the call's arguments in register order) without
/// running anything: the spec's ranges, alignments and enums, named as the generated code
/// names them, with no copy of them here.
fn spec_check(call: Hypercall, args: &[u64]) -> Result<(), Kill> {
    let mut regs = [0u64; ARG_REGS];
    for (r, a) in regs.iter_mut().zip(args) {
        *r = *a;
    }
    match decode(call.nr(), regs) {
        Ok(_) => Ok(()),
        Err(DecodeError::BadArgument(b)) => Err(Kill::BadArgument(b)),
        Err(DecodeError::UnknownHypercall { nr }) => Err(Kill::UnknownHypercall { nr }),
    }
}

// Every handler starts with `ready` (or `checked`), which re-runs the spec's checks: the
// trait is public, so a caller may reach a handler without the generated dispatch.
impl<C: Clock> LguestHost for Host<C> {
    type Error = Kill;

    fn flush_async(&mut self) -> Result<(), Kill> {
        // The exit itself drained the ring.
        self.ready(Hypercall::FlushAsync, &[]).map(|_| ())
    }

    fn lguest_init(&mut self, data: Gpa) -> Result<(), Kill> {
        self.checked(Hypercall::LguestInit, &[data])?;
        if let Some(first) = self.shared {
            return Err(Kill::SecondInit { data, first });
        }
        let size = LguestData::SIZE as u64;
        if self.mem.check(data, size).is_err() {
            return Err(self.outside(INIT_DATA, data, size));
        }
        // Read what the guest set up, once each, and check all of it before changing
        // anything: the original carried on after a bad address and half-initialised.
        let at = |off: usize| data + off as u64;
        let page_err = |_| self.outside(INIT_DATA, data, size);
        let syscall_vec = self
            .mem
            .load_u32(at(SYSCALL_VEC.offset), Ordering::Acquire)
            .map_err(page_err)?;
        let noirq_start = self
            .mem
            .load_u64(at(LguestData::NOIRQ_START_OFFSET), Ordering::Acquire)
            .map_err(page_err)?;
        let noirq_end = self
            .mem
            .load_u64(at(NOIRQ_END.offset), Ordering::Acquire)
            .map_err(page_err)?;
        let kernel_address = self
            .mem
            .load_u64(at(KERNEL_ADDRESS.offset), Ordering::Acquire)
            .map_err(page_err)?;
        if u64::from(syscall_vec) != SYSCALL_VECTOR {
            return Err(Kill::BadSharedPage {
                field: SYSCALL_VEC.name,
                value: u64::from(syscall_vec),
                why: "is not SYSCALL_VECTOR",
            });
        }
        if noirq_start > noirq_end {
            return Err(Kill::BadSharedPage {
                field: NOIRQ_END.name,
                value: noirq_end,
                why: "is below noirq_start",
            });
        }
        if let Err(why) = check_vaddr(kernel_address) {
            return Err(Kill::BadSharedPage {
                field: KERNEL_ADDRESS.name,
                value: kernel_address,
                why,
            });
        }
        let boot_pgdir = self.cfg.boot_pgdir;
        let writes = [
            (LguestData::RESERVE_MEM_OFFSET, RESERVE_MEM),
            (LguestData::PGDIR_OFFSET, boot_pgdir),
        ];
        for (off, v) in writes {
            self.mem
                .store_u64(at(off), v, Ordering::Release)
                .map_err(page_err)?;
        }
        self.mem
            .store_u32(
                at(LguestData::TSC_KHZ_OFFSET),
                self.clock.tsc_khz(),
                Ordering::Release,
            )
            .map_err(page_err)?;
        let t = self.clock.wall();
        self.mem
            .store_u64(at(TIME_NSEC.offset), t.nsec, Ordering::Release)
            .and_then(|()| {
                self.mem
                    .store_u64(at(TIME_SEC.offset), t.sec, Ordering::Release)
            })
            .map_err(page_err)?;
        self.shared = Some(data);
        self.noirq = (noirq_start, noirq_end);
        self.kernel_address = kernel_address;
        self.pgdir = boot_pgdir;
        self.shadow.touch(boot_pgdir);
        self.cursor = 0;
        Ok(())
    }

    fn shutdown(&mut self, reason: Gpa, kind: ShutdownKind) -> Result<(), Kill> {
        self.ready(Hypercall::Shutdown, &[reason, kind.raw()])?;
        // At most SHUTDOWN_REASON_MAX bytes and never past the end of memory: the original
        // always read 128 bytes, so a reason near the top of memory killed the guest.
        let len = SHUTDOWN_REASON_MAX.min(self.mem.available(reason));
        if len == 0 {
            return Err(self.outside(arg!(Shutdown, reason), reason, 1));
        }
        let mut buf = vec![0u8; len as usize];
        if self.mem.read(reason, &mut buf).is_err() {
            return Err(self.outside(arg!(Shutdown, reason), reason, len));
        }
        // The original forces a NUL at the last byte it reads.
        let reason = c_text(&buf, SHUTDOWN_REASON_MAX as usize - 1);
        self.stop = Some(Stop::Shutdown(Shutdown { kind, reason }));
        Ok(())
    }

    fn new_pgtable(&mut self, pgdir: Gpa) -> Result<(), Kill> {
        self.ready(Hypercall::NewPgtable, &[pgdir])?;
        // Checked now, not when the tables are first walked: the kill names this call.
        if self.mem.check(pgdir, PAGE_SIZE).is_err() {
            return Err(self.outside(arg!(NewPgtable, pgdir), pgdir, PAGE_SIZE));
        }
        self.pgdir = pgdir;
        self.follow(pgdir);
        Ok(())
    }

    fn flush_tlb(&mut self, scope: FlushScope) -> Result<(), Kill> {
        self.ready(Hypercall::FlushTlb, &[scope.raw()])?;
        self.resync(scope)?;
        let i = match scope {
            FlushScope::User => 0,
            FlushScope::All => 1,
        };
        self.flushes[i] += 1;
        Ok(())
    }

    fn load_idt_entry(&mut self, vector: u64, lo: u64, hi: u64) -> Result<(), Kill> {
        self.ready(Hypercall::LoadIdtEntry, &[vector, lo, hi])?;
        // The spec's range is checked above; the table's own bound is checked too, so a
        // spec whose range outgrew IDT_ENTRIES still cannot write past the table.
        let Some(slot) = usize::try_from(vector)
            .ok()
            .and_then(|v| self.idt.get_mut(v))
        else {
            let range = Violation::Range {
                lo: 0,
                hi: IDT_ENTRIES - 1,
            };
            return Err(arg!(LoadIdtEntry, vector).bad(vector, range).into());
        };
        // A bad gate kills before anything is stored (the original stored it anyway).
        if let Some(gate) = fix_gate(vector, lo, hi)? {
            *slot = gate;
        }
        Ok(())
    }

    fn set_stack(&mut self, ss: u64, sp: Gva, pages: u64) -> Result<(), Kill> {
        // The spec's checks (the page count among them) come first, and every check comes
        // before the store: the original stored a bad ss or page count even after killing
        // the guest for it.
        self.ready(Hypercall::SetStack, &[ss, sp, pages])?;
        if ss & 3 != GUEST_PL {
            return Err(Kill::BadStackSegment { ss });
        }
        if let Err(why) = check_vaddr(sp) {
            return Err(Kill::bad_vaddr(arg!(SetStack, sp), sp, why));
        }
        if pages.checked_mul(PAGE_SIZE).is_none_or(|bytes| sp < bytes) {
            return Err(Kill::BadStackPointer { sp, pages });
        }
        self.stack = Some(Stack { ss, sp, pages });
        Ok(())
    }

    fn ts(&mut self, state: TsState) -> Result<(), Kill> {
        self.ready(Hypercall::Ts, &[state.raw()])?;
        self.ts = state;
        Ok(())
    }

    fn set_clockevent(&mut self, delta: u64) -> Result<(), Kill> {
        self.ready(Hypercall::SetClockevent, &[delta])?;
        // Only the one argument is read: the ABI loads 0 into every unused register, so a
        // "stop the clock" call really is delta 0 (the original read a stale %ebx here and
        // armed a timer instead of stopping it).
        self.timer = match delta {
            0 => None,
            d => Some(self.clock.now_ns().saturating_add(d)),
        };
        Ok(())
    }

    fn halt(&mut self) -> Result<(), Kill> {
        self.ready(Hypercall::Halt, &[])?;
        self.halted = true;
        Ok(())
    }

    fn set_pte(&mut self, pgdir: Gpa, vaddr: Gva, pte: u64) -> Result<(), Kill> {
        self.ready(Hypercall::SetPte, &[pgdir, vaddr, pte])?;
        if self.mem.check(pgdir, PAGE_SIZE).is_err() {
            return Err(self.outside(arg!(SetPte, pgdir), pgdir, PAGE_SIZE));
        }
        if let Err(why) = check_vaddr(vaddr) {
            return Err(Kill::bad_vaddr(arg!(SetPte, vaddr), vaddr, why));
        }
        if shadow::pte_present(pte) && self.mem.check(shadow::pte_frame(pte), PAGE_SIZE).is_err() {
            return Err(Kill::BadPte { vaddr, pte });
        }
        let page = vaddr & !(PAGE_SIZE - 1);
        // Kernel mappings are shared by every table, so a change there reaches them all.
        let mut targets = vec![pgdir];
        if vaddr >= self.kernel_address {
            targets.extend(self.shadow.pgdirs().filter(|p| *p != pgdir));
        }
        // Record what the guest's tables hold now (a flush_tlb_single reports 0 and means
        // "look again"), walking every table before changing anything.
        let mut updates = Vec::new();
        for t in targets {
            match self.record_for(t, page) {
                Ok(e) => updates.push((t, Some(e))),
                Err(b) if t == pgdir => {
                    return Err(Kill::bad_table(arg!(SetPte, pgdir), pgdir, b));
                }
                // Another table the guest may have reused: stop following it.
                Err(_) => updates.push((t, None)),
            }
        }
        self.follow(pgdir);
        for (t, e) in updates {
            match e {
                Some(e) => self.apply(t, page, e),
                None => {
                    if let Some(tbl) = self.shadow.table_mut(t) {
                        tbl.clear();
                    }
                }
            }
        }
        if shadow::pte_present(pte) {
            self.mapped += 1;
        }
        Ok(())
    }

    fn set_pmd(&mut self, table: Gpa, index: u64) -> Result<(), Kill> {
        self.ready(Hypercall::SetPmd, &[table, index])?;
        if self.mem.check(table, PAGE_SIZE).is_err() {
            return Err(self.outside(arg!(SetPmd, table), table, PAGE_SIZE));
        }
        self.shadow.drop_below(table, index);
        Ok(())
    }

    fn load_tls(&mut self, tls: Gpa, cpu: u64) -> Result<(), Kill> {
        self.ready(Hypercall::LoadTls, &[tls, cpu])?;
        let mut buf = [0u8; TLS_BYTES];
        // One copy; on failure nothing changes (the original zero-filled the TLS entries).
        if self.mem.read(tls, &mut buf).is_err() {
            return Err(self.outside(arg!(LoadTls, tls), tls, TLS_BYTES as u64));
        }
        let first = TLS_FIRST as usize;
        for (i, d) in buf.chunks_exact(8).enumerate() {
            let lo = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            let hi = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            if let Some(slot) = self.gdt.get_mut(first + i) {
                *slot = fix_segment(lo, hi);
            }
        }
        Ok(())
    }

    fn notify(&mut self, addr: Gpa) -> Result<(), Kill> {
        self.ready(Hypercall::Notify, &[addr])?;
        if addr == 0 {
            // 0 notifies nothing, as in the original.
            return Ok(());
        }
        // A bounded read: at most NOTIFY_MAX bytes, never past the end of memory.
        let len = NOTIFY_MAX.min(self.mem.available(addr));
        if len == 0 {
            return Err(self.outside(arg!(Notify, addr), addr, 1));
        }
        let mut buf = vec![0u8; len as usize];
        if self.mem.read(addr, &mut buf).is_err() {
            return Err(self.outside(arg!(Notify, addr), addr, len));
        }
        let text = c_text(&buf, NOTIFY_MAX as usize - 1);
        let room = self.cfg.console_limit.saturating_sub(self.console.len());
        if text.len() <= room {
            self.console.push_str(&text);
        } else {
            self.console_dropped += text.len() as u64;
        }
        if self.notifications.len() < self.cfg.call_log {
            self.notifications.push(addr);
        }
        self.pending_notify = Some(addr);
        Ok(())
    }

    fn load_gdt_entry(&mut self, index: u64, lo: u64, hi: u64) -> Result<(), Kill> {
        self.ready(Hypercall::LoadGdtEntry, &[index, lo, hi])?;
        // The spec's checks above bound the halves and the index; the host's own types and
        // table are checked too, so a spec that widened them could not make the host
        // truncate a half or write past the table (the original killed the guest for
        // index >= GDT_ENTRIES, then wrote the entry anyway).
        let half = |a: Arg, v: u64| {
            u32::try_from(v).map_err(|_| a.bad(v, Violation::Width { bits: u32::BITS }))
        };
        let lo32 = half(arg!(LoadGdtEntry, lo), lo)?;
        let hi32 = half(arg!(LoadGdtEntry, hi), hi)?;
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| self.gdt.get_mut(i))
        else {
            let range = Violation::Range {
                lo: 0,
                hi: GDT_ENTRIES - 1,
            };
            return Err(arg!(LoadGdtEntry, index).bad(index, range).into());
        };
        *slot = fix_segment(lo32, hi32);
        Ok(())
    }
}
