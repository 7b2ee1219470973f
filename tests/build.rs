//! Generates code for the specs the tests drive: the lguest and KVM ABIs, and every
//! fixture in specs/fixtures/ (specs that stress the generator: rbx transports, names that
//! look like the generator's own, keywords, edge values). Each fixture becomes a module of
//! this crate, compiled under `deny(warnings)` (and `clippy -D warnings` in CI), so a
//! fixture whose generated code warns fails the build.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    for spec in [
        "../spec/lguest.toml",
        "../spec/kvm.toml",
        "../spec/uhyve.toml",
        "../spec/jailhouse.toml",
        "../spec/acrn.toml",
        "../spec/xen.toml",
    ] {
        if let Err(e) = codegen::Config::new().compile(spec) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=specs/fixtures");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir("specs/fixtures")
        .expect("specs/fixtures exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    fixtures.sort();
    let mut mods = String::new();
    for path in fixtures {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("fixture names are UTF-8")
            .to_string();
        let dir = out.join("fixtures").join(&stem);
        let g = match codegen::Config::new().out_dir(&dir).compile(&path) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let file = dir.join(format!("{}.rs", g.abi));
        let _ = writeln!(
            mods,
            "/// `tests/specs/fixtures/{stem}.toml`.\npub mod {stem} {{\n    include!({:?});\n}}\n",
            file.display().to_string()
        );
    }
    std::fs::write(out.join("fixtures.rs"), mods).expect("writes fixtures.rs");
}
