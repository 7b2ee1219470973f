//! Why a guest stopped: killed for bad input, or shut down on its own request.
//!
//! lguest has no error returns: the host either does the call or kills the guest
//! (`kill_guest`), and the run loop stops. Here a kill is a typed [`Kill`] naming the call,
//! the argument and the value, and the first one wins: the host refuses everything after
//! it (the original kept going in places and stored bad values after the kill).

use crate::abi::host::{BadArgument, BadMemory, DispatchError, MemViolation, Violation};
use crate::abi::numbers::Hypercall;
use crate::abi::shared::{FieldInfo, LguestData};
use crate::abi::types::{Gpa, Gva, ShutdownKind};

/// One argument of one hypercall, found by name in the generated metadata
/// ([`Hypercall::arg_names`]), so its name and register position are the spec's.
///
/// Build it with [`Arg::of`] in a `const` (the crate's `arg!` macro does): a name the spec
/// does not have then fails the build instead of naming a wrong argument at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    call: Hypercall,
    index: usize,
}

impl Arg {
    /// Argument `name` of `call`.
    ///
    /// # Panics
    ///
    /// If `call` has no argument of that name: evaluated in a `const`, that is a build error.
    pub const fn of(call: Hypercall, name: &str) -> Arg {
        let names = call.arg_names();
        let mut index = 0;
        while index < names.len() {
            if str_eq(names[index], name) {
                return Arg { call, index };
            }
            index += 1;
        }
        panic!("the spec gives this hypercall no argument of that name")
    }

    /// The call.
    pub const fn call(self) -> Hypercall {
        self.call
    }

    /// The argument's register position (0 = first argument register).
    pub const fn index(self) -> usize {
        self.index
    }

    /// The spec's name of the argument.
    pub const fn name(self) -> &'static str {
        self.call.arg_names()[self.index]
    }

    /// `value` in this argument broke `violation`.
    pub const fn bad(self, value: u64, violation: Violation) -> BadArgument {
        BadArgument {
            call: self.call,
            arg: self.name(),
            index: self.index,
            value,
            violation,
        }
    }
}

/// The shared-page field at byte offset `offset` (one of the generated `*_OFFSET` consts).
///
/// # Panics
///
/// If no field starts there: evaluated in a `const`, that is a build error.
pub const fn field_at(offset: usize) -> FieldInfo {
    let mut i = 0;
    while i < LguestData::FIELDS.len() {
        if LguestData::FIELDS[i].offset == offset {
            return LguestData::FIELDS[i];
        }
        i += 1;
    }
    panic!("no shared-page field starts at this offset")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `arg!(SetPte, pgdir)`: argument `pgdir` of [`Hypercall::SetPte`] as an [`Arg`], looked up
/// in the generated metadata when the crate compiles.
macro_rules! arg {
    ($call:ident, $name:ident) => {{
        const ARG: $crate::kill::Arg =
            $crate::kill::Arg::of($crate::abi::numbers::Hypercall::$call, stringify!($name));
        ARG
    }};
}
pub(crate) use arg;

/// The shared-page argument of LGUEST_INIT.
pub(crate) const INIT_DATA: Arg = arg!(LguestInit, data);
/// LOAD_IDT_ENTRY's low half, which holds the gate type.
const IDT_LO: Arg = arg!(LoadIdtEntry, lo);
/// LOAD_IDT_ENTRY's high half, which holds the top of the handler address.
const IDT_HI: Arg = arg!(LoadIdtEntry, hi);
/// SET_STACK's stack segment.
const STACK_SS: Arg = arg!(SetStack, ss);
/// SET_STACK's stack top.
const STACK_SP: Arg = arg!(SetStack, sp);
/// SET_PTE's entry.
const SET_PTE_PTE: Arg = arg!(SetPte, pte);

/// What the host was doing on its own, for no hypercall's argument, when an access to the
/// shared page failed. (INIT checked the whole page, so this happens only if the VMM has
/// since withdrawn part of it: see [`crate::memory::GuestMem::withdraw`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostAccess {
    /// Draining the async ring: reading a slot's status byte or call, or marking it done.
    #[error("draining async ring slot {slot}")]
    RingDrain {
        /// The slot.
        slot: usize,
    },
    /// Reading the guest's interrupt state to decide what to deliver.
    #[error("reading the guest's interrupt state")]
    InterruptState,
    /// Enabling interrupts to wake the halted guest.
    #[error("waking the halted guest")]
    Wake,
    /// Writing the wall-clock time, as the host does before delivering an interrupt.
    #[error("writing the time")]
    WriteTime,
    /// Disabling interrupts on delivery through an interrupt gate.
    #[error("delivering interrupt line {line}")]
    DeliverInterrupt {
        /// The line.
        line: u32,
    },
}

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
        "hypercall {}: argument `{}` = {data:#x}: the shared page is already at {first:#x}",
        INIT_DATA.call(),
        INIT_DATA.name()
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
    /// An argument in guest memory broke the spec (a string with no NUL within its maximum,
    /// or running off the end of guest memory); the generated decode caught it, before the
    /// handler ran. (One wholly outside guest memory is [`Kill::OutsideMemory`].)
    #[error("{0}")]
    BadMemory(BadMemory),
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
        "hypercall {}: argument `{}`: shared-page field `{field}` = {value:#x} {why}",
        INIT_DATA.call(),
        INIT_DATA.name()
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
        "hypercall {}: argument `{}` = {lo:#x}: vector {vector} is a present gate of type {gate_type:#x}, neither an interrupt ({:#x}) nor a trap ({:#x}) gate",
        IDT_LO.call(),
        IDT_LO.name(),
        crate::desc::INTERRUPT_GATE,
        crate::desc::TRAP_GATE
    )]
    BadGate {
        /// The vector.
        vector: u64,
        /// The low half of the gate.
        lo: u64,
        /// The gate type the guest asked for.
        gate_type: u64,
    },
    /// LOAD_IDT_ENTRY with a present gate whose handler address is not canonical: entering
    /// it would fault in the host's own stub (or, on some CPUs, in the guest at that
    /// address).
    #[error(
        "hypercall {}: argument `{}`: vector {vector}'s handler {offset:#x} is not a canonical address",
        IDT_HI.call(),
        IDT_HI.name()
    )]
    BadGateOffset {
        /// The vector.
        vector: u64,
        /// The handler address the gate holds.
        offset: u64,
    },
    /// SET_STACK with a stack segment whose RPL is not `GUEST_PL`.
    #[error(
        "hypercall {}: argument `{}` = {ss:#x}: its privilege level is not the guest kernel's",
        STACK_SS.call(),
        STACK_SS.name()
    )]
    BadStackSegment {
        /// The selector.
        ss: u64,
    },
    /// SET_STACK with stack pages that would wrap below address 0.
    #[error(
        "hypercall {}: argument `{}` = {sp:#x}: {pages} stack pages below it wrap below 0",
        STACK_SP.call(),
        STACK_SP.name()
    )]
    BadStackPointer {
        /// The stack top.
        sp: Gva,
        /// The page count.
        pages: u64,
    },
    /// SET_PTE with a present entry whose frame is outside guest memory.
    #[error(
        "hypercall {}: argument `{}` = {pte:#x} (for {vaddr:#x}) maps a frame outside guest memory",
        SET_PTE_PTE.call(),
        SET_PTE_PTE.name()
    )]
    BadPte {
        /// The virtual address.
        vaddr: Gva,
        /// The entry.
        pte: u64,
    },
    /// A page fault led the host to a guest page-table entry it refuses (lguest's
    /// `check_gpte`/`check_gpgd`): a table or a frame outside guest memory, which is where the
    /// host's own memory is.
    #[error("page fault at {vaddr:#x}: in the guest's tables at {pgdir:#x}, {bad}")]
    BadPageTable {
        /// The faulting address.
        vaddr: Gva,
        /// The guest's top-level table walked.
        pgdir: Gpa,
        /// The entry refused.
        bad: crate::mmu::BadGpte,
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
    /// An access the host made to the shared page on its own (not for a call's argument)
    /// failed: the page is no longer wholly guest memory.
    #[error(
        "{during}: shared-page field `{field}`: {len} bytes at {gpa:#x} are outside guest memory (size {size:#x})"
    )]
    SharedPage {
        /// What the host was doing.
        during: HostAccess,
        /// The field it accessed.
        field: &'static str,
        /// The guest-physical address of the access.
        gpa: Gpa,
        /// Its length in bytes.
        len: u64,
        /// Size of guest memory.
        size: u64,
    },
    /// The guest took an exception the host could not hand to it: no gate for the vector,
    /// or its stack could not take the frame (the original's "Pushing onto guest stack
    /// failed" and "Can't deliver trap").
    #[error("exception {vector} (error code {error:#x}) at rip {rip:#x}: {why}")]
    Trap {
        /// The vector.
        vector: u8,
        /// The error code (0 where the CPU gives none).
        error: u64,
        /// Where the guest was.
        rip: Gva,
        /// Why it could not be delivered.
        why: String,
    },
    /// The guest ran for the VMM's watchdog period without once going idle (halting with
    /// nothing to deliver, so that the host slept for it). Exits, hypercalls, traps and
    /// interrupts are not progress: an exit storm, however cheap each exit, ends here as
    /// surely as a loop that never exits.
    #[error(
        "the guest ran {ms} ms without going idle ({exits} exits in that time): the watchdog's limit"
    )]
    Watchdog {
        /// The watchdog's limit.
        ms: u64,
        /// Exits the guest made since it last went idle.
        exits: u64,
    },
    /// The guest halted with no timer armed and nothing pending: nothing would ever wake
    /// it (the original's Launcher would wait forever for a device).
    #[error("halted with no timer armed and no interrupt that could wake it")]
    HaltedForever,
    /// The guest halted with nothing pending and its clock event further away than the
    /// host's halt limit ([`crate::host::HostConfig::max_halt_ns`]): a wake-up that far off
    /// counts as none (SET_CLOCKEVENT(u64::MAX) then HALT would sleep for 584 years).
    #[error(
        "halted with its clock event {due_ns} ns away, beyond the host's halt limit of {limit_ms} ms: nothing would wake it in time"
    )]
    HaltedTooLong {
        /// How far away the clock event was.
        due_ns: u64,
        /// The host's limit.
        limit_ms: u64,
    },
    /// The whole run took longer than its limit (`lguest-run --timeout-ms`).
    #[error("the run's time limit of {ms} ms ran out")]
    Timeout {
        /// The limit.
        ms: u64,
    },
    /// A gate the host was about to enter names a code segment the guest kernel cannot run
    /// in (not a present 64-bit code segment at `GUEST_PL`): entering it would fault in the
    /// host's own ring-0 stub.
    #[error("vector {vector}: the guest's gate has selector {selector:#x}, which {why}")]
    BadGateSelector {
        /// The vector being delivered.
        vector: u8,
        /// The gate's code-segment selector (its RPL already forced to `GUEST_PL`).
        selector: u16,
        /// What is wrong with the segment it names.
        why: String,
    },
    /// The host's own ring-0 stub faulted while returning into the guest: its `iretq`
    /// refused the frame (a checked gate's code segment, or the interrupted stack segment,
    /// which the guest may have changed in its GDT since it was loaded).
    #[error(
        "the host's ring-0 stub faulted (exception {fault}, error code {error:#x}) entering the guest's gate for vector {vector} with code selector {selector:#x} and stack selector {ss:#x}"
    )]
    HostStubFault {
        /// The exception the stub took.
        fault: u64,
        /// Its error code (for a segment it refused, that segment's selector).
        error: u64,
        /// The vector whose gate the stub was entering.
        vector: u64,
        /// The code-segment selector it was entering.
        selector: u64,
        /// The stack-segment selector it was returning to.
        ss: u64,
    },
    /// The guest read from the hypercall port: hypercalls are port writes.
    #[error("`in` from the hypercall port {port:#x}: hypercalls are made with `out`")]
    HypercallIn {
        /// The port.
        port: u16,
    },
    /// The guest kernel used a fast system-call instruction, which an lguest guest has no
    /// path for (its system calls go through `int SYSCALL_VECTOR`).
    #[error(
        "the guest executed `{instruction}` at rip {rip:#x}: an lguest guest has no fast system-call path"
    )]
    FastSyscall {
        /// `syscall` or `sysenter`.
        instruction: &'static str,
        /// Where.
        rip: Gva,
    },
    /// The guest wrote to memory the host keeps for itself (its descriptor tables, stubs
    /// or page tables).
    #[error("wrote {len} bytes to host memory at guest-physical {gpa:#x}")]
    HostMemory {
        /// The address.
        gpa: Gpa,
        /// The access size.
        len: u64,
    },
    /// The guest touched an I/O port that is not the ABI's.
    #[error("port I/O to {port:#x}, which is not a hypercall port")]
    BadPort {
        /// The port.
        port: u16,
    },
    /// The virtual CPU stopped it (a triple fault, a privileged instruction that got
    /// through, an entry failure).
    #[error("the virtual CPU stopped: {what}")]
    Cpu {
        /// What the CPU reported.
        what: String,
    },
}

impl Kill {
    /// The hypercall the reason is about, if it names one.
    pub fn call(&self) -> Option<Hypercall> {
        match self {
            Kill::UnknownHypercall { .. }
            | Kill::RingStatus { .. }
            | Kill::RingOutOfStep { .. }
            | Kill::SharedPage { .. }
            | Kill::Trap { .. }
            | Kill::Watchdog { .. }
            | Kill::HaltedForever
            | Kill::HostMemory { .. }
            | Kill::BadPort { .. }
            | Kill::BadPageTable { .. }
            | Kill::Cpu { .. }
            | Kill::HaltedTooLong { .. }
            | Kill::Timeout { .. }
            | Kill::BadGateSelector { .. }
            | Kill::HostStubFault { .. }
            | Kill::HypercallIn { .. }
            | Kill::FastSyscall { .. } => None,
            Kill::BadArgument(b) => Some(b.call),
            Kill::BadMemory(b) => Some(b.call),
            Kill::BeforeInit { call }
            | Kill::OutsideMemory { call, .. }
            | Kill::BadVirtualAddress { call, .. } => Some(*call),
            Kill::SecondInit { .. } | Kill::BadSharedPage { .. } => Some(INIT_DATA.call()),
            Kill::BadGate { .. } => Some(IDT_LO.call()),
            Kill::BadGateOffset { .. } => Some(IDT_HI.call()),
            Kill::BadStackSegment { .. } => Some(STACK_SS.call()),
            Kill::BadStackPointer { .. } => Some(STACK_SP.call()),
            Kill::BadPte { .. } => Some(SET_PTE_PTE.call()),
        }
    }

    /// The argument the reason is about, if it names one.
    pub fn arg(&self) -> Option<&'static str> {
        match self {
            Kill::BadArgument(b) => Some(b.arg),
            Kill::BadMemory(b) => Some(b.arg),
            Kill::OutsideMemory { arg, .. } | Kill::BadVirtualAddress { arg, .. } => Some(arg),
            Kill::SecondInit { .. } | Kill::BadSharedPage { .. } => Some(INIT_DATA.name()),
            Kill::BadGate { .. } => Some(IDT_LO.name()),
            Kill::BadGateOffset { .. } => Some(IDT_HI.name()),
            Kill::BadStackSegment { .. } => Some(STACK_SS.name()),
            Kill::BadStackPointer { .. } => Some(STACK_SP.name()),
            Kill::BadPte { .. } => Some(SET_PTE_PTE.name()),
            Kill::UnknownHypercall { .. }
            | Kill::BeforeInit { .. }
            | Kill::RingStatus { .. }
            | Kill::RingOutOfStep { .. }
            | Kill::SharedPage { .. }
            | Kill::Trap { .. }
            | Kill::Watchdog { .. }
            | Kill::HaltedForever
            | Kill::HostMemory { .. }
            | Kill::BadPort { .. }
            | Kill::BadPageTable { .. }
            | Kill::Cpu { .. }
            | Kill::HaltedTooLong { .. }
            | Kill::Timeout { .. }
            | Kill::BadGateSelector { .. }
            | Kill::HostStubFault { .. }
            | Kill::HypercallIn { .. }
            | Kill::FastSyscall { .. } => None,
        }
    }
}

impl Kill {
    /// `len` bytes at `value`, which argument `arg` named, are not inside guest memory of
    /// `size` bytes.
    pub fn outside(arg: Arg, value: Gpa, len: u64, size: u64) -> Kill {
        Kill::OutsideMemory {
            call: arg.call(),
            arg: arg.name(),
            value,
            len,
            size,
        }
    }

    /// Virtual address `value`, which argument `arg` named, is `why`.
    pub fn bad_vaddr(arg: Arg, value: Gva, why: &'static str) -> Kill {
        Kill::BadVirtualAddress {
            call: arg.call(),
            arg: arg.name(),
            value,
            why,
        }
    }
}

impl Kill {
    /// The kill for memory argument `b` that broke the spec, in guest memory of `size`
    /// bytes: an argument none of whose bytes the host could reach is outside memory, as a
    /// bad address argument is; anything else (a string cut off by the end of memory, no NUL
    /// within its maximum) is the generated decode's own reason.
    pub fn memory(b: BadMemory, size: u64) -> Kill {
        match b.violation {
            MemViolation::Outside { addr, len } if addr == b.addr => Kill::OutsideMemory {
                call: b.call,
                arg: b.arg,
                value: addr,
                len,
                size,
            },
            _ => Kill::BadMemory(b),
        }
    }

    /// The kill for a call the generated dispatch refused or a handler failed, in guest
    /// memory of `size` bytes.
    pub fn dispatch(e: DispatchError<Kill>, size: u64) -> Kill {
        match e {
            DispatchError::UnknownHypercall { nr } => Kill::UnknownHypercall { nr },
            DispatchError::BadArgument(b) => Kill::BadArgument(b),
            DispatchError::BadMemory(b) => Kill::memory(b, size),
            DispatchError::Host(k) => k,
        }
    }
}

impl From<BadArgument> for Kill {
    fn from(b: BadArgument) -> Self {
        Kill::BadArgument(b)
    }
}

/// Where the call that killed the guest came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A synchronous hypercall.
    Direct,
    /// A slot of the async ring.
    Ring(usize),
    /// No call: the host's own work before entering the guest (deciding on and delivering
    /// interrupts).
    Entry,
}

/// A kill with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("guest killed: {reason}{}", match origin { Origin::Ring(s) => format!(" (async ring slot {s})"), Origin::Direct => String::new(), Origin::Entry => " (not in a hypercall)".into() })]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_fields_are_found_in_the_generated_metadata() {
        for call in Hypercall::ALL {
            for (i, name) in call.arg_names().iter().enumerate() {
                let a = Arg::of(call, name);
                assert_eq!((a.call(), a.index(), a.name()), (call, i, *name));
            }
        }
        for f in LguestData::FIELDS {
            assert_eq!(field_at(f.offset), f);
        }
        let k = Kill::outside(STACK_SP, 0x10, 8, 0x1000);
        assert_eq!((k.call(), k.arg()), (Some(Hypercall::SetStack), Some("sp")));
    }

    #[test]
    #[should_panic(expected = "no argument of that name")]
    fn an_argument_the_spec_does_not_have_is_refused() {
        // In a `const`, as `arg!` builds it, this is a build error.
        let _ = Arg::of(Hypercall::Halt, "delta");
    }
}
