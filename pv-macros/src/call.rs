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

    // PvOpId::id(): the op's index in spec order of tables, then ops.
    let id = spec
        .op_id(&table_name, &op_name)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| syn::Error::new(call.op.span(), format!("op `{full}` has no 16-bit id")))?;

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
    let len_byte = u8::try_from(len).map_err(|_| {
        syn::Error::new(
            call.op.span(),
            format!("op `{full}` needs a {len}-byte site; a record holds at most 255"),
        )
    })?;
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
