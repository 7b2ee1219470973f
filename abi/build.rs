//! Generates the lguest ABI from spec/lguest.toml into OUT_DIR: `lguest.rs` (every module,
//! for `src/lib.rs` to `include!`), and each module on its own under `lguest/` (what the
//! zero-cost test compiles by itself).

fn main() {
    if let Err(e) = codegen::Config::new()
        .module_files(true)
        .compile("../spec/lguest.toml")
    {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
