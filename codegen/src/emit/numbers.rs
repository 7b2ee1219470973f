//! `numbers`: the hypercall enum, a const per number, and the spec's named constants.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, doc, nr_const, usize_lit, variant};
use crate::names::upper;
use crate::spec::{ConstValue, Num, Spec};

pub(crate) fn emit(spec: &Spec) -> Module {
    let name = &spec.abi.name.v;
    let version = spec.abi.version;
    let arg_regs = usize_lit(spec.arg_regs() as u64);
    let hc = &spec.hypercalls;
    let n = usize_lit(hc.len() as u64);

    let nr_consts = hc.iter().map(|h| {
        let id = nr_const(&h.name.v);
        // As the spec wrote it: a const's name, or hex.
        let nr = super::host::num_in(&h.nr_written, &TokenStream::new());
        let d = doc(&format!("`{}`: {}", h.name.v, h.doc));
        quote! { #d pub const #id: u64 = #nr; }
    });
    let named_consts = spec.consts.iter().map(|c| {
        let id = format_ident!("{}", upper(&c.name.v));
        let d = doc(c
            .doc
            .as_deref()
            .unwrap_or(&format!("The constant `{}`.", c.name.v)));
        match &c.value {
            ConstValue::Int(n) => {
                // In the base the spec wrote it in.
                let v = super::host::num_in(
                    &Num {
                        value: *n,
                        form: c.form.clone(),
                    },
                    &TokenStream::new(),
                );
                quote! { #d pub const #id: u64 = #v; }
            }
            ConstValue::Text(t) => quote! { #d pub const #id: &str = #t; },
        }
    });
    let variants = hc.iter().map(|h| {
        let v = variant(&h.name.v);
        let d = doc(&crate::markdown::run_on(
            &h.doc,
            &format!(" (number {}).", h.nr.v),
        ));
        quote! { #d #v }
    });
    let all = hc.iter().map(|h| {
        let v = variant(&h.name.v);
        quote! { Hypercall::#v }
    });
    let arms = |f: &dyn Fn(&crate::spec::Hypercall) -> TokenStream| -> TokenStream {
        let arms = hc.iter().map(|h| {
            let v = variant(&h.name.v);
            let body = f(h);
            quote! { Hypercall::#v => #body, }
        });
        quote! { match self { #(#arms)* } }
    };
    let nr_match = arms(&|h| {
        let c = nr_const(&h.name.v);
        quote! { #c }
    });
    let name_match = arms(&|h| {
        let s = &h.name.v;
        quote! { #s }
    });
    let count_match = arms(&|h| {
        let n = usize_lit(h.args.len() as u64);
        quote! { #n }
    });
    let args_match = arms(&|h| {
        let names = h.args.iter().map(|a| &a.name.v);
        quote! { &[#(#names),*] }
    });
    let lazy_match = arms(&|h| {
        let l = h.lazy;
        quote! { #l }
    });
    let ret_match = arms(&|h| {
        let r = h.ret.is_some() || h.results.iter().any(|r| r.slot == 0);
        quote! { #r }
    });
    let from_arms = hc.iter().map(|h| {
        let c = nr_const(&h.name.v);
        let v = variant(&h.name.v);
        quote! { #c => Ok(Hypercall::#v), }
    });
    let result_regs = spec.has_results().then(|| {
        let n = usize_lit(spec.result_regs() as u64);
        quote! {
            /// Registers a call may answer in: the transport's result register, then its
            /// `ARG_REGS` argument registers (the length of the array a transport's
            /// `hypercall_results` hands back and of the host's `ResultRegs`).
            pub const RESULT_REGS: usize = #n;
        }
    });
    let abi_doc = format!("Name of the ABI: `{name}`.");
    let abi_doc_attrs = doc(&abi_doc);

    let items = quote! {
        #abi_doc_attrs
        pub const ABI_NAME: &str = #name;
        /// Version of the ABI.
        pub const ABI_VERSION: u32 = #version;
        /// Argument registers every transport carries: the length of the argument array a
        /// hypercall travels with. Arguments a call does not use travel as 0.
        pub const ARG_REGS: usize = #arg_regs;
        #result_regs

        #(#nr_consts)*

        #(#named_consts)*

        /// Every hypercall of the ABI.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Hypercall {
            #(#variants,)*
        }

        impl Hypercall {
            /// Every hypercall, in spec order.
            pub const ALL: [Hypercall; #n] = [#(#all),*];

            /// The call number.
            pub const fn nr(self) -> u64 { #nr_match }

            /// The spec's name for the call.
            pub const fn name(self) -> &'static str { #name_match }

            /// How many arguments the call takes.
            pub const fn arg_count(self) -> usize { #count_match }

            /// The arguments' names, in register order.
            pub const fn arg_names(self) -> &'static [&'static str] { #args_match }

            /// The position of argument `name` (0 = first argument register), if the call
            /// has one called that.
            pub fn arg_index(self, name: &str) -> Option<usize> {
                self.arg_names().iter().position(|n| *n == name)
            }

            /// Whether the guest may queue the call in the async ring while in lazy mode.
            pub const fn is_lazy(self) -> bool { #lazy_match }

            /// Whether the call returns a value in the result register.
            pub const fn returns_value(self) -> bool { #ret_match }
        }

        impl ::core::fmt::Display for Hypercall {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "{} ({})", self.name(), self.nr())
            }
        }

        /// A number that names no hypercall.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct UnknownHypercall(pub u64);

        impl ::core::fmt::Display for UnknownHypercall {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "unknown hypercall number {}", self.0)
            }
        }

        impl ::core::error::Error for UnknownHypercall {}

        impl ::core::convert::TryFrom<u64> for Hypercall {
            type Error = UnknownHypercall;
            fn try_from(nr: u64) -> ::core::result::Result<Self, UnknownHypercall> {
                match nr {
                    #(#from_arms)*
                    _ => Err(UnknownHypercall(nr)),
                }
            }
        }
    };
    Module {
        name: "numbers",
        doc: format!(
            "Hypercall numbers and named constants of the `{name}` ABI, version {version}."
        ),
        items,
    }
}
