//! Generates `$OUT_DIR/lguest.rs` the build.rs way, so the tests can check that
//! `pv_macros::abi!` expands to the same items. The macros themselves do not use it.

fn main() {
    if let Err(e) = codegen::Config::new().compile("../spec/lguest.toml") {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
