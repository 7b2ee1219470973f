//! cpuid masks against recorded leaves, and the clock read against a time that changes
//! between its reads.

mod common;

use core::arch::x86_64::CpuidResult;
use std::cell::Cell;

use common::{Recorded, World};
use guest::time::read_split_time;

fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
    CpuidResult { eax, ebx, ecx, edx }
}

/// Leaves recorded on this project's build machine (an Intel Xeon, family 6), plus a
/// made-up CPU that reports more extended leaves than lguest knows.
fn recorded() -> Recorded {
    Recorded(vec![
        (
            (0, 0),
            r(0x0000_0024, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
        ),
        (
            (1, 0),
            r(0x000a_0671, 0x0002_0800, 0xfffa_3203, 0x1f8b_fbff),
        ),
        (
            (7, 0),
            r(0x0000_0002, 0xf1bf_2ffb, 0x1a41_5f46, 0x23c1_4010),
        ),
        ((0x8000_0000, 0), r(0x8000_0008, 0, 0, 0)),
        ((0x8000_0001, 0), r(0, 0, 0x0000_0121, 0x2c10_0800)),
        ((0x8000_0008, 0), r(0x0030_3930, 0, 0, 0)),
    ])
}

#[test]
fn leaf_0_caps_the_highest_basic_leaf_at_5() {
    let w = World::new();
    let lg = w.guest_with_cpuid(recorded());
    // "GenuineIntel" is untouched.
    assert_eq!(lg.cpuid(0, 0), r(5, 0x756e_6547, 0x6c65_746e, 0x4965_6e69));
    // A CPU that reports fewer keeps its own count.
    let old = w.guest_with_cpuid(Recorded(vec![((0, 0), r(2, 1, 2, 3))]));
    assert_eq!(old.cpuid(0, 0), r(2, 1, 2, 3));
}

#[test]
fn leaf_1_masks_features_forces_pge_and_lies_about_the_family() {
    let w = World::new();
    let lg = w.guest_with_cpuid(recorded());
    let got = lg.cpuid(1, 0);
    // ecx: only SSE3 (0), SSSE3 (9) and CMPXCHG16B (13) survive.
    assert_eq!(got.ecx, 0x0000_2201);
    // edx: FPU, TSC, PAE, CX8, CMOV, MMX, FXSR, SSE, SSE2 survive; PGE (13) is forced on
    // even though it was masked; everything else (APIC, MTRR, MCE, HT...) is gone.
    assert_eq!(got.edx, 0x0780_a151);
    // eax: family 6 becomes family 5; model, stepping and extended fields stay.
    assert_eq!(got.eax, 0x000a_0571);
    assert_eq!((got.eax >> 8) & 0xf, 5);
    assert_eq!(got.ebx, 0x0002_0800);
    // PGE is forced on even when the CPU lacks it.
    let no_pge = w.guest_with_cpuid(Recorded(vec![((1, 0), r(0x0f00, 0, 0, 0))]));
    assert_eq!(no_pge.cpuid(1, 0), r(0x0500, 0, 0, 0x2000));
}

#[test]
fn extended_leaves_are_capped_and_nx_is_hidden() {
    let w = World::new();
    let lg = w.guest_with_cpuid(recorded());
    assert_eq!(lg.cpuid(0x8000_0000, 0).eax, 0x8000_0008);
    let ext = lg.cpuid(0x8000_0001, 0);
    assert_eq!(ext.edx, 0x2c00_0800, "NX (bit 20) cleared, the rest kept");
    assert_eq!(ext.ecx, 0x0000_0121);
    let newer = w.guest_with_cpuid(Recorded(vec![((0x8000_0000, 0), r(0x8000_0028, 1, 2, 3))]));
    assert_eq!(newer.cpuid(0x8000_0000, 0), r(0x8000_0008, 1, 2, 3));
}

#[test]
fn other_leaves_and_subleaves_pass_through() {
    let w = World::new();
    let lg = w.guest_with_cpuid(recorded());
    assert_eq!(
        lg.cpuid(7, 0),
        r(0x0000_0002, 0xf1bf_2ffb, 0x1a41_5f46, 0x23c1_4010)
    );
    assert_eq!(lg.cpuid(0x8000_0008, 0), r(0x0030_3930, 0, 0, 0));
    // The subleaf reaches the raw cpuid: (7, 1) was not recorded.
    assert_eq!(lg.cpuid(7, 1), r(0, 0, 0, 0));
}

/// Scripted reads of a host-written time: each closure returns the next value the shared
/// page holds when the guest reads that half.
fn scripted(secs: &[u64], nsecs: &[u64]) -> (u64, usize, usize) {
    let (si, ni) = (Cell::new(0), Cell::new(0));
    let t = read_split_time(
        || {
            let v = secs[si.get()];
            si.set(si.get() + 1);
            v
        },
        || {
            let v = nsecs[ni.get()];
            ni.set(ni.get() + 1);
            v
        },
    );
    (t, si.get(), ni.get())
}

#[test]
fn a_clock_read_across_a_second_boundary_retries_instead_of_going_back_in_time() {
    // The guest reads 99 s, then the host moves to 100 s 0 ns before the guest reads the
    // nanoseconds... it reads 0 ns, and 99 s + 0 ns would be a second in the past. The
    // seconds re-read says 100: retry, and get a consistent 100 s + 5 ns.
    let (t, sec_reads, nsec_reads) = scripted(&[99, 100, 100, 100], &[0, 5]);
    assert_eq!(t, 100_000_000_005);
    assert_eq!((sec_reads, nsec_reads), (4, 2));
}

#[test]
fn a_clock_read_that_keeps_racing_retries_until_the_seconds_hold_still() {
    let (t, sec_reads, nsec_reads) = scripted(
        &[1, 2, 2, 3, 3, 4, 4, 4],
        &[999_999_999, 999_999_999, 999_999_999, 7],
    );
    assert_eq!(t, 4_000_000_007);
    assert_eq!((sec_reads, nsec_reads), (8, 4));
}

#[test]
fn a_steady_clock_reads_once() {
    assert_eq!(scripted(&[42, 42], &[123]), (42_000_000_123, 2, 1));
}

#[test]
fn the_guest_clock_reads_the_shared_page() {
    use std::sync::atomic::Ordering;
    let w = World::new();
    let lg = w.guest();
    w.page.time_sec.store(1_700_000_000, Ordering::Relaxed);
    w.page.time_nsec.store(250, Ordering::Relaxed);
    w.page.tsc_khz.store(3_000_000, Ordering::Relaxed);
    assert_eq!(lg.clock_read(), 1_700_000_000_000_000_250);
    assert_eq!(lg.get_wallclock(), 1_700_000_000);
    assert_eq!(lg.tsc_khz(), 3_000_000);
    assert!(w.host.log().is_empty());
}
