//! Room: `[ring]` (the async hypercall ring) and `[shared]` (the page guest and host
//! share) with its fields. Sizes that cannot exist are refused here; the layout is laid
//! out and checked against the spec's offsets in `check.rs`.

use super::Parser;
use super::toml::{Obj, Val, as_obj, check_name, tables_in};
use crate::check::PAGE;
use crate::diag::{Diagnostic, Diagnostics};
use crate::spec::*;

impl Parser<'_> {
    /// `[ring]`.
    pub(super) fn ring(&mut self, o: &Obj<'_, '_>) -> Option<Ring> {
        o.check_keys(self.d, &["doc", "size", "args", "ready", "done"]);
        let doc = o.opt_text(self.d, "doc");
        let size = o.req_int(self.d, "size", "64");
        let args = o.req_int(self.d, "args", "3");
        let ready = o.req_int(self.d, "ready", "0");
        let done = o.req_int(self.d, "done", "0xff");
        let byte = |d: &mut Diagnostics, v: Option<Sp<u64>>, key: &str| -> Option<u8> {
            let v = v?;
            match u8::try_from(v.v) {
                Ok(b) => Some(b),
                Err(_) => {
                    d.push(
                        Diagnostic::new(
                            v.span,
                            format!("`{key}` in [ring] must fit in the status byte (0 to 255)"),
                        )
                        .help("status values are single bytes"),
                    );
                    None
                }
            }
        };
        let args = args.filter(|a| {
            let ok = a.v <= Reg::ALL.len() as u64;
            if !ok {
                self.d.push(
                    Diagnostic::new(
                        a.span.clone(),
                        format!("`args = {}` in [ring] is more than any transport carries", a.v),
                    )
                    .help(format!(
                        "a slot holds no more arguments than a transport has registers (at most {})",
                        Reg::ALL.len()
                    )),
                );
            }
            ok
        });
        let ready_b = byte(self.d, ready.clone(), "ready");
        let done_b = byte(self.d, done, "done");
        let size = size.filter(|s| {
            let ok = s.v > 0 && s.v <= 4096;
            if !ok {
                self.d.push(
                    Diagnostic::new(
                        s.span.clone(),
                        "`size` in [ring] must be between 1 and 4096",
                    )
                    .help("lguest uses 64 slots"),
                );
            }
            ok
        });
        if let (Some(r), Some(dn)) = (ready_b, done_b)
            && r == dn
        {
            self.d.push(
                Diagnostic::new(
                    ready.map_or(o.span.clone(), |r| r.span),
                    "`ready` and `done` in [ring] are the same value",
                )
                .help("the host and the guest tell slots apart by these values: make them differ"),
            );
        }
        // A ring with a bad value (already reported) still comes back, so the shared page's
        // ring fields are not reported as ringless; `args` is then `Ring::UNKNOWN_ARGS` and
        // the checks that depend on it stand down.
        Some(Ring {
            doc,
            size: size.map_or(1, |s| s.v),
            args: args.map_or(Ring::UNKNOWN_ARGS, |a| a.v),
            ready: ready_b.unwrap_or(0),
            done: done_b.unwrap_or(1),
            span: o.span.clone(),
        })
    }

    /// `[shared]` and its `[[shared.field]]`s.
    pub(super) fn shared(&mut self, o: &Obj<'_, '_>) -> Option<SharedPage> {
        o.check_keys(self.d, &["name", "doc", "field"]);
        let name = o.req_str(self.d, "name", "\"shared_page\"");
        let doc = o.opt_text(self.d, "doc");
        let mut fields: Vec<Field> = Vec::new();
        let mut ok = true;
        if let Some(v) = o.required(
            self.d,
            "field",
            "[...] (one [[shared.field]] table per field)",
        ) {
            for f in tables_in(self.d, v, "shared.field") {
                match self.field(f) {
                    Some(f) => {
                        if fields.iter().any(|p| p.name.v == f.name.v) {
                            self.d.push(
                                Diagnostic::new(
                                    f.name.span.clone(),
                                    format!("duplicate shared-page field `{}`", f.name.v),
                                )
                                .help("field names are unique"),
                            );
                            ok = false;
                        } else {
                            fields.push(f);
                        }
                    }
                    None => ok = false,
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "shared-page struct"));
        if !ok {
            return None;
        }
        Some(SharedPage {
            name: name?,
            doc,
            fields,
        })
    }

    /// One `[[shared.field]]`.
    fn field(&mut self, v: &Val<'_>) -> Option<Field> {
        let mut o = as_obj(self.d, v, "a shared-page field".into(), "field")?;
        let name = o.req_str(self.d, "name", "\"flags\"");
        if let Some(n) = &name {
            o.what = format!("shared-page field `{}`", n.v);
        }
        o.check_keys(self.d, &["name", "type", "offset", "writer", "init", "doc"]);
        let ty_s = o.req_str(self.d, "type", "\"u32\"");
        let offset = o.opt_int(self.d, "offset");
        let init = self.opt_number(&o, "init");
        let doc = o.opt_text(self.d, "doc");
        let writer = o
            .req_str(self.d, "writer", "\"guest\"")
            .and_then(|w| match w.v.as_str() {
                "guest" => Some(Writer::Guest),
                "host" => Some(Writer::Host),
                "both" => Some(Writer::Both),
                other => {
                    self.d.push(
                        Diagnostic::new(w.span, format!("unknown writer `{other}` in {}", o.what))
                            .help("use guest, host or both"),
                    );
                    None
                }
            });
        let ty = ty_s.as_ref().and_then(|s| {
            let t = s.v.trim();
            if t == "ring.status" {
                return Some(FieldType::RingStatus);
            }
            if t == "ring.slots" {
                return Some(FieldType::RingSlots);
            }
            if let Some(p) = Prim::from_name(t).filter(|p| *p != Prim::Bool) {
                return Some(FieldType::Prim(p));
            }
            if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
                && let Some((e, n)) = inner.split_once(';')
                && let (Some(p), Ok(n)) = (Prim::from_name(e.trim()), n.trim().parse::<u64>())
                && p != Prim::Bool
                && n > 0
            {
                // The page is one page: a larger array cannot exist (and its size in bytes
                // might not even be a number).
                if n.checked_mul(p.size()).is_none_or(|bytes| bytes > PAGE) {
                    self.d.push(
                        Diagnostic::new(
                            s.span.clone(),
                            format!("`{}` in {} is larger than the {PAGE}-byte shared page", s.v, o.what),
                        )
                        .help(format!("use at most {} elements", PAGE / p.size())),
                    );
                    return None;
                }
                return Some(FieldType::Array(p, n));
            }
            self.d.push(
                Diagnostic::new(s.span.clone(), format!("unknown type `{}` in {}", s.v, o.what))
                    .help("use u8, u16, u32, u64, an array such as \"[u8; 16]\", \"ring.status\" or \"ring.slots\""),
            );
            None
        });
        if let (Some(ty), Some(init)) = (&ty, &init) {
            let max = match ty {
                FieldType::Prim(p) | FieldType::Array(p, _) => p.max(),
                FieldType::RingStatus | FieldType::RingSlots => {
                    self.d.push(
                        Diagnostic::new(
                            init.span.clone(),
                            format!("{} takes its initial value from [ring]", o.what),
                        )
                        .help("remove `init`"),
                    );
                    return None;
                }
            };
            if init.v.value > max {
                self.d.push(
                    Diagnostic::new(
                        init.span.clone(),
                        format!("`init = {}` does not fit {}", init.v.value, o.what),
                    )
                    .help(format!("use a value up to {max}")),
                );
                return None;
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "field"));
        Some(Field {
            name: name?,
            ty: ty?,
            ty_span: ty_s?.span,
            // Laid out and checked against the spec's offset in check.rs.
            offset: offset.map_or(u64::MAX, |o| o.v),
            writer: writer?,
            init: init.map_or(0, |i| i.v.value),
            doc,
        })
    }
}
