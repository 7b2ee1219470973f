//! Room: the host module's error types, the same for every spec: the constraint an
//! argument broke (`Violation`), the argument (`BadArgument`), and one `DispatchError<E>`
//! whose `DecodeError` is the same enum without a handler error, so the variants are
//! written once. Plus the private check helpers, emitted only where the spec's
//! constraints call them (the module stays warning-free).

use proc_macro2::TokenStream;
use quote::quote;

use crate::spec::{ArgType, Prim, Spec, TypeKind};

/// `Violation`, `BadArgument`, `DispatchError` and `DecodeError`.
pub(super) fn types(spec: &Spec) -> TokenStream {
    let mem = spec.has_memory();
    let bad_memory = mem.then(|| {
        quote! {
            /// An argument in guest memory broke the spec (or could not be written back
            /// after the handler ran).
            BadMemory(BadMemory),
        }
    });
    let bad_memory_for_host =
        mem.then(|| quote! { DispatchError::BadMemory(b) => DispatchError::BadMemory(b), });
    let bad_memory_fmt = mem.then(|| quote! { DispatchError::BadMemory(b) => b.fmt(f), });
    let decode_doc = if mem {
        quote! {
            /// Why [`decode`] refused a trap: a [`DispatchError`] that no handler was involved
            /// in, so only `UnknownHypercall`, `BadArgument` and `BadMemory` can happen.
        }
    } else {
        quote! {
            /// Why [`decode`] refused a trap: a [`DispatchError`] that no handler was involved
            /// in, so only `UnknownHypercall` and `BadArgument` can happen.
        }
    };
    quote! {
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

        /// Why [`dispatch`] did not run a call to completion: the guest's call broke the
        /// spec, or the handler refused it (`E`, the host's error).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DispatchError<E> {
            /// No hypercall has this number.
            UnknownHypercall {
                /// The number the guest passed.
                nr: u64,
            },
            /// An argument broke the spec; the handler did not run.
            BadArgument(BadArgument),
            #bad_memory
            /// The handler refused the call.
            Host(E),
        }

        #decode_doc
        pub type DecodeError = DispatchError<::core::convert::Infallible>;

        impl DecodeError {
            /// The same error, as [`dispatch`] reports it for a host whose handlers fail
            /// with `E`.
            #[inline]
            pub const fn for_host<E>(self) -> DispatchError<E> {
                match self {
                    DispatchError::UnknownHypercall { nr } => DispatchError::UnknownHypercall { nr },
                    DispatchError::BadArgument(b) => DispatchError::BadArgument(b),
                    #bad_memory_for_host
                }
            }
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
                    #bad_memory_fmt
                    DispatchError::Host(e) => e.fmt(f),
                }
            }
        }

        impl<E: ::core::fmt::Debug + ::core::fmt::Display> ::core::error::Error for DispatchError<E> {}
    }
}

/// `bad()`, `check_range()` and `check_align()`, each only if a constraint calls it.
pub(super) fn helpers(spec: &Spec) -> TokenStream {
    let args = || spec.hypercalls.iter().flat_map(|h| &h.args);
    let uses_range = args().any(|a| a.range.is_some());
    let uses_align = args().any(|a| a.align.is_some());
    let uses_bad = args().any(|a| {
        a.range.is_some()
            || a.align.is_some()
            || spec.arg_prim(&a.ty) != Prim::U64
            || matches!(a.ty, ArgType::Named(i) if matches!(spec.types[i].kind, TypeKind::Enum { .. }))
    });
    let bad_fn = uses_bad.then(|| {
        quote! {
            fn bad(call: super::numbers::Hypercall, index: usize, value: u64, violation: Violation) -> BadArgument {
                BadArgument { call, arg: call.arg_names()[index], index, value, violation }
            }
        }
    });
    let check_range_fn = uses_range.then(|| {
        quote! {
            #[inline]
            fn check_range(call: super::numbers::Hypercall, index: usize, value: u64, lo: u64, hi: u64) -> ::core::result::Result<u64, BadArgument> {
                if value < lo || value > hi {
                    return Err(bad(call, index, value, Violation::Range { lo, hi }));
                }
                Ok(value)
            }
        }
    });
    let check_align_fn = uses_align.then(|| {
        quote! {
            #[inline]
            fn check_align(call: super::numbers::Hypercall, index: usize, value: u64, align: u64) -> ::core::result::Result<u64, BadArgument> {
                if !value.is_multiple_of(align) {
                    return Err(bad(call, index, value, Violation::Align { align }));
                }
                Ok(value)
            }
        }
    });
    quote! {
        #bad_fn

        #check_range_fn

        #check_align_fn
    }
}
