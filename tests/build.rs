//! Generates code for the specs the tests drive: the lguest ABI and the KVM one.

fn main() {
    for spec in [
        "../spec/lguest.toml",
        "../spec/kvm.toml",
        "specs/fixtures/rbx_probe.toml",
    ] {
        if let Err(e) = codegen::Config::new().compile(spec) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
