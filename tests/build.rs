//! Generates code for the specs the tests drive: the lguest and KVM ABIs, the ABIs written
//! from their sources (Jailhouse, ACRN, Xen), and the
//! fixtures that stress the generator (rbx transports, hygiene, a minimal spec).

fn main() {
    for spec in [
        "../spec/lguest.toml",
        "../spec/kvm.toml",
        "../spec/jailhouse.toml",
        "../spec/acrn.toml",
        "../spec/xen.toml",
        "specs/fixtures/rbx_probe.toml",
        "specs/fixtures/hygiene.toml",
        "specs/fixtures/minimal.toml",
    ] {
        if let Err(e) = codegen::Config::new().compile(spec) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
