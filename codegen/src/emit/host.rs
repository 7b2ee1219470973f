//! `host`: a trait with one method per hypercall taking typed, validated arguments, and
//! `dispatch()`, a `match` that checks every constraint of the spec before the handler runs.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, abi_camel, arg_type, doc, variant};
use crate::spec::{ArgType, Prim, Spec, TypeKind};

pub(crate) fn emit(spec: &Spec) -> Module {
    let abi = abi_camel(spec);
    let host_trait = format_ident!("{abi}Host");
    let methods = spec.hypercalls.iter().map(|h| {
        let name = crate::names::ident(&h.name.v);
        let params = h.args.iter().map(|a| {
            let id = crate::names::ident(&a.name.v);
            let ty = arg_type(spec, &a.ty);
            quote! { #id: #ty }
        });
        let mut text = format!("{}\n\nHypercall `{}` (number {}).", h.doc, h.name.v, h.nr.v);
        let checked: Vec<String> = h
            .args
            .iter()
            .filter_map(|a| {
                let c = super::constraint_text(spec, a);
                (!c.is_empty()).then(|| format!("`{}`: {c}", a.name.v))
            })
            .collect();
        if !checked.is_empty() {
            text.push_str(&format!(
                " [`dispatch`] has already checked: {}.",
                checked.join("; ")
            ));
        }
        let d = doc(&text);
        let many = super::many_args(h.args.len());
        let ret = if h.ret.is_some() {
            quote! { u64 }
        } else {
            quote! { () }
        };
        quote! {
            #d
            #many
            fn #name(&mut self, #(#params),*) -> ::core::result::Result<#ret, Self::Error>;
        }
    });

    // decode(): check and type each call's arguments.
    let decode_arms = spec.hypercalls.iter().map(|h| {
        let v = variant(&h.name.v);
        let checks = h
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| arg_check(spec, a, i));
        let value = call_with_locals(h);
        quote! { super::numbers::Hypercall::#v => { #(#checks)* Ok(#value) } }
    });
    // run(): hand a decoded call to its handler. Fields bind to `argN`, never to their own
    // names, so an argument called `host` cannot shadow the handler.
    let run_arms = spec.hypercalls.iter().map(|h| {
        let name = crate::names::ident(&h.name.v);
        let pat = call_with_locals(h);
        let locals = (0..h.args.len()).map(|i| format_ident!("arg{i}"));
        if h.ret.is_some() {
            quote! { #pat => host.#name(#(#locals),*), }
        } else {
            quote! { #pat => { host.#name(#(#locals),*)?; Ok(0) } }
        }
    });
    let call_variants = spec.hypercalls.iter().map(|h| {
        let v = variant(&h.name.v);
        let d = doc(&format!("`{}` (number {}).", h.name.v, h.nr.v));
        if h.args.is_empty() {
            return quote! { #d #v };
        }
        let fields = h.args.iter().map(|a| {
            let f = crate::names::ident(&a.name.v);
            let ty = arg_type(spec, &a.ty);
            let fd = doc(a
                .doc
                .as_deref()
                .unwrap_or(&format!("Argument `{}`.", a.name.v)));
            quote! { #fd #f: #ty }
        });
        quote! { #d #v { #(#fields),* } }
    });
    let call_hc = spec.hypercalls.iter().map(|h| {
        let v = variant(&h.name.v);
        let pat = if h.args.is_empty() {
            quote! { Call::#v }
        } else {
            quote! { Call::#v { .. } }
        };
        quote! { #pat => super::numbers::Hypercall::#v, }
    });
    let host_doc = format!(
        "The host side of the `{}` ABI: one method per hypercall, with typed arguments that [`dispatch`] has validated against the spec.\n\nA handler's error stops the dispatch and comes back as [`DispatchError::Host`]: that is how a host kills a guest for what only it can check (an address outside guest memory, a call before INIT).",
        spec.abi.name.v
    );
    let host_doc_attrs = doc(&host_doc);
    // With no hypercall taking arguments, `args` is only there for the ABI's shape.
    let unused_args = spec
        .hypercalls
        .iter()
        .all(|h| h.args.is_empty())
        .then(|| quote! { let _ = args; });
    let ring_items = spec.ring.as_ref().map(|_| {
        let ring_args = spec.ring.as_ref().map_or(0, |r| r.args as usize);
        let widen = (0..spec.arg_regs()).map(|i| {
            if i < ring_args {
                let i = super::usize_lit(i as u64);
                quote! { args[#i] }
            } else {
                quote! { 0 }
            }
        });
        quote! {
            /// Dispatches a call read from an async-ring slot: the slot's arguments, with 0 in
            /// the registers a slot does not hold. Read the slot once into `nr` and `args`
            /// before calling this; the guest may change it at any time.
            #[inline]
            pub fn dispatch_slot<H: #host_trait + ?Sized>(
                host: &mut H,
                nr: u64,
                args: [u64; super::shared::RING_ARGS],
            ) -> ::core::result::Result<u64, DispatchError<H::Error>> {
                dispatch(host, nr, [#(#widen),*])
            }
        }
    });

    // Only the private helpers the spec's constraints call, so the module stays
    // warning-free.
    let uses_range = spec
        .hypercalls
        .iter()
        .flat_map(|h| &h.args)
        .any(|a| a.range.is_some());
    let uses_align = spec
        .hypercalls
        .iter()
        .flat_map(|h| &h.args)
        .any(|a| a.align.is_some());
    let uses_bad = spec.hypercalls.iter().flat_map(|h| &h.args).any(|a| {
        a.range.is_some() || a.align.is_some() || spec.arg_prim(&a.ty) != Prim::U64 || matches!(a.ty, ArgType::Named(i) if matches!(spec.types[i].kind, TypeKind::Enum { .. }))
    });
    let bad_fn = uses_bad.then(|| quote! {
        fn bad(call: super::numbers::Hypercall, index: usize, value: u64, violation: Violation) -> BadArgument {
            BadArgument { call, arg: call.arg_names()[index], index, value, violation }
        }
    });
    let check_range_fn = uses_range.then(|| quote! {
        #[inline]
        fn check_range(call: super::numbers::Hypercall, index: usize, value: u64, lo: u64, hi: u64) -> ::core::result::Result<u64, BadArgument> {
            if value < lo || value > hi {
                return Err(bad(call, index, value, Violation::Range { lo, hi }));
            }
            Ok(value)
        }
    });
    let check_align_fn = uses_align.then(|| quote! {
        #[inline]
        fn check_align(call: super::numbers::Hypercall, index: usize, value: u64, align: u64) -> ::core::result::Result<u64, BadArgument> {
            if !value.is_multiple_of(align) {
                return Err(bad(call, index, value, Violation::Align { align }));
            }
            Ok(value)
        }
    });
    let items = quote! {
        #host_doc_attrs
        pub trait #host_trait {
            /// Why a handler refused a call.
            type Error;

            #(#methods)*
        }

        /// The constraint an argument broke.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Violation {
            /// Outside the inclusive range `lo..=hi`.
            Range {
                /// Smallest allowed value.
                lo: u64,
                /// Largest allowed value.
                hi: u64,
            },
            /// Not a multiple of `align`.
            Align {
                /// The required alignment.
                align: u64,
            },
            /// Not a value of the enum type `ty`.
            Enum {
                /// The spec's name of the type.
                ty: &'static str,
            },
            /// Does not fit the argument's integer type.
            Width {
                /// Bits of the type.
                bits: u32,
            },
            /// Neither 0 nor 1 for a bool.
            Bool,
        }

        impl ::core::fmt::Display for Violation {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    Violation::Range { lo, hi } => write!(f, "outside the range {lo:#x}..={hi:#x}"),
                    Violation::Align { align } => write!(f, "not a multiple of {align:#x}"),
                    Violation::Enum { ty } => write!(f, "not a value of `{ty}`"),
                    Violation::Width { bits } => write!(f, "wider than {bits} bits"),
                    Violation::Bool => f.write_str("neither 0 nor 1"),
                }
            }
        }

        /// An argument that broke the spec.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct BadArgument {
            /// The call.
            pub call: super::numbers::Hypercall,
            /// The argument's name.
            pub arg: &'static str,
            /// The argument's position (0 = first argument register).
            pub index: usize,
            /// The value the guest passed.
            pub value: u64,
            /// The constraint it broke.
            pub violation: Violation,
        }

        impl ::core::fmt::Display for BadArgument {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(
                    f,
                    "hypercall {}: argument `{}` = {:#x} is {}",
                    self.call, self.arg, self.value, self.violation
                )
            }
        }

        /// Why [`dispatch`] did not run a call to completion.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DispatchError<E> {
            /// No hypercall has this number.
            UnknownHypercall {
                /// The number the guest passed.
                nr: u64,
            },
            /// An argument broke the spec; the handler did not run.
            BadArgument(BadArgument),
            /// The handler refused the call.
            Host(E),
        }

        impl<E> ::core::convert::From<BadArgument> for DispatchError<E> {
            fn from(b: BadArgument) -> Self {
                DispatchError::BadArgument(b)
            }
        }

        impl<E: ::core::fmt::Display> ::core::fmt::Display for DispatchError<E> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    DispatchError::UnknownHypercall { nr } => write!(f, "unknown hypercall number {nr:#x}"),
                    DispatchError::BadArgument(b) => b.fmt(f),
                    DispatchError::Host(e) => e.fmt(f),
                }
            }
        }

        impl<E: ::core::fmt::Debug + ::core::fmt::Display> ::core::error::Error for DispatchError<E> {}

        #bad_fn

        #check_range_fn

        #check_align_fn

        /// A hypercall with its arguments checked against the spec and typed: what
        /// [`decode`] makes of a trap, and what [`run`] hands to a handler.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Call {
            #(#call_variants,)*
        }

        impl Call {
            /// Which hypercall this is.
            pub const fn hypercall(&self) -> super::numbers::Hypercall {
                match self { #(#call_hc)* }
            }
        }

        /// Why [`decode`] refused a trap.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DecodeError {
            /// No hypercall has this number.
            UnknownHypercall {
                /// The number the guest passed.
                nr: u64,
            },
            /// An argument broke the spec.
            BadArgument(BadArgument),
        }

        impl ::core::convert::From<BadArgument> for DecodeError {
            fn from(b: BadArgument) -> Self {
                DecodeError::BadArgument(b)
            }
        }

        impl<E> ::core::convert::From<DecodeError> for DispatchError<E> {
            fn from(e: DecodeError) -> Self {
                match e {
                    DecodeError::UnknownHypercall { nr } => DispatchError::UnknownHypercall { nr },
                    DecodeError::BadArgument(b) => DispatchError::BadArgument(b),
                }
            }
        }

        impl ::core::fmt::Display for DecodeError {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    DecodeError::UnknownHypercall { nr } => write!(f, "unknown hypercall number {nr:#x}"),
                    DecodeError::BadArgument(b) => b.fmt(f),
                }
            }
        }

        impl ::core::error::Error for DecodeError {}

        /// Checks hypercall `nr` with argument registers `args` against the spec (every
        /// range, alignment, enum and width) and types its arguments. Never panics,
        /// whatever `nr` and `args` are.
        #[inline]
        pub fn decode(
            nr: u64,
            args: [u64; super::numbers::ARG_REGS],
        ) -> ::core::result::Result<Call, DecodeError> {
            #unused_args
            let call = match super::numbers::Hypercall::try_from(nr) {
                Ok(call) => call,
                Err(_) => return Err(DecodeError::UnknownHypercall { nr }),
            };
            match call {
                #(#decode_arms)*
            }
        }

        /// Hands a decoded call to its handler on `host`. Returns the value for the result
        /// register (0 for calls that return nothing).
        #[inline]
        pub fn run<H: #host_trait + ?Sized>(
            host: &mut H,
            call: Call,
        ) -> ::core::result::Result<u64, H::Error> {
            match call {
                #(#run_arms)*
            }
        }

        /// Runs hypercall `nr` with argument registers `args` on `host`: [`decode`], then
        /// [`run`]. The handler runs only when every argument meets the spec. Never
        /// panics, whatever `nr` and `args` are.
        #[inline]
        pub fn dispatch<H: #host_trait + ?Sized>(
            host: &mut H,
            nr: u64,
            args: [u64; super::numbers::ARG_REGS],
        ) -> ::core::result::Result<u64, DispatchError<H::Error>> {
            let call = decode(nr, args)?;
            run(host, call).map_err(DispatchError::Host)
        }

        #ring_items
    };
    Module {
        name: "host",
        doc: format!(
            "Host side of the `{}` ABI: the handler trait and the dispatch that validates every argument.",
            spec.abi.name.v
        ),
        items,
    }
}

/// `Call::SetPte { pgdir: arg0, vaddr: arg1, pte: arg2 }`: the decoded call with its
/// fields bound to (or built from) the locals `argN`, both as a value and as a pattern.
fn call_with_locals(h: &crate::spec::Hypercall) -> TokenStream {
    let v = variant(&h.name.v);
    if h.args.is_empty() {
        return quote! { Call::#v };
    }
    let fields = h.args.iter().enumerate().map(|(i, a)| {
        let f = crate::names::ident(&a.name.v);
        let l = format_ident!("arg{i}");
        quote! { #f: #l }
    });
    quote! { Call::#v { #(#fields),* } }
}

/// Statements binding `arg{i}` to argument `i`, checked and typed; they return early
/// with a `BadArgument` on a violation.
fn arg_check(spec: &Spec, a: &crate::spec::Arg, i: usize) -> TokenStream {
    let local = format_ident!("arg{i}");
    let i = super::usize_lit(i as u64);
    let mut e = quote! { args[#i] };
    if let Some((lo, hi)) = a.range {
        let lo = super::u64_lit(lo);
        let hi = super::u64_lit(hi);
        e = quote! { check_range(call, #i, #e, #lo, #hi)? };
    }
    if let Some(al) = a.align {
        let al = super::u64_lit(al);
        e = quote! { check_align(call, #i, #e, #al)? };
    }
    let prim = spec.arg_prim(&a.ty);
    if let ArgType::Named(ti) = &a.ty
        && let TypeKind::Enum { .. } = &spec.types[*ti].kind
    {
        let id = crate::names::camel_ident(&spec.types[*ti].name.v);
        let tname = &spec.types[*ti].name.v;
        let raw = if prim == Prim::U64 {
            quote! { Some(args[#i]) }
        } else {
            let ty = super::prim(prim);
            quote! { #ty::try_from(args[#i]).ok() }
        };
        return quote! {
            let #local = match #raw.and_then(super::types::#id::from_raw) {
                Some(v) => v,
                None => return Err(bad(call, #i, args[#i], Violation::Enum { ty: #tname }).into()),
            };
        };
    }
    let e = match prim {
        Prim::U64 => e,
        Prim::Bool => quote! {
            match #e {
                0 => false,
                1 => true,
                _ => return Err(bad(call, #i, args[#i], Violation::Bool).into()),
            }
        },
        p => {
            let ty = super::prim(p);
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
