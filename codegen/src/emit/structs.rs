//! `structs`: every `[struct.NAME]` as a `#[repr(C)]` struct whose every byte is a field
//! (padding included, as the spec writes it), with compile-time asserts of its size,
//! alignment and field offsets, `ZERO`, and little-endian `from_bytes`/`to_bytes`: the
//! host copies a struct out of guest memory as bytes and never reinterprets them.
//!
//! Every bit pattern is a valid value (fields are integers, arrays and nested structs; an
//! enum field is held as its repr and checked by the host), so `from_bytes` cannot fail.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, doc, usize_lit};
use crate::names::{camel_ident, ident};
use crate::spec::{Dir, SType, Spec, StructDef, TypeKind};

/// The Rust type of a struct field, from a sibling module of `structs`.
pub(crate) fn stype(spec: &Spec, t: &SType, here: bool) -> TokenStream {
    match t {
        SType::Int(i) => {
            let id = format_ident!("{}", i.name());
            quote! { #id }
        }
        SType::Named(i) => match &spec.types[*i].kind {
            TypeKind::Alias(_) => {
                let id = camel_ident(&spec.types[*i].name.v);
                quote! { super::types::#id }
            }
            TypeKind::Enum { repr, .. } => super::prim(*repr),
        },
        SType::Struct(i) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            if here {
                quote! { #id }
            } else {
                quote! { super::structs::#id }
            }
        }
        SType::Array(e, n) => {
            let e = stype(spec, e, here);
            let n = usize_lit(*n);
            quote! { [#e; #n] }
        }
        SType::Pad(n) => {
            let n = usize_lit(*n);
            quote! { [u8; #n] }
        }
    }
}

/// The Rust name of a field (padding is `_padN`, which no spec name can be).
pub(crate) fn field_ident(f: &crate::spec::SField) -> proc_macro2::Ident {
    if f.is_pad() {
        format_ident!("{}", f.name.v)
    } else {
        ident(&f.name.v)
    }
}

/// A byte offset into a struct's bytes: a constant plus loop indices times their strides,
/// written without `+ 0` or `* 1` (clippy's `identity_op`).
#[derive(Clone)]
struct Off {
    k: u64,
    terms: Vec<(proc_macro2::Ident, u64)>,
}

impl Off {
    fn at(k: u64) -> Off {
        Off {
            k,
            terms: Vec::new(),
        }
    }

    fn plus(&self, n: u64) -> Off {
        Off {
            k: self.k + n,
            terms: self.terms.clone(),
        }
    }

    fn index(&self, i: proc_macro2::Ident, stride: u64) -> Off {
        let mut terms = self.terms.clone();
        terms.push((i, stride));
        Off { k: self.k, terms }
    }

    fn tokens(&self) -> TokenStream {
        let mut parts: Vec<TokenStream> = Vec::new();
        if self.k != 0 || self.terms.is_empty() {
            let k = usize_lit(self.k);
            parts.push(quote! { #k });
        }
        for (i, s) in &self.terms {
            if *s == 1 {
                parts.push(quote! { #i });
            } else {
                let s = usize_lit(*s);
                parts.push(quote! { #i * #s });
            }
        }
        quote! { #(#parts)+* }
    }
}

/// An expression reading a `t` at byte offset `off` of `b` (a `[u8; SIZE]`).
fn read(spec: &Spec, t: &SType, off: &Off, depth: usize) -> TokenStream {
    let j = format_ident!("i{depth}");
    match t {
        SType::Struct(i) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            let o = off.index(j.clone(), 1).tokens();
            quote! { #id::from_bytes(&::core::array::from_fn(|#j| b[#o])) }
        }
        SType::Array(e, _) => {
            let (es, _) = spec.stype_size_align(e);
            let inner = read(spec, e, &off.index(j.clone(), es), depth + 1);
            quote! { ::core::array::from_fn(|#j| #inner) }
        }
        SType::Pad(_) => {
            let o = off.index(j.clone(), 1).tokens();
            quote! { ::core::array::from_fn(|#j| b[#o]) }
        }
        _ => {
            let (size, _) = spec.stype_size_align(t);
            let ty = stype(spec, t, true);
            let bytes = (0..size).map(|k| {
                let o = off.plus(k).tokens();
                quote! { b[#o] }
            });
            quote! { #ty::from_le_bytes([#(#bytes),*]) }
        }
    }
}

/// Statements writing `v` (a `t`) at byte offset `off` of `b`.
fn write(spec: &Spec, t: &SType, v: TokenStream, off: &Off, depth: usize) -> TokenStream {
    let (size, _) = spec.stype_size_align(t);
    let (lo, hi) = (off.tokens(), off.plus(size).tokens());
    match t {
        SType::Struct(_) => quote! { b[#lo..#hi].copy_from_slice(&#v.to_bytes()); },
        SType::Pad(_) => quote! { b[#lo..#hi].copy_from_slice(&#v); },
        SType::Array(e, _) => {
            let (es, _) = spec.stype_size_align(e);
            let j = format_ident!("i{depth}");
            let e_v = format_ident!("e{depth}");
            let inner = write(
                spec,
                e,
                quote! { #e_v },
                &off.index(j.clone(), es),
                depth + 1,
            );
            quote! { for (#j, #e_v) in #v.iter().enumerate() { #inner } }
        }
        SType::Int(i) if i.bytes == 1 => quote! { b[#lo] = #v.to_le_bytes()[0]; },
        _ => quote! { b[#lo..#hi].copy_from_slice(&#v.to_le_bytes()); },
    }
}

fn type_text(spec: &Spec, t: &SType) -> String {
    match t {
        SType::Int(i) => i.name(),
        SType::Named(i) => spec.types[*i].name.v.clone(),
        SType::Struct(i) => spec.structs[*i].name.v.clone(),
        SType::Array(e, n) => format!("[{}; {n}]", type_text(spec, e)),
        SType::Pad(n) => format!("{n} bytes of padding"),
    }
}

fn one(spec: &Spec, s: &StructDef) -> TokenStream {
    let id = camel_ident(&s.name.v);
    let size = usize_lit(s.size);
    let align = usize_lit(s.align);
    let fields = s.fields.iter().map(|f| {
        let name = field_ident(f);
        let ty = stype(spec, &f.ty, true);
        let mut text = match &f.doc {
            Some(d) => format!("{d}\n\n"),
            None if f.is_pad() => {
                "Padding: the C layout's gap, written out; nobody reads it.\n\n".into()
            }
            None => String::new(),
        };
        text.push_str(&format!("Offset {}", f.offset));
        if !f.is_pad() {
            text.push_str(&format!(
                ", {}{}",
                match f.dir {
                    Dir::In => "in (guest to host)",
                    Dir::Out => "out (the host writes it back)",
                    Dir::InOut => "inout (read, and written back)",
                },
                match &f.ty {
                    SType::Named(i) if matches!(spec.types[*i].kind, TypeKind::Enum { .. }) =>
                        format!(
                            "; a `{}` ([`super::types::{}`]) held as its raw value",
                            spec.types[*i].name.v,
                            crate::names::camel(&spec.types[*i].name.v)
                        ),
                    _ => String::new(),
                }
            ));
            let mut c = Vec::new();
            if let Some((lo, hi)) = &f.range {
                c.push(format!("{} ≤ value ≤ {}", lo.value, hi.value));
            }
            if let Some(a) = &f.align {
                c.push(format!("multiple of {}", a.value));
            }
            if !c.is_empty() {
                text.push_str(&format!("; the host requires: {}", c.join("; ")));
            }
        }
        text.push('.');
        let d = doc(&text);
        quote! { #d pub #name: #ty }
    });
    let zero = s.fields.iter().map(|f| {
        let name = field_ident(f);
        let z = zero(spec, &f.ty);
        quote! { #name: #z }
    });
    let reads = s.fields.iter().map(|f| {
        let name = field_ident(f);
        let r = read(spec, &f.ty, &Off::at(f.offset), 0);
        quote! { #name: #r }
    });
    let writes = s.fields.iter().map(|f| {
        let name = field_ident(f);
        // A packed struct's fields are copied out before use: no reference to them.
        let v = if s.packed {
            quote! { { self.#name } }
        } else {
            quote! { self.#name }
        };
        write(spec, &f.ty, v, &Off::at(f.offset), 0)
    });
    let asserts = s.fields.iter().map(|f| {
        let name = field_ident(f);
        let off = usize_lit(f.offset);
        quote! { assert!(::core::mem::offset_of!(#id, #name) == #off); }
    });
    let fields_text: Vec<String> = s
        .fields
        .iter()
        .filter(|f| !f.is_pad())
        .map(|f| format!("`{}`: {}", f.name.v, type_text(spec, &f.ty)))
        .collect();
    let d = doc(&format!(
        "{}\n\nStruct `{}` ({} bytes, aligned to {}{}): {}.",
        s.doc.as_deref().unwrap_or(""),
        s.name.v,
        s.size,
        s.align,
        if s.packed { ", packed" } else { "" },
        fields_text.join(", ")
    ));
    // A struct the spec called `from_bytes` has a constructor called `from_bytes`.
    let self_named = (id == "FromBytes").then(|| {
        let c = super::comment(
            "The struct is called `from_bytes` in the ABI; its constructor is `from_bytes` like every struct's.",
        );
        quote! { #c #[allow(clippy::self_named_constructors)] }
    });
    let repr = if s.packed {
        quote! { #[repr(C, packed)] }
    } else {
        quote! { #[repr(C)] }
    };
    quote! {
        #d
        #repr
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct #id {
            #(#fields,)*
        }

        impl #id {
            /// Size in bytes, as the C layout makes it.
            pub const SIZE: usize = #size;
            /// Alignment in bytes.
            pub const ALIGN: usize = #align;
            /// Every byte zero.
            pub const ZERO: Self = Self { #(#zero,)* };

            /// The struct from its bytes in guest memory (little-endian, C layout).
            #[inline]
            #self_named
            pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
                Self { #(#reads,)* }
            }

            /// The struct's bytes as it lies in guest memory.
            #[inline]
            pub fn to_bytes(self) -> [u8; Self::SIZE] {
                let mut b = [0u8; Self::SIZE];
                #(#writes)*
                b
            }
        }

        const _: () = {
            assert!(::core::mem::size_of::<#id>() == #id::SIZE);
            assert!(::core::mem::align_of::<#id>() == #id::ALIGN);
            #(#asserts)*
        };
    }
}

fn zero(spec: &Spec, t: &SType) -> TokenStream {
    match t {
        SType::Struct(i) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            quote! { #id::ZERO }
        }
        SType::Array(e, n) => {
            let z = zero(spec, e);
            let n = usize_lit(*n);
            quote! { [#z; #n] }
        }
        SType::Pad(n) => {
            let n = usize_lit(*n);
            quote! { [0; #n] }
        }
        _ => quote! { 0 },
    }
}

pub(crate) fn emit(spec: &Spec) -> Module {
    let items = spec.structs.iter().map(|s| one(spec, s));
    Module {
        name: "structs",
        doc: format!(
            "The structs of the `{}` ABI that live in guest memory, in C layout.",
            spec.abi.name.v
        ),
        items: quote! { #(#items)* },
    }
}
