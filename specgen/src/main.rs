//! `specgen`: prints the random valid spec a seed gives, to reproduce a batch-test failure.
//!
//! ```text
//! cargo run -p specgen -- SEED [--avoid CLASS,CLASS...]   # one spec on stdout
//! cargo run -p specgen -- --classes                       # the feature classes
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seed = None;
    let mut opts = specgen::Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--classes" => {
                for (n, what) in specgen::FEATURES {
                    println!("{n:18} {what}");
                }
                return ExitCode::SUCCESS;
            }
            "--avoid" => match it.next().map(|l| specgen::Options::avoiding(l)) {
                Some(Ok(o)) => opts = o,
                Some(Err(e)) => return usage(&e),
                None => return usage("--avoid needs a list of classes"),
            },
            s => match parse_seed(s) {
                Some(n) if seed.is_none() => seed = Some(n),
                _ => return usage(&format!("unexpected argument `{s}`")),
            },
        }
    }
    let Some(seed) = seed else {
        return usage("missing SEED");
    };
    print!("{}", specgen::generate(seed, &opts));
    ExitCode::SUCCESS
}

/// A seed in decimal or `0x` hex, as the batch test prints them.
fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("specgen: {problem}\nusage: specgen SEED [--avoid CLASS,...] | specgen --classes");
    ExitCode::from(2)
}
