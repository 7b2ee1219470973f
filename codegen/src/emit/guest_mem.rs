//! Room: the guest's side of arguments in guest memory: the `Translate` trait (how a guest
//! turns a pointer to its own memory into the guest-physical address a host reads) and the
//! wrappers of calls with memory arguments, which take references, slices and C strings
//! and make the addresses and lengths themselves, so a guest never computes one by hand.

use proc_macro2::TokenStream;
use quote::quote;

use super::{arg_type, to_u64};
use crate::emit::structs::{field_ident, stype};
use crate::names::{camel_ident, ident};
use crate::spec::*;

/// `Translate`, for specs whose memory arguments include guest-physical ones.
pub(crate) fn translate_trait(spec: &Spec) -> TokenStream {
    if !needs_translate(spec) {
        return TokenStream::new();
    }
    quote! {
        /// How the guest turns a pointer into its own memory into the guest-physical address
        /// the host reads there: the wrappers of calls with guest-physical memory arguments
        /// take one. (A kernel's direct map is a subtraction; an in-process test maps
        /// through the host's view of guest memory.)
        pub trait Translate {
            /// The guest-physical address of guest-virtual address `va`.
            fn pa(&self, va: *const u8) -> u64;
        }

        impl<P: Translate + ?::core::marker::Sized> Translate for &P {
            #[inline]
            fn pa(&self, va: *const u8) -> u64 {
                (**self).pa(va)
            }
        }
    }
}

fn needs_translate(spec: &Spec) -> bool {
    spec.hypercalls
        .iter()
        .flat_map(|h| &h.mem)
        .any(|m| m.addr == AddrKind::Physical)
}

/// Whether another memory argument of `h` takes its address or length from a field of
/// memory argument `k` (the wrapper then fills the field in, so it takes `&mut`).
fn filled(h: &Hypercall, k: usize) -> bool {
    h.mem.iter().any(|m| {
        matches!(&m.at, MemAt::Field(f) if f.mem == k)
            || matches!(&m.kind, MemKind::Buffer { len: Len::Field(f), .. } if f.mem == k)
    })
}

/// A fixed buffer length as an array length: the generated const when the spec names one
/// (`super::numbers::TLS_ENTRIES as usize`), so the number is written once.
fn fixed_len(n: &Num) -> TokenStream {
    match &n.form {
        NumForm::Const { name, delta } => {
            let c = quote::format_ident!("{}", crate::names::upper(name));
            let d = super::usize_lit(delta.unsigned_abs() as u64);
            match delta.signum() {
                0 => quote! { super::numbers::#c as usize },
                1 => quote! { (super::numbers::#c + #d) as usize },
                _ => quote! { (super::numbers::#c - #d) as usize },
            }
        }
        _ => {
            let l = super::usize_lit(n.value);
            quote! { #l }
        }
    }
}

/// The guest-side parameter type of memory argument `k` of `h`.
fn param_type(spec: &Spec, h: &Hypercall, k: usize) -> TokenStream {
    let m = &h.mem[k];
    match &m.kind {
        MemKind::Struct(i) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            if m.dir.writes() || filled(h, k) {
                quote! { &mut super::structs::#id }
            } else {
                quote! { &super::structs::#id }
            }
        }
        MemKind::Buffer { elem, len, .. } => {
            let e = stype(spec, elem, false);
            let t = match len {
                Len::Fixed(n) => {
                    let n = fixed_len(n);
                    quote! { [#e; #n] }
                }
                _ => quote! { [#e] },
            };
            if m.dir.writes() {
                quote! { &mut #t }
            } else {
                quote! { &#t }
            }
        }
        MemKind::Str { .. } => quote! { &::core::ffi::CStr },
    }
}

/// The address the host is given for memory argument `k` (its parameter is `p`).
fn address(spec: &Spec, h: &Hypercall, k: usize, p: &proc_macro2::Ident) -> TokenStream {
    let m = &h.mem[k];
    // A pointer the host writes through is made from the `&mut` (mutable provenance).
    let mutable = match &m.kind {
        MemKind::Struct(_) => m.dir.writes() || filled(h, k),
        MemKind::Buffer { .. } => m.dir.writes(),
        MemKind::Str { .. } => false,
    };
    let ptr = match (&m.kind, mutable) {
        (MemKind::Struct(i), true) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            quote! { ::core::ptr::from_mut::<super::structs::#id>(#p).cast::<u8>().cast_const() }
        }
        (MemKind::Struct(i), false) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            quote! { ::core::ptr::from_ref::<super::structs::#id>(#p).cast::<u8>() }
        }
        (MemKind::Buffer { .. }, true) => quote! { #p.as_mut_ptr().cast::<u8>().cast_const() },
        _ => quote! { #p.as_ptr().cast::<u8>() },
    };
    match m.addr {
        AddrKind::Physical => quote! { xlate.pa(#ptr) },
        AddrKind::Virtual => quote! { #ptr.addr() as u64 },
    }
}

/// `len` of slice `p` as an integer of `prim` (saturating: the host refuses a length over
/// its maximum, which a saturated one always is when the type cannot hold it).
fn len_as(prim: Prim, p: &proc_macro2::Ident) -> TokenStream {
    match prim {
        Prim::U64 => quote! { #p.len() as u64 },
        p2 => {
            let t = super::prim(p2);
            quote! { #t::try_from(#p.len()).unwrap_or(#t::MAX) }
        }
    }
}

/// The parameters, the statements filling struct fields in, and the register values
/// (one per register argument of `h`) of a wrapper of call `h` with memory arguments;
/// `translate` is the path to the `Translate` trait from the wrapper's module.
pub(crate) fn parts(
    spec: &Spec,
    h: &Hypercall,
    translate: &TokenStream,
) -> (Vec<TokenStream>, Vec<TokenStream>, Vec<TokenStream>) {
    let mut params: Vec<TokenStream> = Vec::new();
    let mut fills: Vec<TokenStream> = Vec::new();
    if needs_translate(spec) && h.mem.iter().any(|m| m.addr == AddrKind::Physical) {
        params.push(quote! { xlate: &dyn #translate });
    }
    let mem_param = |k: usize| ident(&h.mem[k].name.v);
    let mut regs: Vec<TokenStream> = Vec::new();
    for (i, a) in h.args.iter().enumerate() {
        let id = ident(&a.name.v);
        if let Some((k, _)) = h.mem_at_reg(i) {
            let t = param_type(spec, h, k);
            params.push(quote! { #id: #t });
            regs.push(address(spec, h, k, &id));
        } else if let Some(k) = h
            .mem
            .iter()
            .position(|m| matches!(m.kind, MemKind::Buffer { len: Len::Arg(j), .. } if j == i))
        {
            let l = len_as(spec.arg_prim(&a.ty), &mem_param(k));
            regs.push(if spec.arg_prim(&a.ty) == Prim::U64 {
                l
            } else {
                quote! { u64::from(#l) }
            });
        } else {
            let ty = arg_type(spec, &a.ty);
            params.push(quote! { #id: #ty });
            regs.push(to_u64(spec, &a.ty, quote! { #id }));
        }
    }
    for (k, m) in h.mem.iter().enumerate() {
        let p = mem_param(k);
        if let MemAt::Field(f) = &m.at {
            let t = param_type(spec, h, k);
            params.push(quote! { #p: #t });
            let holder = mem_param(f.mem);
            let MemKind::Struct(si) = h.mem[f.mem].kind else {
                continue;
            };
            let fid = field_ident(&spec.structs[si].fields[f.field]);
            let a = address(spec, h, k, &p);
            fills.push(quote! { #holder.#fid = #a; });
        }
        if let MemKind::Buffer {
            len: Len::Field(f), ..
        } = &m.kind
        {
            let holder = mem_param(f.mem);
            let MemKind::Struct(si) = h.mem[f.mem].kind else {
                continue;
            };
            let field = &spec.structs[si].fields[f.field];
            let fid = field_ident(field);
            let prim = match &field.ty {
                SType::Int(i) => match i.bytes {
                    1 => Prim::U8,
                    2 => Prim::U16,
                    4 => Prim::U32,
                    _ => Prim::U64,
                },
                SType::Named(t) => spec.arg_prim(&ArgType::Named(*t)),
                _ => Prim::U64,
            };
            let l = len_as(prim, &p);
            fills.push(quote! { #holder.#fid = #l; });
        }
    }
    (params, fills, regs)
}

/// The wrapper of a call with memory arguments.
pub(crate) fn wrapper(spec: &Spec, h: &Hypercall) -> TokenStream {
    let arg_regs = spec.arg_regs();
    let (params, fills, mut regs) = parts(spec, h, &quote! { Translate });
    while regs.len() < arg_regs {
        regs.push(quote! { 0 });
    }
    let mut text = format!("{}\n\nHypercall `{}` (number {}).", h.doc, h.name.v, h.nr.v);
    text.push_str("\n\n# Arguments\n");
    if params
        .first()
        .is_some_and(|p| p.to_string().starts_with("xlate"))
    {
        text.push_str("\n* `xlate`: turns the guest's pointers into the guest-physical addresses the host reads.");
    }
    for a in h
        .args
        .iter()
        .enumerate()
        .filter(|(i, _)| !h.is_len_of_buffer(*i))
        .map(|(_, a)| a)
    {
        let mut parts: Vec<String> = a
            .doc
            .iter()
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if h.mem.iter().any(|m| m.name.v == a.name.v) {
            parts.push("In guest memory: the wrapper passes its address.".into());
        } else {
            let c = super::constraint_text(spec, a);
            if !c.is_empty() {
                parts.push(format!("The host requires: {c}."));
            }
        }
        text.push_str(&format!("\n* `{}`: {}", a.name.v, parts.join(" ")));
    }
    for m in h.mem.iter().filter(|m| matches!(m.at, MemAt::Field(_))) {
        let MemAt::Field(f) = &m.at else { continue };
        let d = m
            .doc
            .as_deref()
            .map(|d| format!("{} ", d.split_whitespace().collect::<Vec<_>>().join(" ")))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n* `{}`: {d}The wrapper puts its address in `{}`.",
            m.name.v, f.text
        ));
    }
    for (_, a) in h
        .args
        .iter()
        .enumerate()
        .filter(|(i, _)| h.is_len_of_buffer(*i))
    {
        text.push_str(&format!(
            "\n\nThe wrapper passes `{}` as the length of its buffer.",
            a.name.v
        ));
    }
    for m in &h.mem {
        if let MemKind::Buffer {
            len: Len::Field(f), ..
        } = &m.kind
        {
            text.push_str(&format!(
                "\n\nThe wrapper sets `{}` to the length of `{}`.",
                f.text, m.name.v
            ));
        }
    }
    if let Some(r) = &h.ret {
        text.push_str(&format!("\n\nReturns {r}"));
    }
    text.push_str(&super::results::guest_doc(spec, h));
    super::guest::wrapper_method(spec, h, &text, &params, &fills, &regs)
}
