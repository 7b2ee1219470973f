//! `pv_call!`: a patchable pv_op call site, an indirect call through a slot padded to the
//! op's site length, with its record in the `pv_sites` linker section (Linux's `PVOP_CALL`
//! and `.parainstructions`).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token};

use super::MacroSpec;
use pv_sites::clobber;

/// The call a site makes, `table.op(args...)`, as the macro parsed it.
#[derive(Clone)]
pub struct Call {
    /// The pv_op table.
    pub table: Ident,
    /// The op.
    pub op: Ident,
    /// The parentheses around the arguments (where a wrong count is reported).
    pub paren: syn::token::Paren,
    /// The arguments.
    pub args: Punctuated<Expr, Token![,]>,
}

/// Where the System V ABI passes integer arguments, in order.
const ARG_REGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];

/// The expansion of `pv_call!` calling `call` through `slot`: a block expression with the
/// spec's tracking item, the arguments in their registers, the site and its record, and the
/// result (of the op's return type) as its value.
///
/// # Errors
///
/// Unknown table or op, wrong argument count, more than 6 arguments, a site longer than a
/// record's length byte allows (255), an op whose number does not fit a record's 16-bit id.
pub fn expand(spec: &MacroSpec, slot: &syn::Path, call: &Call) -> syn::Result<TokenStream> {
    let table_name = call.table.to_string();
    let op_name = call.op.to_string();
    let table = spec.table(&table_name, call.table.span())?;
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

    let id = record_id(&spec.spec, &table_name, &op_name)
        .map_err(|e| syn::Error::new(call.op.span(), e))?;

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
    let site_len = spec.spec.site_len(op);
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
    let track = spec.track();
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
fn record_id(spec: &crate::Spec, table: &str, op: &str) -> Result<u16, String> {
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
