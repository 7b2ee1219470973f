//! Room: `sample_args()`: for every hypercall, argument registers that pass every check
//! `decode` makes, varied by a seed, so tests, fuzzers and benchmarks drive valid calls of
//! any spec without writing its constraints again.

use proc_macro2::TokenStream;
use quote::quote;

use crate::emit::variant;
use crate::spec::{Arg, ArgType, Prim, Spec, TypeKind};

/// The valid values of `a` as `first + k * step` for `k < count`, computed in u128 (the
/// parser refuses constraints that admit no value).
pub(crate) fn valid_values(spec: &Spec, a: &Arg) -> (u128, u128, u128) {
    let p = spec.arg_prim(&a.ty);
    let (lo, hi) = a.range.unwrap_or((0, p.max()));
    let step = u128::from(a.align.unwrap_or(1));
    let first = u128::from(lo).div_ceil(step) * step;
    let count = if first > u128::from(hi) {
        0
    } else {
        (u128::from(hi) - first) / step + 1
    };
    (first, step, count)
}

/// An expression of `s` (a u64) that is a valid value of `a`, and whether it reads `s`.
fn sample(spec: &Spec, a: &Arg, s: &TokenStream) -> (TokenStream, bool) {
    if let ArgType::Named(i) = &a.ty
        && let TypeKind::Enum { variants, .. } = &spec.types[*i].kind
    {
        let values = variants.iter().map(|v| super::super::u64_lit(v.value));
        let n = super::super::u64_lit(variants.len() as u64);
        return if variants.len() == 1 {
            let v = super::super::u64_lit(variants[0].value);
            (quote! { #v }, false)
        } else {
            (quote! { [#(#values),*][(#s % #n) as usize] }, true)
        };
    }
    if spec.arg_prim(&a.ty) == Prim::Bool {
        return (quote! { #s & 1 }, true);
    }
    let (first, step, count) = valid_values(spec, a);
    let lit = |v: u128| super::super::u64_lit(v as u64);
    if count > u128::from(u64::MAX) {
        return (quote! { #s }, true);
    }
    if count <= 1 {
        let f = lit(first);
        return (quote! { #f }, false);
    }
    // Every multiple of `step` below a power of two: a mask reads best (`seed & 0xffff_f000`).
    let span = count * step;
    if first == 0 && span.is_power_of_two() && step.is_power_of_two() {
        let mask = ((span - 1) & !(step - 1)) as u64;
        let m = hex(mask);
        return (quote! { #s & #m }, true);
    }
    let c = lit(count);
    let mut e = quote! { #s % #c };
    if step > 1 {
        let st = lit(step);
        e = quote! { (#e) * #st };
    }
    if first > 0 {
        let f = lit(first);
        e = quote! { #f + #e };
    }
    (e, true)
}

/// `v` as a hex literal with `_` every 4 digits.
fn hex(v: u64) -> TokenStream {
    let digits = format!("{v:x}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(4) {
            out.push('_');
        }
        out.push(c);
    }
    let l = syn::LitInt::new(&format!("0x{out}"), proc_macro2::Span::call_site());
    quote! { #l }
}

/// `sample_args()`.
pub(super) fn sample_fn(spec: &Spec) -> TokenStream {
    let arg_regs = spec.arg_regs();
    let mut reads_seed = false;
    let arms: Vec<TokenStream> = spec
        .hypercalls
        .iter()
        .map(|h| {
            let v = variant(&h.name.v);
            let mut regs: Vec<TokenStream> = h
                .args
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    // Each argument sees the seed turned differently, so they vary apart.
                    let s = if i == 0 {
                        quote! { seed }
                    } else {
                        let r = proc_macro2::Literal::u32_unsuffixed(i as u32 * 7 % 64);
                        quote! { seed.rotate_left(#r) }
                    };
                    let (e, reads) = sample(spec, a, &s);
                    reads_seed |= reads;
                    e
                })
                .collect();
            while regs.len() < arg_regs {
                regs.push(quote! { 0 });
            }
            quote! { super::numbers::Hypercall::#v => [#(#regs),*], }
        })
        .collect();
    let seed = if reads_seed {
        quote! { seed }
    } else {
        quote! { _seed }
    };
    quote! {
        /// Argument registers that pass every check [`decode`] makes for `call` (unused
        /// ones 0), varied by `seed`: valid calls of every hypercall for tests, fuzzers and
        /// benchmarks, from the spec's constraints.
        pub fn sample_args(call: super::numbers::Hypercall, #seed: u64) -> [u64; super::numbers::ARG_REGS] {
            match call {
                #(#arms)*
            }
        }
    }
}
