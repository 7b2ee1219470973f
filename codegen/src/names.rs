//! Spelling rules: what a spec name may be, and the Rust names derived from it.

/// Rust keywords (strict, reserved and 2024-edition), which no spec name may be.
pub const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Why `name` is not an acceptable snake_case identifier, if it is not.
///
/// Accepted: a lowercase letter, then lowercase letters, digits and single underscores,
/// not ending in an underscore. The generator's own identifiers all contain `__` or start
/// with an uppercase letter, so they can never clash with a spec name.
pub fn snake_case_problem(name: &str) -> Option<String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if !ok_chars || !first_ok || name.contains("__") || name.ends_with('_') {
        return Some(format!(
            "`{name}` is not snake_case (a lowercase letter, then lowercase letters, digits and single underscores)"
        ));
    }
    if RUST_KEYWORDS.contains(&name) {
        return Some(format!("`{name}` is a Rust keyword"));
    }
    None
}

/// `set_pte` -> `SetPte`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_rules() {
        assert!(snake_case_problem("set_pte").is_none());
        assert!(snake_case_problem("a1_b2").is_none());
        for bad in [
            "SetPte", "_x", "x_", "a__b", "1a", "", "set-pte", "fn", "type",
        ] {
            assert!(snake_case_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn derived_names() {
        assert_eq!(camel("lguest_data"), "LguestData");
        assert_eq!(camel("x86_64_thing"), "X8664Thing");
        assert_eq!(upper("set_pte"), "SET_PTE");
    }
}
