//! Generates `$OUT_DIR/lguest.rs` the build.rs way, so the tests can check that
//! `pv_macros::abi!` expands to the same items. The macros themselves do not use it. It
//! also tells the tests which `rustc` cargo uses (`PV_MACROS_RUSTC`, for
//! `tests/debug_expand.rs`).
//!
//! It also writes `$OUT_DIR/observe.rs`: probes over every item of that output, found by
//! walking it with `syn`, which `tests/abi_paths.rs` includes into both the build.rs
//! module and the `abi!` module. Listing the items here rather than by hand in the test
//! keeps the comparison exhaustive as the spec grows: a new const, hypercall or pv_op is
//! compared without anyone remembering to add it, and an item the macro fails to emit is
//! a compile error in the test.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ImplItem, Item, ItemImpl, ItemTrait, TraitItem, Type};

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!("cargo:rustc-env=PV_MACROS_RUSTC={rustc}");
    let generated = match codegen::Config::new().compile("../spec/lguest.toml") {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let Some(out) = std::env::var_os("OUT_DIR") else {
        eprintln!("OUT_DIR is not set: run this build script from Cargo");
        std::process::exit(1);
    };
    // The probes serve one test: when they cannot be made, that test fails to compile
    // with the reason, and the crates that only use the macros still build.
    let probes = syn::parse_file(&generated.combined)
        .map_err(|e| format!("the generated code does not parse: {e}"))
        .and_then(|file| observe(&file))
        .unwrap_or_else(|e| {
            format!(
                "::core::compile_error!({:?});\n",
                format!("pv-macros/build.rs: {e}")
            )
        });
    let path = std::path::Path::new(&out).join("observe.rs");
    if let Err(e) = codegen::write_if_changed(&path, &probes) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// The probes, as source to `include!` in a module next to the generated ones (so
/// `super::numbers` is the ABI's `numbers`). They use helpers of the including crate
/// (`crate::seen`, `crate::Pick`, `crate::Recorder`, `crate::Probe`, `crate::never`).
fn observe(file: &syn::File) -> Result<String, String> {
    let mut consts = Vec::new();
    let mut enums = Vec::new();
    let mut items = TokenStream::new();
    let mut tables = Vec::new();
    for module in &file.items {
        let Item::Mod(m) = module else { continue };
        let Some((_, content)) = &m.content else {
            continue;
        };
        let md = &m.ident;
        for item in content {
            match item {
                Item::Const(c) if c.ident != "_" => {
                    let id = &c.ident;
                    let label = format!("{md}::{id}");
                    consts.push(quote! { crate::seen(#label, &super::#md::#id) });
                }
                Item::Impl(imp) => {
                    if let Some(ty) = plain_inherent(imp) {
                        for ii in &imp.items {
                            if let ImplItem::Const(c) = ii {
                                let id = &c.ident;
                                let label = format!("{md}::{ty}::{id}");
                                consts.push(quote! { crate::seen(#label, &super::#md::#ty::#id) });
                            }
                        }
                        if is_wire_enum(imp) {
                            enums.push(quote! { super::#md::#ty });
                        }
                    }
                }
                Item::Trait(t) => {
                    items.extend(trait_probe(md, t));
                }
                Item::Struct(s) if md == "structs" => {
                    // Guest-memory structs: picked field by field, so wrappers that take
                    // them (by reference or in arrays) get values from `crate::Pick` too.
                    let ty = &s.ident;
                    let fields = s.fields.iter().filter_map(|f| f.ident.as_ref()).enumerate();
                    let picks = fields.map(|(i, f)| {
                        let i = i as u64;
                        quote! { #f: crate::Pick::pick(seed.wrapping_add(#i)) }
                    });
                    items.extend(quote! {
                        impl crate::Pick for super::structs::#ty {
                            fn pick(seed: u64) -> Self {
                                Self { #(#picks),* }
                            }
                        }
                    });
                }
                Item::Struct(s) if md == "pv_ops" && s.ident == "PvOps" => {
                    // The grouped table: one field per table, named like the table.
                    for f in &s.fields {
                        if let (Some(field), Type::Path(p)) = (&f.ident, &f.ty)
                            && let Some(last) = p.path.segments.last()
                        {
                            tables.push((field.clone(), last.ident.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Each table's fields, taken from its struct: every field a fn pointer.
    let mut wiring = Vec::new();
    for (field, table_ty) in &tables {
        let Some(s) = find_struct(file, "pv_ops", table_ty) else {
            continue;
        };
        let trait_name = table_ty.to_string();
        let trait_id = format_ident!(
            "{}",
            trait_name.strip_suffix("Table").unwrap_or(&trait_name)
        );
        for f in &s.fields {
            let Some(op) = &f.ident else { continue };
            let label = format!("pv_ops::PvOps::of::<Probe>().{field}.{op}");
            wiring.push(quote! {
                crate::seen(
                    #label,
                    &(
                        crate::type_of(&tables.#field.#op),
                        ::core::ptr::eq(
                            tables.#field.#op as *const (),
                            <crate::Probe as super::pv_ops::#trait_id>::#op as *const (),
                        ),
                    ),
                )
            });
        }
    }
    let enum_fns = quote! {
        /// Every wire enum's values: raw value, name, and `from_raw` round trip, plus
        /// `from_raw` of every raw value up to two past the largest and of `u64::MAX`.
        pub fn enums() -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
            let mut out = ::std::vec::Vec::new();
            #(
                {
                    type E = #enums;
                    let ty = crate::type_name::<E>();
                    for v in E::ALL {
                        out.push(crate::seen(
                            &format!("{ty}::{v:?}"),
                            &(v.raw(), v.name(), E::from_raw(v.raw())),
                        ));
                    }
                    let max = E::ALL.iter().map(|v| v.raw()).max().unwrap_or(0);
                    for raw in (0..=max + 2).chain([u64::MAX]) {
                        out.push(crate::seen(&format!("{ty}::from_raw({raw})"), &E::from_raw(raw)));
                    }
                }
            )*
            out
        }

        #(
            impl crate::Pick for #enums {
                fn pick(seed: u64) -> Self {
                    Self::ALL[(seed % Self::ALL.len() as u64) as usize]
                }
            }
        )*
    };
    let tokens = quote! {
        /// Every `const` item of the generated modules, and every associated const of
        /// their non-generic inherent impls: its type and value.
        pub fn consts() -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
            ::std::vec::Vec::from([#(#consts),*])
        }

        /// Each field of `PvOps::of::<Probe>()`: its fn-pointer type, and whether it is
        /// the trait function of the same name (the table's wiring).
        pub fn table_wiring() -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
            let tables = super::pv_ops::PvOps::of::<crate::Probe>();
            ::std::vec::Vec::from([#(#wiring),*])
        }

        #enum_fns
        #items
    };
    let mut text = String::from(
        "// @generated by pv-macros/build.rs from the build.rs output: probes for \
         tests/abi_paths.rs.\n\n",
    );
    let f = syn::parse2::<syn::File>(tokens)
        .map_err(|e| format!("the probes made from the generated code do not parse: {e}"))?;
    text.push_str(&prettyplease::unparse(&f));
    Ok(text)
}

/// The type of an inherent impl without generics on a plain named type.
fn plain_inherent(imp: &ItemImpl) -> Option<&syn::Ident> {
    if imp.trait_.is_some() || !imp.generics.params.is_empty() {
        return None;
    }
    match &*imp.self_ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            let seg = &p.path.segments[0];
            seg.arguments.is_empty().then_some(&seg.ident)
        }
        _ => None,
    }
}

/// A spec enum type: `ALL`, `raw`, `from_raw` and `name`.
fn is_wire_enum(imp: &ItemImpl) -> bool {
    let has = |name: &str| {
        imp.items.iter().any(|i| match i {
            ImplItem::Const(c) => c.ident == name,
            ImplItem::Fn(f) => f.sig.ident == name,
            _ => false,
        })
    };
    ["ALL", "raw", "from_raw", "name"].into_iter().all(has)
}

fn find_struct<'a>(
    file: &'a syn::File,
    module: &str,
    name: &syn::Ident,
) -> Option<&'a syn::ItemStruct> {
    file.items.iter().find_map(|i| match i {
        Item::Mod(m) if m.ident == module => m.content.as_ref()?.1.iter().find_map(|i| match i {
            Item::Struct(s) if &s.ident == name => Some(s),
            _ => None,
        }),
        _ => None,
    })
}

/// What the test does with a generated trait:
/// - with an associated `Error` type (the host's handler trait): `crate::Recorder`
///   implements it, recording each call's name and arguments;
/// - every method taking `&self` (the guest's typed wrappers, the lazy ones): a function
///   `call_<trait>` calls each method once with arguments from `crate::Pick`;
/// - associated functions without a receiver (the pv_op traits): `crate::Probe`
///   implements them with bodies that only name the op, so `table_wiring` can tell them
///   apart by address.
fn trait_probe(md: &syn::Ident, t: &ItemTrait) -> TokenStream {
    let name = &t.ident;
    let fns: Vec<&syn::TraitItemFn> = t
        .items
        .iter()
        .filter_map(|i| match i {
            TraitItem::Fn(f) => Some(f),
            _ => None,
        })
        .collect();
    let has_error = t
        .items
        .iter()
        .any(|i| matches!(i, TraitItem::Type(ty) if ty.ident == "Error"));
    let receiver = |f: &&syn::TraitItemFn| f.sig.receiver().is_some();
    // The generated default host (`<Abi>DefaultHost`, with `unhandled`) makes whatever
    // implements it an `<Abi>Host` too, which `Recorder` already is: it is compared
    // through that.
    if fns.iter().any(|f| f.sig.ident == "unhandled") {
        return TokenStream::new();
    }
    if has_error {
        let methods = fns.iter().map(|f| {
            let (sig, args) = renamed(&f.sig);
            let op = f.sig.ident.to_string();
            quote! {
                #sig {
                    self.record(#op, ::std::vec::Vec::from([#(crate::arg(&#args)),*]))
                }
            }
        });
        quote! {
            impl super::#md::#name for crate::Recorder {
                type Error = crate::Refused;
                #(#methods)*
            }
        }
    } else if !fns.is_empty() && fns.iter().all(receiver) {
        let call_fn = format_ident!("call_{}", snake(&name.to_string()));
        let calls = fns.iter().filter(|f| f.sig.unsafety.is_none()).map(|f| {
            let op = &f.sig.ident;
            let label = format!("{md}::{name}::{op}");
            let picks = (0..f.sig.inputs.len() - 1).map(|i| {
                let i = i as u64;
                quote! { crate::Pick::pick(seed.wrapping_add(#i)) }
            });
            quote! {
                crate::seen(#label, &<T as super::#md::#name>::#op(t, #(#picks),*))
            }
        });
        quote! {
            /// Calls every safe method of the trait once, arguments picked from `seed`.
            pub fn #call_fn<T: super::#md::#name + ?Sized>(
                t: &T,
                seed: u64,
            ) -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
                // In order: one call's effects (on a recording transport) come before
                // the next's.
                ::std::vec::Vec::from([#(#calls),*])
            }
        }
    } else if !fns.is_empty() && !fns.iter().any(receiver) {
        let methods = fns.iter().map(|f| {
            let mut sig = f.sig.clone();
            for input in &mut sig.inputs {
                if let FnArg::Typed(pt) = input {
                    *pt.pat = syn::parse_quote!(_);
                }
            }
            let op = format!("{md}::{name}::{}", f.sig.ident);
            quote! { #sig { crate::never(#op) } }
        });
        quote! {
            impl super::#md::#name for crate::Probe {
                #(#methods)*
            }
        }
    } else {
        TokenStream::new()
    }
}

/// `CamelCase` to `snake_case`.
fn snake(camel: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

/// `sig` with its arguments named `a0`, `a1`...: the names, for a body that uses them.
fn renamed(sig: &syn::Signature) -> (syn::Signature, Vec<syn::Ident>) {
    let mut sig = sig.clone();
    let mut names = Vec::new();
    for input in &mut sig.inputs {
        if let FnArg::Typed(pt) = input {
            let id = format_ident!("a{}", names.len());
            *pt.pat = syn::parse_quote!(#id);
            names.push(id);
        }
    }
    (sig, names)
}
