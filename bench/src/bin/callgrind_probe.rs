//! Runs one probe `N` times, for `bench/callgrind.sh` to count its instructions under
//! `valgrind --tool=callgrind --toggle-collect=<probe>`:
//!
//! ```text
//! callgrind_probe MODE [N]
//! ```
//!
//! | MODE | probe (collected function) | what one call does |
//! |---|---|---|
//! | `typed-minimal` | `pvb_typed_recorder` | `set_pte` via the generated wrapper, minimal transport |
//! | `raw-minimal` | `pvb_raw_recorder` | the same via `Transport::hypercall` by hand |
//! | `typed-loopback` | `pvb_typed_loopback` | `set_clockevent` via the wrapper into the reference host |
//! | `raw-loopback` | `pvb_raw_loopback` | the same by hand |
//! | `lazy-queue` | `pvb_lazy_set_pte` | queue one `set_pte` with the generated lazy variant |
//! | `lazy-by-hand` | `pvb_lazy_by_hand` | the same queue written out by hand, cursor read inline |
//! | `guest-lazy` | `pvb_guest_lazy` | `Lguest::load_sp0` in lazy mode (the guest's whole lazy path) |
//! | `drain-nop` | `*ring*drain*` | `pv_bench::ring::drain` of a full ring (64 entries) |
//! | `drain-reference` | `*Host*drain_ring*` | `Host::drain_ring` of a full ring (64 entries) |
//!
//! The lazy modes queue into an empty 64-slot ring, so `N` is at most 64 for them; the
//! drain modes fill and drain the ring `N` times.

use std::hint::black_box;

use guest::abi::guest::Transport;
use guest::abi::lazy::{Batch, RingCursor};
use guest::abi::numbers::{SET_CLOCKEVENT, SET_PTE};
use guest::abi::shared::{LguestData, RING_SIZE};
use guest::lguest::LazyMode;
use guest::{DirectMap, Lguest, NativeCpuid, Scratch};
use pv_bench::fixture::{Loop, Recorder, World};
use pv_bench::probes::{pvb_guest_lazy, pvb_lazy_set_pte, pvb_typed_loopback, pvb_typed_recorder};

/// SET_PTE by hand on the minimal transport: the raw twin of `pvb_typed_recorder`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_raw_recorder(t: &Recorder, pgdir: u64, vaddr: u64, pte: u64) {
    t.hypercall(SET_PTE, [pgdir, vaddr, pte, 0]);
}

/// SET_CLOCKEVENT by hand into the reference host: the raw twin of `pvb_typed_loopback`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pvb_raw_loopback(t: &Loop<'_>, delta: u64) {
    t.hypercall(SET_CLOCKEVENT, [delta, 0, 0, 0]);
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_default();
    let n: u64 = argv.next().map_or(1000, |s| s.parse().expect("N"));
    let lazy = mode.starts_with("lazy") || mode.starts_with("guest-lazy");
    if lazy && n > RING_SIZE as u64 {
        eprintln!("{mode}: N is at most {RING_SIZE} (the ring)");
        std::process::exit(2);
    }
    match mode.as_str() {
        "typed-minimal" | "raw-minimal" => {
            let t = Recorder::default();
            for i in 0..n {
                let (pgdir, vaddr, pte) = black_box((i << 12, i << 21, i | 1));
                if mode == "typed-minimal" {
                    pvb_typed_recorder(&t, pgdir, vaddr, pte);
                } else {
                    pvb_raw_recorder(&t, pgdir, vaddr, pte);
                }
            }
            black_box(t.acc.get());
        }
        "typed-loopback" | "raw-loopback" => {
            let w = World::new();
            let g = w.guest();
            for i in 0..n {
                let delta = black_box(1000 + i);
                if mode == "typed-loopback" {
                    pvb_typed_loopback(g.transport(), delta);
                } else {
                    pvb_raw_loopback(g.transport(), delta);
                }
            }
            assert!(w.lb.host().stopped().is_none());
        }
        "lazy-queue" => {
            let t = Recorder::default();
            let page = LguestData::new();
            let cursor = RingCursor::new();
            let b = Batch {
                transport: &t,
                page: &page,
                cursor: &cursor,
                lazy: true,
            };
            for i in 0..n {
                black_box(pvb_lazy_set_pte(&b, black_box(i << 12), i << 12, i | 1));
            }
            assert_eq!(t.acc.get(), 0, "a call went out directly");
        }
        "lazy-by-hand" => {
            let t = Recorder::default();
            let page = LguestData::new();
            let cursor = pv_bench::probes::HandCursor::default();
            for i in 0..n {
                black_box(pv_bench::probes::pvb_lazy_by_hand(
                    &t,
                    &page,
                    &cursor,
                    black_box(true),
                    black_box(i << 12),
                    i << 12,
                    i | 1,
                ));
            }
            assert_eq!(t.acc.get(), 0, "a call went out directly");
        }
        "guest-lazy" => {
            let page = LguestData::new();
            let scratch = Scratch::new();
            let g = Lguest::new(
                &page,
                &scratch,
                Recorder::default(),
                NativeCpuid,
                DirectMap::new(0, 0),
            );
            g.enter_lazy(LazyMode::Cpu);
            for i in 0..n {
                black_box(pvb_guest_lazy(&g, black_box(0x10_0000 + (i << 4))));
            }
            assert_eq!(g.transport().acc.get(), 0, "a call went out directly");
        }
        "drain-nop" => {
            let page = host_stubs::abi::shared::LguestData::new();
            let cursor = host_stubs::abi::lazy::RingCursor::new();
            let mut host_cursor = 0;
            let mut h = pv_bench::dispatch::NopHost::default();
            let mut s = pv_bench::dispatch::scratch();
            for i in 0..n {
                pv_bench::ring::fill(&page, &cursor, RING_SIZE, i);
                let ran = pv_bench::ring::drain(&page, &mut host_cursor, &mut h, &mut s);
                assert_eq!(ran, Ok(RING_SIZE));
            }
            black_box(h.acc);
        }
        "drain-reference" => {
            let w = World::new();
            let g = w.guest();
            g.enter_lazy(LazyMode::Cpu);
            for _ in 0..n {
                for _ in 0..RING_SIZE {
                    black_box(g.clts());
                }
                let d = w.lb.host_mut().drain_ring().expect("drain");
                assert_eq!(d.ran, RING_SIZE);
            }
        }
        _ => {
            eprintln!(
                "usage: callgrind_probe typed-minimal|raw-minimal|typed-loopback|raw-loopback|lazy-queue|lazy-by-hand|guest-lazy|drain-nop|drain-reference [N]"
            );
            std::process::exit(2);
        }
    }
}
