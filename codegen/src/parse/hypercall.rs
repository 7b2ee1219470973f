//! Room: `[[hypercall]]` and its arguments: types, and the constraints the host checks
//! (`align`, `range`).

use ::toml::de::DeValue;

use super::Parser;
use super::toml::{Obj, Val, as_obj, check_name, int_form};
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::*;

impl Parser<'_> {
    /// One `[[hypercall]]` (the `index`th). It comes back with the arguments that could
    /// be read even when others could not, so the whole-spec checks still see its number.
    pub(super) fn hypercall(
        &mut self,
        v: &Val<'_>,
        index: usize,
        types: &[TypeDef],
        structs: &[StructDef],
    ) -> Option<Hypercall> {
        let mut o = as_obj(self.d, v, format!("hypercall #{}", index + 1), "hypercall")?;
        let name = o.req_str(self.d, "name", "\"my_call\"");
        if let Some(n) = &name {
            o.what = format!("hypercall `{}`", n.v);
        }
        // `since` is read by lock/since.rs.
        o.check_keys(
            self.d,
            &[
                "name", "nr", "doc", "lazy", "args", "ret", "results", "since",
            ],
        );
        // A number, or a const's name (`"hc_vm_base + 1"`): ACRN builds its ids that way.
        let nr = match o.required(self.d, "nr", "0") {
            Some(v)
                if matches!(v.get_ref(), DeValue::String(s)
                    if !s.trim().starts_with(|c: char| c.is_ascii_digit())) =>
            {
                self.number(v, "`nr`", &o.what)
                    .map(|n| Sp::new(n, v.span()))
            }
            Some(v) => o.int_at(self.d, "nr", v).map(|n| {
                let num = Num {
                    value: n.v,
                    form: int_form(v),
                };
                Sp::new(num, n.span)
            }),
            None => None,
        };
        let doc = o.req_text(self.d, "doc", "\"What the call does.\"");
        let lazy = o.opt_bool(self.d, "lazy").unwrap_or(false);
        let ret = o.opt_text(self.d, "ret");
        let mut args: Vec<Arg> = Vec::new();
        let mut raws = Vec::new();
        if let Some(a) = o.opt_array(self.d, "args") {
            for v in a.iter() {
                let mem_type = match v.get_ref() {
                    DeValue::Table(t) => t.get("type").is_some_and(|t| {
                        matches!(t.get_ref(), DeValue::String(s) if super::memory::is_mem_type(s))
                    }),
                    _ => false,
                };
                let arg = if mem_type {
                    // A memory argument: a register carrying its address, unless `at` says
                    // the address is in a struct field.
                    let Some((raw, ty_span)) = self.mem_arg(v, &o.what, types, structs) else {
                        continue;
                    };
                    let reg = raw.register(ty_span);
                    raws.push(raw);
                    match reg {
                        Some(a) => a,
                        None => continue,
                    }
                } else {
                    let Some(arg) = self.arg(v, &o.what, types) else {
                        continue;
                    };
                    arg
                };
                if let Some(p) = args.iter().find(|p| {
                    p.name.v != arg.name.v
                        && p.name.v.trim_start_matches('_') == arg.name.v.trim_start_matches('_')
                }) {
                    self.d.push(
                        Diagnostic::new(
                            arg.name.span.clone(),
                            format!(
                                "arguments `{}` and `{}` of {} differ only by a leading underscore",
                                p.name.v, arg.name.v, o.what
                            ),
                        )
                        .help("give them names that differ in letters: a reader (and clippy) takes one for the other"),
                    );
                } else if args.iter().any(|p| p.name.v == arg.name.v) {
                    self.d.push(
                        Diagnostic::new(
                            arg.name.span.clone(),
                            format!("duplicate argument `{}` in {}", arg.name.v, o.what),
                        )
                        .help("argument names are unique within their hypercall"),
                    );
                } else {
                    args.push(arg);
                }
            }
        }
        let mem = self.resolve_mem(&o.what, &args, raws, types, structs);
        let results = match o.opt_array(self.d, "results") {
            Some(a) => {
                let ret_span = ret.as_ref().map(|_| o.key_span("ret"));
                let what = o.what.clone();
                self.results(&a[..], &what, types, ret_span)
            }
            None => Vec::new(),
        };
        let name = name.filter(|n| check_name(self.d, n, "hypercall"));
        let nr = nr?;
        Some(Hypercall {
            name: name?,
            nr: Sp::new(nr.v.value, nr.span),
            nr_written: nr.v,
            doc: doc.unwrap_or_default(),
            lazy,
            args,
            ret,
            results,
            mem,
        })
    }

    /// One argument of hypercall `call`.
    fn arg(&mut self, v: &Val<'_>, call: &str, types: &[TypeDef]) -> Option<Arg> {
        let mut o = as_obj(self.d, v, format!("an argument of {call}"), "args")?;
        let name = o.req_str(self.d, "name", "\"addr\"");
        if let Some(n) = &name {
            o.what = format!("argument `{}` of {call}", n.v);
        }
        o.check_keys(self.d, &["name", "type", "doc", "align", "range"]);
        let ty_s = o.req_str(self.d, "type", "\"u64\"");
        let doc = o.opt_text(self.d, "doc");
        let ty = ty_s.as_ref().and_then(|s| self.arg_type(s, &o.what, types));
        // The primitive it travels as, and whether it is an enum.
        let prim = ty.as_ref().map(|t| match t {
            ArgType::Prim(p) => (*p, false),
            ArgType::Named(i) => match &types[*i].kind {
                TypeKind::Alias(p) => (*p, false),
                TypeKind::Enum { repr, .. } => (*repr, true),
            },
        });
        let ty_name = ty_s.as_ref().map_or("", |s| s.v.as_str());
        let (align, align_ok) = self.align(&o, prim, ty_name);
        let (range, range_ok) = self.range(&o, prim);
        let name = name.filter(|n| check_name(self.d, n, "argument"));
        if !(align_ok && range_ok) {
            return None;
        }
        // Both constraints together may admit no value at all.
        if let (Some(al), Some((lo, hi))) = (&align, &range) {
            let step = u128::from(al.value);
            let first = u128::from(lo.value).div_ceil(step) * step;
            if first > u128::from(hi.value) {
                self.d.push(
                    Diagnostic::new(
                        o.key_span("range"),
                        format!(
                            "no value of `range = [{}, {}]` in {} is a multiple of {}",
                            lo.value, hi.value, o.what, al.value
                        ),
                    )
                    .help(
                        "widen the range or lower the alignment: as written, every call is refused",
                    ),
                );
                return None;
            }
        }
        Some(Arg {
            name: name?,
            ty: ty?,
            ty_span: ty_s?.span,
            doc,
            align: align.as_ref().map(|a| a.value),
            range: range.as_ref().map(|(lo, hi)| (lo.value, hi.value)),
            range_written: range,
            align_written: align,
        })
    }

    /// A primitive, or a `[types]` name.
    pub(super) fn arg_type(
        &mut self,
        s: &Sp<String>,
        what: &str,
        types: &[TypeDef],
    ) -> Option<ArgType> {
        if let Some(p) = Prim::from_name(&s.v) {
            return Some(ArgType::Prim(p));
        }
        if let Some(i) = types.iter().position(|t| t.name.v == s.v) {
            return Some(ArgType::Named(i));
        }
        let mut names: Vec<&str> = vec!["u8", "u16", "u32", "u64", "bool"];
        names.extend(types.iter().map(|t| t.name.v.as_str()));
        let mut diag = Diagnostic::new(s.span.clone(), format!("unknown type `{}` in {what}", s.v));
        diag = match did_you_mean(&s.v, &names) {
            Some(n) => diag.help(format!("did you mean `{n}`?")),
            None => diag.help(format!(
                "use one of {}, or define it in [types]",
                names.join(", ")
            )),
        };
        self.d.push(diag);
        None
    }

    /// `align = N`: a power of two, on an integer type, no larger than the type holds.
    pub(super) fn align(
        &mut self,
        o: &Obj<'_, '_>,
        prim: Option<(Prim, bool)>,
        ty_name: &str,
    ) -> (Option<Num>, bool) {
        let Some(v) = o.get("align") else {
            return (None, true);
        };
        let Some(a) = o.int_at(self.d, "align", v) else {
            return (None, false);
        };
        let mut ok = true;
        if !a.v.is_power_of_two() {
            self.d.push(
                Diagnostic::new(
                    a.span.clone(),
                    format!("`align = {}` in {} is not a power of two", a.v, o.what),
                )
                .help("use 1, 2, 4, 8, ... 4096, ..."),
            );
            ok = false;
        }
        if let Some((p, is_enum)) = prim
            && (p == Prim::Bool || is_enum)
        {
            self.d.push(
                Diagnostic::new(
                    o.key_span("align"),
                    format!("`align` cannot apply to {} (type `{ty_name}`)", o.what),
                )
                .help("alignment constrains integers and addresses; remove it"),
            );
            ok = false;
        } else if let Some((p, _)) = prim
            && a.v.is_power_of_two()
            && a.v > p.max()
        {
            self.d.push(
                Diagnostic::new(
                    a.span.clone(),
                    format!(
                        "`align = {}` in {} is larger than any {}",
                        a.v,
                        o.what,
                        p.name()
                    ),
                )
                .help("use a smaller alignment or a wider type"),
            );
            ok = false;
        }
        let num = Num {
            value: a.v,
            form: int_form(v),
        };
        (Some(num), ok)
    }

    /// `range = [lo, hi]`: inclusive, not empty, within the type.
    pub(super) fn range(
        &mut self,
        o: &Obj<'_, '_>,
        prim: Option<(Prim, bool)>,
    ) -> (Option<(Num, Num)>, bool) {
        let Some(rv) = o.get("range") else {
            return (None, true);
        };
        let DeValue::Array(a) = rv.get_ref() else {
            self.range_shape(o, rv);
            return (None, false);
        };
        if a.len() != 2 {
            self.range_shape(o, rv);
            return (None, false);
        }
        let lo = self.number(&a[0], "the `range`", &o.what);
        let hi = self.number(&a[1], "the `range`", &o.what);
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return (None, false);
        };
        let (l, h) = (lo.value, hi.value);
        if l > h {
            self.d.push(
                Diagnostic::new(
                    rv.span(),
                    format!("`range = [{l}, {h}]` in {} is empty", o.what),
                )
                .help("write `[low, high]`, both inclusive, low <= high"),
            );
            return (None, false);
        }
        let Some((p, is_enum)) = prim else {
            return (None, false);
        };
        if p == Prim::Bool || is_enum {
            self.d.push(
                Diagnostic::new(
                    o.key_span("range"),
                    format!(
                        "`range` cannot apply to {} (its type already limits its values)",
                        o.what
                    ),
                )
                .help("remove `range`"),
            );
            return (None, false);
        }
        if h > p.max() {
            self.d.push(
                Diagnostic::new(
                    rv.span(),
                    format!(
                        "`range = [{l}, {h}]` in {} is outside the bounds of {} (0 to {})",
                        o.what,
                        p.name(),
                        p.max()
                    ),
                )
                .help(format!(
                    "keep the range within 0..={}, or widen the type",
                    p.max()
                )),
            );
            return (None, false);
        }
        (Some((lo, hi)), true)
    }

    fn range_shape(&mut self, o: &Obj<'_, '_>, rv: &Val<'_>) {
        self.d.push(
            Diagnostic::new(
                rv.span(),
                format!("`range` in {} must be a two-element array", o.what),
            )
            .help("write `range = [low, high]` (inclusive)"),
        );
    }
}
