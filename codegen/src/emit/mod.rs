//! Room: the emitters, one Rust module (or Markdown file) per output, from a checked
//! [`Spec`], and the helpers they share (docs, literals, names).
//!
//! Every emitter builds a token stream with `quote!`; `crate::generate` formats each with
//! prettyplease behind a header naming the spec. Hygiene, by construction: generated code
//! refers to its sibling modules as `super::name::Item` and to the standard library as
//! `::core::...`; the locals it binds (`nr`, `args`, `call`, `argN`, `host`, and around
//! results `__regs`, `__rN` and `__out`) are never spec names in the same scope (spec names are fields, parameters and methods there, written
//! as raw identifiers where they are keywords); and the items it defines beside spec-named
//! ones are checked against the spec in `check.rs`, with an error at the clashing key.

pub(crate) mod docs;
mod docs_memory;
mod guest;
mod guest_mem;
mod host;
mod lazy;
mod numbers;
mod patch;
mod pv_ops;
mod results;
mod shared;
mod structs;
mod types;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::markdown::doc_lines;
use crate::names::{camel, upper};
use crate::spec::{ArgType, Prim, Spec};

/// One generated module.
pub(crate) struct Module {
    pub name: &'static str,
    pub doc: String,
    pub items: TokenStream,
}

/// Every module the spec calls for, in a fixed order.
pub(crate) fn modules(spec: &Spec) -> Vec<Module> {
    let mut out = vec![numbers::emit(spec), types::emit(spec)];
    if !spec.structs.is_empty() {
        out.push(structs::emit(spec));
    }
    out.push(guest::emit(spec));
    if spec.ring.is_some() && spec.shared.is_some() {
        out.push(lazy::emit(spec));
    }
    if spec.shared.is_some() {
        out.push(shared::emit(spec));
    }
    if !spec.pv_tables.is_empty() {
        out.push(pv_ops::emit(spec));
    }
    if !spec.templates.is_empty() {
        out.push(patch::emit(spec));
    }
    out.push(host::emit(spec));
    out
}

/// `#[doc = "..."]` attributes for `text`.
pub(crate) fn doc(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote! { #( #[doc = #lines] )* }
}

/// `#![doc = "..."]` attributes, for a module's inner docs.
pub(crate) fn inner_doc(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote! { #( #![doc = #lines] )* }
}

/// A `// text` comment line in the formatted output (prettyplease drops real comments,
/// so a marker statement stands in and `crate::generate` turns it into a comment; the
/// proc-macro path strips it with [`strip_comments`]).
pub(crate) fn comment(text: &str) -> TokenStream {
    quote! { __pvgen_comment!(#text); }
}

/// Removes [`comment`] markers from a token stream.
pub(crate) fn strip_comments(ts: TokenStream) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if let TokenTree::Ident(id) = &toks[i]
            && id == COMMENT_MARKER
            && i + 3 < toks.len()
        {
            // `__pvgen_comment ! ( "..." ) ;`
            i += 4;
            continue;
        }
        match &toks[i] {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), strip_comments(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            t => out.push(t.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}

pub(crate) const COMMENT_MARKER: &str = "__pvgen_comment";

/// Lays out every `asm!(...)` in formatted code with one operand per line (prettyplease
/// fills macro arguments like prose and wraps mid-operand): a reviewer reads a transport's
/// registers as a list.
pub(crate) fn asm_operands_per_line(src: &str) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_string());
        i += 1;
        if !line.trim_end().ends_with("asm!(") {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent});");
        let mut body = String::new();
        while i < lines.len() && lines[i] != close {
            body.push(' ');
            body.push_str(lines[i].trim());
            i += 1;
        }
        for op in split_operands(&body) {
            let op = op
                .strip_prefix("in (")
                .map_or(op.clone(), |r| format!("in({r}"));
            out.push(format!("{indent}    {op},"));
        }
    }
    let mut s = out.join("\n");
    if src.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The comma-separated operands of an `asm!`, commas inside strings and brackets kept.
fn split_operands(body: &str) -> Vec<String> {
    let mut ops = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    for c in body.chars() {
        if in_str {
            cur.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                if !cur.trim().is_empty() {
                    ops.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        ops.push(cur.trim().to_string());
    }
    ops
}

/// `#[allow(clippy::too_many_arguments)]` for a method taking `n` parameters besides
/// `self` where clippy's limit (7, counting `self`) would object: the ABI fixes them.
pub(crate) fn many_args(n: usize) -> TokenStream {
    if n + 1 > 7 {
        quote! { #[allow(clippy::too_many_arguments)] }
    } else {
        TokenStream::new()
    }
}

/// For a method or fn the spec named: a targeted `#[allow]` of the clippy lints that are
/// about the name alone (`new` that returns no `Self`, `from_*`/`into_*`/`to_*`/`as_*`/`is_*`
/// with the "wrong" `self`), with a comment saying the name is the ABI's. Empty for other
/// names.
pub(crate) fn abi_name_allows(name: &str) -> TokenStream {
    let mut lints = Vec::new();
    if name == "new" {
        lints.push(quote! { clippy::new_ret_no_self });
        lints.push(quote! { clippy::wrong_self_convention });
    }
    if ["from_", "into_", "to_", "as_", "is_"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        lints.push(quote! { clippy::wrong_self_convention });
    }
    if lints.is_empty() {
        return TokenStream::new();
    }
    let c = comment(&format!(
        "`{name}` is the ABI's name for it, whatever Rust's conventions say of the name."
    ));
    quote! { #c #[allow(#(#lints),*)] }
}

/// On a trait with a method the spec named `len` or `is_empty`: allow clippy's
/// `len_without_is_empty`, which is about the names alone.
pub(crate) fn len_allow<'a>(mut names: impl Iterator<Item = &'a str>) -> TokenStream {
    if names.any(|n| n == "len" || n == "is_empty") {
        let c = comment(
            "A method is called `len` (or `is_empty`) because the ABI says so: it is no collection.",
        );
        quote! { #c #[allow(clippy::len_without_is_empty)] }
    } else {
        TokenStream::new()
    }
}

pub(crate) fn u64_lit(v: u64) -> Literal {
    Literal::u64_suffixed(v)
}

pub(crate) fn usize_lit(v: u64) -> Literal {
    Literal::usize_unsuffixed(v as usize)
}

/// Hex for values that read better in hex (addresses, masks), decimal otherwise.
pub(crate) fn int_lit(v: u64, ty: Prim) -> TokenStream {
    if ty == Prim::Bool {
        return if v == 0 {
            quote! { false }
        } else {
            quote! { true }
        };
    }
    let s = if v >= 0x100 && v.is_power_of_two() || v > 0xffff {
        format!("{v:#x}")
    } else {
        v.to_string()
    };
    let s = format!("{s}_{}", ty.name());
    s.parse().expect("an integer literal is a valid token")
}

/// The Rust type of a hypercall argument, as seen from a sibling module.
pub(crate) fn arg_type(spec: &Spec, ty: &ArgType) -> TokenStream {
    match ty {
        ArgType::Prim(p) => prim(*p),
        ArgType::Named(i) => {
            let id = crate::names::camel_ident(&spec.types[*i].name.v);
            quote! { super::types::#id }
        }
    }
}

pub(crate) fn prim(p: Prim) -> TokenStream {
    let id = format_ident!("{}", p.name());
    quote! { #id }
}

/// An expression turning argument `value` (of type `ty`) into the u64 that travels in a
/// register.
pub(crate) fn to_u64(spec: &Spec, ty: &ArgType, value: TokenStream) -> TokenStream {
    match ty {
        ArgType::Prim(Prim::U64) => value,
        ArgType::Prim(_) => quote! { u64::from(#value) },
        ArgType::Named(i) => match &spec.types[*i].kind {
            crate::spec::TypeKind::Alias(Prim::U64) => value,
            crate::spec::TypeKind::Alias(_) => quote! { u64::from(#value) },
            crate::spec::TypeKind::Enum {
                repr: Prim::U64, ..
            } => quote! { #value.raw() },
            crate::spec::TypeKind::Enum { .. } => quote! { u64::from(#value.raw()) },
        },
    }
}

/// The ident of the const holding a hypercall's number.
pub(crate) fn nr_const(name: &str) -> proc_macro2::Ident {
    format_ident!("{}", upper(name))
}

/// The `Hypercall` variant of a hypercall.
pub(crate) fn variant(name: &str) -> proc_macro2::Ident {
    crate::names::camel_ident(name)
}

/// `Lguest` for ABI `lguest`: the prefix of ABI-wide trait names.
pub(crate) fn abi_camel(spec: &Spec) -> String {
    camel(&spec.abi.name.v)
}

/// One Markdown-ish line describing an argument's constraints, or "".
pub(crate) fn constraint_text(spec: &Spec, a: &crate::spec::Arg) -> String {
    let mut parts = Vec::new();
    if let Some((lo, hi)) = a.range {
        parts.push(format!("{lo} ≤ value ≤ {hi}"));
    }
    if let Some(al) = a.align {
        parts.push(format!("multiple of {al}"));
    }
    if let ArgType::Named(i) = &a.ty
        && let crate::spec::TypeKind::Enum { variants, .. } = &spec.types[*i].kind
    {
        let vs: Vec<String> = variants
            .iter()
            .map(|v| format!("{}={}", v.name.v, v.value))
            .collect();
        parts.push(format!("one of {}", vs.join(", ")));
    }
    match spec.arg_prim(&a.ty) {
        Prim::U64 => {}
        Prim::Bool => parts.push("0 or 1".into()),
        p => {
            if a.range.is_none()
                && !matches!(a.ty, ArgType::Named(i) if matches!(spec.types[i].kind, crate::spec::TypeKind::Enum{..}))
            {
                parts.push(format!("fits in {}", p.name()));
            }
        }
    }
    parts.join("; ")
}
