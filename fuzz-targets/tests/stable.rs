//! The stable fuzz runner: every target of `pv-fuzz-targets` fed a deterministic
//! pseudo-random stream (and, for the spec parser, mutations of the real specs) for a
//! bounded count, as CI runs it on every run. The same targets run under libFuzzer with
//! `cargo +nightly fuzz run TARGET` in `fuzz/`.

use std::time::{Duration, Instant};

use pv_fuzz_targets::{calls, memory, shadow, spec};

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % max as u64) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs `target` on `count` inputs from `make`, or until `budget` is spent; prints how many
/// ran. A panic in the target fails the test, with the input's number.
fn run(
    name: &str,
    count: u64,
    budget: Duration,
    mut make: impl FnMut(&mut Rng) -> Vec<u8>,
    target: fn(&[u8]),
) {
    let mut rng = Rng(0x5eed ^ name.len() as u64);
    let start = Instant::now();
    let mut ran = 0;
    while ran < count && start.elapsed() < budget {
        let input = make(&mut rng);
        target(&input);
        ran += 1;
    }
    println!(
        "{name}: {ran} inputs in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(ran > 0);
}

#[test]
fn host_calls() {
    run(
        "host_calls",
        20_000,
        Duration::from_secs(15),
        |r| r.bytes(2048),
        calls::host_calls,
    );
}

#[test]
fn dispatch() {
    run(
        "dispatch",
        20_000,
        Duration::from_secs(10),
        |r| r.bytes(1024),
        calls::dispatch,
    );
}

#[test]
fn memory_decode() {
    run(
        "memory_decode",
        20_000,
        Duration::from_secs(10),
        |r| r.bytes(512),
        |d| {
            memory::memory_decode(d);
        },
    );
}

/// Inputs libFuzzer found that once failed a target (each file is named for what it was).
#[test]
fn regressions() {
    // `open` with its file name's address pointing back at its own parameter struct: two
    // arguments the guest overlapped, each copied once (the target had counted that as a
    // double fetch).
    memory::memory_decode(include_bytes!(
        "regressions/memory_decode-overlapping-arguments"
    ));
}

/// The memory target is not vacuous: from the same stream, calls are accepted and written
/// back, and refused for each reason, often enough.
#[test]
fn memory_decode_reaches_every_outcome() {
    use memory::Outcome;
    let mut rng = Rng(0x5eed);
    let mut seen = std::collections::HashMap::new();
    for _ in 0..5_000 {
        *seen
            .entry(memory::memory_decode(&rng.bytes(512)))
            .or_insert(0u32) += 1;
    }
    println!("memory_decode outcomes of 5000: {seen:?}");
    for o in [
        Outcome::Ran { wrote: true },
        Outcome::Ran { wrote: false },
        Outcome::Unknown,
        Outcome::BadArgument,
        Outcome::BadMemory,
    ] {
        assert!(seen.get(&o).copied().unwrap_or(0) >= 10, "{o:?}: {seen:?}");
    }
}

#[test]
fn shadow_model() {
    run(
        "shadow_model",
        5_000,
        Duration::from_secs(15),
        |r| r.bytes(2048),
        shadow::shadow_model,
    );
}

#[test]
fn spec_parse() {
    let specs = [
        include_str!("../../spec/lguest.toml"),
        include_str!("../../spec/kvm.toml"),
    ];
    run(
        "spec_parse",
        300,
        Duration::from_secs(15),
        |r| {
            // A real spec with a few bytes changed, lines dropped or duplicated.
            let mut s = specs[(r.next() % 2) as usize].as_bytes().to_vec();
            for _ in 0..=r.next() % 4 {
                let at = (r.next() % s.len() as u64) as usize;
                match r.next() % 4 {
                    0 => s[at] = r.next() as u8,
                    1 => {
                        s.remove(at);
                    }
                    2 => {
                        let junk = b"=[]{}\"#\n,0x_";
                        s.insert(at, junk[(r.next() % junk.len() as u64) as usize]);
                    }
                    _ => {
                        let end = s[at..]
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(s.len(), |n| at + n);
                        let line: Vec<u8> = s[at..end].to_vec();
                        s.splice(at..at, line);
                    }
                }
            }
            s
        },
        spec::spec_parse,
    );
}
