//! Room: the entry points a host calls, `decode()`, `run()`, `dispatch()` and
//! `dispatch_slot()`, and `<Abi>DefaultHost`: a host trait whose every method has a default
//! answer, for test doubles and benchmarks that handle only some calls.
//!
//! Hygiene: `run` binds only `argN` in its arms and calls handlers by their trait path
//! (`<Abi>Host::name(host, ..)`), so no argument name can shadow `host`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::{decode, params, ret_type};
use crate::emit::{abi_name_allows, doc, len_allow, many_args, usize_lit};
use crate::names::ident;
use crate::spec::{Hypercall, Ring, Spec};

/// `decode()` around its arms. `args` goes unread when no call takes an argument.
pub(super) fn decode_fn(spec: &Spec, arms: Vec<TokenStream>) -> TokenStream {
    if spec.has_memory() {
        return decode_mem_fn(spec, arms);
    }
    let args = if spec.hypercalls.iter().all(|h| h.args.is_empty()) {
        quote! { _args }
    } else {
        quote! { args }
    };
    quote! {
        /// Checks hypercall `nr` with argument registers `args` against the spec (every
        /// range, alignment, enum and width) and types its arguments. Never panics,
        /// whatever `nr` and `args` are.
        #[inline]
        pub fn decode(
            nr: u64,
            #args: [u64; super::numbers::ARG_REGS],
        ) -> ::core::result::Result<Call, DecodeError> {
            let call = match super::numbers::Hypercall::try_from(nr) {
                Ok(call) => call,
                Err(_) => return Err(DispatchError::UnknownHypercall { nr }),
            };
            match call {
                #(#arms)*
            }
        }
    }
}

/// `decode()` for a spec with memory arguments: it reads them through `mem`, into
/// `scratch` where they are buffers or strings.
fn decode_mem_fn(spec: &Spec, arms: Vec<TokenStream>) -> TokenStream {
    let args = if spec.hypercalls.iter().all(|h| h.args.is_empty()) {
        quote! { _args }
    } else {
        quote! { args }
    };
    let (life, scratch, ret) = if spec.has_scratch() {
        (
            quote! { 'a, },
            quote! { scratch: &'a mut Scratch, },
            quote! { Call<'a> },
        )
    } else {
        (TokenStream::new(), TokenStream::new(), quote! { Call })
    };
    quote! {
        /// Checks hypercall `nr` with argument registers `args` against the spec (every
        /// range, alignment, enum and width) and types its arguments; copies each argument
        /// in guest memory out of `mem` once, before checking it (lengths against their
        /// maximum, alignment, struct fields, NUL and UTF-8), and checks that `out` ones can
        /// be written. Never panics, whatever `nr`, `args` and guest memory hold.
        #[inline]
        pub fn decode<#life M: GuestMemory + ?::core::marker::Sized>(
            mem: &M,
            #scratch
            nr: u64,
            #args: [u64; super::numbers::ARG_REGS],
        ) -> ::core::result::Result<#ret, DecodeError> {
            let call = match super::numbers::Hypercall::try_from(nr) {
                Ok(call) => call,
                Err(_) => return Err(DispatchError::UnknownHypercall { nr }),
            };
            match call {
                #(#arms)*
            }
        }
    }
}

/// `run()`, `dispatch()` and `dispatch_slot()` for a spec with memory arguments: `run`
/// writes `out` memory back after the handler.
fn run_and_dispatch_mem(spec: &Spec, host_trait: &Ident) -> TokenStream {
    let answer_ty = answer_type(spec);
    let arms = spec.hypercalls.iter().map(|h| {
        let name = ident(&h.name.v);
        let fields = super::memory::call_fields(spec, h);
        let v = crate::emit::variant(&h.name.v);
        let pat = if h.args.is_empty() && h.mem.is_empty() {
            quote! { Call::#v }
        } else {
            let fs = fields.iter().map(|f| {
                let (n, l) = (&f.name, &f.local);
                let m = f.mem.is_some_and(|m| m.dir.writes() && matches!(m.kind, crate::spec::MemKind::Struct(_)));
                match (n == l, m) {
                    (true, false) => quote! { #n },
                    (true, true) => quote! { mut #n },
                    (false, false) => quote! { #n: #l },
                    (false, true) => quote! { #n: mut #l },
                }
            });
            quote! { Call::#v { #(#fs),* } }
        };
        let pass = fields.iter().map(super::memory::handler_arg);
        let wb = super::memory::write_back(spec, h);
        let out = if !h.results.is_empty() {
            quote! { let __out = #host_trait::#name(host, #(#pass),*).map_err(DispatchError::Host)?; }
        } else if h.ret.is_some() {
            quote! { let ret = #host_trait::#name(host, #(#pass),*).map_err(DispatchError::Host)?; }
        } else {
            quote! { #host_trait::#name(host, #(#pass),*).map_err(DispatchError::Host)?; let ret = 0; }
        };
        let answer = if spec.has_results() {
            answer_of(spec, h)
        } else {
            quote! { ret }
        };
        quote! { #pat => { #out #wb Ok(#answer) } }
    });
    let uses_mem = spec
        .hypercalls
        .iter()
        .any(|h| h.mem.iter().any(|m| m.dir.writes()));
    let mem_param = if uses_mem {
        quote! { mem }
    } else {
        quote! { _mem }
    };
    let (scratch, scratch_arg, call_ty) = if spec.has_scratch() {
        (
            quote! { scratch: &mut Scratch, },
            quote! { scratch, },
            quote! { Call<'_> },
        )
    } else {
        (TokenStream::new(), TokenStream::new(), quote! { Call })
    };
    let ring = spec.ring.as_ref().map(|r| {
        let (args, widen) = slot_args(spec, r);
        quote! {
            /// Dispatches a call read from an async-ring slot: the slot's arguments, with 0 in
            /// the registers a slot does not hold. Read the slot once into `nr` and `args`
            /// before calling this; the guest may change it at any time.
            #[inline]
            pub fn dispatch_slot<H: #host_trait + ?::core::marker::Sized, M: GuestMemory + ?::core::marker::Sized>(
                host: &mut H,
                mem: &M,
                #scratch
                nr: u64,
                #args: [u64; super::shared::RING_ARGS],
            ) -> ::core::result::Result<#answer_ty, DispatchError<H::Error>> {
                dispatch(host, mem, #scratch_arg nr, [#(#widen),*])
            }
        }
    });
    quote! {
        /// Hands a decoded call to its handler on `host`, then writes the call's `out` and
        /// `inout` memory back to `mem`. Returns the value for the result register (0 for
        /// calls that return nothing).
        #[inline]
        pub fn run<H: #host_trait + ?::core::marker::Sized, M: GuestMemory + ?::core::marker::Sized>(
            host: &mut H,
            #mem_param: &M,
            call: #call_ty,
        ) -> ::core::result::Result<#answer_ty, DispatchError<H::Error>> {
            match call {
                #(#arms)*
            }
        }

        /// Runs hypercall `nr` with argument registers `args` on `host`: [`decode`] (which
        /// copies memory arguments out of `mem`), then [`run`]. The handler runs only when
        /// every argument meets the spec. Never panics, whatever `nr`, `args` and guest
        /// memory hold.
        #[inline]
        pub fn dispatch<H: #host_trait + ?::core::marker::Sized, M: GuestMemory + ?::core::marker::Sized>(
            host: &mut H,
            mem: &M,
            #scratch
            nr: u64,
            args: [u64; super::numbers::ARG_REGS],
        ) -> ::core::result::Result<#answer_ty, DispatchError<H::Error>> {
            let call = match decode(mem, #scratch_arg nr, args) {
                Ok(call) => call,
                Err(e) => return Err(e.for_host()),
            };
            run(host, mem, call)
        }

        #ring
    }
}

/// `run()`, `dispatch()` and, with a ring, `dispatch_slot()`.
pub(super) fn run_and_dispatch(spec: &Spec, host_trait: &Ident) -> TokenStream {
    if spec.has_memory() {
        return run_and_dispatch_mem(spec, host_trait);
    }
    let answer_ty = answer_type(spec);
    let arms = spec.hypercalls.iter().map(|h| {
        let name = ident(&h.name.v);
        let pat = decode::call_with_locals(spec, h);
        let locals = (0..h.args.len()).map(|i| format_ident!("arg{i}"));
        if spec.has_results() {
            let answer = answer_of(spec, h);
            if !h.results.is_empty() {
                quote! { #pat => { let __out = #host_trait::#name(host, #(#locals),*)?; Ok(#answer) } }
            } else if h.ret.is_some() {
                quote! { #pat => { let ret = #host_trait::#name(host, #(#locals),*)?; Ok(#answer) } }
            } else {
                quote! { #pat => { #host_trait::#name(host, #(#locals),*)?; let ret = 0; Ok(#answer) } }
            }
        } else if h.ret.is_some() {
            quote! { #pat => #host_trait::#name(host, #(#locals),*), }
        } else {
            quote! { #pat => { #host_trait::#name(host, #(#locals),*)?; Ok(0) } }
        }
    });
    let ring = spec.ring.as_ref().map(|r| {
        let (args, widen) = slot_args(spec, r);
        quote! {
            /// Dispatches a call read from an async-ring slot: the slot's arguments, with 0 in
            /// the registers a slot does not hold. Read the slot once into `nr` and `args`
            /// before calling this; the guest may change it at any time.
            #[inline]
            pub fn dispatch_slot<H: #host_trait + ?Sized>(
                host: &mut H,
                nr: u64,
                #args: [u64; super::shared::RING_ARGS],
            ) -> ::core::result::Result<#answer_ty, DispatchError<H::Error>> {
                dispatch(host, nr, [#(#widen),*])
            }
        }
    });
    quote! {
        /// Hands a decoded call to its handler on `host`. Returns the value for the result
        /// register (0 for calls that return nothing).
        #[inline]
        pub fn run<H: #host_trait + ?Sized>(
            host: &mut H,
            call: Call,
        ) -> ::core::result::Result<#answer_ty, H::Error> {
            match call {
                #(#arms)*
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
        ) -> ::core::result::Result<#answer_ty, DispatchError<H::Error>> {
            let call = match decode(nr, args) {
                Ok(call) => call,
                Err(e) => return Err(e.for_host()),
            };
            run(host, call).map_err(DispatchError::Host)
        }

        #ring
    }
}

/// The locals a handler's parameters bind, in `Call`'s field order: the arguments, or with
/// memory arguments the fields their decode produces.
fn call_locals(spec: &Spec, h: &Hypercall) -> Vec<Ident> {
    if h.mem.is_empty() {
        h.args.iter().map(|a| ident(&a.name.v)).collect()
    } else {
        super::memory::call_fields(spec, h)
            .into_iter()
            .map(|f| f.name)
            .collect()
    }
}

/// `<Abi>DefaultHost` and its blanket `<Abi>Host` implementation.
pub(super) fn default_host(spec: &Spec, host_trait: &Ident) -> TokenStream {
    let abi = crate::emit::abi_camel(spec);
    let default_trait = format_ident!("{abi}DefaultHost");
    let methods = spec.hypercalls.iter().map(|h| {
        let name = ident(&h.name.v);
        let params = params(spec, h);
        let fields = call_locals(spec, h);
        let v = crate::emit::variant(&h.name.v);
        let ret = ret_type(spec, h);
        // With memory arguments, a `Call` borrows guest memory the default cannot hand on:
        // `unhandled` gets the call's number, and the arguments are dropped.
        let call = if spec.has_memory() {
            if fields.is_empty() {
                quote! { super::numbers::Hypercall::#v }
            } else {
                quote! { { #(let _ = #fields;)* super::numbers::Hypercall::#v } }
            }
        } else if h.args.is_empty() {
            quote! { Call::#v }
        } else {
            quote! { Call::#v { #(#fields),* } }
        };
        let body = if !h.results.is_empty() {
            let v = crate::emit::results::default_value(spec, h);
            quote! { self.unhandled(#call).map(|_| #v) }
        } else if h.ret.is_some() {
            quote! { self.unhandled(#call) }
        } else {
            quote! { self.unhandled(#call).map(|_| ()) }
        };
        let d = doc(&format!(
            "`{}` (number {}): [`{host_trait}::{}`], by default [`Self::unhandled`].",
            h.name.v,
            h.nr.v,
            crate::names::rust_name(&h.name.v)
        ));
        let many = many_args(params.len());
        let allows = abi_name_allows(&h.name.v);
        quote! {
            #allows
            #d
            #many
            #[inline]
            fn #name(&mut self, #(#params),*) -> ::core::result::Result<#ret, Self::Error> {
                #body
            }
        }
    });
    let forwards = spec.hypercalls.iter().map(|h| {
        let name = ident(&h.name.v);
        let params = params(spec, h);
        let locals = call_locals(spec, h);
        let ret = ret_type(spec, h);
        let many = many_args(params.len());
        let allows = abi_name_allows(&h.name.v);
        quote! {
            #allows
            #many
            #[inline]
            fn #name(&mut self, #(#params),*) -> ::core::result::Result<#ret, Self::Error> {
                #default_trait::#name(self, #(#locals),*)
            }
        }
    });
    let lens = len_allow(spec.hypercalls.iter().map(|h| h.name.v.as_str()));
    let d = doc(&format!(
        "A [`{host_trait}`] that answers every call it does not override: each method defaults to [`Self::unhandled`], which accepts the call and returns 0.\n\nFor test doubles and benchmarks: implement this trait, override the calls the test is about, and the double follows the spec when a call is added. A real host implements [`{host_trait}`] itself, so that a new call fails its build until it is handled."
    ));
    let unhandled = if spec.has_memory() {
        quote! {
            /// What every call the implementation does not override does: by default,
            /// accept it, return 0 and leave `out` memory as [`decode`] made it (zero).
            #[inline]
            fn unhandled(&mut self, call: super::numbers::Hypercall) -> ::core::result::Result<u64, Self::Error> {
                let _ = call;
                Ok(0)
            }
        }
    } else {
        quote! {
            /// What every call the implementation does not override does: by default,
            /// accept it and return 0.
            #[inline]
            fn unhandled(&mut self, call: Call) -> ::core::result::Result<u64, Self::Error> {
                let _ = call;
                Ok(0)
            }
        }
    };
    quote! {
        #d
        #lens
        pub trait #default_trait {
            /// Why a handler refused a call.
            type Error;

            #unhandled

            #(#methods)*
        }

        impl<T: #default_trait + ?Sized> #host_trait for T {
            type Error = T::Error;

            #(#forwards)*
        }
    }
}

/// What `run` and `dispatch` answer with: the result register's value, or with `results`
/// in the spec every result register's ([`ResultRegs`]).
fn answer_type(spec: &Spec) -> TokenStream {
    if spec.has_results() {
        quote! { ResultRegs }
    } else {
        quote! { u64 }
    }
}

/// The `ResultRegs` expression of an arm of `run` (with `results` in the spec): from the
/// handler's `out` for a call with results, else from `ret`.
fn answer_of(spec: &Spec, h: &Hypercall) -> TokenStream {
    if h.results.is_empty() {
        crate::emit::results::plain_answer(spec, quote! { ret })
    } else {
        crate::emit::results::answer(spec, h, &quote! { __out })
    }
}

/// `dispatch_slot`'s parameter name for the slot's arguments (`_args` when a slot holds
/// none) and the full register list it widens them to: the slot's arguments, then 0.
fn slot_args(spec: &Spec, r: &Ring) -> (TokenStream, Vec<TokenStream>) {
    let ring_args = r.args as usize;
    let widen = (0..spec.arg_regs())
        .map(|i| {
            if i < ring_args {
                let i = usize_lit(i as u64);
                quote! { args[#i] }
            } else {
                quote! { 0 }
            }
        })
        .collect();
    let args = if ring_args == 0 {
        quote! { _args }
    } else {
        quote! { args }
    };
    (args, widen)
}
