//! Room: `[[template]]`: the instructions that may replace a pv_op's call site, their
//! bytes (two hex digits each) and relocations into the shared page (`{rel32:field}`).

use std::ops::Range;

use super::Parser;
use super::toml::{Val, as_obj, check_name};
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::*;

/// The form's bytes being read: where the string's text starts in the source, and what
/// to call the template in messages.
struct Bytes<'s> {
    base: usize,
    what: &'s str,
}

impl Bytes<'_> {
    fn at(&self, at: usize, len: usize) -> Range<usize> {
        self.base + at..self.base + at + len
    }
}

impl Parser<'_> {
    /// One `[[template]]` (the `index`th).
    pub(super) fn template(
        &mut self,
        v: &Val<'_>,
        index: usize,
        shared: Option<&SharedPage>,
    ) -> Option<Template> {
        let mut o = as_obj(self.d, v, format!("template #{}", index + 1), "template")?;
        let name = o.req_str(self.d, "name", "\"cli\"");
        if let Some(n) = &name {
            o.what = format!("template `{}`", n.v);
        }
        o.check_keys(self.d, &["name", "doc", "forms"]);
        let doc = o.opt_text(self.d, "doc");
        let mut forms = Vec::new();
        let mut ok = true;
        if o.required(self.d, "forms", "[{ asm = \"...\", bytes = \"...\" }]")
            .is_some()
            && let Some(a) = o.opt_array(self.d, "forms")
        {
            if a.is_empty() {
                self.d.push(
                    Diagnostic::new(o.key_span("forms"), format!("{} has no forms", o.what))
                        .help("give at least one `{ asm, bytes }` encoding"),
                );
                ok = false;
            }
            for f in a.iter() {
                let Some(fo) = as_obj(self.d, f, format!("a form of {}", o.what), "forms") else {
                    ok = false;
                    continue;
                };
                fo.check_keys(self.d, &["asm", "bytes"]);
                let asm = fo.req_text(self.d, "asm", "\"mov eax, dword ptr [field]\"");
                let bytes = fo.req_str(self.d, "bytes", "\"8b 05 {rel32:field}\"");
                match (asm, bytes) {
                    (Some(asm), Some(bytes)) => match self.form_bytes(&bytes, &o.what, shared) {
                        Some((bytes, relocs)) => forms.push(Form { asm, bytes, relocs }),
                        None => ok = false,
                    },
                    _ => ok = false,
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "template"));
        if !ok {
            return None;
        }
        Some(Template {
            name: name?,
            doc,
            forms,
        })
    }

    /// `"c7 05 {rel32:irq_enabled} 00 00 00 00"` -> bytes and relocations.
    fn form_bytes(
        &mut self,
        s: &Sp<String>,
        what: &str,
        shared: Option<&SharedPage>,
    ) -> Option<(Vec<u8>, Vec<Reloc>)> {
        let mut bytes = Vec::new();
        let mut relocs = Vec::new();
        let mut ok = true;
        // The string's content starts after its opening quote.
        let b = Bytes {
            base: s.span.start + 1,
            what,
        };
        let text = &s.v;
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            let c = rest.chars().next().unwrap_or(' ');
            if c.is_whitespace() {
                i += c.len_utf8();
                continue;
            }
            if c == '{' {
                let Some(end) = rest.find('}') else {
                    self.d.push(
                        Diagnostic::new(
                            b.at(i, rest.len()),
                            format!("unclosed `{{` in the bytes of {what}"),
                        )
                        .help("write a relocation as `{rel32:field}`"),
                    );
                    return None;
                };
                match self.reloc(&b, i, &rest[1..end], bytes.len(), shared) {
                    Some(r) => {
                        bytes.extend(std::iter::repeat_n(0u8, r.kind.width()));
                        relocs.push(r);
                    }
                    None => ok = false,
                }
                i += end + 1;
                continue;
            }
            let tok_len = rest
                .find(|c: char| c.is_whitespace() || c == '{')
                .unwrap_or(rest.len());
            let tok = &rest[..tok_len];
            // Exactly two hex digits: `u8::from_str_radix` alone would take "+f".
            if tok.len() == 2
                && tok.bytes().all(|c| c.is_ascii_hexdigit())
                && let Ok(byte) = u8::from_str_radix(tok, 16)
            {
                bytes.push(byte);
            } else {
                self.d.push(
                    Diagnostic::new(b.at(i, tok_len), format!("`{tok}` in the bytes of {what} is not a hex byte"))
                        .help("write bytes as two hex digits separated by spaces, e.g. \"8b 05 {rel32:field}\""),
                );
                ok = false;
            }
            i += tok_len;
        }
        if bytes.is_empty() && ok {
            self.d.push(
                Diagnostic::new(
                    b.at(0, text.len()),
                    format!("the bytes of {what} are empty"),
                )
                .help("give the instruction's encoding"),
            );
            return None;
        }
        ok.then_some((bytes, relocs))
    }

    /// `{KIND:field}` at byte `i` of the text, the relocation's value at byte `at` of the
    /// form. The field's offset is filled in once the layout is known (`check.rs`).
    fn reloc(
        &mut self,
        b: &Bytes<'_>,
        i: usize,
        inner: &str,
        at: usize,
        shared: Option<&SharedPage>,
    ) -> Option<Reloc> {
        let span = b.at(i, inner.len() + 2);
        let what = b.what;
        let (kind, field) = inner.split_once(':').unwrap_or((inner, ""));
        let kind = match kind.trim() {
            "abs32" => Some(RelocKind::Abs32),
            "abs64" => Some(RelocKind::Abs64),
            "rel32" => Some(RelocKind::Rel32),
            other => {
                self.d.push(
                    Diagnostic::new(
                        span.clone(),
                        format!("unknown relocation kind `{other}` in the bytes of {what}"),
                    )
                    .help("use abs32, abs64 or rel32, as in `{rel32:field}`"),
                );
                None
            }
        };
        let field = field.trim();
        let Some(sh) = shared else {
            self.d.push(
                Diagnostic::new(
                    span,
                    format!("relocation to `{field}` in {what}, but the spec has no [shared] page"),
                )
                .help("templates point at shared-page fields: add [shared]"),
            );
            return None;
        };
        let Some(f) = sh.fields.iter().find(|f| f.name.v == field) else {
            let names: Vec<&str> = sh.fields.iter().map(|f| f.name.v.as_str()).collect();
            let help = match did_you_mean(field, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("shared-page fields are: {}", names.join(", ")),
            };
            self.d.push(
                Diagnostic::new(
                    span,
                    format!("relocation to unknown shared-page field `{field}` in {what}"),
                )
                .help(help),
            );
            return None;
        };
        Some(Reloc {
            at,
            kind: kind?,
            field: field.to_string(),
            field_offset: f.offset,
        })
    }
}
