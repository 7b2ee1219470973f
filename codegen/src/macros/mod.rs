//! What the proc macros of `pv-macros` expand to: plain functions from a checked spec and
//! the macro's parsed input to tokens, or to an error carrying the span it belongs to.
//!
//! The macro crate only parses its input with `syn`, finds and reads the spec, and calls
//! these (the split of wasmtime's `bindgen!` and wit-bindgen's `generate!`), so the
//! generators are unit-tested without a compiler in the loop (`codegen/tests/units.rs`):
//!
//! | module | what |
//! |---|---|
//! | [`thunks`] | `#[pv_ops]`: the impl checked against its table, the callee-save thunks |
//! | [`call_site`] | `pv_call!`: the patchable call site and its `pv_sites` record |
//! | [`expansion`] | an expansion formatted as source, for `PVABI_DEBUG_EXPAND` |
//!
//! `abi!` needs nothing here: it is [`crate::tokens`].

pub mod call_site;
pub mod expansion;
pub mod thunks;

use std::path::PathBuf;

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::spec::PvTable;
use crate::{Diagnostics, Spec};

/// A checked spec as a macro named it.
#[derive(Debug)]
pub struct MacroSpec {
    /// The checked spec.
    pub spec: Spec,
    /// The file, absolute, for `include_bytes!`.
    pub path: PathBuf,
    /// The path as the user wrote it, for messages.
    pub shown: String,
}

impl MacroSpec {
    /// An item that makes the spec a dependency of the expansion: editing it rebuilds.
    pub fn track(&self) -> TokenStream {
        let path = self.path.display().to_string();
        quote! { const _: &[u8] = ::core::include_bytes!(#path); }
    }

    /// The pv_op table `name`, or an error at `span` listing the spec's tables.
    pub fn table(&self, name: &str, span: Span) -> syn::Result<&PvTable> {
        self.spec
            .pv_tables
            .iter()
            .find(|t| t.name.v == name)
            .ok_or_else(|| {
                let names: Vec<String> = self
                    .spec
                    .pv_tables
                    .iter()
                    .map(|t| format!("`{}`", t.name.v))
                    .collect();
                syn::Error::new(
                    span,
                    format!(
                        "spec `{}` has no pv_op table `{name}`; its tables: {}",
                        self.shown,
                        names.join(", ")
                    ),
                )
            })
    }
}

/// Every problem of a spec as one compile error at `span`, each message starting with
/// `file:line:col` and followed by the source line and caret.
pub fn spec_errors(span: Span, d: &Diagnostics) -> syn::Error {
    let mut errors = d.list.iter().map(|diag| {
        let lc = diag.line_col(&d.source);
        // The rendered snippet (source line, caret, help) without its own `error:` and
        // `-->` lines: the message starts with the location.
        let rendered = diag.render(&d.file, &d.source);
        let snippet: Vec<&str> = rendered.lines().skip(2).collect();
        syn::Error::new(
            span,
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
        // `load` fails only with at least one diagnostic; say so if that changes.
        syn::Error::new(span, format!("spec `{}` has problems", d.file))
    });
    for e in errors {
        first.combine(e);
    }
    first
}
