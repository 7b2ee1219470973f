//! Room: the `host` module's emitter: the handler trait (one method per hypercall taking
//! typed, validated arguments) and `Call`, assembled with the error types (`errors.rs`),
//! `decode()` (`decode.rs`), `run()`, `dispatch()` and the default-answering host for
//! test and bench doubles (`run.rs`), and valid sample arguments (`sample.rs`).

mod decode;
mod errors;
pub(crate) mod memory;
mod run;
mod sample;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, abi_camel, abi_name_allows, arg_type, doc, len_allow, variant};
use crate::names::ident;
use crate::spec::{Hypercall, Spec};

pub(crate) use decode::num_in;

/// The handler's parameters, `name: Type` (a memory argument as its typed value).
fn params(spec: &Spec, h: &Hypercall) -> Vec<TokenStream> {
    if !h.mem.is_empty() {
        return memory::call_fields(spec, h)
            .iter()
            .map(|f| {
                let id = &f.name;
                let ty = match f.mem {
                    Some(m) => memory::handler_type(spec, m, None),
                    None => f.ty.clone(),
                };
                quote! { #id: #ty }
            })
            .collect();
    }
    h.args
        .iter()
        .map(|a| {
            let id = ident(&a.name.v);
            let ty = arg_type(spec, &a.ty);
            quote! { #id: #ty }
        })
        .collect()
}

/// What a handler returns besides its error: `u64` for a call with a result, its typed
/// value for a call with `results`, else `()`.
fn ret_type(spec: &Spec, h: &Hypercall) -> TokenStream {
    if !h.results.is_empty() {
        super::results::host_ret_type(spec, h)
    } else if h.ret.is_some() {
        quote! { u64 }
    } else {
        quote! { () }
    }
}

/// The handler trait's method for `h`.
fn method(spec: &Spec, h: &Hypercall) -> TokenStream {
    let name = ident(&h.name.v);
    let params = params(spec, h);
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
    // Every parameter counts, those located by `at` (no register) too.
    let many = super::many_args(params.len());
    let allows = abi_name_allows(&h.name.v);
    let ret = ret_type(spec, h);
    quote! {
        #allows
        #d
        #many
        fn #name(&mut self, #(#params),*) -> ::core::result::Result<#ret, Self::Error>;
    }
}

/// `Call`, with `hypercall()` and `raw_args()`.
fn call_enum(spec: &Spec) -> TokenStream {
    let variants = spec.hypercalls.iter().map(|h| {
        let v = variant(&h.name.v);
        let d = doc(&format!("`{}` (number {}).", h.name.v, h.nr.v));
        if !h.mem.is_empty() {
            let fields = memory::call_fields(spec, h).into_iter().map(|f| {
                let fd = doc(&f.doc);
                let (n, t) = (f.name, f.ty);
                quote! { #fd #n: #t }
            });
            return quote! { #d #v { #(#fields),* } };
        }
        if h.args.is_empty() {
            return quote! { #d #v };
        }
        let fields = h.args.iter().map(|a| {
            let f = ident(&a.name.v);
            let ty = arg_type(spec, &a.ty);
            let fd = doc(a
                .doc
                .as_deref()
                .unwrap_or(&format!("Argument `{}`.", a.name.v)));
            quote! { #fd #f: #ty }
        });
        quote! { #d #v { #(#fields),* } }
    });
    let hc = spec.hypercalls.iter().map(|h| {
        let v = variant(&h.name.v);
        let pat = if h.args.is_empty() {
            quote! { Call::#v }
        } else {
            quote! { Call::#v { .. } }
        };
        quote! { #pat => super::numbers::Hypercall::#v, }
    });
    let arg_regs = spec.arg_regs();
    let mem = spec.has_memory();
    let raw = spec.hypercalls.iter().map(|h| {
        if mem {
            // Matching on `self`: every local is a reference.
            let mut regs: Vec<TokenStream> = (0..h.args.len())
                .map(|i| match h.mem_at_reg(i) {
                    Some((k, _)) => {
                        let l = format_ident!("mem{k}");
                        quote! { #l.addr }
                    }
                    None => {
                        let l = format_ident!("arg{i}");
                        let is_enum = matches!(&h.args[i].ty, crate::spec::ArgType::Named(t) if matches!(spec.types[*t].kind, crate::spec::TypeKind::Enum { .. }));
                        if is_enum {
                            super::to_u64(spec, &h.args[i].ty, quote! { #l })
                        } else {
                            super::to_u64(spec, &h.args[i].ty, quote! { *#l })
                        }
                    }
                })
                .collect();
            while regs.len() < arg_regs {
                regs.push(quote! { 0 });
            }
            let v = variant(&h.name.v);
            let names = memory::call_fields(spec, h)
                .into_iter()
                .filter(|f| f.mem.is_none_or(|m| matches!(m.at, crate::spec::MemAt::Reg(_))))
                .map(|f| {
                    let (n, l) = (f.name, f.local);
                    if n == l {
                        quote! { #n }
                    } else {
                        quote! { #n: #l }
                    }
                });
            // A call without arguments is a unit variant.
            let pat = if h.args.is_empty() && h.mem.is_empty() {
                quote! { Call::#v }
            } else {
                quote! { Call::#v { #(#names,)* .. } }
            };
            return quote! { #pat => [#(#regs),*], };
        }
        let pat = decode::call_with_locals(spec, h);
        let mut regs: Vec<TokenStream> = (0..h.args.len())
            .map(|i| {
                let l = format_ident!("arg{i}");
                super::to_u64(spec, &h.args[i].ty, quote! { #l })
            })
            .collect();
        while regs.len() < arg_regs {
            regs.push(quote! { 0 });
        }
        quote! { #pat => [#(#regs),*], }
    });
    let raw_fn = if spec.hypercalls.iter().all(|h| h.args.is_empty()) {
        // Nothing to take apart: every call's registers are all 0.
        quote! {
            /// The argument registers the call travels with (unused ones 0): what
            /// [`decode`] made it from, for a trace or a test double.
            pub fn raw_args(&self) -> [u64; super::numbers::ARG_REGS] {
                [0; super::numbers::ARG_REGS]
            }
        }
    } else if mem {
        quote! {
            /// The argument registers the call travels with (unused ones 0; a memory
            /// argument's register is its address): what [`decode`] made it from, for a
            /// trace or a test double.
            pub fn raw_args(&self) -> [u64; super::numbers::ARG_REGS] {
                match self { #(#raw)* }
            }
        }
    } else {
        quote! {
            /// The argument registers the call travels with (unused ones 0): what
            /// [`decode`] made it from, for a trace or a test double.
            pub fn raw_args(&self) -> [u64; super::numbers::ARG_REGS] {
                match *self { #(#raw)* }
            }
        }
    };
    let (derive, life) = if !mem {
        (
            quote! { #[derive(Clone, Copy, Debug, PartialEq, Eq)] },
            TokenStream::new(),
        )
    } else if spec.has_scratch() {
        (quote! { #[derive(Debug, PartialEq, Eq)] }, quote! { <'a> })
    } else {
        (
            quote! { #[derive(Debug, PartialEq, Eq)] },
            TokenStream::new(),
        )
    };
    // `Mem<Struct>` holds the host's one copy of a struct argument by value (a no_std host
    // has nothing to box it in), so variants differ in size as the spec's structs do.
    let large = spec
        .hypercalls
        .iter()
        .flat_map(|h| &h.mem)
        .any(|m| matches!(m.kind, crate::spec::MemKind::Struct(_)))
        .then(|| {
            let c = super::comment(
                "A struct argument is the host's copy of it, held by value (no allocation): variants are as large as the ABI's structs.",
            );
            quote! { #c #[allow(clippy::large_enum_variant)] }
        });
    let mem_doc = mem.then(|| {
        quote! {
            ///
            /// An argument in guest memory is the host's copy of it, with the address the
            /// guest gave ([`Mem`]); buffers and strings borrow the [`Scratch`] that
            /// [`decode`] copied them into.
        }
    });
    quote! {
        /// A hypercall with its arguments checked against the spec and typed: what
        /// [`decode`] makes of a trap, and what [`run`] hands to a handler.
        #mem_doc
        #derive
        #large
        pub enum Call #life {
            #(#variants,)*
        }

        impl #life Call #life {
            /// Which hypercall this is.
            pub const fn hypercall(&self) -> super::numbers::Hypercall {
                match self { #(#hc)* }
            }

            #raw_fn
        }
    }
}

pub(crate) fn emit(spec: &Spec) -> Module {
    let abi = abi_camel(spec);
    let host_trait = format_ident!("{abi}Host");
    let methods = spec.hypercalls.iter().map(|h| method(spec, h));
    let host_doc = doc(&format!(
        "The host side of the `{}` ABI: one method per hypercall, with typed arguments that [`dispatch`] has validated against the spec.\n\nA handler's error stops the dispatch and comes back as [`DispatchError::Host`]: that is how a host kills a guest for what only it can check (an address outside guest memory, a call before INIT).\n\nA test double or a benchmark that handles only some calls implements [`{abi}DefaultHost`] instead, and follows the spec without an edit when a call is added.",
        spec.abi.name.v
    ));
    let lens = len_allow(spec.hypercalls.iter().map(|h| h.name.v.as_str()));
    let error_types = errors::types(spec);
    let helpers = errors::helpers(spec);
    let memory = spec.has_memory().then(|| memory::items(spec));
    let result_regs = spec.has_results().then(super::results::host_items);
    let call = call_enum(spec);
    let decode = run::decode_fn(spec, decode::arms(spec));
    let run = run::run_and_dispatch(spec, &host_trait);
    let defaults = run::default_host(spec, &host_trait);
    let sample = sample::sample_fn(spec);
    let items = quote! {
        #host_doc
        #lens
        pub trait #host_trait {
            /// Why a handler refused a call.
            type Error;

            #(#methods)*
        }

        #error_types

        #helpers

        #memory

        #result_regs

        #call

        #decode

        #run

        #defaults

        #sample
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
