//! Proc macros over `codegen`: a thin layer that parses macro input and calls the library.

use proc_macro::TokenStream;

/// Expands a spec file (path relative to `CARGO_MANIFEST_DIR`) into the generated modules,
/// the same items `codegen::Config::compile` writes for `include!`.
///
/// ```ignore
/// pv_macros::abi!("../spec/lguest.toml");
/// ```
///
/// Spec errors become compile errors carrying `file:line:col`; the spec is tracked, so
/// editing it rebuilds the crate.
#[proc_macro]
pub fn abi(input: TokenStream) -> TokenStream {
    let lit = syn::parse_macro_input!(input as syn::LitStr);
    expand_abi(&lit)
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

fn expand_abi(lit: &syn::LitStr) -> syn::Result<proc_macro2::TokenStream> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            "CARGO_MANIFEST_DIR is not set: use pv_macros::abi! from a Cargo build",
        )
    })?;
    let path = std::path::Path::new(&dir).join(lit.value());
    let src = std::fs::read_to_string(&path).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("cannot read spec {}: {e}", path.display()),
        )
    })?;
    let spec = codegen::load(&lit.value(), &src)
        .map_err(|d| syn::Error::new(lit.span(), d.to_string()))?;
    let tokens = codegen::tokens(&spec);
    let track = path.display().to_string();
    Ok(quote::quote! {
        // Tracks the spec: editing it rebuilds the crate using the macro.
        const _: &[u8] = include_bytes!(#track);
        #tokens
    })
}
