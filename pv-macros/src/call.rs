//! `pv_call!`: a patchable pv_op call site with its record in the `pv_sites` section.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use crate::kw;
use crate::spec_file::SpecFile;
use pv_sites::clobber;

/// `spec = "...", slot = PATH, table.op(args...)`.
pub(crate) struct PvCall {
    spec: Option<LitStr>,
    slot: Option<syn::Path>,
    call: Option<Call>,
}

/// `table.op(args...)`.
struct Call {
    table: Ident,
    op: Ident,
    paren: syn::token::Paren,
    args: Punctuated<Expr, Token![,]>,
}

impl Parse for PvCall {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = PvCall {
            spec: None,
            slot: None,
            call: None,
        };
        while !input.is_empty() {
            if input.peek(Ident) && input.peek2(Token![=]) {
                // An option: `name = value`.
                let look = input.lookahead1();
                if look.peek(kw::spec) {
                    let k: kw::spec = input.parse()?;
                    input.parse::<Token![=]>()?;
                    let v: LitStr = input.parse()?;
                    if out.spec.replace(v).is_some() {
                        return Err(syn::Error::new(k.span, "option `spec` is given twice"));
                    }
                } else if look.peek(kw::slot) {
                    let k: kw::slot = input.parse()?;
                    input.parse::<Token![=]>()?;
                    let v: syn::Path = input.parse()?;
                    if out.slot.replace(v).is_some() {
                        return Err(syn::Error::new(k.span, "option `slot` is given twice"));
                    }
                } else {
                    return Err(look.error());
                }
            } else if input.peek(Ident) && input.peek2(Token![.]) {
                let table: Ident = input.parse()?;
                input.parse::<Token![.]>()?;
                let op: Ident = input.parse()?;
                let content;
                let paren = syn::parenthesized!(content in input);
                let args = content.parse_terminated(Expr::parse, Token![,])?;
                if out.call.is_some() {
                    return Err(syn::Error::new(
                        table.span(),
                        "pv_call! makes one call: give a single `table.op(args...)`",
                    ));
                }
                out.call = Some(Call {
                    table,
                    op,
                    paren,
                    args,
                });
            } else {
                return Err(input.error(
                    "expected an option (`spec = \"...\"`, `slot = PATH`) or the call `table.op(args...)`",
                ));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(out)
    }
}

/// Where the System V ABI passes integer arguments, in order.
const ARG_REGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];

pub(crate) fn expand(input: PvCall) -> syn::Result<TokenStream> {
    let missing = |what: &str| syn::Error::new(Span::call_site(), format!("pv_call! needs {what}"));
    let spec_lit = input
        .spec
        .ok_or_else(|| missing("`spec = \"path/to/spec.toml\"`"))?;
    let slot = input
        .slot
        .ok_or_else(|| missing("`slot = PATH` (the static the site calls through)"))?;
    let call = input
        .call
        .ok_or_else(|| missing("the call, `table.op(args...)`"))?;
    let file = SpecFile::load(&spec_lit)?;
    let spec = &file.spec;

    let table_name = call.table.to_string();
    let op_name = call.op.to_string();
    let table = spec
        .pv_tables
        .iter()
        .find(|t| t.name.v == table_name)
        .ok_or_else(|| {
            let names: Vec<String> = spec
                .pv_tables
                .iter()
                .map(|t| format!("`{}`", t.name.v))
                .collect();
            syn::Error::new(
                call.table.span(),
                format!(
                    "spec `{}` has no pv_op table `{table_name}`; its tables: {}",
                    file.shown,
                    names.join(", ")
                ),
            )
        })?;
    let op = table
        .ops
        .iter()
        .find(|o| o.name.v == op_name)
        .ok_or_else(|| {
            let names: Vec<String> = table
                .ops
                .iter()
                .map(|o| format!("`{}`", o.name.v))
                .collect();
            syn::Error::new(
                call.op.span(),
                format!(
                    "pv_op table `{table_name}` has no op `{op_name}`; its ops: {}",
                    names.join(", ")
                ),
            )
        })?;
    let full = format!("{table_name}.{op_name}");

    let id =
        record_id(spec, &table_name, &op_name).map_err(|e| syn::Error::new(call.op.span(), e))?;

    if op.args.len() > ARG_REGS.len() {
        return Err(syn::Error::new(
            call.op.span(),
            format!(
                "op `{full}` has {} arguments; pv_call! passes at most {} (in registers)",
                op.args.len(),
                ARG_REGS.len()
            ),
        ));
    }
    if call.args.len() != op.args.len() {
        let sig: Vec<String> = op
            .args
            .iter()
            .map(|(n, t)| format!("{}: {}", n.v, quote!(#t)))
            .collect();
        let takes = match op.args.len() {
            0 => "no arguments".to_string(),
            1 => format!("1 argument ({})", sig.join(", ")),
            n => format!("{n} arguments ({})", sig.join(", ")),
        };
        return Err(syn::Error::new(
            call.paren.span.join(),
            format!("op `{full}` takes {takes}, {} given", call.args.len()),
        ));
    }

    // Room for the call, and for every form of the op's template.
    let site_len = spec.site_len(op);
    let len = site_len.max(pv_sites::CALL_LEN);
    let len_byte = record_len(&full, len).map_err(|e| syn::Error::new(call.op.span(), e))?;
    let clobbers = if op.callee_save {
        clobber::CALLEE_SAVE
    } else {
        clobber::CALLER_SAVED
    };

    let mut lines = vec![
        "2:".to_string(),
        "call qword ptr [rip + {slot}]".to_string(),
    ];
    if len > pv_sites::CALL_LEN {
        lines.push(format!(
            ".fill {}, 1, {:#x}",
            len - pv_sites::CALL_LEN,
            pv_sites::NOP
        ));
    }
    // "R" (SHF_GNU_RETAIN) keeps the records through --gc-sections: nothing references
    // them but the __start_/__stop_ symbols, which lld does not count as a use.
    lines.extend([
        format!(".pushsection {}, \"aR\", @progbits", pv_sites::SECTION),
        ".balign 4".to_string(),
        ".long 2b - .".to_string(),
        format!(".short {id}"),
        format!(".short {clobbers:#06x}"),
        format!(".byte {len_byte}, 0, 0, 0"),
        ".popsection".to_string(),
    ]);

    let mut lets = Vec::new();
    let mut ins = Vec::new();
    for (i, (expr, (_, ty))) in call.args.iter().zip(&op.args).enumerate() {
        let v = format_ident!("__pv_arg{i}", span = Span::mixed_site());
        let reg = ARG_REGS[i];
        lets.push(quote! { let #v: #ty = #expr; });
        ins.push(quote! { in(#reg) #v, });
    }
    let ret_var = format_ident!("__pv_ret", span = Span::mixed_site());
    // With a result the asm is a statement and the result the block's value; without
    // one the asm (of type `()`) is the value itself.
    let (ret_decl, ret_out, semi, ret_val) = match &op.ret {
        Some(ty) => (
            quote! { let #ret_var: #ty; },
            quote! { lateout("rax") #ret_var, },
            quote! { ; },
            quote! { #ret_var },
        ),
        None => (
            TokenStream::new(),
            quote! { lateout("rax") _, },
            TokenStream::new(),
            TokenStream::new(),
        ),
    };
    let abi = (!op.callee_save).then(|| quote! { clobber_abi("C"), });
    let track = file.track();
    Ok(quote! {
        {
            #track
            #(#lets)*
            #ret_decl
            ::core::arch::asm!(
                #(#lines),*,
                slot = sym #slot,
                #(#ins)*
                #ret_out
                #abi
            ) #semi
            #ret_val
        }
    })
}

/// The op's `PvOpId::id()` (its index in spec order of tables, then ops) as a site record
/// holds it: 16 bits.
fn record_id(spec: &codegen::Spec, table: &str, op: &str) -> Result<u16, String> {
    let i = spec
        .op_id(table, op)
        .ok_or_else(|| format!("the spec has no op `{table}.{op}`"))?;
    u16::try_from(i).map_err(|_| {
        format!(
            "op `{table}.{op}` is op number {i} of the spec; a site record holds a 16-bit op \
             id (at most {})",
            u16::MAX
        )
    })
}

/// A site's length as its record holds it: one byte.
fn record_len(full: &str, len: usize) -> Result<u8, String> {
    u8::try_from(len).map_err(|_| {
        format!(
            "op `{full}` needs a {len}-byte site; a site record holds at most {}",
            u8::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compile-fail tests' spec, with table `irq` grown to `ops` ops.
    fn spec_with_irq_ops(ops: usize) -> codegen::Spec {
        let src = include_str!("../tests/ui/specs/mini.toml");
        let mut spec = codegen::load("mini.toml", src).expect("mini.toml is a good spec");
        let irq = &mut spec.pv_tables[0];
        assert_eq!(irq.name.v, "irq");
        let model = irq.ops[0].clone();
        while irq.ops.len() < ops {
            let mut op = model.clone();
            op.name.v = format!("op_{}", irq.ops.len());
            irq.ops.push(op);
        }
        spec
    }

    // No spec file: tens of thousands of ops would make the spec and its checks the
    // test's whole cost, and the limit is this function's.
    #[test]
    fn an_op_past_65535_has_no_record_id() {
        let spec = spec_with_irq_ops(usize::from(u16::MAX) + 2);
        assert_eq!(record_id(&spec, "irq", "save_fl"), Ok(0));
        assert_eq!(record_id(&spec, "irq", "op_65535"), Ok(u16::MAX));
        assert_eq!(
            record_id(&spec, "irq", "op_65536"),
            Err(
                "op `irq.op_65536` is op number 65536 of the spec; a site record holds a \
                 16-bit op id (at most 65535)"
                    .to_string()
            )
        );
        // Ops after the overflowing table are past the limit too.
        assert!(record_id(&spec, "time", "now").is_err());
    }

    #[test]
    fn a_site_past_255_bytes_has_no_record_length() {
        assert_eq!(record_len("irq.save_fl", 255), Ok(255));
        assert_eq!(
            record_len("irq.save_fl", 256),
            Err(
                "op `irq.save_fl` needs a 256-byte site; a site record holds at most 255"
                    .to_string()
            )
        );
    }
}
