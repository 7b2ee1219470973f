//! Where `pvgen generate`'s time goes: times each phase of the `codegen` library on one
//! spec, with the peak RSS (VmHWM) after it.
//!
//! ```text
//! gen_phases SPEC
//! ```
//!
//! Phases: `load` (parse and check the spec), `tokens` (emit every module as one token
//! stream, what `pv_macros::abi!` returns), `generate` (what `pvgen generate` renders:
//! emit, `syn` parse and `prettyplease` of each module once, the combined `include!` file
//! wrapping the formatted modules, plus the Markdown reference).

use std::time::Instant;

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: gen_phases SPEC");
        std::process::exit(2);
    };
    let src = std::fs::read_to_string(&path).expect("read the spec");
    let report = |phase: &str, t: Instant| {
        println!(
            "{phase:<10} {:>9.3} s   peak RSS so far {:>8} KB",
            t.elapsed().as_secs_f64(),
            vm_hwm_kb()
        );
    };
    let t = Instant::now();
    let spec = codegen::load(&path, &src).unwrap_or_else(|d| {
        eprintln!("{d}");
        std::process::exit(1)
    });
    report("load", t);
    let t = Instant::now();
    let tokens = codegen::tokens(&spec);
    report("tokens", t);
    let t = Instant::now();
    let text = tokens.to_string();
    report("to_string", t);
    println!("           ({} bytes of token text)", text.len());
    drop((tokens, text));
    let t = Instant::now();
    let header = codegen::header(&spec, &path, &src);
    let g = codegen::generate(&spec, &header).expect("generate");
    report("generate", t);
    let bytes: usize = g.files.iter().map(|f| f.contents.len()).sum();
    println!(
        "           ({} files, {bytes} bytes; combined file {} bytes)",
        g.files.len(),
        g.combined.len()
    );
}
