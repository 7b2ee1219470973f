//! Time.
//!
//! It would be far better for everyone if the Guest had its own clock, but until then the
//! Host gives us the time on every interrupt.

use core::fmt;
use core::sync::atomic::Ordering;

use crate::abi::guest::{LguestHypercalls, Transport};
use crate::abi::numbers::CLOCK_MIN_DELTA;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

/// Nanoseconds in a second.
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// The timer is interrupt line 0.
pub const TIMER_IRQ: u32 = 0;

/// Why the clock-event device refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockEventError {
    /// The delta is below `CLOCK_MIN_DELTA` (the seed's `-ETIME`); nothing was sent.
    DeltaTooSmall {
        /// The delta asked for, in ns.
        delta: u64,
    },
    /// The device is one-shot only (the seed hits `BUG()` here).
    PeriodicUnsupported,
}

impl fmt::Display for ClockEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockEventError::DeltaTooSmall { delta } => {
                write!(f, "small delta {delta} ns (minimum {CLOCK_MIN_DELTA} ns)")
            }
            ClockEventError::PeriodicUnsupported => {
                f.write_str("the lguest clock-event device is one-shot only")
            }
        }
    }
}

impl core::error::Error for ClockEventError {}

/// The clock-event modes Linux asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockEventMode {
    /// Not in use.
    Unused,
    /// Stopped.
    Shutdown,
    /// Periodic ticks: not supported.
    Periodic,
    /// One-shot: what we expect.
    Oneshot,
    /// Resumed after suspend.
    Resume,
}

/// The seed's torn-read-safe read of a two-part time, over any two loads (the shared
/// page's in [`Lguest::clock_read`]; scripted ones in tests).
///
/// Since the time is in two parts (seconds and nanoseconds), we risk reading it just as
/// it's changing from 99 & 0.999999999 to 100 and 0, and getting 99 and 0. As Linux tends
/// to come apart under the stress of time travel, we must be careful: if the seconds part
/// has changed while we read the nanoseconds, try again.
pub fn read_split_time(mut sec: impl FnMut() -> u64, mut nsec: impl FnMut() -> u64) -> u64 {
    loop {
        // First we read the seconds part, then the nanoseconds part; each load is Acquire
        // in the shared-page version, which keeps them in this order (the seed's rmb()).
        let s = sec();
        let n = nsec();
        // Now if the seconds part has changed, try again.
        if sec() == s {
            // Our lguest clock is in real nanoseconds.
            return s.wrapping_mul(NSEC_PER_SEC).wrapping_add(n);
        }
    }
}

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// Seconds since the epoch, as the host last wrote them.
    pub fn get_wallclock(&self) -> u64 {
        self.data.time_sec.load(Ordering::Relaxed)
    }

    /// The TSC is an Intel thing called the Time Stamp Counter. The Host tells us what speed
    /// it runs at, or 0 if it's unusable as a reliable clock source. This matches what we
    /// want here: if we return 0 from this function, the x86 TSC clock will give up and not
    /// register itself.
    pub fn tsc_khz(&self) -> u64 {
        u64::from(self.data.tsc_khz.load(Ordering::Relaxed))
    }

    /// If we can't use the TSC, the kernel falls back to our lower-priority "lguest_clock",
    /// where we read the time value given to us by the Host: nanoseconds since the epoch.
    pub fn clock_read(&self) -> u64 {
        read_split_time(
            || self.data.time_sec.load(Ordering::Acquire),
            || self.data.time_nsec.load(Ordering::Acquire),
        )
    }

    /// Linux asks us to set the clock-event device to go off `delta` ns in the future.
    pub fn set_next_event(&self, delta: u64) -> Result<(), ClockEventError> {
        // FIXME: I don't think this can ever happen, but James tells me he had to put this
        // code in. Maybe we should remove it now. Anyone?
        if delta < CLOCK_MIN_DELTA {
            return Err(ClockEventError::DeltaTooSmall { delta });
        }
        // Please wake us this far in the future.
        self.transport.set_clockevent(delta);
        Ok(())
    }

    /// Switches the clock-event device's mode.
    pub fn set_clockevent_mode(&self, mode: ClockEventMode) -> Result<(), ClockEventError> {
        match mode {
            ClockEventMode::Unused | ClockEventMode::Shutdown => {
                self.clockevent_shutdown();
                Ok(())
            }
            // This is what we expect.
            ClockEventMode::Oneshot | ClockEventMode::Resume => Ok(()),
            ClockEventMode::Periodic => Err(ClockEventError::PeriodicUnsupported),
        }
    }

    /// Stops the timer. A 0 argument shuts the clock down; the port passes it explicitly,
    /// where the seed's `kvm_hypercall0` left a stale register for the host to read.
    pub fn clockevent_shutdown(&self) {
        self.transport.set_clockevent(0);
    }

    /// This is the Guest timer interrupt handler (hardware interrupt 0). We just call the
    /// clockevent infrastructure (`event_handler`) and it does whatever needs doing, with
    /// interrupts off so nothing interrupts us while it runs.
    pub fn timer_interrupt(&self, event_handler: impl FnOnce()) {
        let flags = self.save_fl();
        self.irq_disable();
        event_handler();
        self.restore_fl(flags);
    }

    /// At some point in the boot process, we get asked to set up our timing infrastructure.
    /// The kernel doesn't expect timer interrupts before this, but we cleverly initialized
    /// the "blocked_interrupts" field of "struct lguest_data" so that timer interrupts were
    /// blocked until now. Having registered the clock source and device, we unblock it.
    pub fn time_init(&self) {
        self.data
            .blocked_interrupts
            .fetch_and(!(1 << TIMER_IRQ), Ordering::Relaxed);
    }
}
