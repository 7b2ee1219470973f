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

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn items_are_formatted_after_the_header() {
        let text = items(
            &quote! { pub mod m { pub const A: u8 = 1; } },
            "abi! at x.rs:1:1",
        )
        .unwrap();
        assert_eq!(
            text,
            "// abi! at x.rs:1:1\npub mod m {\n    pub const A: u8 = 1;\n}\n"
        );
    }

    #[test]
    fn an_expression_comes_back_whole_and_formatted() {
        let block = quote! {
            {
                const _: &[u8] = ::core::include_bytes!("/s.toml");
                let __pv_arg0: u64 = flags;
                ::core::arch::asm!("2:", "call qword ptr [rip + {slot}]", slot = sym SLOT, in("rdi") __pv_arg0,)
            }
        };
        let text = expr(&block, "pv_call! at k.rs:3:9\nsecond line").unwrap();
        assert!(
            text.starts_with("// pv_call! at k.rs:3:9\n// second line\n{\n    const _"),
            "{text}"
        );
        assert!(text.ends_with("}\n"), "{text}");
        // What include! reads is the same expression.
        let src: String = text
            .lines()
            .filter(|l| !l.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let back: syn::Expr = syn::parse_str(&src).expect("the file is one expression");
        assert_eq!(quote!(#back).to_string(), block.to_string());
    }

    #[test]
    fn tokens_of_the_wrong_kind_are_an_error_not_a_panic() {
        assert!(
            items(&quote! { 1 + }, "h")
                .unwrap_err()
                .contains("does not parse as items")
        );
        assert!(
            expr(&quote! { fn }, "h")
                .unwrap_err()
                .contains("does not parse as an expression")
        );
    }
}
