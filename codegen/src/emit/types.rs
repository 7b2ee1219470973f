//! `types`: the spec's `[types]`: aliases and enums with their wire values.

use quote::quote;

use super::{Module, doc, int_lit, prim, usize_lit};
use crate::spec::{Spec, TypeKind};

pub(crate) fn emit(spec: &Spec) -> Module {
    let items = spec.types.iter().map(|t| {
        let id = crate::names::camel_ident(&t.name.v);
        let d = doc(t
            .doc
            .as_deref()
            .unwrap_or(&format!("The type `{}`.", t.name.v)));
        match &t.kind {
            TypeKind::Alias(p) => {
                let p = prim(*p);
                quote! { #d pub type #id = #p; }
            }
            TypeKind::Enum { repr, variants } => {
                let r = prim(*repr);
                let n = usize_lit(variants.len() as u64);
                let vs = variants.iter().map(|v| {
                    let vid = crate::names::camel_ident(&v.name.v);
                    let vd = doc(&crate::markdown::run_on(
                        v.doc
                            .as_deref()
                            .map_or(v.name.v.as_str(), |s| s.trim_end_matches('.')),
                        &format!(" (`{}`).", v.value),
                    ));
                    quote! { #vd #vid }
                });
                let all = variants.iter().map(|v| {
                    let vid = crate::names::camel_ident(&v.name.v);
                    quote! { #id::#vid }
                });
                let to_raw = variants.iter().map(|v| {
                    let vid = crate::names::camel_ident(&v.name.v);
                    let val = int_lit(v.value, *repr);
                    quote! { #id::#vid => #val, }
                });
                let from_raw = variants.iter().map(|v| {
                    let vid = crate::names::camel_ident(&v.name.v);
                    let val = int_lit(v.value, *repr);
                    quote! { #val => Some(#id::#vid), }
                });
                // A type the spec called `from_raw` has a constructor called `from_raw`.
                let self_named = (id == "FromRaw").then(|| {
                    let c = super::comment("The type is called `from_raw` in the ABI; its constructor is `from_raw` like every enum's.");
                    quote! { #c #[allow(clippy::self_named_constructors)] }
                });
                // An enum that uses every value of its repr needs no catch-all arm.
                let every = u128::from(repr.max()) + 1 == variants.len() as u128;
                let wild = (!every).then(|| quote! { _ => None, });
                let names = variants.iter().map(|v| {
                    let vid = crate::names::camel_ident(&v.name.v);
                    let s = &v.name.v;
                    quote! { #id::#vid => #s, }
                });
                quote! {
                    #d
                    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
                    pub enum #id { #(#vs,)* }

                    impl #id {
                        /// Every value, in spec order.
                        pub const ALL: [#id; #n] = [#(#all),*];

                        /// The value on the wire.
                        pub const fn raw(self) -> #r {
                            match self { #(#to_raw)* }
                        }

                        /// The variant with wire value `raw`, if there is one.
                        #self_named
                        pub const fn from_raw(raw: #r) -> ::core::option::Option<Self> {
                            match raw { #(#from_raw)* #wild }
                        }

                        /// The spec's name for the value.
                        pub const fn name(self) -> &'static str {
                            match self { #(#names)* }
                        }
                    }
                }
            }
        }
    });
    let results = super::results::structs(spec);
    let doc = if spec.has_results() {
        format!(
            "Types of hypercall arguments and results in the `{}` ABI.",
            spec.abi.name.v
        )
    } else {
        format!(
            "Types of hypercall arguments in the `{}` ABI.",
            spec.abi.name.v
        )
    };
    Module {
        name: "types",
        doc,
        items: quote! { #(#items)* #results },
    }
}
