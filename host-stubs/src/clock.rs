//! Time as the host sees it, behind a trait so tests are deterministic.
//!
//! lguest's host uses `ktime_get_real` for the clock-event timer and the wall-clock time it
//! writes into the shared page, and the host's `tsc_khz` for the guest's TSC calibration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time, as written to `time_sec`/`time_nsec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WallTime {
    /// Seconds since the epoch.
    pub sec: u64,
    /// Nanoseconds within the second.
    pub nsec: u64,
}

/// The host's clocks.
pub trait Clock {
    /// A monotonic time in ns; timer deadlines are in this time base.
    fn now_ns(&self) -> u64;
    /// Wall-clock time for the shared page.
    fn wall(&self) -> WallTime;
    /// The TSC frequency to report, or 0 if the guest must not trust the TSC.
    fn tsc_khz(&self) -> u32;
}

/// The real clocks: `Instant` since creation, `SystemTime`, and no usable TSC (0, which
/// makes the guest calibrate; a KVM host that knows its TSC is stable reports it instead).
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
    tsc_khz: u32,
}

impl SystemClock {
    /// A clock whose monotonic time starts now, reporting no usable TSC.
    pub fn new() -> Self {
        Self::with_tsc_khz(0)
    }

    /// A clock whose monotonic time starts now, reporting a TSC of `tsc_khz` (what KVM
    /// says the guest's TSC runs at).
    pub fn with_tsc_khz(tsc_khz: u32) -> Self {
        SystemClock {
            start: Instant::now(),
            tsc_khz,
        }
    }

    /// The instant monotonic time 0 stands for.
    pub fn start(&self) -> Instant {
        self.start
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn wall(&self) -> WallTime {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        WallTime {
            sec: d.as_secs(),
            nsec: u64::from(d.subsec_nanos()),
        }
    }

    fn tsc_khz(&self) -> u32 {
        self.tsc_khz
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
    wall_base: WallTime,
    tsc_khz: u32,
}

impl ManualClock {
    /// A clock at monotonic time 0, whose wall clock reads `wall_base` plus the monotonic
    /// time, reporting `tsc_khz`.
    pub fn new(wall_base: WallTime, tsc_khz: u32) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(0)),
            wall_base,
            tsc_khz,
        }
    }

    /// Moves time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(ns))
            });
    }

    /// Sets the monotonic time.
    pub fn set(&self, ns: u64) {
        self.now.store(ns, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    fn wall(&self) -> WallTime {
        const NS_PER_SEC: u64 = 1_000_000_000;
        let t = self.now_ns();
        let nsec = self.wall_base.nsec % NS_PER_SEC + t % NS_PER_SEC;
        WallTime {
            sec: self
                .wall_base
                .sec
                .saturating_add(t / NS_PER_SEC)
                .saturating_add(nsec / NS_PER_SEC),
            nsec: nsec % NS_PER_SEC,
        }
    }

    fn tsc_khz(&self) -> u32 {
        self.tsc_khz
    }
}
