//! Room: `results`, typed values a call answers in several registers, on both sides: the
//! transports' `hypercall_results` (every register a result may come back in), the guest's
//! decoding of those registers into the call's typed value (a `Result` when one of them is
//! an error code or a register can hold a value its type cannot), the results structs in
//! `types`, and the host's `ResultRegs`: the value a handler returns, put in its registers.
//!
//! A result's place (`slot`) is 0 for the transport's result register and `1 + i` for its
//! argument register `i`; `check.rs` made it the same in every transport.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{arg_type, doc, prim, to_u64, usize_lit};
use crate::names::{camel, ident};
use crate::spec::*;

/// The `Transport` trait of a spec with results: `hypercall_results` hands back every
/// result register; `hypercall` (the result register alone) defaults to its first.
pub(super) fn transport_trait() -> TokenStream {
    quote! {
        /// A way for the guest to trap to the host with a hypercall.
        ///
        /// The generated transports execute the real instruction; tests and in-process hosts
        /// implement it to call the host's dispatch directly (`hypercall_results` is enough:
        /// `hypercall` defaults to its result register).
        pub trait Transport {
            /// Traps to the host with call number `nr` and arguments `args`, and returns the
            /// result register.
            #[inline]
            fn hypercall(&self, nr: u64, args: [u64; super::numbers::ARG_REGS]) -> u64 {
                Transport::hypercall_results(self, nr, args)[0]
            }

            /// Traps like [`Transport::hypercall`] and returns every register a result may
            /// come back in: the result register, then the argument registers as the host
            /// left them.
            fn hypercall_results(
                &self,
                nr: u64,
                args: [u64; super::numbers::ARG_REGS],
            ) -> [u64; super::numbers::RESULT_REGS];
        }

        impl<T: Transport + ?::core::marker::Sized> Transport for &T {
            #[inline]
            fn hypercall(&self, nr: u64, args: [u64; super::numbers::ARG_REGS]) -> u64 {
                (**self).hypercall(nr, args)
            }

            #[inline]
            fn hypercall_results(
                &self,
                nr: u64,
                args: [u64; super::numbers::ARG_REGS],
            ) -> [u64; super::numbers::RESULT_REGS] {
                (**self).hypercall_results(nr, args)
            }
        }
    }
}

/// `CallError`: why a call with typed results has no values.
pub(super) fn call_error() -> TokenStream {
    quote! {
        /// Why a call with typed results returned no values: the error code the host
        /// answered with, or a register holding a value its type does not have.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum CallError<E = ::core::convert::Infallible> {
            /// The host answered with this error code (the call's `error` result).
            Failed(E),
            /// A result register held a value its type does not have (an error code the
            /// enum does not list, a value wider than its type): the host does not follow the
            /// spec this guest was built from.
            BadResult {
                /// The hypercall's spec name.
                call: &'static str,
                /// The result's spec name.
                result: &'static str,
                /// What its register held.
                value: u64,
            },
        }

        impl<E: ::core::fmt::Debug> ::core::fmt::Display for CallError<E> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    CallError::Failed(e) => write!(f, "the host answered {e:?}"),
                    CallError::BadResult { call, result, value } => write!(
                        f,
                        "{call}: result `{result}` = {value:#x} is not a value of its type"
                    ),
                }
            }
        }

        impl<E: ::core::fmt::Debug> ::core::error::Error for CallError<E> {}
    }
}

/// Whether every value of `ty` is any register's value (u64 and its aliases).
fn total(spec: &Spec, ty: &ArgType) -> bool {
    match ty {
        ArgType::Prim(p) => *p == Prim::U64,
        ArgType::Named(i) => matches!(spec.types[*i].kind, TypeKind::Alias(Prim::U64)),
    }
}

/// Whether the guest's wrapper of `h` returns a `Result` (an error code, or a register that
/// may hold a value its type does not have).
fn fallible(spec: &Spec, h: &Hypercall) -> bool {
    h.error_result().is_some() || h.values().any(|r| !total(spec, &r.ty))
}

/// The results struct's name: `<Call>Results`.
fn struct_ident(h: &Hypercall) -> proc_macro2::Ident {
    format_ident!("{}Results", camel(&h.name.v))
}

/// What a call with results answers with when it succeeds: `()`, its one value, or its
/// results struct.
pub(super) fn value_type(spec: &Spec, h: &Hypercall) -> TokenStream {
    let vals: Vec<&CallResult> = h.values().collect();
    match vals.as_slice() {
        [] => quote! { () },
        [one] => arg_type(spec, &one.ty),
        _ => {
            let id = struct_ident(h);
            quote! { super::types::#id }
        }
    }
}

/// The error enum of `h`'s error result.
fn error_type(spec: &Spec, h: &Hypercall) -> Option<TokenStream> {
    h.error_result().map(|e| arg_type(spec, &e.ty))
}

/// The results structs, for the `types` module.
pub(super) fn structs(spec: &Spec) -> TokenStream {
    let items = spec
        .hypercalls
        .iter()
        .filter(|h| h.values().count() > 1)
        .map(|h| {
            let id = struct_ident(h);
            let d = doc(&format!(
                "What `{}` answers with when it succeeds: its results, each from its register.",
                h.name.v
            ));
            let fields = h.values().map(|r| {
                let f = ident(&r.name.v);
                let t = arg_type(spec, &r.ty);
                let text = match &r.doc {
                    Some(d) => format!("{} (in `{}`.)", d.trim(), r.reg.v.name()),
                    None => format!("Result `{}` (in `{}`).", r.name.v, r.reg.v.name()),
                };
                let fd = doc(&text);
                quote! { #fd pub #f: #t }
            });
            quote! {
                #d
                #[derive(Clone, Copy, Debug, PartialEq, Eq)]
                pub struct #id {
                    #(#fields,)*
                }
            }
        });
    quote! { #(#items)* }
}

/// The wrapper's return type and body after its fills: trap with `regs`, then decode.
pub(super) fn guest_call(
    spec: &Spec,
    h: &Hypercall,
    regs: &[TokenStream],
) -> (TokenStream, TokenStream) {
    let nr = super::nr_const(&h.name.v);
    let call_name = &h.name.v;
    let v = value_type(spec, h);
    let fallible = fallible(spec, h);
    let err = error_type(spec, h);
    let ret = match (&err, fallible) {
        (Some(e), _) => quote! { -> ::core::result::Result<#v, CallError<#e>> },
        (None, true) => quote! { -> ::core::result::Result<#v, CallError> },
        (None, false) => quote! { -> #v },
    };
    let reg_of = |r: &CallResult| {
        let i = usize_lit(r.slot as u64);
        quote! { __regs[#i] }
    };
    let mut body = vec![quote! {
        let __regs = Transport::hypercall_results(self, super::numbers::#nr, [#(#regs),*]);
    }];
    if let Some(e) = h.error_result() {
        let raw = reg_of(e);
        let ok = super::int_lit(e.ok.value, Prim::U64);
        let ety = arg_type(spec, &e.ty);
        let name = &e.name.v;
        let lookup = enum_lookup(spec, &e.ty, &ety, &raw);
        body.push(quote! {
            if #raw != #ok {
                return Err(match #lookup {
                    Some(e) => CallError::Failed(e),
                    None => CallError::BadResult { call: #call_name, result: #name, value: #raw },
                });
            }
        });
    }
    let mut locals = Vec::new();
    for (k, r) in h.values().enumerate() {
        let l = format_ident!("__r{k}");
        let raw = reg_of(r);
        let name = &r.name.v;
        let bad = quote! { return Err(CallError::BadResult { call: #call_name, result: #name, value: #raw }) };
        let p = spec.arg_prim(&r.ty);
        let decode = match &r.ty {
            t if total(spec, t) => raw.clone(),
            ArgType::Named(i) if matches!(spec.types[*i].kind, TypeKind::Enum { .. }) => {
                let ety = arg_type(spec, &r.ty);
                let lookup = enum_lookup(spec, &r.ty, &ety, &raw);
                quote! { match #lookup { Some(v) => v, None => #bad } }
            }
            _ if p == Prim::Bool => quote! {
                match #raw { 0 => false, 1 => true, _ => #bad }
            },
            _ => {
                let t = prim(p);
                quote! { match #t::try_from(#raw) { Ok(v) => v, Err(_) => #bad } }
            }
        };
        body.push(quote! { let #l = #decode; });
        locals.push((ident(&r.name.v), l));
    }
    // One value nothing can go wrong with is the register itself.
    if !fallible && let [one] = h.values().collect::<Vec<_>>().as_slice() {
        body.truncate(1);
        body.push(reg_of(one));
        return (ret, quote! { #(#body)* });
    }
    let value = match locals.as_slice() {
        [] => quote! { () },
        [(_, l)] => quote! { #l },
        _ => {
            let id = struct_ident(h);
            let fs = locals.iter().map(|(f, l)| quote! { #f: #l });
            quote! { super::types::#id { #(#fs),* } }
        }
    };
    if fallible {
        body.push(quote! { Ok(#value) });
    } else {
        body.push(value);
    }
    (ret, quote! { #(#body)* })
}

/// `Enum::from_raw` of register `raw` (narrowed to the repr first).
fn enum_lookup(spec: &Spec, ty: &ArgType, ety: &TokenStream, raw: &TokenStream) -> TokenStream {
    match spec.arg_prim(ty) {
        Prim::U64 => quote! { #ety::from_raw(#raw) },
        p => {
            let t = prim(p);
            quote! { #t::try_from(#raw).ok().and_then(#ety::from_raw) }
        }
    }
}

/// The wrapper's doc lines on results.
pub(super) fn guest_doc(spec: &Spec, h: &Hypercall) -> String {
    if h.results.is_empty() {
        return String::new();
    }
    let mut t = String::from("\n\n# Results\n");
    for r in &h.results {
        let d = r
            .doc
            .as_deref()
            .map(|d| format!(" {}", d.split_whitespace().collect::<Vec<_>>().join(" ")))
            .unwrap_or_default();
        if r.error {
            t.push_str(&format!(
                "\n* `{}` (in `{}`): the error code:{d} {} means success; any other value is `Err(CallError::Failed(code))`.",
                r.name.v,
                r.reg.v.name(),
                r.ok.value
            ));
        } else {
            t.push_str(&format!("\n* `{}` (in `{}`):{d}", r.name.v, r.reg.v.name()));
        }
    }
    if fallible(spec, h) {
        t.push_str("\n\nA register holding a value its type does not have is `Err(CallError::BadResult { .. })`.");
    }
    t
}

/// `ResultRegs`, for the host module.
pub(super) fn host_items() -> TokenStream {
    quote! {
        /// The registers a call answers in, by place: the transport's result register, then
        /// its argument registers (a transport's `RESULT_REGS` names them). A host writes
        /// each `Some` into its register before resuming the guest and leaves the `None`s as
        /// the guest had them.
        pub type ResultRegs = [::core::option::Option<u64>; super::numbers::RESULT_REGS];
    }
}

/// What the handler of `h` returns besides its own error: with an error result
/// `Result<Value, ErrorEnum>`, else the value.
pub(super) fn host_ret_type(spec: &Spec, h: &Hypercall) -> TokenStream {
    let v = value_type(spec, h);
    match error_type(spec, h) {
        Some(e) => quote! { ::core::result::Result<#v, #e> },
        None => v,
    }
}

/// The `ResultRegs` of a call without `results` whose result register gets `ret`.
pub(super) fn plain_answer(spec: &Spec, ret: TokenStream) -> TokenStream {
    let nones = (1..spec.result_regs()).map(|_| quote! { None });
    quote! { [Some(#ret), #(#nones),*] }
}

/// The `ResultRegs` of `h` from its handler's answer `out` (of [`host_ret_type`]): each
/// result in its place, 0 in the result register when no result is there; on an error code,
/// the code in its register and 0 in the others.
pub(super) fn answer(spec: &Spec, h: &Hypercall, out: &TokenStream) -> TokenStream {
    let n = spec.result_regs();
    let place = |vals: &[(usize, TokenStream)]| -> TokenStream {
        let cells = (0..n).map(|i| match vals.iter().find(|(s, _)| *s == i) {
            Some((_, v)) => quote! { Some(#v) },
            None if i == 0 => quote! { Some(0) },
            None => quote! { None },
        });
        quote! { [#(#cells),*] }
    };
    let vals: Vec<&CallResult> = h.values().collect();
    let of = |v: &TokenStream| -> Vec<(usize, TokenStream)> {
        match vals.as_slice() {
            [] => Vec::new(),
            [one] => vec![(one.slot, to_u64(spec, &one.ty, v.clone()))],
            _ => vals
                .iter()
                .map(|r| {
                    let f = ident(&r.name.v);
                    (r.slot, to_u64(spec, &r.ty, quote! { #v.#f }))
                })
                .collect(),
        }
    };
    match h.error_result() {
        None => {
            let v = quote! { value };
            let p = place(&of(&v));
            if vals.is_empty() {
                quote! { { #out; #p } }
            } else {
                quote! { { let value = #out; #p } }
            }
        }
        Some(e) => {
            let ok = super::int_lit(e.ok.value, Prim::U64);
            let v = quote! { value };
            let mut good = of(&v);
            good.push((e.slot, ok));
            let code = to_u64(spec, &e.ty, quote! { code });
            let bad: Vec<(usize, TokenStream)> = h
                .results
                .iter()
                .map(|r| {
                    if r.error {
                        (r.slot, code.clone())
                    } else {
                        (r.slot, quote! { 0 })
                    }
                })
                .collect();
            let (gp, bp) = (place(&good), place(&bad));
            let bind = if vals.is_empty() {
                quote! { Ok(()) }
            } else {
                quote! { Ok(value) }
            };
            quote! {
                match #out {
                    #bind => #gp,
                    Err(code) => #bp,
                }
            }
        }
    }
}

/// The answer `<Abi>DefaultHost` gives a call with results it does not override: success,
/// every value 0 (an enum's variant of value 0, else its first).
pub(super) fn default_value(spec: &Spec, h: &Hypercall) -> TokenStream {
    let zero = |r: &CallResult| -> TokenStream {
        match &r.ty {
            ArgType::Named(i) => match &spec.types[*i].kind {
                TypeKind::Enum { variants, .. } => {
                    let t = arg_type(spec, &r.ty);
                    let v = variants
                        .iter()
                        .find(|v| v.value == 0)
                        .or(variants.first())
                        .map(|v| crate::names::camel_ident(&v.name.v));
                    quote! { #t::#v }
                }
                // An alias of bool is a bool (its 0 is `false`).
                TypeKind::Alias(Prim::Bool) => quote! { false },
                TypeKind::Alias(_) => quote! { 0 },
            },
            ArgType::Prim(Prim::Bool) => quote! { false },
            ArgType::Prim(_) => quote! { 0 },
        }
    };
    let vals: Vec<&CallResult> = h.values().collect();
    let v = match vals.as_slice() {
        [] => quote! { () },
        [one] => zero(one),
        _ => {
            let id = struct_ident(h);
            let fs = vals.iter().map(|r| {
                let f = ident(&r.name.v);
                let z = zero(r);
                quote! { #f: #z }
            });
            quote! { super::types::#id { #(#fs),* } }
        }
    };
    if h.error_result().is_some() {
        quote! { Ok(#v) }
    } else {
        v
    }
}
