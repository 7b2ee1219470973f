//! `pvgen crate`: a standalone Cargo crate for one ABI.

use std::path::Path;

use crate::{Error, Generated, Spec, write_if_changed};

/// Versions the generated crate depends on, the same as this workspace uses.
const X86_VERSION: &str = "0.52";

/// Whether any pv_op signature names a type from the `x86` crate.
fn uses_x86(spec: &Spec) -> bool {
    spec.pv_ops().any(|(_, op)| {
        let tys = op.args.iter().map(|(_, t)| t).chain(op.ret.as_ref());
        tys.into_iter().any(|t| {
            let s = quote::quote!(#t).to_string();
            s.contains("x86 ::") || s.starts_with("x86::")
        })
    })
}

/// Writes a crate for `spec` into `dir`: `Cargo.toml`, `src/lib.rs` with every module,
/// and `<abi>.md`. The crate is `no_std`, denies warnings and missing docs, and builds
/// wherever `dir` is (its `Cargo.toml` declares its own workspace).
///
/// # Errors
///
/// [`Error::Io`] when a file cannot be written.
pub fn write_crate(spec: &Spec, g: &Generated, dir: &Path) -> Result<(), Error> {
    let name = package_name(&spec.abi.name.v);
    let deps = if uses_x86(spec) {
        format!("x86 = \"{X86_VERSION}\"\n")
    } else {
        String::new()
    };
    let cargo = format!(
        "# {header}\n[package]\nname = \"{name}\"\nversion = \"{v}.0.0\"\nedition = \"2024\"\ndescription = \"The `{abi}` paravirtual ABI: guest wrappers, shared page, pv_ops, patch templates and host dispatch.\"\npublish = false\n\n[lib]\npath = \"src/lib.rs\"\n\n[dependencies]\n{deps}\n# Built on its own, wherever it is written.\n[workspace]\n",
        header = g.header,
        v = spec.abi.version,
        abi = spec.abi.name.v,
    );
    write_if_changed(&dir.join("Cargo.toml"), &cargo)?;
    let mut lib = format!(
        "// {}\n\n//! The `{}` paravirtual ABI, version {}.\n//!\n//! See `{}.md` beside `Cargo.toml` for the reference.\n\n#![no_std]\n#![deny(warnings, missing_docs)]\n\n",
        g.header, spec.abi.name.v, spec.abi.version, spec.abi.name.v
    );
    for f in &g.files {
        if let Some(m) = f.path.strip_suffix(".rs")
            && m != "mod"
        {
            lib.push_str(&format!("pub mod {m};\n"));
            write_if_changed(&dir.join("src").join(&f.path), &f.contents)?;
        } else if f.path.ends_with(".md") {
            write_if_changed(&dir.join(&f.path), &f.contents)?;
        }
    }
    write_if_changed(&dir.join("src/lib.rs"), &lib)
}

/// The package name for ABI `abi`: `lguest_x` -> `lguest-x-abi`. A leading or trailing
/// underscore is dropped: `_x` would be the package `-x-abi` (which cargo refuses) and
/// `self_` the crate `self__abi` (rustc's `non_snake_case`).
fn package_name(abi: &str) -> String {
    format!("{}-abi", abi.trim_matches('_').replace('_', "-"))
}
