//! Room: the generic spanned-TOML reader. [`Obj`] reads one table of toml's spanned
//! document tree ([`DeTable`]): typed getters that report a wrong type, a missing key or an
//! unknown key (with a "did you mean") at its span, and the checks every string of a spec
//! goes through (names, and text that ends up in rustdoc or a string literal). Nothing in
//! here knows a section of the spec format.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::markdown::clean_text;
use crate::names::name_problem;
use crate::spec::*;

pub(super) type Val<'i> = Spanned<DeValue<'i>>;

/// A TOML table being read: its entries, its span, and what to call it in messages.
pub(super) struct Obj<'a, 'i> {
    pub(super) t: &'a DeTable<'i>,
    pub(super) span: Range<usize>,
    pub(super) what: String,
}

pub(super) fn kind_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Obj<'a, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.t.get(key)
    }

    pub(super) fn key_span(&self, key: &str) -> Range<usize> {
        self.t
            .get_key_value(key)
            .map_or(self.span.clone(), |(k, _)| k.span())
    }

    /// Reports every key not in `allowed`, suggesting the closest allowed one.
    pub(super) fn check_keys(&self, d: &mut Diagnostics, allowed: &[&str]) {
        for (k, _) in self.t.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let mut diag =
                    Diagnostic::new(k.span(), format!("unknown key `{key}` in {}", self.what));
                diag = match did_you_mean(key, allowed) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!("expected one of: {}", allowed.join(", "))),
                };
                d.push(diag);
            }
        }
    }

    pub(super) fn required(
        &self,
        d: &mut Diagnostics,
        key: &str,
        example: &str,
    ) -> Option<&'a Val<'i>> {
        let v = self.get(key);
        if v.is_none() {
            d.push(
                Diagnostic::new(
                    self.span.clone(),
                    format!("missing required key `{key}` in {}", self.what),
                )
                .help(format!("add `{key} = {example}`")),
            );
        }
        v
    }

    pub(super) fn wrong_type(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>, want: &str) {
        let example = match want {
            "an integer" => "1",
            "a string" => "\"...\"",
            "true or false" => "true",
            _ => "[...]",
        };
        d.push(
            Diagnostic::new(
                v.span(),
                format!(
                    "`{key}` in {} must be {want}, not {}",
                    self.what,
                    kind_name(v.get_ref())
                ),
            )
            .help(format!("write it as {want}, e.g. `{key} = {example}`")),
        );
    }

    pub(super) fn str_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>) -> Option<Sp<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            _ => {
                self.wrong_type(d, key, v, "a string");
                None
            }
        }
    }

    pub(super) fn opt_str(&self, d: &mut Diagnostics, key: &str) -> Option<Sp<String>> {
        self.get(key).and_then(|v| self.str_at(d, key, v))
    }

    pub(super) fn req_str(
        &self,
        d: &mut Diagnostics,
        key: &str,
        example: &str,
    ) -> Option<Sp<String>> {
        self.required(d, key, example)
            .and_then(|v| self.str_at(d, key, v))
    }

    pub(super) fn int_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>) -> Option<Sp<u64>> {
        match v.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Sp::new(n, v.span())),
                Err(_) => {
                    d.push(
                        Diagnostic::new(
                            v.span(),
                            format!("`{key}` in {} must be between 0 and 2^64-1", self.what),
                        )
                        .help("ABI values are unsigned 64-bit integers"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(d, key, v, "an integer");
                None
            }
        }
    }

    pub(super) fn opt_int(&self, d: &mut Diagnostics, key: &str) -> Option<Sp<u64>> {
        self.get(key).and_then(|v| self.int_at(d, key, v))
    }

    pub(super) fn req_int(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<Sp<u64>> {
        self.required(d, key, example)
            .and_then(|v| self.int_at(d, key, v))
    }

    pub(super) fn opt_bool(&self, d: &mut Diagnostics, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(d, key, v, "true or false");
                None
            }
        }
    }

    pub(super) fn opt_array(&self, d: &mut Diagnostics, key: &str) -> Option<&'a DeArray<'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(d, key, v, "an array");
                None
            }
        }
    }

    pub(super) fn opt_table(
        &self,
        d: &mut Diagnostics,
        key: &str,
        what: String,
    ) -> Option<Obj<'a, 'i>> {
        let v = self.get(key)?;
        as_obj(d, v, what, key)
    }
}

pub(super) fn as_obj<'a, 'i>(
    d: &mut Diagnostics,
    v: &'a Val<'i>,
    what: String,
    key: &str,
) -> Option<Obj<'a, 'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(Obj {
            t,
            span: v.span(),
            what,
        }),
        other => {
            d.push(
                Diagnostic::new(
                    v.span(),
                    format!("`{key}` must be a table, not {}", kind_name(other)),
                )
                .help(format!(
                    "write `{key}` as a table: `{key} = {{ ... }}` or a `[{key}]` section"
                )),
            );
            None
        }
    }
}

/// Array of tables (`[[hypercall]]`), or an error.
pub(super) fn tables_in<'a, 'i>(
    d: &mut Diagnostics,
    v: &'a Val<'i>,
    key: &str,
) -> Vec<&'a Val<'i>> {
    match v.get_ref() {
        DeValue::Array(a) => a.iter().collect(),
        other => {
            d.push(
                Diagnostic::new(
                    v.span(),
                    format!(
                        "`{key}` must be an array of tables, not {}",
                        kind_name(other)
                    ),
                )
                .help(format!("write each entry as a `[[{key}]]` table")),
            );
            Vec::new()
        }
    }
}

pub(super) fn check_name(d: &mut Diagnostics, name: &Sp<String>, what: &str) -> bool {
    match name_problem(&name.v) {
        Some((problem, hint)) => {
            d.push(
                Diagnostic::new(name.span.clone(), format!("bad {what} name: {problem}"))
                    .help(hint),
            );
            false
        }
        None => true,
    }
}

/// Why `text` cannot go into rustdoc or a string literal as it is: a control character
/// other than a newline or a tab (a lone carriage return, say), or a bidirectional
/// override, which rustc refuses in comments and literals because it makes code read
/// differently from how it compiles.
pub(super) fn text_problem(text: &str) -> Option<String> {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let bad = match c {
            '\n' | '\t' => None,
            '\r' if chars.peek() == Some(&'\n') => None,
            '\r' => Some("a carriage return that does not end a line".to_string()),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                Some(format!("the bidirectional control U+{:04X}", u32::from(c)))
            }
            c if c.is_control() => Some(format!("the control character U+{:04X}", u32::from(c))),
            _ => None,
        };
        if bad.is_some() {
            return bad;
        }
    }
    None
}

impl Obj<'_, '_> {
    /// A text value (a doc, a safety note, an instruction): refused when empty or when it
    /// holds what rustdoc or a string literal cannot carry, cleaned otherwise.
    pub(super) fn text_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'_>) -> Option<String> {
        let s = self.str_at(d, key, v)?;
        if s.v.trim().is_empty() {
            d.push(
                Diagnostic::new(s.span, format!("`{key}` in {} is empty", self.what))
                    .help(format!("say what it is, or leave out `{key}`: generated items get their docs from it, and an empty doc is no doc")),
            );
            return None;
        }
        if let Some(p) = text_problem(&s.v) {
            d.push(
                Diagnostic::new(s.span, format!("`{key}` in {} contains {p}", self.what))
                    .help("remove it: the text goes into rustdoc and string literals of the generated code, where it would break or mislead"),
            );
            return None;
        }
        Some(clean_text(&s.v))
    }

    /// An optional text value (see [`Obj::text_at`]).
    pub(super) fn opt_text(&self, d: &mut Diagnostics, key: &str) -> Option<String> {
        self.get(key).and_then(|v| self.text_at(d, key, v))
    }

    /// A required text value (see [`Obj::text_at`]).
    pub(super) fn req_text(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<String> {
        self.required(d, key, example)
            .and_then(|v| self.text_at(d, key, v))
    }
}

/// How an integer literal was written, so generated code can show it the same way.
pub(super) fn int_form(v: &Val<'_>) -> NumForm {
    match v.get_ref() {
        DeValue::Integer(i) => match i.radix() {
            16 => NumForm::Hex,
            8 => NumForm::Oct,
            2 => NumForm::Bin,
            _ => NumForm::Dec,
        },
        _ => NumForm::Dec,
    }
}
