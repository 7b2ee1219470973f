//! Which interrupt to deliver next, decided as lguest's host decides it
//! (`interrupt_pending`, `try_deliver_interrupt` and the halt sleep in `run_guest`), with
//! no opinion on how a frame reaches the guest: the in-process host only records the
//! decision, the KVM host injects the vector.

use crate::abi::numbers::{FIRST_EXTERNAL_VECTOR, IRQS};

/// Bitmap of the interrupt lines the host can deliver.
pub const LINES_MASK: u64 = if IRQS >= 64 {
    u64::MAX
} else {
    (1 << IRQS) - 1
};

/// Everything the decision looks at, read once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Lines the host has raised and not delivered yet.
    pub pending: u64,
    /// The guest's `blocked_interrupts`.
    pub blocked: u64,
    /// The guest's `irq_enabled` (0 = disabled; anything else enabled, as in the original).
    pub irq_enabled: u32,
    /// Whether the guest sent HALT and has not been woken.
    pub halted: bool,
    /// Whether the guest's instruction pointer is inside its no-interrupt window.
    pub in_noirq_window: bool,
    /// Lines whose IDT gate (`FIRST_EXTERNAL_VECTOR + line`) is present.
    pub handled: u64,
    /// The clock-event deadline, if armed.
    pub timer: Option<u64>,
}

/// What to do before entering the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Enter the guest with nothing to inject.
    Run,
    /// Wake the halted guest (interrupts enabled, halted cleared) and enter it with
    /// nothing to inject: an interrupt is due but cannot be delivered right now.
    Wake,
    /// Deliver `line` through `vector`; `wake` if the guest was halted.
    Deliver {
        /// The interrupt line.
        line: u32,
        /// Its IDT vector.
        vector: u8,
        /// The guest was halted: wake it and enable its interrupts first.
        wake: bool,
    },
    /// The guest is halted and nothing can be delivered: sleep until the deadline (or, for
    /// `None`, until the host raises a line).
    Sleep {
        /// The clock-event deadline, if one is armed.
        until: Option<u64>,
    },
}

/// The first line that is pending and not blocked.
pub fn first_deliverable(pending: u64, blocked: u64) -> Option<u32> {
    let ready = pending & !blocked & LINES_MASK;
    (ready != 0).then(|| ready.trailing_zeros())
}

/// Decides, from `v`, what the host does before the next guest entry.
pub fn decide(v: &View) -> Decision {
    let Some(line) = first_deliverable(v.pending, v.blocked) else {
        // Nothing deliverable: a halted guest sleeps until its timer (or a raised line).
        return if v.halted {
            Decision::Sleep { until: v.timer }
        } else {
            Decision::Run
        };
    };
    // Never inject inside the window where the guest's iret has re-enabled interrupts but
    // not yet returned. A halted guest is woken so it can leave the window: the original
    // neither delivered nor slept here, and spun.
    if v.in_noirq_window {
        return if v.halted {
            Decision::Wake
        } else {
            Decision::Run
        };
    }
    // An interrupt wakes a halted guest with interrupts enabled; otherwise a guest that
    // has them disabled gets it later, once it enables them and exits again.
    if !v.halted && v.irq_enabled == 0 {
        return Decision::Run;
    }
    if v.handled & (1 << line) == 0 {
        // No handler yet: the original ignores the interrupt (it stays pending).
        return if v.halted {
            Decision::Wake
        } else {
            Decision::Run
        };
    }
    Decision::Deliver {
        line,
        vector: (FIRST_EXTERNAL_VECTOR + u64::from(line)) as u8,
        wake: v.halted,
    }
}

/// Fires the one-shot clock event if its deadline has passed: line 0 becomes pending and
/// the timer disarms. Returns whether it fired.
pub fn fire_timer(timer: &mut Option<u64>, now: u64, pending: &mut u64) -> bool {
    match *timer {
        Some(deadline) if deadline <= now => {
            *timer = None;
            *pending |= 1;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            handled: LINES_MASK,
            irq_enabled: 0x200,
            ..View::default()
        }
    }

    #[test]
    fn the_lowest_unblocked_pending_line_goes_first() {
        let v = View {
            pending: 0b1011,
            blocked: 0b0001,
            ..view()
        };
        assert_eq!(
            decide(&v),
            Decision::Deliver {
                line: 1,
                vector: FIRST_EXTERNAL_VECTOR as u8 + 1,
                wake: false
            }
        );
    }

    #[test]
    fn blocked_disabled_and_windowed_interrupts_wait() {
        let base = View {
            pending: 1,
            ..view()
        };
        assert_eq!(decide(&View { blocked: 1, ..base }), Decision::Run);
        assert_eq!(
            decide(&View {
                irq_enabled: 0,
                ..base
            }),
            Decision::Run
        );
        assert_eq!(
            decide(&View {
                in_noirq_window: true,
                ..base
            }),
            Decision::Run
        );
        assert_eq!(decide(&View { handled: 0, ..base }), Decision::Run);
    }

    #[test]
    fn a_halted_guest_sleeps_until_its_timer_and_wakes_for_an_interrupt() {
        let halted = View {
            halted: true,
            irq_enabled: 0,
            timer: Some(5000),
            ..view()
        };
        assert_eq!(decide(&halted), Decision::Sleep { until: Some(5000) });
        assert_eq!(
            decide(&View {
                timer: None,
                ..halted
            }),
            Decision::Sleep { until: None }
        );
        // Interrupts disabled do not keep a halted guest asleep: HALT enables them.
        assert_eq!(
            decide(&View {
                pending: 1,
                ..halted
            }),
            Decision::Deliver {
                line: 0,
                vector: FIRST_EXTERNAL_VECTOR as u8,
                wake: true
            }
        );
        assert_eq!(
            decide(&View {
                pending: 1,
                handled: 0,
                ..halted
            }),
            Decision::Wake
        );
    }

    #[test]
    fn the_timer_fires_once_at_its_deadline() {
        let mut timer = Some(100);
        let mut pending = 0;
        assert!(!fire_timer(&mut timer, 99, &mut pending));
        assert_eq!(pending, 0);
        assert!(fire_timer(&mut timer, 100, &mut pending));
        assert_eq!((timer, pending), (None, 1));
        assert!(!fire_timer(&mut timer, 1000, &mut pending));
    }
}
