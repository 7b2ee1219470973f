//! Links the kernel binary static at the address in link.ld, with no C start files, when it
//! is built as a kernel: for x86_64 with panic=abort, as vmm/build.rs builds it (with the
//! flags in `rustflags`). Any other build of the binary is a host program that says so.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(freestanding)");
    let panic = std::env::var("CARGO_CFG_PANIC").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if panic != "abort" || arch != "x86_64" {
        return;
    }
    println!("cargo:rustc-cfg=freestanding");
    for arg in [
        format!("-T{dir}/link.ld"),
        "-nostartfiles".into(),
        "-static".into(),
        "-no-pie".into(),
        "-Wl,--build-id=none".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
