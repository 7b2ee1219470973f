//! `PVABI_DEBUG_EXPAND=DIR`: every expansion is written, formatted, to a file in `DIR` and
//! the macro expands to an `include!` of that file, so a compile error inside generated
//! code points at a line of a file one can open (wasmtime's `WASMTIME_DEBUG_BINDGEN`).

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;

/// The environment variable.
const VAR: &str = "PVABI_DEBUG_EXPAND";

/// Where an expansion goes: items (`abi!`, `#[pv_ops]`) or one expression (`pv_call!`).
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Items,
    Expr,
}

/// `tokens` as the macro's result: unchanged, or, when `PVABI_DEBUG_EXPAND` names a
/// directory, an `include!` of the file the formatted expansion was written to. A file that
/// cannot be written is a compile error naming it (next to the expansion, so nothing else
/// breaks).
pub(crate) fn finish(name: &str, shape: Shape, tokens: TokenStream) -> TokenStream {
    let Some(dir) = std::env::var_os(VAR).filter(|d| !d.is_empty()) else {
        return tokens;
    };
    match write(Path::new(&dir), name, shape, &tokens) {
        Ok(path) => {
            let path = path.display().to_string();
            match shape {
                // In item position a macro call ends with `;`.
                Shape::Items => quote! { ::core::include!(#path); },
                Shape::Expr => quote! { ::core::include!(#path) },
            }
        }
        Err(e) => {
            let msg = format!("{VAR}: {e}");
            match shape {
                Shape::Items => quote! { ::core::compile_error!(#msg); #tokens },
                Shape::Expr => quote! { { ::core::compile_error!(#msg); #tokens } },
            }
        }
    }
}

/// Writes the expansion to `<dir>/<crate>.<file>.<line>.<col>.<macro>.rs` (the invocation's
/// place, so each invocation has its own file and a rebuild rewrites the same one) and
/// returns the file's absolute path.
fn write(dir: &Path, name: &str, shape: Shape, tokens: &TokenStream) -> Result<PathBuf, String> {
    let site = proc_macro::Span::call_site();
    let file = site
        .local_file()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| site.file());
    let krate = std::env::var("CARGO_CRATE_NAME").unwrap_or_else(|_| "crate".into());
    let (line, col) = (site.line(), site.column());
    let header = format!(
        "@generated: {name} at {file}:{line}:{col} (crate `{krate}`), written because {VAR} is set.\n\
         Edit the invocation or the spec, not this file."
    );
    let text = match shape {
        Shape::Items => codegen::macros::expansion::items(tokens, &header),
        Shape::Expr => codegen::macros::expansion::expr(tokens, &header),
    }?;
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("the current directory: {e}"))?
            .join(dir)
    };
    let path = dir.join(format!(
        "{krate}.{}.{line}.{col}.{}.rs",
        safe(&file),
        safe(name)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(path);
    }
    // Through a temporary file: a crate and its test build may expand the same invocation
    // at once, and `include!` must never read half a file.
    let tmp = path.with_extension(format!("rs.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
