//! Room: a hypercall's `results = [...]`: typed values in several registers, one of which may
//! be the call's error code (`error = true`, an enum; `ok` is the value meaning success).
//! What needs the transports (which registers a transport hands back) is checked in
//! `check.rs`.

use std::ops::Range;

use super::Parser;
use super::toml::{Val, as_obj, check_name};
use crate::diag::Diagnostic;
use crate::spec::*;

impl Parser<'_> {
    /// `results` of hypercall `call` (`what` in messages); `ret_span` is its `ret` key's, when
    /// it has one (the two are exclusive).
    pub(super) fn results(
        &mut self,
        a: &[Val<'_>],
        what: &str,
        types: &[TypeDef],
        ret_span: Option<Range<usize>>,
    ) -> Vec<CallResult> {
        let mut out: Vec<CallResult> = Vec::new();
        if let (Some(span), false) = (ret_span, a.is_empty()) {
            self.d.push(
                Diagnostic::new(
                    span,
                    format!("{what} has both `ret` and `results`"),
                )
                .help("`ret` is one result in the transport's result register; with `results`, list it there too (`{ name = \"value\", reg = \"rax\", type = \"u64\" }`) and remove `ret`"),
            );
        }
        for v in a {
            let Some(r) = self.result(v, what, types) else {
                continue;
            };
            if out.iter().any(|p| p.name.v == r.name.v) {
                self.d.push(
                    Diagnostic::new(
                        r.name.span.clone(),
                        format!("duplicate result `{}` in {what}", r.name.v),
                    )
                    .help("result names are unique within their hypercall"),
                );
                continue;
            }
            if let Some(p) = out.iter().find(|p| p.reg.v == r.reg.v) {
                self.d.push(
                    Diagnostic::new(
                        r.reg.span.clone(),
                        format!(
                            "results `{}` and `{}` of {what} are both in `{}`",
                            p.name.v,
                            r.name.v,
                            r.reg.v.name()
                        ),
                    )
                    .help("a register holds one result: give each its own"),
                );
                continue;
            }
            if r.error
                && let Some(p) = out.iter().find(|p| p.error)
            {
                self.d.push(
                    Diagnostic::new(
                        r.name.span.clone(),
                        format!(
                            "{what} has two error results, `{}` and `{}`",
                            p.name.v, r.name.v
                        ),
                    )
                    .help("one result is the error code; the others are the values it guards"),
                );
                continue;
            }
            out.push(r);
        }
        out
    }

    /// One entry of `results`.
    fn result(&mut self, v: &Val<'_>, call: &str, types: &[TypeDef]) -> Option<CallResult> {
        let mut o = as_obj(self.d, v, format!("a result of {call}"), "results")?;
        let name = o.req_str(self.d, "name", "\"value\"");
        if let Some(n) = &name {
            o.what = format!("result `{}` of {call}", n.v);
        }
        o.check_keys(self.d, &["name", "reg", "type", "doc", "error", "ok"]);
        let reg = o.req_str(self.d, "reg", "\"rdx\"").and_then(|r| {
            let got = Reg::from_name(&r.v).map(|g| Sp::new(g, r.span.clone()));
            if got.is_none() {
                let names: Vec<&str> = Reg::ALL.iter().map(|r| r.name()).collect();
                let mut diag = Diagnostic::new(
                    r.span.clone(),
                    format!("`{}` in {} is not a register", r.v, o.what),
                );
                diag = match crate::diag::did_you_mean(&r.v, &names) {
                    Some(n) => diag.help(format!("did you mean `{n}`?")),
                    None => diag.help(format!("use one of {}", names.join(", "))),
                };
                self.d.push(diag);
            }
            got
        });
        let ty_s = o.req_str(self.d, "type", "\"u64\"");
        let doc = o.opt_text(self.d, "doc");
        let error = o.opt_bool(self.d, "error").unwrap_or(false);
        let ty = ty_s.as_ref().and_then(|s| self.arg_type(s, &o.what, types));
        let mut ok = Num {
            value: 0,
            form: NumForm::Dec,
        };
        let mut fine = true;
        if let Some(v) = o.get("ok") {
            if !error {
                self.d.push(
                    Diagnostic::new(
                        o.key_span("ok"),
                        format!("`ok` in {} belongs to an error result", o.what),
                    )
                    .help("add `error = true` if this result is the call's error code, or remove `ok`"),
                );
                fine = false;
            } else if let Some(n) = self.number(v, "`ok`", &o.what) {
                ok = n;
            } else {
                fine = false;
            }
        }
        if error && let Some(t) = &ty {
            let ts = ty_s.as_ref().map_or("", |s| s.v.as_str());
            let en = match t {
                ArgType::Named(i) => match &types[*i].kind {
                    TypeKind::Enum { repr, variants } => Some((repr, variants)),
                    TypeKind::Alias(_) => None,
                },
                ArgType::Prim(_) => None,
            };
            match en {
                Some((repr, variants)) => {
                    if ok.value > repr.max() {
                        self.d.push(
                            Diagnostic::new(
                                o.get("ok").map_or(o.key_span("error"), |v| v.span()),
                                format!(
                                    "`ok = {}` in {} does not fit `{ts}`'s repr {}",
                                    ok.value,
                                    o.what,
                                    repr.name()
                                ),
                            )
                            .help(format!("the success value is a {} too", repr.name())),
                        );
                        fine = false;
                    } else if let Some(var) = variants.iter().find(|v| v.value == ok.value) {
                        self.d.push(
                            Diagnostic::new(
                                o.get("ok").map_or(o.key_span("error"), |v| v.span()),
                                format!(
                                    "variant `{}` of `{ts}` has the success value {} of {}",
                                    var.name.v, ok.value, o.what
                                ),
                            )
                            .help(format!("an error enum lists the failures only: remove variant `{}` (the guest gets `Ok` for {}), or set `ok` to the value that means success", var.name.v, ok.value)),
                        );
                        fine = false;
                    }
                }
                _ => {
                    self.d.push(
                        Diagnostic::new(
                            ty_s.as_ref().map_or(o.key_span("error"), |s| s.span.clone()),
                            format!(
                                "{} is the error code (`error = true`) but has type `{ts}`, which is not an enum",
                                o.what
                            ),
                        )
                        .help("define the error codes as a [types] enum (`repr` and `variants`), so the guest gets `Err(code)`"),
                    );
                    fine = false;
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "result"));
        if !fine {
            return None;
        }
        Some(CallResult {
            name: name?,
            reg: reg?,
            ty: ty?,
            ty_span: ty_s?.span,
            doc,
            error,
            ok,
            slot: 0,
        })
    }
}
