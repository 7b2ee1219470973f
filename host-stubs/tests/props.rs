//! Property tests: arbitrary calls, ring contents and memory sizes never panic the host,
//! never write guest memory outside the shared-page fields the spec gives the host, and
//! every kill names the right call.

mod common;

use common::*;
use host_stubs::abi::numbers::{ARG_REGS, Hypercall, LGUEST_INIT, PAGE_SIZE};
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_READY, RING_SIZE, Writer};
use host_stubs::abi::types::Gpa;
use host_stubs::kill::{Kill, Origin, Stop};
use host_stubs::memory::GuestMem;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Guest memory before the host runs: zeroes (as a fresh VM has), or a pattern from a
/// seed, so that a stray write of almost any value shows.
fn fill() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), any::<u64>().prop_map(Some)]
}

/// Writes the pattern of `seed` over all of `mem`.
fn write_pattern(mem: &GuestMem, seed: Option<u64>) {
    let Some(seed) = seed else { return };
    // A block of prime length, repeated: every page sees different bytes.
    let block: Vec<u8> = (0..4093u64)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect();
    let mut at = 0;
    while at < mem.size() {
        let n = (mem.size() - at).min(block.len() as u64);
        mem.write(at, &block[..n as usize]).unwrap();
        at += n;
    }
}

/// All of guest memory.
fn snapshot(mem: &GuestMem) -> Vec<u8> {
    let mut b = vec![0u8; mem.size() as usize];
    mem.read(0, &mut b).unwrap();
    b
}

/// Every byte of guest memory equals `before`, except in the fields the spec lets the host
/// write (host or both) of the shared page at `page`, if there is one.
fn host_wrote_only_its_fields(
    mem: &GuestMem,
    before: &[u8],
    page: Option<Gpa>,
) -> Result<(), TestCaseError> {
    let after = snapshot(mem);
    let host_may_write = |gpa: u64| {
        page.is_some_and(|p| {
            LguestData::FIELDS.iter().any(|f| {
                let start = p + f.offset as u64;
                f.writer != Writer::Guest && start <= gpa && gpa < start + f.size as u64
            })
        })
    };
    // Compare page by page, and byte by byte only where a page differs.
    let chunk = PAGE_SIZE as usize;
    for (n, (b, a)) in before.chunks(chunk).zip(after.chunks(chunk)).enumerate() {
        if b == a {
            continue;
        }
        for (i, (x, y)) in b.iter().zip(a).enumerate() {
            let gpa = (n * chunk + i) as u64;
            prop_assert!(
                x == y || host_may_write(gpa),
                "the host wrote {:#x} ({:#04x} -> {:#04x}), outside its shared-page fields (page {:#x?})",
                gpa,
                x,
                y,
                page
            );
        }
    }
    Ok(())
}

/// A memory size and a shared-page address: memory smaller than the page, the page flush
/// against the end of memory or a few words below it, the page running past the end, or
/// the fixtures' low placement.
fn placement() -> impl Strategy<Value = (u64, Gpa)> {
    let len = LguestData::SIZE as u64;
    prop_oneof![
        (1u64..len, 0u64..8).prop_map(|(size, p)| (size, p * 8)),
        (len..=MEM, 0u64..4)
            .prop_map(move |(size, k)| (size, ((size - len) & !7).saturating_sub(8 * k))),
        (len..=MEM, 1u64..64).prop_map(move |(size, k)| (size, ((size - len) & !7) + 8 * k)),
        (PAGE + len..=MEM).prop_map(|size| (size, PAGE)),
    ]
}

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
        seed in fill(),
        init in any::<bool>(),
        calls in proptest::collection::vec((nr(), args()), 0..24),
    ) {
        let (mut h, _) = host_at(size, |m| write_pattern(m, seed), PAGE);
        let before = snapshot(h.mem());
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
            // Deciding what to deliver may end the guest too (a halt nothing can wake).
            if first.is_none() {
                first = h.stopped().cloned();
            }
        }
        host_wrote_only_its_fields(h.mem(), &before, h.shared_page())?;
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

    /// Any ring contents, on any memory size with the shared page anywhere: the drain runs
    /// slots in order from the cursor, or kills naming the slot, and a kill from a slot
    /// names the slot's own call. A page that does not fit kills INIT, naming it, and then
    /// nothing runs. Either way the host writes nothing but its own shared-page fields.
    #[test]
    fn any_ring_contents_on_any_memory(
        (size, page) in placement(),
        seed in fill(),
        slots in proptest::collection::vec(
            (prop_oneof![4 => Just(RING_READY), 4 => Just(RING_DONE), 1 => any::<u8>()], nr(), proptest::array::uniform3(arg())),
            RING_SIZE,
        ),
    ) {
        let (mut h, _) = host_at(size, |m| write_pattern(m, seed), page);
        let fits = h.mem().check(page, LguestData::SIZE as u64).is_ok();
        if fits {
            for (i, (status, nr, args)) in slots.iter().enumerate() {
                put_slot_at(h.mem(), page, i, *nr, *args, *status);
            }
        }
        let before = snapshot(h.mem());
        let init = h.hypercall(LGUEST_INIT, [page, 0, 0, 0]);
        prop_assert_eq!(init.is_ok(), fits, "{:?}", init);
        if let Err(stop) = init {
            let k = stop.killed().cloned().unwrap();
            prop_assert_eq!(&k.reason, &Kill::OutsideMemory {
                call: Hypercall::LguestInit,
                arg: "data",
                value: page,
                len: LguestData::SIZE as u64,
                size,
            });
            prop_assert_eq!(h.hypercall(Hypercall::FlushAsync.nr(), [0; 4]), Err(stop));
            prop_assert!(h.calls().iter().all(|c| c.origin == Origin::Direct), "the ring never ran");
            return host_wrote_only_its_fields(h.mem(), &before, None);
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
                    prop_assert_eq!(status_at(h.mem(), page, i), RING_DONE);
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
                    prop_assert_eq!(status_at(h.mem(), page, s), RING_READY);
                }
                (Origin::Ring(s), reason) => {
                    let (_, nr, a) = slots[s];
                    check_kill(reason, nr, &[a[0], a[1], a[2], 0]);
                }
                (Origin::Direct | Origin::Entry, reason) => prop_assert!(false, "the flush itself cannot fail: {}", reason),
            },
        }
        let _ = h.next(0);
        host_wrote_only_its_fields(h.mem(), &before, Some(page))?;
    }
}
