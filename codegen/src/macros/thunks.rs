//! `#[pv_ops]`: an impl of a pv_op trait checked against its table in the spec, and the
//! callee-save thunks of its ops (Linux's `PV_CALLEE_SAVE_REGS_THUNK`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{ImplItem, ItemImpl, LitStr};

use super::MacroSpec;
use crate::names::camel;
use crate::spec::{PvOp, PvTable};

/// The registers a callee-save thunk saves: every caller-saved general register but `rax`.
const SAVED: [&str; 8] = ["rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"];

/// System V integer argument registers: more arguments would be on the stack, which the
/// thunk's pushes would move.
const ARG_REGS: usize = 6;

/// The expansion of `#[pv_ops]` on `item` (without the spec's tracking item): the impl
/// unchanged, then an inherent impl of the implementing type with the thunks of every
/// callee-save op. `table` is the `table = "..."` option; without it the table is the one
/// whose trait (`<Camel(table)>Ops`) is the impl's trait path's last segment.
///
/// # Errors
///
/// The impl is not of a trait, the trait or table is not in the spec, ops of the table are
/// missing (one error naming all), or a callee-save op cannot have a thunk (every such op
/// at once).
pub fn expand(
    spec: &MacroSpec,
    table: Option<&LitStr>,
    item: &ItemImpl,
) -> syn::Result<TokenStream> {
    let trait_path = match &item.trait_ {
        Some((None, path, _)) => path,
        _ => {
            return Err(syn::Error::new(
                item.self_ty.span(),
                "#[pv_ops] goes on an `impl <Table>Ops for Type` block of a generated pv_op trait",
            ));
        }
    };
    let trait_name = trait_path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let tables = &spec.spec.pv_tables;
    let table = match table {
        Some(lit) => spec.table(&lit.value(), lit.span())?,
        None => tables
            .iter()
            .find(|t| format!("{}Ops", camel(&t.name.v)) == trait_name)
            .ok_or_else(|| {
                let traits: Vec<String> = tables
                    .iter()
                    .map(|t| format!("`{}Ops`", camel(&t.name.v)))
                    .collect();
                syn::Error::new_spanned(
                    trait_path,
                    format!(
                        "`{trait_name}` is not a pv_op trait of spec `{}`; its traits: {} \
                         (or name the table with `table = \"...\"`)",
                        spec.shown,
                        traits.join(", ")
                    ),
                )
            })?,
    };
    let implemented: Vec<String> = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    let missing: Vec<String> = table
        .ops
        .iter()
        .filter(|o| !implemented.contains(&o.name.v))
        .map(|o| format!("`{}`", o.name.v))
        .collect();
    if !missing.is_empty() {
        return Err(syn::Error::new_spanned(
            trait_path,
            format!(
                "missing op{} of pv_op table `{}`: {}",
                if missing.len() == 1 { "" } else { "s" },
                table.name.v,
                missing.join(", ")
            ),
        ));
    }

    let thunks = thunks(item, trait_path, table)?;
    Ok(quote! {
        #item
        #thunks
    })
}

/// The `extern_c` function and the callee-save thunk of every callee-save op, as
/// associated functions of the implementing type (generic impls included: each
/// instantiation gets its own thunks).
fn thunks(item: &ItemImpl, trait_path: &syn::Path, table: &PvTable) -> syn::Result<TokenStream> {
    let ops: Vec<&PvOp> = table.ops.iter().filter(|o| o.callee_save).collect();
    if ops.is_empty() {
        return Ok(TokenStream::new());
    }
    let self_ty = &item.self_ty;
    if !matches!(&**self_ty, syn::Type::Path(p) if p.qself.is_none()) {
        return Err(syn::Error::new(
            self_ty.span(),
            "callee-save thunks are associated functions of the implementing type: \
             implement the trait for a named type of this crate",
        ));
    }
    let ty_name = quote!(#self_ty).to_string().replace(' ', "");
    // Every op's problem at once, as the missing-ops error does.
    let mut fns = TokenStream::new();
    let mut errors: Option<syn::Error> = None;
    for op in ops {
        match thunk(&ty_name, trait_path, table, op) {
            Ok(t) => fns.extend(t),
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let refuse = format!(
        "the callee-save thunks of table `{}` do not save AVX-512 registers: build without \
         target feature avx512f",
        table.name.v
    );
    Ok(quote! {
        impl #impl_generics #self_ty #where_clause {
            #fns
        }
        #[cfg(target_feature = "avx512f")]
        ::core::compile_error!(#refuse);
    })
}

fn thunk(
    ty_name: &str,
    trait_path: &syn::Path,
    table: &PvTable,
    op: &PvOp,
) -> syn::Result<TokenStream> {
    let full = format!("{}.{}", table.name.v, op.name.v);
    if op.args.len() > ARG_REGS {
        return Err(syn::Error::new_spanned(
            trait_path,
            format!(
                "callee-save op `{full}` has {} arguments; a thunk passes at most {ARG_REGS}, \
                 all in registers",
                op.args.len()
            ),
        ));
    }
    if let Some(ret) = &op.ret {
        let r = quote!(#ret).to_string();
        if ["u128", "i128", "f32", "f64"].contains(&r.as_str()) {
            return Err(syn::Error::new_spanned(
                trait_path,
                format!("callee-save op `{full}` returns `{r}`, which does not come back in rax"),
            ));
        }
    }
    let method = format_ident!("{}", op.name.v);
    let shim = format_ident!("{}_extern_c", op.name.v);
    let thunk = format_ident!("{}_callee_save", op.name.v);
    let params: Vec<TokenStream> = op
        .args
        .iter()
        .map(|(n, t)| {
            let n = format_ident!("{}", n.v);
            quote!(#n: #t)
        })
        .collect();
    let names: Vec<syn::Ident> = op
        .args
        .iter()
        .map(|(n, _)| format_ident!("{}", n.v))
        .collect();
    let ret = op.ret.as_ref().map(|t| quote!(-> #t));
    let unsafety = op.is_unsafe.then(|| quote!(unsafe));
    let trait_name = quote!(#trait_path).to_string().replace(' ', "");
    let op_path = format!("<{ty_name} as {trait_name}>::{}", op.name.v);
    // An unsafe op's shim and thunk are `unsafe fn`s with the op's own contract: they
    // hand their arguments to the op unchanged, so what their caller guarantees is exactly
    // what the op needs. The spec requires `safety` on every unsafe op (codegen reports
    // its absence), so the fallback below only keeps the doc well-formed.
    let safety_doc = op.is_unsafe.then(|| {
        let contract = op
            .safety
            .as_deref()
            .unwrap_or("the contract in the op's documentation.");
        let lines = [
            String::new(),
            " # Safety".to_string(),
            String::new(),
            format!(" {contract}"),
            String::new(),
            format!(
                " This is the contract of `{full}` (`{op_path}`): the arguments reach it \
                 unchanged, so the caller's guarantees are the ones the op relies on."
            ),
        ];
        quote! { #(#[doc = #lines])* }
    });
    let call = if op.is_unsafe {
        // SAFETY (of the generated block; comments do not survive into the expansion, so
        // the shim's `# Safety` doc says it to readers): the shim is an `unsafe fn` whose
        // `# Safety` is the op's, and it passes its arguments through untouched, so the
        // shim's caller has given every guarantee the op requires.
        quote! { unsafe { <Self as #trait_path>::#method(#(#names),*) } }
    } else {
        quote! { <Self as #trait_path>::#method(#(#names),*) }
    };
    let shim_doc = format!(
        " `{full}` of `{ty_name}` as an `extern \"C\"` function: what `{thunk}` calls. It \
         calls `{op_path}` with its arguments and returns the result.{}",
        if op.is_unsafe {
            " The op is unsafe: the call relies on the guarantees this function's caller \
             gives under # Safety, which it forwards unchanged."
        } else {
            ""
        }
    );
    let thunk_doc = format!(
        " Callee-save thunk of `{full}` for `{ty_name}`: an `extern \"C\"` function that \
         changes no register but `rax`. It saves every other caller-saved register around \
         a call to `{shim}`; put it in the op's slot."
    );

    let gpr_push: Vec<String> = SAVED.iter().map(|r| format!("push {r}")).collect();
    let gpr_pop: Vec<String> = SAVED.iter().rev().map(|r| format!("pop {r}")).collect();
    // One variant per vector-register width the target may use. Entry leaves rsp 8 past a
    // 16-byte boundary (the return address); the eight pushes keep it there, so the area
    // below is 8 more than the vector registers need, which aligns the call.
    let variant = |cfg: TokenStream, width: usize, mov: &str, reg: &str, ptr: &str| {
        let area = 16 * width + 8;
        let saves = (0..16).map(|i| format!("{mov} {ptr} ptr [rsp + {}], {reg}{i}", i * width));
        let loads = (0..16).map(|i| format!("{mov} {reg}{i}, {ptr} ptr [rsp + {}]", i * width));
        let lines: Vec<String> = gpr_push
            .iter()
            .cloned()
            .chain([format!("sub rsp, {area}")])
            .chain(if width == 0 {
                Vec::new()
            } else {
                saves.collect()
            })
            .chain(["call {f}".to_string()])
            .chain(if width == 0 {
                Vec::new()
            } else {
                loads.collect()
            })
            .chain([format!("add rsp, {area}")])
            .chain(gpr_pop.iter().cloned())
            .chain(["ret".to_string()])
            .collect();
        quote! {
            #[doc = #thunk_doc]
            #safety_doc
            #cfg
            #[unsafe(naked)]
            pub #unsafety extern "C" fn #thunk(#(#params),*) #ret {
                ::core::arch::naked_asm!(#(#lines),*, f = sym Self::#shim)
            }
        }
    };
    let plain = variant(quote!(#[cfg(not(target_feature = "sse"))]), 0, "", "", "");
    let sse = variant(
        quote!(#[cfg(all(target_feature = "sse", not(target_feature = "avx")))]),
        16,
        "movdqu",
        "xmm",
        "xmmword",
    );
    let avx = variant(
        quote!(#[cfg(all(target_feature = "avx", not(target_feature = "avx512f")))]),
        32,
        "vmovdqu",
        "ymm",
        "ymmword",
    );
    Ok(quote! {
        #[doc = #shim_doc]
        #safety_doc
        pub #unsafety extern "C" fn #shim(#(#params),*) #ret {
            #call
        }

        #plain
        #sse
        #avx
    })
}
