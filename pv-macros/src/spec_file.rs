//! Finding, reading and checking the spec a macro names, with errors as compile errors.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

/// A checked spec and where it was read from.
pub(crate) struct SpecFile {
    /// The checked spec.
    pub spec: codegen::Spec,
    /// The file, absolute, for `include_bytes!`.
    pub path: PathBuf,
    /// The path as the user wrote it, for messages.
    pub shown: String,
}

impl SpecFile {
    /// Reads and checks the spec `lit` names: relative to `CARGO_MANIFEST_DIR`, or else to
    /// the directory of the file the macro is invoked in (as `include_str!` would).
    pub fn load(lit: &LitStr) -> syn::Result<SpecFile> {
        let shown = lit.value();
        let mut tried = Vec::new();
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            tried.push(Path::new(&dir).join(&shown));
        }
        // trybuild and similar harnesses compile sources in another package directory;
        // the invoking file's directory still finds a spec kept next to them.
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
        let spec = codegen::load(&shown, &src).map_err(|d| diagnostics(lit, &d))?;
        Ok(SpecFile { spec, path, shown })
    }

    /// An item that makes the spec a dependency of the expansion: editing it rebuilds.
    pub fn track(&self) -> TokenStream {
        let path = self.path.display().to_string();
        quote! { const _: &[u8] = ::core::include_bytes!(#path); }
    }
}

/// Every spec problem as one compile error at `lit`, each starting with `file:line:col`.
fn diagnostics(lit: &LitStr, d: &codegen::Diagnostics) -> syn::Error {
    let mut errors = d.list.iter().map(|diag| {
        let lc = diag.line_col(&d.source);
        // The rendered snippet (source line, caret, help) without its own `error:` and
        // `-->` lines: the message starts with the location.
        let rendered = diag.render(&d.file, &d.source);
        let snippet: Vec<&str> = rendered.lines().skip(2).collect();
        syn::Error::new(
            lit.span(),
            format!(
                "{}:{}:{}: {}\n{}",
                d.file,
                lc.line,
                lc.col,
                diag.message,
                snippet.join("\n")
            ),
        )
    });
    let mut first = errors.next().unwrap_or_else(|| {
        // `codegen::load` fails only with at least one diagnostic; say so if that changes.
        syn::Error::new(lit.span(), format!("spec `{}` has problems", d.file))
    });
    for e in errors {
        first.combine(e);
    }
    first
}
