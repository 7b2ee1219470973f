//! Room: `[types.NAME]`: aliases of a primitive, and enums with their variants.

use std::collections::{HashMap, HashSet};

use super::Parser;
use super::toml::{Obj, as_obj, check_name};
use crate::diag::Diagnostic;
use crate::spec::*;

impl Parser<'_> {
    /// `u8`, `u16`, `u32`, `u64` or `bool`.
    pub(super) fn prim(&mut self, s: &Sp<String>, what: &str) -> Option<Prim> {
        let p = Prim::from_name(&s.v);
        if p.is_none() {
            self.d.push(
                Diagnostic::new(s.span.clone(), format!("unknown type `{}` in {what}", s.v))
                    .help("use u8, u16, u32, u64 or bool"),
            );
        }
        p
    }

    /// Every `[types.NAME]`, in source order.
    pub(super) fn types(&mut self, o: &Obj<'_, '_>) -> Vec<TypeDef> {
        let mut out = Vec::new();
        for (k, v) in o.t.iter() {
            let name = Sp::new(k.get_ref().to_string(), k.span());
            let what = format!("type `{}`", name.v);
            let Some(t) = as_obj(self.d, v, what.clone(), &name.v) else {
                continue;
            };
            t.check_keys(self.d, &["doc", "alias", "repr", "variants"]);
            let mut name_ok = check_name(self.d, &name, "type");
            if Prim::from_name(&name.v).is_some() || Int::from_name(&name.v).is_some() {
                self.d.push(
                    Diagnostic::new(name.span.clone(), format!("type `{}` has the name of a primitive", name.v))
                        .help("an argument's or a struct field's `type = \"u64\"` (or `\"i32\"`) always means the primitive, so this type could never be used there: rename it"),
                );
                name_ok = false;
            } else if name.v == "str" {
                self.d.push(
                    Diagnostic::new(name.span.clone(), "type `str` has the name of the string argument type")
                        .help("an argument's `type = \"str\"` always means a string in guest memory, so this type could never be used: rename it"),
                );
                name_ok = false;
            }
            let doc = t.opt_text(self.d, "doc");
            let kind = match (t.opt_str(self.d, "alias"), t.get("repr"), t.get("variants")) {
                (Some(alias), None, None) => self.prim(&alias, &what).map(TypeKind::Alias),
                (None, Some(_), Some(_)) => {
                    let repr = t
                        .opt_str(self.d, "repr")
                        .and_then(|r| self.prim(&r, &what).map(|p| (p, r.span)))
                        .and_then(|(p, span)| {
                            if p == Prim::Bool {
                                self.d.push(
                                    Diagnostic::new(span, format!("{what} cannot travel as `bool`"))
                                        .help("an enum travels as an unsigned integer: use `repr = \"u8\"` (or make the argument a plain `bool`)"),
                                );
                                return None;
                            }
                            Some(p)
                        });
                    let variants = self.variants(&t, repr);
                    repr.map(|repr| TypeKind::Enum { repr, variants })
                }
                (Some(_), _, _) => {
                    self.d.push(
                        Diagnostic::new(
                            t.key_span("alias"),
                            format!("{what} is both an alias and an enum"),
                        )
                        .help("an alias has only `alias`; an enum has `repr` and `variants`"),
                    );
                    None
                }
                _ => {
                    self.d.push(
                        Diagnostic::new(t.span.clone(), format!("{what} needs `alias`, or `repr` and `variants`"))
                            .help("e.g. `alias = \"u64\"`, or `repr = \"u64\"` with `variants = [{ name = \"on\", value = 1 }]`"),
                    );
                    None
                }
            };
            if let (true, Some(kind)) = (name_ok, kind) {
                out.push(TypeDef { name, doc, kind });
            }
        }
        out
    }

    fn variants(&mut self, t: &Obj<'_, '_>, repr: Option<Prim>) -> Vec<Variant> {
        let mut out: Vec<Variant> = Vec::new();
        // Names and values seen, for linear time on the largest enums (a u16 enum may have
        // 65,536 variants).
        let mut names: HashSet<String> = HashSet::new();
        let mut values: HashMap<u64, usize> = HashMap::new();
        let Some(a) = t.opt_array(self.d, "variants") else {
            return out;
        };
        if a.is_empty() {
            self.d.push(
                Diagnostic::new(
                    t.key_span("variants"),
                    format!("{} has no variants", t.what),
                )
                .help("an enum needs at least one `{ name, value }`"),
            );
        }
        for v in a.iter() {
            let Some(o) = as_obj(self.d, v, format!("a variant of {}", t.what), "variants") else {
                continue;
            };
            o.check_keys(self.d, &["name", "value", "doc"]);
            let name = o.req_str(self.d, "name", "\"on\"");
            let value = match o.required(self.d, "value", "1") {
                Some(_) => self.opt_number(&o, "value"),
                None => None,
            };
            let doc = o.opt_text(self.d, "doc");
            let (Some(name), Some(value)) = (name, value) else {
                continue;
            };
            if !check_name(self.d, &name, "variant") {
                continue;
            }
            if let Some(repr) = repr
                && value.v.value > repr.max()
            {
                self.d.push(
                    Diagnostic::new(
                        value.span.clone(),
                        format!(
                            "value {} of variant `{}` does not fit in {}",
                            value.v.value,
                            name.v,
                            repr.name()
                        ),
                    )
                    .help(format!("use a value up to {}", repr.max())),
                );
                continue;
            }
            if names.contains(&name.v) {
                self.d.push(
                    Diagnostic::new(
                        name.span.clone(),
                        format!("duplicate variant `{}` in {}", name.v, t.what),
                    )
                    .help("variant names are unique within their enum"),
                );
                continue;
            }
            if let Some(prev) = values.get(&value.v.value).map(|&i| &out[i]) {
                self.d.push(
                    Diagnostic::new(
                        value.span.clone(),
                        format!(
                            "variants `{}` and `{}` of {} share the value {}",
                            prev.name.v, name.v, t.what, value.v.value
                        ),
                    )
                    .help("give every variant its own value"),
                );
                continue;
            }
            names.insert(name.v.clone());
            values.insert(value.v.value, out.len());
            out.push(Variant {
                name,
                value: value.v.value,
                doc,
            });
        }
        out
    }
}
