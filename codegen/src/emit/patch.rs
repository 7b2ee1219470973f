//! `patch`: the spec's instruction templates with their relocations, the call-site sizes
//! derived from them, and `patch()`, the seed's `lguest_patch()`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, doc, usize_lit};
use crate::names::{camel, upper};
use crate::spec::Spec;

pub(crate) fn emit(spec: &Spec) -> Module {
    let max_len = spec
        .templates
        .iter()
        .flat_map(|t| t.forms.iter().map(|f| f.bytes.len()))
        .max()
        .unwrap_or(0);
    let max_len_lit = usize_lit(max_len as u64);
    let templates = spec.templates.iter().map(|t| {
        let c = format_ident!("{}", upper(&t.name.v));
        let name = &t.name.v;
        let tdoc = t.doc.clone().unwrap_or_default();
        let site = Spec::template_site_len(t);
        let site_lit = usize_lit(site as u64);
        let forms = t.forms.iter().map(|f| {
            let asm = &f.asm;
            let bytes = f.bytes.iter().map(|b| -> proc_macro2::TokenStream {
                format!("{b:#04x}").parse().expect("a hex byte is a valid literal")
            });
            let relocs = f.relocs.iter().map(|r| {
                let at = usize_lit(r.at as u64);
                let kind = format_ident!("{}", camel(r.kind.name()));
                let field = &r.field;
                let off = super::u64_lit(r.field_offset);
                quote! { Reloc { at: #at, kind: RelocKind::#kind, field: #field, field_offset: #off } }
            });
            quote! { Form { asm: #asm, bytes: &[#(#bytes),*], relocs: &[#(#relocs),*] } }
        });
        let mut text = format!("Template `{name}`: {tdoc}\n\nForms, in order of preference:\n");
        for f in &t.forms {
            let hex: Vec<String> = f.bytes.iter().map(|b| format!("{b:02x}")).collect();
            // One list item: the instruction on one line, in code however it is written.
            let asm = f.asm.split_whitespace().collect::<Vec<_>>().join(" ");
            let tick = if asm.contains('`') { "`` " } else { "`" };
            let untick = if asm.contains('`') { " ``" } else { "`" };
            text.push_str(&format!("\n* {tick}{asm}{untick}: `{}`", hex.join(" ")));
            for r in &f.relocs {
                text.push_str(&format!(" ({} of `{}` at byte {})", r.kind.name(), r.field, r.at));
            }
        }
        let d = doc(&text);
        quote! {
            #d
            pub const #c: Template = Template {
                name: #name,
                doc: #tdoc,
                site_len: #site_lit,
                forms: &[#(#forms),*],
            };
        }
    });
    let all = spec.templates.iter().map(|t| {
        let c = format_ident!("{}", upper(&t.name.v));
        quote! { &#c }
    });
    let n = usize_lit(spec.templates.len() as u64);

    // patch() over the pv_ops that name a template.
    let patchable: Vec<_> = spec
        .pv_ops()
        .filter_map(|(t, o)| o.template.as_ref().map(|tpl| (t, o, tpl)))
        .collect();
    let by_op = if spec.pv_tables.is_empty() {
        TokenStream::new()
    } else {
        let arms = patchable.iter().map(|(t, o, tpl)| {
            let v = format_ident!("{}{}", camel(&t.name.v), camel(&o.name.v));
            let c = format_ident!("{}", upper(&tpl.v));
            quote! { super::pv_ops::PvOpId::#v => Some(&#c), }
        });
        let wild = (patchable.len() < spec.pv_ops().count()).then(|| quote! { _ => None, });
        // No op names a template: nothing to match (`match op { _ => None }` is clippy's
        // `match_single_binding`).
        let body = if patchable.is_empty() {
            quote! { let _ = op; None }
        } else {
            quote! { match op { #(#arms)* #wild } }
        };
        quote! {
            /// The template that may replace `op`'s call sites, if it has one.
            pub const fn template_for(op: super::pv_ops::PvOpId) -> Option<&'static Template> {
                #body
            }

            /// Bytes a call site of `op` must have so that every form of its template fits
            /// (0 for ops without a template).
            pub const fn site_len(op: super::pv_ops::PvOpId) -> usize {
                match template_for(op) {
                    Some(t) => t.site_len,
                    None => 0,
                }
            }

            /// Writes `op`'s template into `site`, the call site's bytes at guest address
            /// `site_addr`, with its relocations pointing into the shared page at
            /// `shared_page_addr`. Returns the bytes used (the caller pads the rest with
            /// NOPs), or `None` where the op has no template or none of its forms fits:
            /// the site is then left as it is.
            pub fn patch(
                op: super::pv_ops::PvOpId,
                site: &mut [u8],
                site_addr: u64,
                shared_page_addr: u64,
            ) -> Option<usize> {
                template_for(op)?.apply(site, site_addr, shared_page_addr)
            }
        }
    };

    let items = quote! {
        /// How a relocation encodes a shared-page field's address.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum RelocKind {
            /// The absolute address as a sign-extended 32-bit value (a SIB operand with no
            /// base): the address must lie in the top or bottom 2 GiB.
            Abs32,
            /// The absolute address, 64 bits.
            Abs64,
            /// The address relative to the end of the form (a RIP-relative operand): the
            /// field must lie within 2 GiB of the call site.
            Rel32,
        }

        /// A relocation: where a form needs a shared-page field's address.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Reloc {
            /// Byte offset of the relocated value in the form.
            pub at: usize,
            /// How the address is encoded.
            pub kind: RelocKind,
            /// The shared-page field.
            pub field: &'static str,
            /// The field's offset in the shared page.
            pub field_offset: u64,
        }

        /// One encoding of a template.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Form {
            /// The instruction, in Intel syntax.
            pub asm: &'static str,
            /// The encoding, with zeros where the relocations go.
            pub bytes: &'static [u8],
            /// The relocations.
            pub relocs: &'static [Reloc],
        }

        /// Instructions that may replace a pv_op's call site.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Template {
            /// The spec's name.
            pub name: &'static str,
            /// What it does.
            pub doc: &'static str,
            /// Bytes a call site needs so that every form fits: the longest form.
            pub site_len: usize,
            /// Encodings, in order of preference.
            pub forms: &'static [Form],
        }

        /// The longest form of any template.
        pub const MAX_TEMPLATE_LEN: usize = #max_len_lit;

        impl Template {
            /// Writes the first form that fits into `site` (at guest address `site_addr`),
            /// its relocations resolved against the shared page at `shared_page_addr`.
            /// Returns the bytes written, or `None` when no form fits the site's length or
            /// can reach the field; `site` is untouched then.
            pub fn apply(&self, site: &mut [u8], site_addr: u64, shared_page_addr: u64) -> Option<usize> {
                'forms: for form in self.forms {
                    let len = form.bytes.len();
                    if len > site.len() || len > MAX_TEMPLATE_LEN {
                        continue;
                    }
                    let mut buf = [0u8; MAX_TEMPLATE_LEN];
                    buf[..len].copy_from_slice(form.bytes);
                    for r in form.relocs {
                        let Some(target) = shared_page_addr.checked_add(r.field_offset) else {
                            continue 'forms;
                        };
                        let (value, width): (u64, usize) = match r.kind {
                            RelocKind::Abs32 => match i32::try_from(target as i64) {
                                Ok(v) => (u64::from(v as u32), 4),
                                Err(_) => continue 'forms,
                            },
                            RelocKind::Abs64 => (target, 8),
                            RelocKind::Rel32 => {
                                let end = site_addr.wrapping_add(len as u64);
                                match i32::try_from(target.wrapping_sub(end) as i64) {
                                    Ok(v) => (u64::from(v as u32), 4),
                                    Err(_) => continue 'forms,
                                }
                            }
                        };
                        match buf.get_mut(r.at..r.at + width) {
                            Some(dst) if r.at + width <= len => {
                                dst.copy_from_slice(&value.to_le_bytes()[..width]);
                            }
                            _ => continue 'forms,
                        }
                    }
                    site[..len].copy_from_slice(&buf[..len]);
                    return Some(len);
                }
                None
            }
        }

        #(#templates)*

        /// Every template, in spec order.
        pub const TEMPLATES: [&Template; #n] = [#(#all),*];

        #by_op
    };
    Module {
        name: "patch",
        doc: format!(
            "Patch templates of the `{}` ABI: short instruction sequences that replace pv_op call sites.",
            spec.abi.name.v
        ),
        items,
    }
}
