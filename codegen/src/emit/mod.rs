//! Emitters: one Rust module (or Markdown file) per output, from a checked [`Spec`].
//!
//! Every emitter builds a token stream with `quote!`; [`render_module`] formats it with
//! prettyplease behind a header naming the spec. Generated code refers to its sibling
//! modules as `super::name::Item` and to the standard library as `::core::...`, and only
//! binds names that contain `__` or are keywords (`self`), so no spec name (snake_case,
//! no `__`) can shadow or clash with anything the generator names.

pub(crate) mod docs;
mod guest;
mod host;
mod lazy;
mod numbers;
mod patch;
mod pv_ops;
mod shared;
mod types;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

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
    let mut out = vec![numbers::emit(spec), types::emit(spec), guest::emit(spec)];
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

/// `text` as doc lines: paragraphs wrapped at 88 columns, list items continued with an
/// indent (so rustdoc and clippy read them as one item), tables and code left alone.
pub(crate) fn doc_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push(String::new());
            continue;
        }
        let keep = line.starts_with('|')
            || line.starts_with("```")
            || line.starts_with('#')
            || line.starts_with("    ");
        if keep || line.len() <= 88 {
            out.push(format!(" {line}"));
            continue;
        }
        let cont = if line.starts_with("* ") || line.starts_with("- ") {
            "  "
        } else {
            ""
        };
        let mut cur = String::new();
        for w in line.split(' ') {
            if !cur.is_empty() && cur.len() + 1 + w.len() > 88 {
                out.push(format!(" {cur}"));
                cur = cont.to_string();
            }
            if !cur.is_empty() && cur != cont {
                cur.push(' ');
            }
            cur.push_str(w);
        }
        if !cur.trim().is_empty() {
            out.push(format!(" {cur}"));
        }
    }
    out.into_iter()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                l
            }
        })
        .collect()
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
/// so a marker statement stands in and [`crate::render`] turns it into a comment; the
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

/// `#[allow(clippy::too_many_arguments)]` for a method taking `n` parameters besides
/// `self` where clippy's limit (7, counting `self`) would object: the ABI fixes them.
pub(crate) fn many_args(n: usize) -> TokenStream {
    if n + 1 > 7 {
        quote! { #[allow(clippy::too_many_arguments)] }
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
