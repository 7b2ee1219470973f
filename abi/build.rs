//! Generates the lguest ABI from spec/lguest.toml into OUT_DIR: `lguest.rs` (every module,
//! for `src/lib.rs` to `include!`), and each module on its own under `lguest/` (what the
//! zero-cost test compiles by itself). It also tells the tests which `rustc` cargo uses
//! (`LGUEST_ABI_RUSTC`), so the zero-cost test compiles with the same compiler.

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!("cargo:rustc-env=LGUEST_ABI_RUSTC={rustc}");
    if let Err(e) = codegen::Config::new()
        .module_files(true)
        .compile("../spec/lguest.toml")
    {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
