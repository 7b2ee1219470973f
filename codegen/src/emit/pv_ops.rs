//! `pv_ops`: a trait per pv_op table, an ops-table struct of function pointers filled from
//! any type implementing the traits, and an id per op for patching and call-site records.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, doc, usize_lit};
use crate::names::{camel, upper};
use crate::spec::{PvOp, Spec};

fn fn_ptr(op: &PvOp) -> TokenStream {
    let tys = op.args.iter().map(|(_, t)| t);
    let ret = op.ret.as_ref().map(|r| quote! { -> #r });
    let uns = op.is_unsafe.then(|| quote! { unsafe });
    quote! { #uns fn(#(#tys),*) #ret }
}

/// Clippy's `type_complexity` score of `ty` at nesting `nest`, as its
/// `TypeComplexityVisitor` counts: 10 × nest per named type, slice, array or tuple, 50 ×
/// nest per fn pointer, 20 × nest per trait object, 1 per reference or pointer; the
/// insides of a named type, slice, array, tuple or fn pointer count one level deeper. Used
/// to allow the lint exactly where the spec's signature trips it.
fn complexity(ty: &syn::Type, nest: u64) -> u64 {
    use syn::Type;
    let args = |p: &syn::Path, nest| -> u64 {
        p.segments
            .iter()
            .map(|s| match &s.arguments {
                syn::PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .map(|g| match g {
                        syn::GenericArgument::Type(t) => complexity(t, nest),
                        _ => 0,
                    })
                    .sum(),
                syn::PathArguments::Parenthesized(a) => {
                    let out = match &a.output {
                        syn::ReturnType::Type(_, t) => complexity(t, nest),
                        syn::ReturnType::Default => 0,
                    };
                    a.inputs.iter().map(|t| complexity(t, nest)).sum::<u64>() + out
                }
                syn::PathArguments::None => 0,
            })
            .sum()
    };
    let deeper = nest + 1;
    match ty {
        Type::Reference(r) => 1 + complexity(&r.elem, nest),
        Type::Ptr(p) => 1 + complexity(&p.elem, nest),
        Type::Paren(p) => complexity(&p.elem, nest),
        Type::Group(g) => complexity(&g.elem, nest),
        Type::Slice(s) => 10 * nest + complexity(&s.elem, deeper),
        Type::Array(a) => 10 * nest + complexity(&a.elem, deeper),
        Type::Tuple(t) => 10 * nest + t.elems.iter().map(|t| complexity(t, deeper)).sum::<u64>(),
        Type::Path(p) => 10 * nest + args(&p.path, deeper),
        Type::BareFn(f) => {
            let out = match &f.output {
                syn::ReturnType::Type(_, t) => complexity(t, deeper),
                syn::ReturnType::Default => 0,
            };
            50 * nest
                + f.inputs
                    .iter()
                    .map(|i| complexity(&i.ty, deeper))
                    .sum::<u64>()
                + out
        }
        Type::TraitObject(t) => {
            20 * nest
                + t.bounds
                    .iter()
                    .map(|b| match b {
                        syn::TypeParamBound::Trait(tr) => args(&tr.path, nest),
                        _ => 0,
                    })
                    .sum::<u64>()
        }
        _ => 0,
    }
}

/// Clippy's threshold (250), less a margin for where our count and clippy's may differ.
const COMPLEX: u64 = 240;

/// `#[allow(clippy::type_complexity)]` with its reason, when `complex`.
fn complexity_allow(complex: bool) -> TokenStream {
    if complex {
        let c = super::comment("The signature is the ABI's, as the spec writes it.");
        quote! { #c #[allow(clippy::type_complexity)] }
    } else {
        TokenStream::new()
    }
}

fn op_doc(op: &PvOp, table: &str) -> String {
    let mut s = format!("{}\n\nOp `{table}.{}`.", op.doc, op.name.v);
    if op.callee_save {
        s.push_str(" Callee-save: call sites expect every register but the return register preserved (see `pv_macros::pv_ops`).");
    }
    if let Some(t) = &op.template {
        s.push_str(&format!(
            " Call sites may be patched with template `{}`.",
            t.v
        ));
    }
    if let Some(safety) = &op.safety {
        s.push_str(&format!("\n\n# Safety\n\n{safety}"));
    }
    s
}

pub(crate) fn emit(spec: &Spec) -> Module {
    let mut items = TokenStream::new();
    let mut table_fields = Vec::new();
    let mut table_inits = Vec::new();
    let mut bounds = Vec::new();
    for t in &spec.pv_tables {
        let tr = format_ident!("{}Ops", camel(&t.name.v));
        let st = format_ident!("{}OpsTable", camel(&t.name.v));
        let list = format_ident!("{}_OPS", upper(&t.name.v));
        let field = crate::names::ident(&t.name.v);
        let methods = t.ops.iter().map(|op| {
            let name = crate::names::ident(&op.name.v);
            let params = op.args.iter().map(|(n, ty)| {
                let n = crate::names::ident(&n.v);
                quote! { #n: #ty }
            });
            let ret = op.ret.as_ref().map(|r| quote! { -> #r });
            let uns = op.is_unsafe.then(|| quote! { unsafe });
            let d = doc(&op_doc(op, &t.name.v));
            let many = super::many_args(op.args.len().saturating_sub(1));
            let allows = super::abi_name_allows(&op.name.v);
            let complex = op
                .args
                .iter()
                .map(|(_, t)| t)
                .chain(&op.ret)
                .any(|t| complexity(t, 1) > COMPLEX);
            let cx = complexity_allow(complex);
            quote! { #allows #cx #d #many #uns fn #name(#(#params),*) #ret; }
        });
        let fields = t.ops.iter().map(|op| {
            let name = crate::names::ident(&op.name.v);
            let ty = fn_ptr(op);
            let d = doc(&format!("`{}.{}`: {}", t.name.v, op.name.v, op.doc));
            quote! { #d pub #name: #ty }
        });
        let inits = t.ops.iter().map(|op| {
            let name = crate::names::ident(&op.name.v);
            quote! { #name: <OpsImpl as #tr>::#name }
        });
        let names = t.ops.iter().map(|op| &op.name.v);
        let n = usize_lit(t.ops.len() as u64);
        let tdoc = t
            .doc
            .clone()
            .unwrap_or_else(|| format!("The `{}` pv_op table.", t.name.v));
        let trait_doc = doc(&format!(
            "{tdoc}\n\nImplement it (with `#[pv_macros::pv_ops]` to check it and get the callee-save thunks) and build a [`{st}`] from the implementation."
        ));
        let st_doc = doc(&format!("The `{}` table as function pointers.", t.name.v));
        let list_doc = doc(&format!("The ops of table `{}`, in spec order.", t.name.v));
        let lens = super::len_allow(t.ops.iter().map(|o| o.name.v.as_str()));
        let fields_complex = t.ops.iter().any(|op| {
            syn::parse2::<syn::Type>(fn_ptr(op)).is_ok_and(|f| complexity(&f, 1) > COMPLEX)
        });
        let st_cx = complexity_allow(fields_complex);
        items.extend(quote! {
            #trait_doc
            #lens
            pub trait #tr {
                #(#methods)*
            }

            #st_cx
            #st_doc
            #[derive(Clone, Copy, Debug)]
            pub struct #st {
                #(#fields,)*
            }

            impl #st {
                /// The table of `OpsImpl`'s implementation.
                pub const fn of<OpsImpl: #tr + ?Sized>() -> Self {
                    #st { #(#inits,)* }
                }
            }

            #list_doc
            pub const #list: [&str; #n] = [#(#names),*];
        });
        let fd = doc(&format!("The `{}` table.", t.name.v));
        table_fields.push(quote! { #fd pub #field: #st });
        table_inits.push(quote! { #field: #st::of::<OpsImpl>() });
        bounds.push(quote! { #tr });
    }

    let ops: Vec<(&str, &PvOp)> = spec.pv_ops().map(|(t, o)| (t.name.v.as_str(), o)).collect();
    let vid = |t: &str, o: &PvOp| format_ident!("{}{}", camel(t), camel(&o.name.v));
    let variants = ops.iter().map(|(t, o)| {
        let v = vid(t, o);
        let d = doc(&format!("`{t}.{}`", o.name.v));
        quote! { #d #v }
    });
    let all = ops.iter().map(|(t, o)| {
        let v = vid(t, o);
        quote! { PvOpId::#v }
    });
    let n = usize_lit(ops.len() as u64);
    let m = |f: &dyn Fn(&str, &PvOp) -> TokenStream| {
        let arms = ops.iter().map(|(t, o)| {
            let v = vid(t, o);
            let b = f(t, o);
            quote! { PvOpId::#v => #b, }
        });
        quote! { match self { #(#arms)* } }
    };
    let table_m = m(&|t, _| quote! { #t });
    let name_m = m(&|_, o| {
        let s = &o.name.v;
        quote! { #s }
    });
    let cs_m = m(&|_, o| {
        let b = o.callee_save;
        quote! { #b }
    });
    let tpl_m = m(&|_, o| match &o.template {
        Some(t) => {
            let s = &t.v;
            quote! { Some(#s) }
        }
        None => quote! { None },
    });
    let id_m = m(&|t, o| {
        let i = spec.op_id(t, &o.name.v).unwrap_or(0);
        let i = proc_macro2::Literal::u16_suffixed(i as u16);
        quote! { #i }
    });
    let from_arms: Vec<TokenStream> = ops
        .iter()
        .map(|(t, o)| {
            let v = vid(t, o);
            let i = spec.op_id(t, &o.name.v).unwrap_or(0);
            let i = proc_macro2::Literal::u16_suffixed(i as u16);
            quote! { #i => Some(PvOpId::#v), }
        })
        .collect();

    // No ops at all: nothing to match (`match id { _ => None }` is `match_single_binding`).
    let from_body = if from_arms.is_empty() {
        quote! { let _ = id; None }
    } else {
        quote! { match id { #(#from_arms)* _ => None } }
    };
    items.extend(quote! {
        /// Every pv_op table, as function pointers: what a kernel installs at boot.
        #[derive(Clone, Copy, Debug)]
        pub struct PvOps {
            #(#table_fields,)*
        }

        impl PvOps {
            /// The tables of `OpsImpl`'s implementations.
            pub const fn of<OpsImpl: #(#bounds)+* + ?Sized>() -> Self {
                PvOps { #(#table_inits,)* }
            }
        }

        /// Names one pv_op: what call-site records and the patcher identify ops by.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum PvOpId {
            #(#variants,)*
        }

        impl PvOpId {
            /// Every op, table by table in spec order.
            pub const ALL: [PvOpId; #n] = [#(#all),*];

            /// The op's table.
            pub const fn table(self) -> &'static str { #table_m }

            /// The op's name within its table.
            pub const fn name(self) -> &'static str { #name_m }

            /// Whether call sites expect every register but the return register preserved.
            pub const fn callee_save(self) -> bool { #cs_m }

            /// The template that may replace the op's call sites.
            pub const fn template(self) -> Option<&'static str> { #tpl_m }

            /// A stable small number for the op (its index in [`PvOpId::ALL`]), as stored in
            /// call-site records.
            pub const fn id(self) -> u16 { #id_m }

            /// The op with number `id`.
            pub const fn from_id(id: u16) -> Option<PvOpId> {
                #from_body
            }
        }
    });
    Module {
        name: "pv_ops",
        doc: format!(
            "pv_op tables of the `{}` ABI: the operations a guest kernel routes through the hypervisor.",
            spec.abi.name.v
        ),
        items,
    }
}
