//! Room: `decode()`: one arm per hypercall checking every argument register against the
//! spec (range, alignment, enum, width) and typing it into a `Call`.
//!
//! Hygiene: the arms bind only `argN` (and read `args` and `call`), so no spec name is
//! ever a local; a field whose name is its own local (`arg1` in position 1) is written in
//! shorthand, as rustc and clippy want.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::emit::{prim, usize_lit, variant};
use crate::names::{camel_ident, ident, upper};
use crate::spec::{Arg, ArgType, Hypercall, Num, NumForm, Prim, Spec, TypeKind};

/// `Call::SetPte { pgdir: arg0, vaddr: arg1, pte: arg2 }`: the decoded call with its fields
/// bound to (or built from) the locals `argN`, both as a value and as a pattern.
pub(super) fn call_with_locals(spec: &Spec, h: &Hypercall) -> TokenStream {
    let v = variant(&h.name.v);
    if !h.mem.is_empty() {
        let fields = super::memory::call_fields(spec, h).into_iter().map(|f| {
            let (n, l) = (f.name, f.local);
            if n == l {
                quote! { #n }
            } else {
                quote! { #n: #l }
            }
        });
        return quote! { Call::#v { #(#fields),* } };
    }
    if h.args.is_empty() {
        return quote! { Call::#v };
    }
    let fields = h.args.iter().enumerate().map(|(i, a)| {
        let f = ident(&a.name.v);
        let l = format_ident!("arg{i}");
        if f == l {
            quote! { #f }
        } else {
            quote! { #f: #l }
        }
    });
    quote! { Call::#v { #(#fields),* } }
}

/// The arms of `decode`'s `match call`.
pub(super) fn arms(spec: &Spec) -> Vec<TokenStream> {
    spec.hypercalls
        .iter()
        .map(|h| {
            let v = variant(&h.name.v);
            let checks = h
                .args
                .iter()
                .enumerate()
                .map(|(i, a)| arg_check(spec, a, i));
            let mem = super::memory::decode_mem(spec, h);
            let value = call_with_locals(spec, h);
            quote! { super::numbers::Hypercall::#v => { #(#checks)* #mem Ok(#value) } }
        })
        .collect()
}

/// A number as the spec wrote it: the const's name (`super::numbers::GDT_ENTRIES - 1`),
/// or the literal in the spec's base.
pub(crate) fn num(n: &Num) -> TokenStream {
    num_in(n, &quote! { super::numbers:: })
}

/// [`num`], with the const's module path `path` (empty inside `numbers`).
pub(crate) fn num_in(n: &Num, path: &TokenStream) -> TokenStream {
    let lit = |s: String| {
        let l = syn::LitInt::new(&s, proc_macro2::Span::call_site());
        quote! { #l }
    };
    match &n.form {
        NumForm::Dec => lit(n.value.to_string()),
        NumForm::Hex => lit(format!("{:#x}", n.value)),
        NumForm::Oct => lit(format!("{:#o}", n.value)),
        NumForm::Bin => lit(format!("{:#b}", n.value)),
        NumForm::Const { name, delta } => {
            let c = format_ident!("{}", upper(name));
            let d = lit(delta.unsigned_abs().to_string());
            match delta.signum() {
                0 => quote! { #path #c },
                1 => quote! { #path #c + #d },
                _ => quote! { #path #c - #d },
            }
        }
    }
}

/// Statements binding `arg{i}` to argument `i`, checked and typed; they return early
/// with a `BadArgument` on a violation.
fn arg_check(spec: &Spec, a: &Arg, i: usize) -> TokenStream {
    let local = format_ident!("arg{i}");
    let i = usize_lit(i as u64);
    let mut e = quote! { args[#i] };
    if let Some((lo, hi)) = &a.range_written {
        let (lo, hi) = (num(lo), num(hi));
        e = quote! { check_range(call, #i, #e, #lo, #hi)? };
    }
    if let Some(al) = &a.align_written {
        let al = num(al);
        e = quote! { check_align(call, #i, #e, #al)? };
    }
    let prim_ty = spec.arg_prim(&a.ty);
    if let ArgType::Named(ti) = &a.ty
        && let TypeKind::Enum { .. } = &spec.types[*ti].kind
    {
        let id = camel_ident(&spec.types[*ti].name.v);
        let tname = &spec.types[*ti].name.v;
        let raw = if prim_ty == Prim::U64 {
            quote! { Some(args[#i]) }
        } else {
            let ty = prim(prim_ty);
            quote! { #ty::try_from(args[#i]).ok() }
        };
        return quote! {
            let #local = match #raw.and_then(super::types::#id::from_raw) {
                Some(v) => v,
                None => return Err(bad(call, #i, args[#i], Violation::Enum { ty: #tname }).into()),
            };
        };
    }
    let e = match prim_ty {
        Prim::U64 => e,
        Prim::Bool => quote! {
            match #e {
                0 => false,
                1 => true,
                _ => return Err(bad(call, #i, args[#i], Violation::Bool).into()),
            }
        },
        p => {
            let ty = prim(p);
            let bits = (p.size() * 8) as u32;
            quote! {
                match #ty::try_from(#e) {
                    Ok(v) => v,
                    Err(_) => return Err(bad(call, #i, args[#i], Violation::Width { bits: #bits }).into()),
                }
            }
        }
    };
    quote! { let #local = #e; }
}
