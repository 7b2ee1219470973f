//! An expansion as formatted source, for `PVABI_DEBUG_EXPAND`: pv-macros writes it to a file
//! and expands to an `include!` of that file, so rustc's errors point at lines a reader can
//! open (wasmtime's `WASMTIME_DEBUG_BINDGEN`).

use proc_macro2::TokenStream;

/// `tokens` (items: what `abi!` and `#[pv_ops]` expand to) formatted, after `header` as
/// `//` comment lines.
///
/// # Errors
///
/// The tokens do not parse as items (a bug of the generator, reported with syn's message).
pub fn items(tokens: &TokenStream, header: &str) -> Result<String, String> {
    let file: syn::File = syn::parse2(tokens.clone())
        .map_err(|e| format!("the expansion does not parse as items: {e}"))?;
    Ok(format!(
        "{}{}",
        comment(header),
        prettyplease::unparse(&file)
    ))
}

/// `tokens` (an expression: what `pv_call!` expands to) formatted, after `header` as `//`
/// comment lines. The file holds the one expression, as `include!` in expression position
/// wants.
///
/// # Errors
///
/// The tokens do not parse as an expression.
pub fn expr(tokens: &TokenStream, header: &str) -> Result<String, String> {
    let expr: syn::Expr = syn::parse2(tokens.clone())
        .map_err(|e| format!("the expansion does not parse as an expression: {e}"))?;
    // prettyplease formats files: format the expression as a function's body and take the
    // body back out, one indent level less.
    let file: syn::File = syn::parse_quote! { fn expansion() { #expr } };
    let text = prettyplease::unparse(&file);
    let lines: Vec<&str> = text.lines().collect();
    let body = lines
        .get(1..lines.len().saturating_sub(1))
        .unwrap_or_default();
    let mut out = comment(header);
    for line in body {
        out.push_str(line.strip_prefix("    ").unwrap_or(line));
        out.push('\n');
    }
    Ok(out)
}

fn comment(header: &str) -> String {
    header.lines().map(|l| format!("// {l}\n")).collect()
}
