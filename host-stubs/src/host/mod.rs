//! The reference host: lguest's `drivers/lguest/hypercalls.c` and friends behind the
//! generated [`LguestHost`] trait, with the original's bugs fixed.
//!
//! A VMM drives it with three calls:
//! - [`Host::hypercall`] on every hypercall exit: drains the async ring, then runs the call
//!   through the generated [`decode`] (which copies SHUTDOWN's and NOTIFY's strings out of
//!   guest memory once) and [`run`];
//! - [`Host::next`] before every guest entry: what to inject, or how long to sleep;
//! - [`Host::raise_irq`] when a device interrupts.
//!
//! Every one returns [`Stop`] once the guest has shut down or been killed, and from then on
//! the host refuses to run anything.
//!
//! The host is several rooms, one file each:
//! - this file: the [`Host`] itself, its settings and the types it hands the VMM;
//! - `calls.rs`: the VMM-facing entry points (hypercall, ring drain, interrupts, kills);
//! - `handlers.rs`: the hypercall handlers, the generated [`LguestHost`] trait's methods;
//! - `paging.rs`: page faults and the shadow page tables ([`crate::mmu`]) the MMU walks;
//! - `shared.rs`: the host's own accesses to the shared page and the ring;
//! - `state.rs`: read-only views of the host's state, for the VMM and tests;
//! - `stats.rs`: the call log and counters.
//!
//! [`LguestHost`]: crate::abi::host::LguestHost
//! [`decode`]: crate::abi::host::decode
//! [`run`]: crate::abi::host::run

mod calls;
mod handlers;
mod paging;
mod shared;
mod state;
mod stats;

pub use stats::CallRecord;

use std::sync::Arc;

use crate::abi::host::Scratch;
use crate::abi::numbers::{
    FIRST_EXTERNAL_VECTOR, GDT_ENTRIES, Hypercall, IDT_ENTRIES, IRQS, TLS_ENTRIES, TLS_FIRST,
};
use crate::abi::types::{Gpa, Gva, TsState};
use crate::clock::Clock;
use crate::desc::{Gate, Segment};
use crate::kill::{Arg, Kill, Killed, Origin, Stop};
use crate::memory::GuestMem;
use crate::mmu::{Shadow, ShadowConfig};

const IDT_LEN: usize = IDT_ENTRIES as usize;
const GDT_LEN: usize = GDT_ENTRIES as usize;
const _: () = assert!(TLS_FIRST + TLS_ENTRIES <= GDT_ENTRIES);
const _: () = assert!(FIRST_EXTERNAL_VECTOR + IRQS <= IDT_ENTRIES);

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
    /// Where the shadow page tables live and what the host puts in each root.
    pub shadow: ShadowConfig,
    /// Longest a halted guest may sleep towards its clock event: a guest that halts with
    /// nothing pending and its clock event further off than this is killed
    /// ([`Kill::HaltedTooLong`]), as one with no clock event at all is. 60 s by default.
    pub max_halt_ns: u64,
}

/// [`HostConfig::max_halt_ns`]'s default: 60 s.
pub const DEFAULT_MAX_HALT_NS: u64 = 60_000_000_000;

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            boot_pgdir: 0,
            call_log: 1 << 16,
            console_limit: 1 << 20,
            shadow: ShadowConfig::default(),
            max_halt_ns: DEFAULT_MAX_HALT_NS,
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
///
/// Its handlers implement the generated [`LguestHost`] on a private type, so the only
/// way in is [`Host::hypercall`] (and the ring it drains), where each call is decoded once
/// by the generated [`decode`] and handed on typed. A handler cannot be called with
/// arguments the spec refuses:
///
/// ```compile_fail,E0599
/// use host_stubs::abi::host::LguestHost;
/// use host_stubs::{clock::{ManualClock, WallTime}, GuestMem, Host, HostConfig};
/// let mem = GuestMem::new(0x10000).unwrap();
/// let mut h = Host::new(mem, ManualClock::new(WallTime::default(), 0), HostConfig::default());
/// h.set_stack(0, 0x4008, 99); // no such method: not through the trait, not directly
/// ```
///
/// [`decode`]: crate::abi::host::decode
/// [`LguestHost`]: crate::abi::host::LguestHost
#[derive(Debug)]
pub struct Host<C: Clock> {
    /// Shared with the generated `decode` and `run` while a handler (which borrows the
    /// host) runs.
    mem: Arc<GuestMem>,
    /// Where the generated `decode` copies string arguments; taken while a call runs.
    scratch: Option<Box<Scratch>>,
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
    /// Page-table calls run (SET_PTE, SET_PMD, FLUSH_TLB, NEW_PGTABLE): each one bumps it.
    table_changes: u64,
    stop: Option<Stop>,
}

impl<C: Clock> Host<C> {
    /// A host for a guest with memory `mem`, before its first hypercall.
    pub fn new(mem: GuestMem, clock: C, cfg: HostConfig) -> Self {
        let shadow = Shadow::new(cfg.shadow, cfg.boot_pgdir);
        Host {
            mem: Arc::new(mem),
            scratch: Some(Box::default()),
            clock,
            cfg,
            shared: None,
            noirq: (0, 0),
            kernel_address: 0,
            idt: vec![Gate::default(); IDT_LEN],
            gdt: vec![Segment::default(); GDT_LEN],
            stack: None,
            ts: TsState::Clear,
            // The guest starts on the boot tables, through a shadow of them.
            pgdir: shadow.gpgdir(),
            shadow,
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
            table_changes: 0,
            stop: None,
        }
    }

    pub(super) fn check_running(&self) -> Result<(), Stop> {
        match &self.stop {
            Some(s) => Err(s.clone()),
            None => Ok(()),
        }
    }

    /// Records a kill (only the first counts) and returns the stop that stands.
    pub(super) fn kill(&mut self, reason: Kill, origin: Origin) -> Stop {
        self.stop
            .get_or_insert(Stop::Killed(Killed { reason, origin }))
            .clone()
    }

    pub(super) fn gate(&self, vector: u64) -> Gate {
        usize::try_from(vector)
            .ok()
            .and_then(|v| self.idt.get(v))
            .copied()
            .unwrap_or_default()
    }

    pub(super) fn outside(&self, arg: Arg, value: Gpa, len: u64) -> Kill {
        Kill::outside(arg, value, len, self.mem.size())
    }
}
