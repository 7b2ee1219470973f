//! Room: the run's configuration, which both backends take: memory, mode, workload, fault,
//! tick, watchdog and time limit, checked, and the boot block made from them. What a run
//! ends with is `report.rs`.

use std::time::Duration;

use lguest_abi::numbers::CLOCK_MIN_DELTA;
use lguest_kernel::params::{BootParams, Fault, Mode, Workload};

use crate::layout::MAX_MEM;
// The report moved to its own room; its old paths keep working.
pub use crate::report::{
    Backend, Report, ShadowCounts, Snapshot, host_counts, host_total_calls, show_console,
};

/// Longest tick the idle loop may ask for: 1 s (the kernel busy-waits three ticks with
/// interrupts masked, and a halted guest's clock event must stay within the host's halt
/// limit).
pub const MAX_TICK_NS: u64 = 1_000_000_000;

/// How to run the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bytes of guest RAM (a multiple of 2 MiB, at most 1 GiB).
    pub mem: u64,
    /// How the guest ends.
    pub mode: Mode,
    /// What it runs.
    pub workload: Workload,
    /// Pages the mmu workload maps and unmaps.
    pub pages: u64,
    /// The mmu workload with lazy mode off.
    pub eager: bool,
    /// Timer ticks the idle loop waits for.
    pub ticks: u32,
    /// Nanoseconds per tick.
    pub tick_ns: u64,
    /// A deliberate ABI violation.
    pub fault: Fault,
    /// Running this long without going idle (halting with nothing to deliver) ends the
    /// guest, however many exits it made meanwhile: an exit storm cannot reset it.
    pub watchdog: Duration,
    /// The whole run (every boot of it) ends after this long, if set.
    pub timeout: Option<Duration>,
    /// Print the guest's console text on stdout as it arrives.
    pub live_console: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mem: 64 << 20,
            mode: Mode::PowerOff,
            workload: Workload::Boot,
            pages: 1000,
            eager: false,
            ticks: 10,
            tick_ns: 1_000_000,
            fault: Fault::None,
            watchdog: Duration::from_secs(5),
            timeout: None,
            live_console: false,
        }
    }
}

impl Config {
    /// Checks what the kernel and the host will rely on.
    pub fn check(&self) -> Result<(), String> {
        if self.mem == 0 || !self.mem.is_multiple_of(2 << 20) || self.mem > MAX_MEM {
            return Err(format!(
                "memory must be a multiple of 2 MiB, at most {} MiB (got {} bytes)",
                MAX_MEM >> 20,
                self.mem
            ));
        }
        if self.tick_ns < CLOCK_MIN_DELTA {
            return Err(format!(
                "the tick must be at least CLOCK_MIN_DELTA = {CLOCK_MIN_DELTA} ns"
            ));
        }
        if self.tick_ns > MAX_TICK_NS {
            return Err(format!(
                "the tick must be at most {} µs (got {} ns)",
                MAX_TICK_NS / 1000,
                self.tick_ns
            ));
        }
        if self.watchdog.is_zero() || self.timeout.is_some_and(|t| t.is_zero()) {
            return Err("the watchdog and the time limit must be longer than 0 ms".into());
        }
        // The kernel's page pool holds 512 tables; each maps 512 pages.
        if self.pages > 200_000 {
            return Err(format!(
                "--pages {} is more than the kernel's page-table pool can map (200000)",
                self.pages
            ));
        }
        Ok(())
    }

    /// The boot block for the kernel.
    pub fn boot_params(&self) -> BootParams {
        BootParams {
            pages: self.pages,
            eager: u32::from(self.eager),
            ticks: self.ticks,
            tick_ns: self.tick_ns,
            fault: self.fault as u32,
            ..BootParams::new(self.mem, self.mode, self.workload)
        }
    }
}
