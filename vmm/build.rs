//! Builds the guest kernel (`kernel/`, the `lguest-kernel` binary) as a freestanding
//! program and tells the VMM where the ELF is, so `cargo run --bin lguest-run` builds what it
//! boots.
//!
//! The kernel needs flags the host programs must not get (panic=abort, static relocation,
//! no red zone: `kernel/rustflags`), so it is built by a nested cargo with those flags for
//! an explicit `--target` (which keeps them off build scripts and proc macros), in its own
//! target directory. Only the x86_64-unknown-linux-gnu target is needed.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("vmm/ is inside the workspace")
        .to_path_buf();
    for dir in [
        "kernel",
        "paging/src",
        "guest/src",
        "abi",
        "pv-macros/src",
        "pv-sites/src",
        "codegen/src",
        "spec/lguest.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let flags_file = root.join("kernel/rustflags");
    let flags = std::fs::read_to_string(&flags_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", flags_file.display()));
    let flags: Vec<&str> = flags
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("kernel");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "lguest-kernel",
            "--bin",
            "lguest-kernel",
        ])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    // What the outer cargo set for this build script must not leak into the kernel's. Its
    // jobserver (CARGO_MAKEFLAGS) is kept: the nested cargo takes its jobs from the outer
    // one's tokens instead of running a second `-j NCPU` beside it.
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PROFILE_RELEASE_PANIC",
        "CARGO_PROFILE_DEV_PANIC",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running cargo for the kernel: {e}"));
    if !out.status.success() {
        panic!(
            "building the guest kernel failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let elf = target_dir
        .join(TARGET)
        .join("release")
        .join("lguest-kernel");
    assert!(
        Path::new(&elf).is_file(),
        "the kernel build left no {}",
        elf.display()
    );
    println!("cargo:rustc-env=LGUEST_KERNEL_ELF={}", elf.display());
}
