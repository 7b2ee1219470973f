//! Generates the host of tests/specs/fixtures/memory.toml (`$OUT_DIR/memdemo.rs`) for the
//! memory-decode target: the fixture that uses every kind of memory argument the format has.

fn main() {
    if let Err(e) = codegen::Config::new().compile("../tests/specs/fixtures/memory.toml") {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
