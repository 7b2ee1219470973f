//! Room: the host's side of arguments in guest memory, for specs that have them: the
//! `GuestMemory` trait a host implements, `Mem` (a value with the guest address it came
//! from), `Scratch` (where buffers and strings are copied), `BadMemory`, the helpers that
//! read and write guest memory page by page (translating guest-virtual addresses), the
//! struct field checks, and each call's memory decoding and write-back.
//!
//! The rules it generates: every `in` byte is copied out of guest memory exactly once,
//! before any check, and everything after works on the copy (no double fetch); lengths are
//! checked against their maximum before anything is read; `out` ranges are checked before
//! the handler runs and written after it.
//!
//! Hygiene: arms bind `argN` (registers) and `memN` (memory arguments) only.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::decode::num;
use crate::emit::structs::{field_ident, stype};
use crate::emit::{doc, u64_lit, usize_lit, variant};
use crate::names::{camel_ident, ident};
use crate::spec::*;

/// The Rust type handed to a handler for memory argument `m` (`'a` where it borrows).
pub(crate) fn handler_type(spec: &Spec, m: &MemArg, life: Option<TokenStream>) -> TokenStream {
    let l = life.unwrap_or_default();
    match &m.kind {
        MemKind::Struct(i) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            if m.dir.writes() {
                quote! { &#l mut super::structs::#id }
            } else {
                quote! { &#l super::structs::#id }
            }
        }
        MemKind::Buffer { elem, .. } => {
            let e = stype(spec, elem, false);
            if m.dir.writes() {
                quote! { &#l mut [#e] }
            } else {
                quote! { &#l [#e] }
            }
        }
        MemKind::Str { utf8: true, .. } => quote! { &#l str },
        MemKind::Str { .. } => quote! { &#l [u8] },
    }
}

/// The type of a memory argument's field in `Call`.
pub(crate) fn call_field_type(spec: &Spec, m: &MemArg) -> TokenStream {
    let v = match &m.kind {
        MemKind::Struct(i) => {
            let id = camel_ident(&spec.structs[*i].name.v);
            quote! { super::structs::#id }
        }
        _ => handler_type(spec, m, Some(quote! { 'a })),
    };
    quote! { Mem<#v> }
}

/// One field of a `Call` variant: its name, the local that holds it in `decode` and
/// `run`, its type, its doc, and the memory argument it is (if it is one).
pub(crate) struct CallField<'h> {
    pub name: Ident,
    pub local: Ident,
    pub ty: TokenStream,
    pub doc: String,
    pub mem: Option<&'h MemArg>,
}

/// The fields of `h`'s `Call` variant, in order: register arguments (a memory argument's
/// register as the memory argument), then memory arguments reached through a struct field.
pub(crate) fn call_fields<'h>(spec: &Spec, h: &'h Hypercall) -> Vec<CallField<'h>> {
    let mut out = Vec::new();
    for (i, a) in h.args.iter().enumerate() {
        let d = a
            .doc
            .clone()
            .unwrap_or_else(|| format!("Argument `{}`.", a.name.v));
        match h.mem_at_reg(i) {
            Some((k, m)) => out.push(CallField {
                name: ident(&a.name.v),
                local: format_ident!("mem{k}"),
                ty: call_field_type(spec, m),
                doc: d,
                mem: Some(m),
            }),
            None => out.push(CallField {
                name: ident(&a.name.v),
                local: format_ident!("arg{i}"),
                ty: crate::emit::arg_type(spec, &a.ty),
                doc: d,
                mem: None,
            }),
        }
    }
    for (k, m) in h.mem.iter().enumerate() {
        if let MemAt::Field(f) = &m.at {
            out.push(CallField {
                name: ident(&m.name.v),
                local: format_ident!("mem{k}"),
                ty: call_field_type(spec, m),
                doc: m.doc.clone().unwrap_or_else(|| {
                    format!("Argument `{}`, at the address in `{}`.", m.name.v, f.text)
                }),
                mem: Some(m),
            });
        }
    }
    out
}

/// The `Scratch` field of memory argument `m` of `h`: `call__arg` (no spec name has `__`).
fn scratch_field(h: &Hypercall, m: &MemArg) -> Ident {
    format_ident!("{}__{}", h.name.v, m.name.v)
}

/// The trait, the error types, `Mem` and `Scratch`, and the helpers.
pub(crate) fn items(spec: &Spec) -> TokenStream {
    let virt = spec.has_virtual();
    let translate = virt.then(|| {
        quote! {
            /// The guest-physical address that guest-virtual `gva` maps to through the
            /// guest's page tables, or `None` when it is not mapped. Decoding asks once per
            /// 4 KiB page an argument touches, and reads and writes that page through the
            /// answer.
            fn translate(&self, gva: u64) -> ::core::option::Option<u64>;
        }
    });
    let unmapped = virt.then(|| {
        quote! {
            /// A guest-virtual address the guest's page tables do not map.
            Unmapped {
                /// The address.
                addr: u64,
            },
        }
    });
    let unmapped_fmt = virt.then(|| {
        quote! { MemViolation::Unmapped { addr } => write!(f, "guest-virtual {addr:#x} is not mapped"), }
    });
    let scratch = scratch(spec);
    let helpers = helpers(spec);
    let checks = spec
        .structs
        .iter()
        .enumerate()
        .map(|(i, s)| struct_check(spec, i, s));
    quote! {
        /// Guest memory as the generated [`decode`] and [`run`] see it: bounds-checked
        /// reads and writes at guest-physical addresses. A host implements it over its
        /// mapping of guest RAM.
        pub trait GuestMemory {
            /// Copies the guest-physical range `gpa..gpa + buf.len()` into `buf`; fails,
            /// without reading, when any byte of it is outside guest memory.
            fn read(&self, gpa: u64, buf: &mut [u8]) -> ::core::result::Result<(), OutsideMemory>;

            /// Copies `buf` to the guest-physical range `gpa..gpa + buf.len()`; fails,
            /// without writing, when any byte of it is outside guest memory.
            fn write(&self, gpa: u64, buf: &[u8]) -> ::core::result::Result<(), OutsideMemory>;

            /// Whether the guest-physical range `gpa..gpa + len` is wholly inside guest
            /// memory (checked for `out` arguments before the handler runs).
            fn contains(&self, gpa: u64, len: u64) -> bool;

            #translate
        }

        /// A guest-physical range outside guest memory.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct OutsideMemory;

        /// A value [`decode`] copied out of guest memory (or, for `out`, will write there),
        /// with the address the guest gave for it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Mem<T> {
            /// The address the guest passed (guest-physical or guest-virtual, as the spec
            /// says of the argument).
            pub addr: u64,
            /// The value: the host's copy.
            pub value: T,
        }

        /// What was wrong with an argument in guest memory.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum MemViolation {
            /// `len` bytes at `addr` are not wholly inside guest memory.
            Outside {
                /// First byte that could not be reached.
                addr: u64,
                /// Bytes wanted from there.
                len: u64,
            },
            #unmapped
            /// The address is not a multiple of the struct's or element's alignment.
            Misaligned {
                /// The alignment required.
                align: u64,
            },
            /// The length the guest gave is over the spec's maximum (nothing was read).
            TooLong {
                /// The length, in elements.
                len: u64,
                /// The maximum.
                max: u64,
            },
            /// No NUL within the string's maximum length.
            NoNul {
                /// The maximum length, NUL excluded.
                max: u64,
            },
            /// The string is not UTF-8.
            NotUtf8 {
                /// Bytes before the first invalid sequence.
                valid_up_to: usize,
            },
            /// A field broke its constraint.
            Field {
                /// The field's path in the struct (`hdr.len`).
                field: &'static str,
                /// Its value.
                value: u64,
                /// The constraint.
                violation: Violation,
            },
            /// An element of a buffer broke its constraint.
            Element {
                /// The element's index.
                index: u64,
                /// For a struct element, the field's path; `""` for an integer.
                field: &'static str,
                /// The value.
                value: u64,
                /// The constraint.
                violation: Violation,
            },
        }

        impl ::core::fmt::Display for MemViolation {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    MemViolation::Outside { addr, len } => write!(f, "{len} bytes at {addr:#x} are outside guest memory"),
                    #unmapped_fmt
                    MemViolation::Misaligned { align } => write!(f, "not aligned to {align} bytes"),
                    MemViolation::TooLong { len, max } => write!(f, "{len} elements long, more than the maximum {max}"),
                    MemViolation::NoNul { max } => write!(f, "not NUL-terminated within {max} bytes"),
                    MemViolation::NotUtf8 { valid_up_to } => write!(f, "not UTF-8 after {valid_up_to} bytes"),
                    MemViolation::Field { field, value, violation } => write!(f, "field `{field}` = {value:#x} is {violation}"),
                    MemViolation::Element { index, field, value, violation } => {
                        if field.is_empty() {
                            write!(f, "element {index} = {value:#x} is {violation}")
                        } else {
                            write!(f, "element {index}: field `{field}` = {value:#x} is {violation}")
                        }
                    }
                }
            }
        }

        /// An argument in guest memory that broke the spec.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct BadMemory {
            /// The call.
            pub call: super::numbers::Hypercall,
            /// The argument's name.
            pub arg: &'static str,
            /// The address the guest gave for it.
            pub addr: u64,
            /// What was wrong.
            pub violation: MemViolation,
        }

        impl ::core::fmt::Display for BadMemory {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "hypercall {}: argument `{}` at {:#x}: {}", self.call, self.arg, self.addr, self.violation)
            }
        }

        impl<E> ::core::convert::From<BadMemory> for DispatchError<E> {
            fn from(b: BadMemory) -> Self {
                DispatchError::BadMemory(b)
            }
        }

        #scratch

        #helpers

        #(#checks)*
    }
}

/// The length of `m`'s scratch array, `max + extra` elements: named as the spec named
/// `max` (`super::numbers::NOTIFY_MAX as usize` for `notify_max - 1` and a NUL), in its base
/// otherwise.
fn scratch_len(m: &MemArg, max: u64, extra: u64) -> TokenStream {
    let Some(n) = &m.max_written else {
        let n = usize_lit(max + extra);
        return quote! { #n };
    };
    let n = Num {
        value: n.value + extra,
        form: match &n.form {
            NumForm::Const { name, delta } => NumForm::Const {
                name: name.clone(),
                delta: delta + i128::from(extra),
            },
            f => f.clone(),
        },
    };
    match &n.form {
        NumForm::Const { delta: 0, .. } => {
            let e = num(&n);
            quote! { #e as usize }
        }
        NumForm::Const { .. } => {
            let e = num(&n);
            quote! { (#e) as usize }
        }
        _ => num(&n),
    }
}

/// `Scratch`: one array per buffer and string argument, as long as its maximum.
fn scratch(spec: &Spec) -> TokenStream {
    if !spec.has_scratch() {
        return TokenStream::new();
    }
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    let mut bytes = 0u64;
    for h in &spec.hypercalls {
        for m in &h.mem {
            let f = scratch_field(h, m);
            let (ty, init, size) = match &m.kind {
                MemKind::Struct(_) => continue,
                MemKind::Buffer { elem, max, .. } => {
                    let e = stype(spec, elem, false);
                    let n = scratch_len(m, *max, 0);
                    let z = match elem {
                        SType::Struct(i) => {
                            let id = camel_ident(&spec.structs[*i].name.v);
                            quote! { super::structs::#id::ZERO }
                        }
                        _ => quote! { 0 },
                    };
                    (
                        quote! { [#e; #n] },
                        quote! { [#z; #n] },
                        max * spec.stype_size_align(elem).0,
                    )
                }
                MemKind::Str { max, .. } => {
                    let n = scratch_len(m, *max, 1);
                    (quote! { [u8; #n] }, quote! { [0; #n] }, max + 1)
                }
            };
            bytes += size;
            let d = doc(&format!("`{}` of `{}`.", m.name.v, h.name.v));
            fields.push(quote! { #d #f: #ty });
            inits.push(quote! { #f: #init });
        }
    }
    let d = doc(&format!(
        "Where [`decode`] copies buffers and strings out of guest memory: one array per such argument, as long as the spec's maximum ({bytes} bytes in all), so a call's work is bounded. Allocate it once (it is large: box it or make it a static) and hand it to every [`decode`]; what a [`Call`] borrows from it lives until the next one."
    ));
    quote! {
        #d
        #[derive(Debug)]
        #[allow(non_snake_case)]
        pub struct Scratch {
            #(#fields,)*
        }

        impl Scratch {
            /// Zeroed scratch space.
            pub const fn new() -> Self {
                Scratch { #(#inits,)* }
            }
        }

        impl ::core::default::Default for Scratch {
            fn default() -> Self {
                Self::new()
            }
        }
    }
}

/// `read_guest`, `write_guest`, `probe_guest` and `read_str` (only those the spec uses).
fn helpers(spec: &Spec) -> TokenStream {
    let virt = spec.has_virtual();
    let mems = || spec.hypercalls.iter().flat_map(|h| &h.mem);
    let uses_str = mems().any(|m| matches!(m.kind, MemKind::Str { .. }));
    let uses_probe = mems().any(|m| m.dir == Dir::Out);
    let uses_write = mems().any(|m| m.dir.writes());
    let uses_align = mems().any(|m| mem_align(spec, m) > 1);
    // Physical or virtual: a virtual range goes page by page through `translate`.
    let phys_or_virt = |op: TokenStream| {
        if virt {
            quote! {
                if !virt {
                    return #op;
                }
            }
        } else {
            quote! { let _ = virt; #op }
        }
    };
    let read_phys = phys_or_virt(quote! {
        mem.read(addr, buf).map_err(|_| MemViolation::Outside { addr, len: buf.len() as u64 })
    });
    let walk = |body: TokenStream| {
        if virt {
            quote! {
                let mut done = 0usize;
                while done < len {
                    let at = addr.wrapping_add(done as u64);
                    let in_page = (PAGE - at % PAGE) as usize;
                    let n = in_page.min(len - done);
                    let Some(gpa) = mem.translate(at) else {
                        return Err(MemViolation::Unmapped { addr: at });
                    };
                    #body
                    done += n;
                }
                Ok(())
            }
        } else {
            TokenStream::new()
        }
    };
    let read_body = walk(quote! {
        if mem.read(gpa, &mut buf[done..done + n]).is_err() {
            return Err(MemViolation::Outside { addr: at, len: n as u64 });
        }
    });
    let write_phys = phys_or_virt(quote! {
        mem.write(addr, buf).map_err(|_| MemViolation::Outside { addr, len: buf.len() as u64 })
    });
    let write_body = walk(quote! {
        if mem.write(gpa, &buf[done..done + n]).is_err() {
            return Err(MemViolation::Outside { addr: at, len: n as u64 });
        }
    });
    let probe_phys = phys_or_virt(quote! {
        if mem.contains(addr, len as u64) { Ok(()) } else { Err(MemViolation::Outside { addr, len: len as u64 }) }
    });
    let probe_body = walk(quote! {
        if !mem.contains(gpa, n as u64) {
            return Err(MemViolation::Outside { addr: at, len: n as u64 });
        }
    });
    let page = virt.then(|| {
        quote! {
            /// The page size guest-virtual ranges are translated in (x86_64's 4 KiB).
            const PAGE: u64 = 4096;
        }
    });
    let overflow = quote! {
        if addr.checked_add(len as u64).is_none() {
            return Err(MemViolation::Outside { addr, len: len as u64 });
        }
    };
    // Every memory argument `out` (buffers the host fills, structs of `out` fields):
    // nothing is read, and an unused `read_guest` is dead code.
    let uses_read = mems().any(|m| m.dir.reads());
    let read = uses_read.then(|| quote! {
        /// Copies `buf.len()` bytes at guest address `addr` (virtual if `virt`) into `buf`.
        #[inline]
        fn read_guest<M: GuestMemory + ?::core::marker::Sized>(mem: &M, virt: bool, addr: u64, buf: &mut [u8]) -> ::core::result::Result<(), MemViolation> {
            let len = buf.len();
            #overflow
            #read_phys
            #read_body
        }
    });
    let write = uses_write.then(|| {
        quote! {
            /// Copies `buf` to guest address `addr` (virtual if `virt`).
            #[inline]
            fn write_guest<M: GuestMemory + ?::core::marker::Sized>(mem: &M, virt: bool, addr: u64, buf: &[u8]) -> ::core::result::Result<(), MemViolation> {
                let len = buf.len();
                #overflow
                #write_phys
                #write_body
            }
        }
    });
    let probe = uses_probe.then(|| {
        quote! {
            /// Whether `len` bytes at guest address `addr` (virtual if `virt`) can be written.
            #[inline]
            fn probe_guest<M: GuestMemory + ?::core::marker::Sized>(mem: &M, virt: bool, addr: u64, len: usize) -> ::core::result::Result<(), MemViolation> {
                #overflow
                #probe_phys
                #probe_body
            }
        }
    });
    let chunk = if virt {
        quote! { (PAGE - at % PAGE) as usize }
    } else {
        quote! { 4096 - (at % 4096) as usize }
    };
    let read_str = uses_str.then(|| {
        quote! {
            /// Copies the NUL-terminated string at `addr` into `buf` (its maximum length plus
            /// the NUL), a page at a time, each byte once; returns its length. Near the end of
            /// guest memory it goes byte by byte, so a string that ends in time is accepted.
            fn read_str<M: GuestMemory + ?::core::marker::Sized>(mem: &M, virt: bool, addr: u64, buf: &mut [u8]) -> ::core::result::Result<usize, MemViolation> {
                let mut done = 0usize;
                while done < buf.len() {
                    let at = addr.wrapping_add(done as u64);
                    if at < addr {
                        return Err(MemViolation::Outside { addr: at, len: 1 });
                    }
                    let n = (#chunk).min(buf.len() - done);
                    let chunk = &mut buf[done..done + n];
                    if read_guest(mem, virt, at, chunk).is_err() {
                        // Byte by byte: the string may end before memory does.
                        for (i, byte) in chunk.iter_mut().enumerate() {
                            let mut one = [0u8; 1];
                            read_guest(mem, virt, at + i as u64, &mut one)?;
                            *byte = one[0];
                            if one[0] == 0 {
                                return Ok(done + i);
                            }
                        }
                    } else if let Some(i) = chunk.iter().position(|b| *b == 0) {
                        return Ok(done + i);
                    }
                    done += n;
                }
                Err(MemViolation::NoNul { max: buf.len() as u64 - 1 })
            }
        }
    });
    let align = uses_align.then(|| {
        quote! {
            #[inline]
            fn check_mem_align(call: super::numbers::Hypercall, arg: &'static str, addr: u64, align: u64) -> ::core::result::Result<(), BadMemory> {
                if addr.is_multiple_of(align) {
                    Ok(())
                } else {
                    Err(BadMemory { call, arg, addr, violation: MemViolation::Misaligned { align } })
                }
            }
        }
    });
    quote! { #page #read #write #probe #read_str #align }
}

/// The alignment a memory argument's address must have.
fn mem_align(spec: &Spec, m: &MemArg) -> u64 {
    match &m.kind {
        MemKind::Struct(i) => spec.structs[*i].align,
        MemKind::Buffer { elem, .. } => spec.stype_size_align(elem).1,
        MemKind::Str { .. } => 1,
    }
}

/// The checks of one value of type `t` at Rust place `place`, reporting `field` (its
/// path); `wrap` makes the `Err` value from `(field, value, violation)`.
fn value_checks(
    spec: &Spec,
    t: &SType,
    f: Option<&SField>,
    place: TokenStream,
    path: &str,
    depth: usize,
    packed: bool,
) -> TokenStream {
    match t {
        SType::Struct(i) => {
            let s = &spec.structs[*i];
            let inner = s.fields.iter().filter(|g| !g.is_pad()).map(|g| {
                let id = field_ident(g);
                let p = if path.is_empty() {
                    g.name.v.clone()
                } else {
                    format!("{path}.{}", g.name.v)
                };
                value_checks(
                    spec,
                    &g.ty,
                    Some(g),
                    quote! { #place.#id },
                    &p,
                    depth,
                    packed || s.packed,
                )
            });
            quote! { #(#inner)* }
        }
        SType::Array(e, _) => {
            let v = format_ident!("e{depth}");
            let inner = value_checks(spec, e, f, quote! { #v }, path, depth + 1, false);
            if inner.is_empty() {
                return inner;
            }
            // A packed struct's array is copied out first: no reference into it.
            let place = if packed {
                quote! { { #place } }
            } else {
                place
            };
            // Integer elements are bound by value, so the checks use `e0` itself, never
            // `(*e0)` (an argument in parentheses is rustc's `unused_parens`); struct and
            // array elements by reference (their fields and elements auto-deref).
            let pat = match &**e {
                SType::Int(_) | SType::Named(_) => quote! { &#v },
                _ => quote! { #v },
            };
            quote! { for #pat in #place.iter() { #inner } }
        }
        SType::Pad(_) => TokenStream::new(),
        SType::Int(_) | SType::Named(_) => {
            let mut out = Vec::new();
            // A 64-bit field (an integer, alias or enum repr) is its own u64: `u64::from`
            // on it is clippy's `useless_conversion`.
            let val = if spec.stype_size_align(t).0 == 8 {
                quote! { #place }
            } else {
                quote! { u64::from(#place) }
            };
            if let SType::Named(ti) = t
                && let TypeKind::Enum { .. } = &spec.types[*ti].kind
            {
                let id = camel_ident(&spec.types[*ti].name.v);
                let tname = &spec.types[*ti].name.v;
                out.push(quote! {
                    if super::types::#id::from_raw(#place).is_none() {
                        return Err((#path, #val, Violation::Enum { ty: #tname }));
                    }
                });
            }
            if let Some(f) = f {
                if let Some((lo, hi)) = &f.range {
                    // A bound at the type's own limit is no check (`x > 0xff` on a u8 is
                    // rustc's `unused_comparisons`, clippy's `absurd_extreme_comparisons`
                    // when the spec names a const); both at once is no check at all.
                    let (size, _) = spec.stype_size_align(t);
                    let top = if size == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (size * 8)) - 1
                    };
                    let (lo_t, hi_t) = (num(lo), num(hi));
                    let cond = match (lo.value > 0, hi.value < top) {
                        // A packed struct's field is copied out: no reference to it.
                        (true, true) if packed => {
                            Some(quote! { !(#lo_t..=#hi_t).contains(&{ #val }) })
                        }
                        (true, true) => Some(quote! { !(#lo_t..=#hi_t).contains(&#val) }),
                        (true, false) => Some(quote! { #val < #lo_t }),
                        (false, true) => Some(quote! { #val > #hi_t }),
                        (false, false) => None,
                    };
                    if let Some(cond) = cond {
                        out.push(quote! {
                            if #cond {
                                return Err((#path, #val, Violation::Range { lo: #lo_t, hi: #hi_t }));
                            }
                        });
                    }
                }
                if let Some(a) = &f.align {
                    let a = num(a);
                    out.push(quote! {
                        if !#val.is_multiple_of(#a) {
                            return Err((#path, #val, Violation::Align { align: #a }));
                        }
                    });
                }
            }
            quote! { #(#out)* }
        }
    }
}

/// `check_struct_NAME`: every constraint of the struct's fields that the guest passes
/// (`in` and `inout`; nested structs whole), on the host's copy.
fn struct_check(spec: &Spec, i: usize, s: &StructDef) -> TokenStream {
    let f = check_struct_fn(s);
    let id = camel_ident(&s.name.v);
    let checks = s
        .fields
        .iter()
        .filter(|g| !g.is_pad() && g.dir.reads())
        .map(|g| {
            let fid = field_ident(g);
            value_checks(
                spec,
                &g.ty,
                Some(g),
                quote! { v.#fid },
                &g.name.v,
                0,
                s.packed,
            )
        });
    let checks: Vec<TokenStream> = checks.collect();
    let used = spec
        .hypercalls
        .iter()
        .flat_map(|h| &h.mem)
        // Called where a struct (or a buffer of them) is read.
        .any(|m| {
            m.dir.reads()
                && match &m.kind {
                    MemKind::Struct(j) => *j == i,
                    MemKind::Buffer {
                        elem: SType::Struct(j),
                        ..
                    } => *j == i,
                    _ => false,
                }
        });
    if !used {
        return TokenStream::new();
    }
    let d = doc(&format!(
        "Checks the fields of a `{}` the guest passed.",
        s.name.v
    ));
    let (v, body) = if checks.iter().all(TokenStream::is_empty) {
        (quote! { _v }, quote! { Ok(()) })
    } else {
        (quote! { v }, quote! { #(#checks)* Ok(()) })
    };
    quote! {
        #d
        #[inline]
        fn #f(#v: &super::structs::#id) -> ::core::result::Result<(), (&'static str, u64, Violation)> {
            #body
        }
    }
}

/// The expression of a field reference's value, as a u64.
fn field_value(spec: &Spec, h: &Hypercall, f: &FieldRef) -> TokenStream {
    let m = &h.mem[f.mem];
    let MemKind::Struct(si) = m.kind else {
        unreachable!("the parser resolves field references to struct arguments only")
    };
    let field = &spec.structs[si].fields[f.field];
    let local = format_ident!("mem{}", f.mem);
    let fid = field_ident(field);
    match &field.ty {
        SType::Int(i) if i.bytes == 8 => quote! { #local.value.#fid },
        SType::Named(t) if matches!(spec.types[*t].kind, TypeKind::Alias(Prim::U64)) => {
            quote! { #local.value.#fid }
        }
        _ => quote! { u64::from(#local.value.#fid) },
    }
}

/// The statements of `decode`'s arm that read, check and type `h`'s memory arguments into
/// `mem0`, `mem1`, ... (after its registers are checked into `argN`).
pub(crate) fn decode_mem(spec: &Spec, h: &Hypercall) -> TokenStream {
    let stmts = h.mem.iter().enumerate().map(|(k, m)| {
        let local = format_ident!("mem{k}");
        let name = &m.name.v;
        let virt = m.addr == AddrKind::Virtual;
        let addr = match &m.at {
            MemAt::Reg(i) => {
                let a = format_ident!("arg{i}");
                quote! { #a }
            }
            MemAt::Field(f) => field_value(spec, h, f),
        };
        let al = mem_align(spec, m);
        let align = (al > 1).then(|| {
            let al = u64_lit(al);
            quote! { check_mem_align(call, #name, addr, #al)?; }
        });
        let fault = quote! { |violation| BadMemory { call, arg: #name, addr, violation } };
        let body = match &m.kind {
            MemKind::Struct(si) => {
                let id = camel_ident(&spec.structs[*si].name.v);
                let check = check_struct_fn(&spec.structs[*si]);
                if m.dir.reads() {
                    quote! {
                        let mut bytes = [0u8; super::structs::#id::SIZE];
                        read_guest(mem, #virt, addr, &mut bytes).map_err(#fault)?;
                        let value = super::structs::#id::from_bytes(&bytes);
                        if let Err((field, value, violation)) = #check(&value) {
                            return Err(BadMemory { call, arg: #name, addr, violation: MemViolation::Field { field, value, violation } }.into());
                        }
                    }
                } else {
                    quote! {
                        probe_guest(mem, #virt, addr, super::structs::#id::SIZE).map_err(#fault)?;
                        let value = super::structs::#id::ZERO;
                    }
                }
            }
            MemKind::Buffer { elem, len, max } => {
                let sf = scratch_field(h, m);
                let len = match len {
                    Len::Fixed(n) => num(n),
                    Len::Arg(i) => {
                        let a = format_ident!("arg{i}");
                        crate::emit::to_u64(spec, &h.args[*i].ty, quote! { #a })
                    }
                    Len::Field(f) => field_value(spec, h, f),
                };
                let maxl = m.max_written.as_ref().map_or_else(
                    || {
                        let l = u64_lit(*max);
                        quote! { #l }
                    },
                    num,
                );
                let (es, _) = spec.stype_size_align(elem);
                let esl = usize_lit(es);
                let index_off = if es == 1 { quote! { index as u64 } } else { quote! { (index * #esl) as u64 } };
                let too_long = quote! {
                    let len: u64 = #len;
                    if len > #maxl {
                        return Err(BadMemory { call, arg: #name, addr, violation: MemViolation::TooLong { len, max: #maxl } }.into());
                    }
                    // At most the maximum, which the spec bounds to a MiB: a usize.
                    let n = len as usize;
                    let value = &mut scratch.#sf[..n];
                };
                let fill = if m.dir.reads() {
                    match elem {
                        SType::Int(i) if i.bytes == 1 && !i.signed => quote! {
                            read_guest(mem, #virt, addr, value).map_err(#fault)?;
                        },
                        SType::Struct(si) => {
                            let id = camel_ident(&spec.structs[*si].name.v);
                            let check = check_struct_fn(&spec.structs[*si]);
                            quote! {
                                for (index, e) in value.iter_mut().enumerate() {
                                    let mut bytes = [0u8; super::structs::#id::SIZE];
                                    read_guest(mem, #virt, addr + #index_off, &mut bytes).map_err(#fault)?;
                                    *e = super::structs::#id::from_bytes(&bytes);
                                }
                                for (index, e) in value.iter().enumerate() {
                                    if let Err((field, value, violation)) = #check(e) {
                                        return Err(BadMemory { call, arg: #name, addr, violation: MemViolation::Element { index: index as u64, field, value, violation } }.into());
                                    }
                                }
                            }
                        }
                        _ => {
                            let ty = stype(spec, elem, false);
                            let checks = value_checks(spec, elem, None, quote! { e }, "", 0, false);
                            let checks = (!checks.is_empty()).then(|| {
                                quote! {
                                    for (index, &e) in value.iter().enumerate() {
                                        let r: ::core::result::Result<(), (&'static str, u64, Violation)> = (|| { #checks Ok(()) })();
                                        if let Err((field, value, violation)) = r {
                                            return Err(BadMemory { call, arg: #name, addr, violation: MemViolation::Element { index: index as u64, field, value, violation } }.into());
                                        }
                                    }
                                }
                            });
                            quote! {
                                for (index, e) in value.iter_mut().enumerate() {
                                    let mut bytes = [0u8; #esl];
                                    read_guest(mem, #virt, addr + #index_off, &mut bytes).map_err(#fault)?;
                                    *e = <#ty>::from_le_bytes(bytes);
                                }
                                #checks
                            }
                        }
                    }
                } else {
                    let n_bytes = if es == 1 { quote! { n } } else { quote! { n * #esl } };
                    let z = match elem {
                        SType::Struct(si) => {
                            let id = camel_ident(&spec.structs[*si].name.v);
                            quote! { super::structs::#id::ZERO }
                        }
                        _ => quote! { 0 },
                    };
                    quote! {
                        probe_guest(mem, #virt, addr, #n_bytes).map_err(#fault)?;
                        value.fill(#z);
                    }
                };
                let share = (!m.dir.writes()).then(|| quote! { let value: &_ = value; });
                quote! { #too_long #fill #share }
            }
            MemKind::Str { utf8, .. } => {
                let sf = scratch_field(h, m);
                let value = if *utf8 {
                    quote! {
                        let value = match ::core::str::from_utf8(&scratch.#sf[..n]) {
                            Ok(s) => s,
                            Err(e) => return Err(BadMemory { call, arg: #name, addr, violation: MemViolation::NotUtf8 { valid_up_to: e.valid_up_to() } }.into()),
                        };
                    }
                } else {
                    quote! { let value = &scratch.#sf[..n]; }
                };
                quote! {
                    let n = read_str(mem, #virt, addr, &mut scratch.#sf).map_err(#fault)?;
                    #value
                }
            }
        };
        quote! {
            let #local = {
                let addr = #addr;
                #align
                #body
                Mem { addr, value }
            };
        }
    });
    quote! { #(#stmts)* }
}

/// What `run`'s arm hands the handler for field `f`: the register value, or the memory
/// argument's value (`&`/`&mut` for structs).
pub(crate) fn handler_arg(f: &CallField<'_>) -> TokenStream {
    let l = &f.local;
    match f.mem {
        None => quote! { #l },
        Some(m) => match (&m.kind, m.dir.writes()) {
            (MemKind::Struct(_), true) => quote! { &mut #l.value },
            (MemKind::Struct(_), false) => quote! { &#l.value },
            _ => quote! { #l.value },
        },
    }
}

/// The statements of `run`'s arm that write `h`'s `out` and `inout` memory back.
pub(crate) fn write_back(spec: &Spec, h: &Hypercall) -> TokenStream {
    let stmts = h.mem.iter().enumerate().filter(|(_, m)| m.dir.writes()).map(|(k, m)| {
        let local = format_ident!("mem{k}");
        let name = &m.name.v;
        let virt = m.addr == AddrKind::Virtual;
        let v = variant(&h.name.v);
        let fault = quote! { |violation| BadMemory { call: super::numbers::Hypercall::#v, arg: #name, addr: #local.addr, violation } };
        match &m.kind {
            MemKind::Struct(si) => {
                let s = &spec.structs[*si];
                let writes = s.fields.iter().filter(|f| !f.is_pad() && f.dir.writes()).map(|f| {
                    let (size, _) = spec.stype_size_align(&f.ty);
                    let off = usize_lit(f.offset);
                    let end = usize_lit(f.offset + size);
                    let offu = u64_lit(f.offset);
                    let at = if f.offset == 0 {
                        quote! { #local.addr }
                    } else {
                        quote! { #local.addr + #offu }
                    };
                    quote! {
                        write_guest(mem, #virt, #at, &bytes[#off..#end]).map_err(#fault)?;
                    }
                });
                quote! {
                    let bytes = #local.value.to_bytes();
                    #(#writes)*
                }
            }
            MemKind::Buffer { elem, .. } => match elem {
                SType::Int(i) if i.bytes == 1 && !i.signed => quote! {
                    write_guest(mem, #virt, #local.addr, #local.value).map_err(#fault)?;
                },
                _ => {
                    let (es, _) = spec.stype_size_align(elem);
                    let esl = usize_lit(es);
                    let index_off = if es == 1 { quote! { index as u64 } } else { quote! { (index * #esl) as u64 } };
                    let bytes = match elem {
                        SType::Struct(_) => quote! { e.to_bytes() },
                        _ => quote! { e.to_le_bytes() },
                    };
                    quote! {
                        for (index, e) in #local.value.iter().enumerate() {
                            write_guest(mem, #virt, #local.addr + #index_off, &#bytes).map_err(#fault)?;
                        }
                    }
                }
            },
            MemKind::Str { .. } => TokenStream::new(),
        }
    });
    quote! { #(#stmts)* }
}

/// `check_struct_NAME`, without the name's leading underscore (`check_struct__x` is not
/// snake case); unique, as no two structs have one Rust name.
fn check_struct_fn(s: &StructDef) -> Ident {
    format_ident!("check_struct_{}", s.name.v.trim_start_matches('_'))
}
