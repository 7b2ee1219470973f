//! Why a guest stopped: killed for bad input, or shut down on its own request.
//!
//! lguest has no error returns: the host either does the call or kills the guest
//! (`kill_guest`), and the run loop stops. Here a kill is a typed [`Kill`] naming the call,
//! the argument and the value, and the first one wins: the host refuses everything after
//! it (the original kept going in places and stored bad values after the kill).

use crate::abi::host::{BadArgument, DispatchError};
use crate::abi::numbers::Hypercall;
use crate::abi::types::{Gpa, Gva, ShutdownKind};

/// Why the host killed the guest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Kill {
    /// The call number names no hypercall.
    #[error("unknown hypercall number {nr:#x}")]
    UnknownHypercall {
        /// The number the guest passed.
        nr: u64,
    },
    /// An argument broke the spec (range, alignment, enum); the generated dispatch caught it.
    #[error("{0}")]
    BadArgument(BadArgument),
    /// A hypercall other than LGUEST_INIT came first.
    #[error("hypercall {call} before lguest_init")]
    BeforeInit {
        /// The call.
        call: Hypercall,
    },
    /// LGUEST_INIT came a second time.
    #[error(
        "hypercall {}: argument `data` = {data:#x}: the shared page is already at {first:#x}",
        Hypercall::LguestInit
    )]
    SecondInit {
        /// The address of the second call.
        data: Gpa,
        /// Where the shared page already is.
        first: Gpa,
    },
    /// An address argument names memory the guest does not have.
    #[error(
        "hypercall {call}: argument `{arg}` = {value:#x}: {len} bytes there are outside guest memory (size {size:#x})"
    )]
    OutsideMemory {
        /// The call.
        call: Hypercall,
        /// The argument's name.
        arg: &'static str,
        /// The address the guest passed.
        value: Gpa,
        /// How many bytes the host needed there.
        len: u64,
        /// Size of guest memory.
        size: u64,
    },
    /// A virtual-address argument is not canonical, or lies in the top `RESERVE_MEM` bytes
    /// the host keeps for itself (the original's "attempt to access switcher pages").
    #[error("hypercall {call}: argument `{arg}` = {value:#x} is {why}")]
    BadVirtualAddress {
        /// The call.
        call: Hypercall,
        /// The argument's name.
        arg: &'static str,
        /// The address the guest passed.
        value: Gva,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A shared-page field the host checks at LGUEST_INIT is wrong.
    #[error(
        "hypercall {}: argument `data`: shared-page field `{field}` = {value:#x} {why}",
        Hypercall::LguestInit
    )]
    BadSharedPage {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// LOAD_IDT_ENTRY with a present gate that is neither an interrupt nor a trap gate.
    #[error(
        "hypercall {}: argument `lo` = {lo:#x}: vector {vector} is a present gate of type {gate_type:#x}, neither an interrupt (0xe) nor a trap (0xf) gate",
        Hypercall::LoadIdtEntry
    )]
    BadGate {
        /// The vector.
        vector: u64,
        /// The low half of the gate.
        lo: u64,
        /// The gate type the guest asked for.
        gate_type: u64,
    },
    /// SET_STACK with a stack segment whose RPL is not `GUEST_PL`.
    #[error(
        "hypercall {}: argument `ss` = {ss:#x}: its privilege level is not the guest kernel's",
        Hypercall::SetStack
    )]
    BadStackSegment {
        /// The selector.
        ss: u64,
    },
    /// SET_STACK with stack pages that would wrap below address 0.
    #[error(
        "hypercall {}: argument `sp` = {sp:#x}: {pages} stack pages below it wrap below 0",
        Hypercall::SetStack
    )]
    BadStackPointer {
        /// The stack top.
        sp: Gva,
        /// The page count.
        pages: u64,
    },
    /// SET_PTE with a present entry whose frame is outside guest memory.
    #[error(
        "hypercall {}: argument `pte` = {pte:#x} (for {vaddr:#x}) maps a frame outside guest memory",
        Hypercall::SetPte
    )]
    BadPte {
        /// The virtual address.
        vaddr: Gva,
        /// The entry.
        pte: u64,
    },
    /// A present upper-level entry in the guest's page tables points outside guest memory.
    #[error(
        "hypercall {call}: argument `{arg}`: walking the tables at {pgdir:#x}, entry {index} of the table at {table:#x} = {entry:#x} points outside guest memory"
    )]
    BadTableEntry {
        /// The call that made the host walk the tables.
        call: Hypercall,
        /// The argument that led there.
        arg: &'static str,
        /// The top-level table walked.
        pgdir: Gpa,
        /// The table holding the bad entry.
        table: Gpa,
        /// The entry's index.
        index: usize,
        /// The entry.
        entry: u64,
    },
    /// A ring slot's status byte is neither `RING_READY` nor `RING_DONE`.
    #[error("async ring slot {slot}: status byte {value:#04x} is neither ready nor done")]
    RingStatus {
        /// The slot.
        slot: usize,
        /// The status byte.
        value: u8,
    },
    /// A ring slot is ready although the host's cursor stopped at an earlier, done slot:
    /// the guest filled slots out of order, so the two cursors are out of step. The original
    /// left such a slot waiting forever.
    #[error(
        "async ring slot {slot} is ready but the host's cursor is at slot {cursor}, which is done: the guest's cursor is out of step"
    )]
    RingOutOfStep {
        /// The host's cursor.
        cursor: usize,
        /// The stranded ready slot.
        slot: usize,
    },
    /// A handler ran after the guest had already stopped (through [`crate::abi::host::dispatch`]
    /// directly; the host's own entry points refuse earlier).
    #[error("hypercall {nr:#x} after the guest stopped")]
    AfterStop {
        /// The call number.
        nr: u64,
    },
}

impl Kill {
    /// The hypercall the reason is about, if it names one.
    pub fn call(&self) -> Option<Hypercall> {
        match self {
            Kill::UnknownHypercall { .. }
            | Kill::RingStatus { .. }
            | Kill::RingOutOfStep { .. }
            | Kill::AfterStop { .. } => None,
            Kill::BadArgument(b) => Some(b.call),
            Kill::BeforeInit { call }
            | Kill::OutsideMemory { call, .. }
            | Kill::BadVirtualAddress { call, .. }
            | Kill::BadTableEntry { call, .. } => Some(*call),
            Kill::SecondInit { .. } | Kill::BadSharedPage { .. } => Some(Hypercall::LguestInit),
            Kill::BadGate { .. } => Some(Hypercall::LoadIdtEntry),
            Kill::BadStackSegment { .. } | Kill::BadStackPointer { .. } => {
                Some(Hypercall::SetStack)
            }
            Kill::BadPte { .. } => Some(Hypercall::SetPte),
        }
    }

    /// The argument the reason is about, if it names one.
    pub fn arg(&self) -> Option<&'static str> {
        match self {
            Kill::BadArgument(b) => Some(b.arg),
            Kill::OutsideMemory { arg, .. }
            | Kill::BadVirtualAddress { arg, .. }
            | Kill::BadTableEntry { arg, .. } => Some(arg),
            Kill::SecondInit { .. } | Kill::BadSharedPage { .. } => Some("data"),
            Kill::BadGate { .. } => Some("lo"),
            Kill::BadStackSegment { .. } => Some("ss"),
            Kill::BadStackPointer { .. } => Some("sp"),
            Kill::BadPte { .. } => Some("pte"),
            Kill::UnknownHypercall { .. }
            | Kill::BeforeInit { .. }
            | Kill::RingStatus { .. }
            | Kill::RingOutOfStep { .. }
            | Kill::AfterStop { .. } => None,
        }
    }
}

impl From<DispatchError<Kill>> for Kill {
    fn from(e: DispatchError<Kill>) -> Self {
        match e {
            DispatchError::UnknownHypercall { nr } => Kill::UnknownHypercall { nr },
            DispatchError::BadArgument(b) => Kill::BadArgument(b),
            DispatchError::Host(k) => k,
        }
    }
}

/// Where the call that killed the guest came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A synchronous hypercall.
    Direct,
    /// A slot of the async ring.
    Ring(usize),
}

/// A kill with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("guest killed: {reason}{}", match origin { Origin::Ring(s) => format!(" (async ring slot {s})"), Origin::Direct => String::new() })]
pub struct Killed {
    /// Why.
    pub reason: Kill,
    /// Which call.
    pub origin: Origin,
}

/// The guest asked to stop (SHUTDOWN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// Power off or restart.
    pub kind: ShutdownKind,
    /// The reason text, lossily decoded, without its NUL.
    pub reason: String,
}

/// Why the host will not run the guest any further.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// The guest shut down.
    #[error("guest shut down ({}): {}", .0.kind.name(), .0.reason)]
    Shutdown(Shutdown),
    /// The host killed the guest.
    #[error(transparent)]
    Killed(Killed),
}

impl Stop {
    /// The kill, if the guest was killed.
    pub fn killed(&self) -> Option<&Killed> {
        match self {
            Stop::Killed(k) => Some(k),
            Stop::Shutdown(_) => None,
        }
    }
}
