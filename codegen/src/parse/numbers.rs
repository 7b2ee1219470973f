//! Room: numbers: `[consts]` (numbers, and the texts a spec may name beside them), and the
//! values that may name one (`range` bounds, `init`, enum values: `"gdt_entries - 1"`),
//! resolved with checked arithmetic.

use super::Parser;
use super::toml::{Obj, Val, as_obj, check_name, int_form, kind_name, text_problem};
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::*;
use ::toml::de::DeValue;

impl Parser<'_> {
    /// `[consts]`: named numbers, which later numbers may name, and named texts.
    pub(super) fn consts(&mut self, o: &Obj<'_, '_>) -> Vec<Const> {
        let mut out = Vec::new();
        for (k, v) in o.t.iter() {
            let name = Sp::new(k.get_ref().to_string(), k.span());
            let what = format!("const `{}`", name.v);
            let (value, form, doc) = match v.get_ref() {
                DeValue::Table(_) => {
                    let Some(c) = as_obj(self.d, v, what.clone(), &name.v) else {
                        continue;
                    };
                    c.check_keys(self.d, &["value", "text", "doc"]);
                    let form = c.get("value").map_or(NumForm::Dec, int_form);
                    let value = match (c.get("value"), c.get("text")) {
                        (Some(_), Some(t)) => {
                            self.d.push(
                                Diagnostic::new(
                                    t.span(),
                                    format!("{what} has both `value` and `text`"),
                                )
                                .help("a const is a number (`value`) or a text (`text`), not both"),
                            );
                            None
                        }
                        (None, Some(t)) => self.const_text(&c, t, &what),
                        _ => c
                            .req_int(self.d, "value", "0")
                            .map(|n| Sp::new(ConstValue::Int(n.v), n.span)),
                    };
                    (value, form, c.opt_text(self.d, "doc"))
                }
                DeValue::Integer(_) => (
                    o.int_at(self.d, &name.v, v)
                        .map(|n| Sp::new(ConstValue::Int(n.v), n.span)),
                    int_form(v),
                    None,
                ),
                other => {
                    self.d.push(
                        Diagnostic::new(
                            v.span(),
                            format!(
                                "{what} must be an integer or a table, not {}",
                                kind_name(other)
                            ),
                        )
                        .help(format!(
                            "write `{} = {{ value = 1, doc = \"...\" }}`",
                            name.v
                        )),
                    );
                    continue;
                }
            };
            if !check_name(self.d, &name, "const") {
                continue;
            }
            if let Some(value) = value {
                match &value.v {
                    ConstValue::Int(n) => {
                        self.consts.insert(name.v.clone(), *n);
                    }
                    ConstValue::Text(_) => {
                        self.texts.insert(name.v.clone());
                    }
                }
                out.push(Const {
                    name,
                    value: value.v,
                    form,
                    doc,
                });
            }
        }
        out
    }

    /// A const's `text`: exactly as written (it becomes a string literal, so it may be
    /// empty), refused only where a literal could not carry it.
    fn const_text(&mut self, c: &Obj<'_, '_>, v: &Val<'_>, what: &str) -> Option<Sp<ConstValue>> {
        let s = c.str_at(self.d, "text", v)?;
        if let Some(p) = text_problem(&s.v) {
            self.d.push(
                Diagnostic::new(s.span, format!("`text` of {what} contains {p}"))
                    .help("remove it: the text becomes a string literal of the generated code"),
            );
            return None;
        }
        Some(Sp::new(ConstValue::Text(s.v), s.span))
    }

    /// A number that may name a const: an integer, or `"const"`, `"const - N"`,
    /// `"const + N"` (so a value the spec already has is written once). `key` names the
    /// value in messages (`range` bound, `init`, `value`).
    pub(super) fn number(&mut self, v: &Val<'_>, key: &str, what: &str) -> Option<Num> {
        match v.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Num {
                    value: n,
                    form: int_form(v),
                }),
                Err(_) => {
                    self.d.push(
                        Diagnostic::new(
                            v.span(),
                            format!("{key} of {what} must be between 0 and 2^64-1"),
                        )
                        .help("values are unsigned 64-bit integers"),
                    );
                    None
                }
            },
            DeValue::String(s) => self.const_expr(v, s, key, what),
            other => {
                self.d.push(
                    Diagnostic::new(
                        v.span(),
                        format!(
                            "{key} of {what} must be an integer or a const name, not {}",
                            kind_name(other)
                        ),
                    )
                    .help("write a number such as `31`, or a const such as `\"gdt_entries - 1\"`"),
                );
                None
            }
        }
    }

    /// `"name"`, `"name + N"` or `"name - N"`, N a decimal or `0x` number.
    fn const_expr(&mut self, v: &Val<'_>, text: &str, key: &str, what: &str) -> Option<Num> {
        let s = text.trim();
        let unreadable = |p: &mut Self| {
            p.d.push(
                Diagnostic::new(v.span(), format!("cannot read {key} \"{s}\" of {what}"))
                    .help("write a const name, optionally followed by `- N` or `+ N`"),
            );
        };
        let (name, sign, n) = match s.find(['+', '-']) {
            Some(at) => (s[..at].trim(), &s[at..=at], s[at + 1..].trim()),
            None => (s, "+", "0"),
        };
        let n = match n.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
            None => n.replace('_', "").parse::<u64>(),
        };
        let (Ok(n), false) = (n, name.is_empty()) else {
            unreadable(self);
            return None;
        };
        let Some(base) = self.consts.get(name).copied() else {
            if self.texts.contains(name) {
                self.d.push(
                    Diagnostic::new(
                        v.span(),
                        format!("const `{name}` in {key} of {what} is a text, not a number"),
                    )
                    .help("name a const with a `value`"),
                );
                return None;
            }
            let names: Vec<&str> = self.consts.keys().map(String::as_str).collect();
            let mut diag = Diagnostic::new(
                v.span(),
                format!("unknown const `{name}` in {key} of {what}"),
            );
            diag = match did_you_mean(name, &names) {
                Some(n) => diag.help(format!("did you mean `{n}`?")),
                None => diag.help("define it in [consts]"),
            };
            self.d.push(diag);
            return None;
        };
        let (value, delta) = if sign == "-" {
            (base.checked_sub(n), -i128::from(n))
        } else {
            (base.checked_add(n), i128::from(n))
        };
        let Some(value) = value else {
            let exact = i128::from(base) + delta;
            self.d.push(
                Diagnostic::new(
                    v.span(),
                    format!("{key} \"{s}\" of {what} is {exact}, outside 0..2^64"),
                )
                .help("adjust the offset so the value stays within 0..2^64"),
            );
            return None;
        };
        Some(Num {
            value,
            form: NumForm::Const {
                name: name.to_string(),
                delta,
            },
        })
    }

    /// An optional number that may name a const (see [`Parser::number`]).
    pub(super) fn opt_number(&mut self, o: &Obj<'_, '_>, key: &str) -> Option<Sp<Num>> {
        let v = o.get(key)?;
        let n = self.number(v, &format!("`{key}`"), &o.what)?;
        Some(Sp::new(n, v.span()))
    }
}
