//! Finding and reading the spec a macro names, with errors as compile errors.

use std::path::Path;

use codegen::macros::{MacroSpec, spec_errors};
use syn::LitStr;

/// Reads and checks the spec `lit` names: relative to `CARGO_MANIFEST_DIR`, or else to the
/// directory of the file the macro is invoked in (as `include_str!` would).
pub(crate) fn load(lit: &LitStr) -> syn::Result<MacroSpec> {
    let shown = lit.value();
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        tried.push(Path::new(&dir).join(&shown));
    }
    // A harness may compile sources with another package directory (trybuild does); the
    // invoking file's directory still finds a spec kept next to them.
    let local = lit.span().unwrap().local_file();
    if let Some(dir) = local.as_deref().and_then(Path::parent) {
        tried.push(dir.join(&shown));
    }
    let path = tried
        .iter()
        .find(|p| p.is_file())
        .or(tried.first())
        .cloned()
        .ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                "CARGO_MANIFEST_DIR is not set: use pv_macros from a Cargo build",
            )
        })?;
    let src = std::fs::read_to_string(&path).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!(
                "cannot read spec `{shown}`: {e} (the path is relative to \
                 CARGO_MANIFEST_DIR, or to the directory of the invoking file)"
            ),
        )
    })?;
    let spec = codegen::load(&shown, &src).map_err(|d| spec_errors(lit.span(), &d))?;
    Ok(MacroSpec { spec, path, shown })
}
