//! Generates the lguest ABI modules from spec/lguest.toml into OUT_DIR.

fn main() {
    if let Err(e) = codegen::Config::new().compile("../spec/lguest.toml") {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
