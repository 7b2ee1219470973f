//! Spelling rules: what a spec name may be, and the Rust names derived from it.
//!
//! A spec name is snake_case as Rust's own `non_snake_case` lint reads it: lowercase ASCII
//! letters, digits and single underscores, starting with a letter (after at most one
//! leading underscore), optionally ending in one underscore. Rust keywords are fine: they
//! are emitted as raw identifiers (`type` -> `r#type`). Only the five words Rust cannot
//! spell even as raw identifiers (`self`, `super`, `crate`, `Self`, `_`) are refused.
//!
//! No spec name contains `__`: that is the generator's own namespace.

use proc_macro2::{Ident, Span};

/// Rust keywords (strict, reserved and 2018/2024-edition), emitted as raw identifiers.
pub const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords Rust cannot spell as raw identifiers either.
pub const UNSPELLABLE: &[&str] = &["self", "super", "crate", "Self", "_"];

/// Why `name` is not an acceptable spec name, and what to write instead.
pub fn name_problem(name: &str) -> Option<(String, String)> {
    const HINT: &str = "names are snake_case, e.g. `set_pte`, `arg1`, `type` or `self_`";
    if name.is_empty() {
        return Some(("the name is empty".into(), HINT.into()));
    }
    if UNSPELLABLE.contains(&name) {
        let instead = if name == "_" { "x" } else { name };
        return Some((
            format!("`{name}` cannot be a Rust identifier, not even a raw one (`r#{name}`)"),
            format!(
                "write `{}_` (or another name): the generated code then says `{}_`",
                instead.to_ascii_lowercase(),
                instead.to_ascii_lowercase()
            ),
        ));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let body = name.strip_prefix('_').unwrap_or(name);
    let first_ok = body.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !ok_chars || !first_ok || name.contains("__") {
        let suggestion = suggest(name);
        let hint = match suggestion {
            Some(s) if s != name => format!("write `{s}`; {HINT}"),
            _ => HINT.to_string(),
        };
        let why = if name.contains("__") && ok_chars {
            " (`__` is reserved for the generator's own names)"
        } else {
            ""
        };
        return Some((
            format!(
                "`{name}` is not snake_case (a lowercase letter, then lowercase letters, digits and single underscores){why}"
            ),
            hint,
        ));
    }
    None
}

/// Why `name` is not an acceptable snake_case identifier, if it is not.
pub fn snake_case_problem(name: &str) -> Option<String> {
    name_problem(name).map(|(p, _)| p)
}

/// A snake_case spelling of `name`, if there is an obvious one.
fn suggest(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            prev_lower = true;
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_string();
    let out = out
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .to_string();
    (!out.is_empty() && name_problem(&out).is_none()).then_some(out)
}

/// The identifier for spec name `name` in generated code: itself, or a raw identifier
/// where it is a Rust keyword (`type` -> `r#type`).
pub fn ident(name: &str) -> Ident {
    if RUST_KEYWORDS.contains(&name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// How `ident(name)` prints: `r#type` for `type`.
pub fn rust_name(name: &str) -> String {
    if RUST_KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

/// The UpperCamelCase identifier for a type or variant named `name`: [`camel`], with an
/// underscore after `Self` (which Rust reserves).
pub fn camel_ident(name: &str) -> Ident {
    let c = camel(name);
    if c == "Self" {
        Ident::new("Self_", Span::call_site())
    } else {
        Ident::new(&c, Span::call_site())
    }
}

/// `set_pte` -> `SetPte`; a leading or trailing underscore is dropped (`self_` -> `Self`),
/// so derived names compose (`{table}Ops`) without tripping `non_camel_case_types`.
pub fn camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `set_pte` -> `SET_PTE`.
pub fn upper(snake: &str) -> String {
    snake.to_ascii_uppercase()
}
