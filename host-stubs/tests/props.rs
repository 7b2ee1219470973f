//! Property tests: arbitrary calls, ring contents and memory sizes never panic the host,
//! never touch memory outside the guest's, and every kill names the right call.

mod common;

use common::*;
use host_stubs::abi::numbers::{ARG_REGS, Hypercall, LGUEST_INIT, PAGE_SIZE};
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_READY, RING_SIZE};
use host_stubs::kill::{Kill, Origin, Stop};
use proptest::prelude::*;

/// Call numbers: mostly real ones, some near misses, some anything.
fn nr() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => proptest::sample::select(Hypercall::ALL.iter().map(|c| c.nr()).collect::<Vec<_>>()),
        1 => 0u64..32,
        1 => any::<u64>(),
    ]
}

/// Argument values: small numbers, addresses in and around memory, and anything.
fn arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..0x300,
        3 => (0u64..(MEM / PAGE_SIZE + 4)).prop_map(|p| p * PAGE_SIZE),
        2 => 0u64..MEM + 0x2000,
        1 => Just(KERNEL + 0x1000),
        2 => any::<u64>(),
    ]
}

fn args() -> impl Strategy<Value = [u64; ARG_REGS]> {
    proptest::array::uniform4(arg())
}

/// Checks a kill against the call that caused it.
fn check_kill(k: &Kill, nr: u64, args: &[u64; ARG_REGS]) {
    match Hypercall::try_from(nr) {
        Err(_) => assert_eq!(k, &Kill::UnknownHypercall { nr }),
        Ok(call) => {
            assert_eq!(k.call(), Some(call), "{k}");
            if let Kill::BadArgument(b) = k {
                assert_eq!(b.arg, call.arg_names()[b.index]);
                assert_eq!(b.value, args[b.index]);
            }
            if let Some(arg) = k.arg() {
                assert!(call.arg_names().contains(&arg), "{k}");
            }
            assert!(k.to_string().contains(call.name()), "{k}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any single call on a booted guest: done, or a kill naming that call.
    #[test]
    fn any_call_is_run_or_kills_naming_it(nr in nr(), args in args()) {
        let (mut h, _) = booted();
        match h.hypercall(nr, args) {
            Ok(_) | Err(Stop::Shutdown(_)) => {}
            Err(Stop::Killed(k)) => {
                prop_assert_eq!(k.origin, Origin::Direct);
                check_kill(&k.reason, nr, &args);
            }
        }
    }

    /// Any sequence of calls, with or without INIT, on any memory size: no panic, and once
    /// stopped the host stays stopped for the same reason.
    #[test]
    fn any_call_sequence_on_any_memory(
        size in prop_oneof![1u64..0x3000, 0x3000u64..MEM],
        init in any::<bool>(),
        calls in proptest::collection::vec((nr(), args()), 0..24),
    ) {
        let (mut h, _) = host_with(size);
        if init {
            let _ = h.hypercall(LGUEST_INIT, [PAGE, 0, 0, 0]);
        }
        let mut first: Option<Stop> = h.stopped().cloned();
        for (nr, args) in calls {
            let r = h.hypercall(nr, args);
            match (&first, r) {
                (Some(f), r) => prop_assert_eq!(r, Err(f.clone())),
                (None, Ok(_)) => {}
                (None, Err(s)) => {
                    if let Stop::Killed(k) = &s {
                        if h.shared_page().is_none() && nr != LGUEST_INIT {
                            prop_assert!(matches!(k.reason, Kill::BeforeInit { .. } | Kill::UnknownHypercall { .. } | Kill::BadArgument(_)), "{}", k);
                        }
                        check_kill(&k.reason, nr, &args);
                    }
                    first = Some(s);
                }
            }
            let _ = h.next(0);
        }
    }

    /// LGUEST_INIT at any address in any memory: it succeeds exactly when the page fits.
    #[test]
    fn init_anywhere(size in 1u64..0x8000, data in 0u64..0x9000) {
        let (mut h, _) = host_with(size);
        let data = data & !7;
        if data + LguestData::SIZE as u64 <= size {
            setup_page(h.mem(), data);
        }
        let r = h.hypercall(LGUEST_INIT, [data, 0, 0, 0]);
        prop_assert_eq!(r.is_ok(), data + LguestData::SIZE as u64 <= size, "{:?}", r);
    }

    /// Any ring contents: the drain runs slots in order from the cursor, or kills naming
    /// the slot, and a kill from a slot names the slot's own call.
    #[test]
    fn any_ring_contents(
        slots in proptest::collection::vec(
            (prop_oneof![4 => Just(RING_READY), 4 => Just(RING_DONE), 1 => any::<u8>()], nr(), proptest::array::uniform3(arg())),
            RING_SIZE,
        ),
    ) {
        let (mut h, _) = booted();
        for (i, (status, nr, args)) in slots.iter().enumerate() {
            put_slot(h.mem(), i, *nr, *args, *status);
        }
        let r = h.hypercall(Hypercall::FlushAsync.nr(), [0; 4]);
        let ring_calls: Vec<_> = h.calls().iter().filter(|c| c.origin != Origin::Direct).collect();
        // Slots ran in order from 0, each one at most once.
        for (i, c) in ring_calls.iter().enumerate() {
            prop_assert_eq!(c.origin, Origin::Ring(i));
            prop_assert_eq!(c.nr, slots[i].1);
            prop_assert_eq!(&c.args[..3], &slots[i].2[..]);
        }
        match r {
            Ok(_) => {
                // Everything done, cursor right after the last slot run.
                for i in 0..RING_SIZE {
                    prop_assert_eq!(status(h.mem(), i), RING_DONE);
                }
                prop_assert_eq!(h.ring_cursor(), ring_calls.len() % RING_SIZE);
            }
            Err(Stop::Shutdown(_)) => {}
            Err(Stop::Killed(k)) => match (k.origin, &k.reason) {
                (Origin::Ring(s), Kill::RingStatus { slot, value }) => {
                    prop_assert_eq!(s, *slot);
                    prop_assert_eq!(*value, slots[s].0);
                    prop_assert!(*value != RING_READY && *value != RING_DONE);
                }
                (Origin::Ring(s), Kill::RingOutOfStep { slot, .. }) => {
                    prop_assert_eq!(s, *slot);
                    prop_assert_eq!(status(h.mem(), s), RING_READY);
                }
                (Origin::Ring(s), reason) => {
                    let (_, nr, a) = slots[s];
                    check_kill(reason, nr, &[a[0], a[1], a[2], 0]);
                }
                (Origin::Direct | Origin::Entry, reason) => prop_assert!(false, "the flush itself cannot fail: {}", reason),
            },
        }
    }
}
