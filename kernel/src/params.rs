//! What the host tells the kernel at entry: a [`BootParams`] block in guest memory, whose
//! physical address arrives in `rdi` (the place of Linux's `boot_params`).
//!
//! The block is not part of the lguest ABI (the spec knows nothing of it): it is the
//! contract between this kernel and `lguest-run`, which both compile from this file, as are
//! the benchmark marks ([`MARK_PORT`], [`Phase`]).

/// The port the kernel writes a [`Phase`] to, so the host can count between phases. Not
/// part of the lguest ABI: a benchmark hook, like a debug port.
pub const MARK_PORT: u16 = 0xf6;

/// Boundaries the host counts between (its exits, calls and time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// The mmu workload starts.
    MmuStart = 1,
    /// The mmu workload is done (its last queued calls flushed).
    MmuEnd = 2,
}

impl Phase {
    /// From the byte the kernel sends.
    pub fn from_raw(v: u8) -> Option<Phase> {
        [Phase::MmuStart, Phase::MmuEnd]
            .into_iter()
            .find(|p| *p as u8 == v)
    }
}

/// `BootParams::magic`: "lguestk1".
pub const MAGIC: u64 = u64::from_le_bytes(*b"lguestk1");

/// The boot block, written by the host before the first instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootParams {
    /// [`MAGIC`].
    pub magic: u64,
    /// Bytes of guest RAM, from guest-physical 0.
    pub mem_size: u64,
    /// How the run ends: a [`Mode`].
    pub mode: u32,
    /// What the kernel does between boot and the end: a [`Workload`].
    pub workload: u32,
    /// Pages the mmu workload maps and unmaps.
    pub pages: u64,
    /// Nonzero: the mmu workload runs with lazy mode off (one exit per page-table update).
    pub eager: u32,
    /// Timer interrupts the idle loop waits for.
    pub ticks: u32,
    /// Nanoseconds between ticks.
    pub tick_ns: u64,
    /// A deliberate ABI violation to commit: a [`Fault`].
    pub fault: u32,
    /// Zero.
    pub reserved: u32,
}

/// How the run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Mode {
    /// Power off cleanly (the machine's `power_off` op).
    PowerOff = 0,
    /// Panic on purpose (the machine's `panic` op, with the message).
    Panic = 1,
    /// Ask for a restart (the machine's `restart` op).
    Restart = 2,
}

/// What the kernel runs after booting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Workload {
    /// The whole boot path: the seed's guest from `lguest_init` to idle and power off.
    Boot = 0,
    /// Boot, then map and unmap `pages` pages through pv_mmu_ops between two marks.
    Mmu = 1,
    /// As [`Workload::Mmu`], reading every mapped page once before unmapping: one page
    /// fault each, which the host fills from the kernel's tables.
    Touch = 2,
}

/// A deliberate violation, for testing that the host kills cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Fault {
    /// Behave.
    None = 0,
    /// Make a hypercall before LGUEST_INIT.
    BeforeInit = 1,
    /// Load an IDT entry for a vector past the table.
    IdtVector = 2,
    /// Fill the async ring's status bytes with garbage, then exit.
    RingGarbage = 3,
    /// Point NOTIFY past the end of guest memory.
    OutsideMemory = 4,
    /// Spin forever with interrupts disabled, making no hypercall.
    Hang = 5,
    /// Read an unmapped address (on a real CPU): the page fault reaches the kernel's
    /// handler, which panics with it.
    PageFault = 6,
    /// Write to a port next to the hypercall port, which the I/O bitmap lets through.
    BadPort = 7,
    /// Map the first page past guest RAM (the host's) behind the host's back, and write
    /// to it.
    HostWrite = 8,
    /// Clear the top-level entry where the host's region is in our own table, then take
    /// a page fault (which must still reach our handler through the host).
    HostEntry = 9,
    /// Halt with no clock event armed: nothing could ever wake it.
    HaltNoTimer = 10,
    /// Arm the clock event `u64::MAX` ns away, then halt.
    HaltFarTimer = 11,
    /// Keep the host busy: exit after exit, each draining a ring of FLUSH_TLB(all), never
    /// halting.
    ExitStorm = 12,
    /// Take a timer interrupt with the stack pointer non-canonical.
    WildStack = 13,
    /// Point the breakpoint gate at the host's own code segment (`HOST_CS_ENTRY`), then
    /// `int3`.
    GateHostSelector = 14,
    /// Point the breakpoint gate at a code segment of privilege level 1, then `int3`.
    GateDpl1Selector = 15,
    /// `in eax, dx` from the hypercall port.
    HypercallIn = 16,
    /// Execute `syscall`.
    Syscall = 17,
    /// Execute `sysenter`.
    Sysenter = 18,
    /// Set cr0.TS through the TS hypercall, then execute an SSE instruction: the #NM must
    /// reach the kernel's handler.
    TsNm = 19,
    /// Point the breakpoint gate at a non-canonical handler address, then `int3`.
    GateWildOffset = 20,
    /// Map the host's region through an ordinary user PTE and read it.
    HostRead = 21,
    /// Map the host's ring-0 stack page and write to it.
    StackWrite = 22,
    /// Point our PML4\[511\] at a copy of the host's region whose IDT sends `int3` to our
    /// code at ring 0, then `int3`.
    FakeIdt = 23,
    /// The same, with `lidt` to the copy first.
    FakeIdtLidt = 24,
    /// Change a mapped entry without SET_PTE and see the old frame until SET_PTE.
    StalePte = 25,
    /// Make the cheapest hypercall (FLUSH_ASYNC, an empty ring) in a loop, never halting.
    CallStorm = 26,
    /// Point the breakpoint gate at a 64-bit code segment whose D bit is set too (a
    /// combination the CPU refuses to load), then `int3`.
    GateDbSelector = 27,
    /// Mark our own stack segment's GDT entry not present, then `int3`: the frame the
    /// host's stub returns through names a stack segment the CPU refuses.
    StubBadStack = 28,
}

impl Mode {
    /// From the block's field.
    pub fn from_raw(v: u32) -> Option<Mode> {
        [Mode::PowerOff, Mode::Panic, Mode::Restart]
            .into_iter()
            .find(|m| *m as u32 == v)
    }
}

impl Workload {
    /// From the block's field.
    pub fn from_raw(v: u32) -> Option<Workload> {
        [Workload::Boot, Workload::Mmu, Workload::Touch]
            .into_iter()
            .find(|m| *m as u32 == v)
    }
}

impl Fault {
    /// Every fault, for a host's command line.
    pub const ALL: [Fault; 29] = [
        Fault::None,
        Fault::BeforeInit,
        Fault::IdtVector,
        Fault::RingGarbage,
        Fault::OutsideMemory,
        Fault::Hang,
        Fault::PageFault,
        Fault::BadPort,
        Fault::HostWrite,
        Fault::HostEntry,
        Fault::HaltNoTimer,
        Fault::HaltFarTimer,
        Fault::ExitStorm,
        Fault::WildStack,
        Fault::GateHostSelector,
        Fault::GateDpl1Selector,
        Fault::HypercallIn,
        Fault::Syscall,
        Fault::Sysenter,
        Fault::TsNm,
        Fault::GateWildOffset,
        Fault::HostRead,
        Fault::StackWrite,
        Fault::FakeIdt,
        Fault::FakeIdtLidt,
        Fault::StalePte,
        Fault::CallStorm,
        Fault::GateDbSelector,
        Fault::StubBadStack,
    ];

    /// From the block's field.
    pub fn from_raw(v: u32) -> Option<Fault> {
        Fault::ALL.into_iter().find(|m| *m as u32 == v)
    }

    /// Its name on a command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::BeforeInit => "before-init",
            Fault::IdtVector => "idt-vector",
            Fault::RingGarbage => "ring-garbage",
            Fault::OutsideMemory => "outside-memory",
            Fault::Hang => "hang",
            Fault::PageFault => "page-fault",
            Fault::BadPort => "bad-port",
            Fault::HostWrite => "host-write",
            Fault::HostEntry => "host-entry",
            Fault::HaltNoTimer => "halt-no-timer",
            Fault::HaltFarTimer => "halt-far-timer",
            Fault::ExitStorm => "exit-storm",
            Fault::WildStack => "wild-stack",
            Fault::GateHostSelector => "gate-host-selector",
            Fault::GateDpl1Selector => "gate-dpl1-selector",
            Fault::HypercallIn => "hypercall-in",
            Fault::Syscall => "syscall",
            Fault::Sysenter => "sysenter",
            Fault::TsNm => "ts-nm",
            Fault::GateWildOffset => "gate-wild-offset",
            Fault::HostRead => "host-read",
            Fault::StackWrite => "stack-write",
            Fault::FakeIdt => "fake-idt",
            Fault::FakeIdtLidt => "fake-idt-lidt",
            Fault::StalePte => "stale-pte",
            Fault::CallStorm => "call-storm",
            Fault::GateDbSelector => "gate-db-selector",
            Fault::StubBadStack => "stub-bad-stack",
        }
    }
}

/// The block, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The raw block.
    pub raw: BootParams,
    /// Its mode.
    pub mode: Mode,
    /// Its workload.
    pub workload: Workload,
    /// Its fault.
    pub fault: Fault,
}

impl BootParams {
    /// A block with these choices.
    pub fn new(mem_size: u64, mode: Mode, workload: Workload) -> BootParams {
        BootParams {
            magic: MAGIC,
            mem_size,
            mode: mode as u32,
            workload: workload as u32,
            pages: 1000,
            eager: 0,
            ticks: 10,
            tick_ns: 1_000_000,
            fault: Fault::None as u32,
            reserved: 0,
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn check(&self) -> Result<Checked, &'static str> {
        if self.magic != MAGIC {
            return Err("boot block: bad magic");
        }
        let mode = Mode::from_raw(self.mode).ok_or("boot block: bad mode")?;
        let workload = Workload::from_raw(self.workload).ok_or("boot block: bad workload")?;
        let fault = Fault::from_raw(self.fault).ok_or("boot block: bad fault")?;
        if self.tick_ns < lguest_abi::numbers::CLOCK_MIN_DELTA {
            return Err("boot block: tick_ns below CLOCK_MIN_DELTA");
        }
        Ok(Checked {
            raw: *self,
            mode,
            workload,
            fault,
        })
    }

    /// The block as the bytes the host writes.
    pub fn to_bytes(&self) -> [u8; size_of::<BootParams>()] {
        let mut out = [0u8; size_of::<BootParams>()];
        let mut at = 0;
        let mut put = |b: &[u8]| {
            out[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        put(&self.magic.to_le_bytes());
        put(&self.mem_size.to_le_bytes());
        put(&self.mode.to_le_bytes());
        put(&self.workload.to_le_bytes());
        put(&self.pages.to_le_bytes());
        put(&self.eager.to_le_bytes());
        put(&self.ticks.to_le_bytes());
        put(&self.tick_ns.to_le_bytes());
        put(&self.fault.to_le_bytes());
        put(&self.reserved.to_le_bytes());
        out
    }
}

const _: () = assert!(size_of::<BootParams>() == 56);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_the_repr_c_layout() {
        let p = BootParams {
            pages: 77,
            ..BootParams::new(1 << 24, Mode::Panic, Workload::Mmu)
        };
        let bytes = p.to_bytes();
        // SAFETY: BootParams is repr(C), all integers, and `bytes` has its size.
        let back: BootParams = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!(back, p);
        assert_eq!(back.check().unwrap().mode, Mode::Panic);
    }

    #[test]
    fn bad_fields_are_named() {
        let good = BootParams::new(1 << 24, Mode::PowerOff, Workload::Boot);
        assert_eq!(
            BootParams { magic: 1, ..good }.check(),
            Err("boot block: bad magic")
        );
        assert_eq!(
            BootParams { mode: 99, ..good }.check(),
            Err("boot block: bad mode")
        );
        assert_eq!(
            BootParams { fault: 99, ..good }.check(),
            Err("boot block: bad fault")
        );
    }
}
