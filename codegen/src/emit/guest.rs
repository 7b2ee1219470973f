//! `guest`: the `Transport` trait, one transport per `[abi.transport]` with the trapping
//! instruction in inline asm, and a typed wrapper per hypercall.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, abi_camel, arg_type, doc, nr_const, to_u64};
use crate::spec::{Hypercall, Instruction, Nr, Reg, Spec, Transport};

pub(crate) fn emit(spec: &Spec) -> Module {
    let abi = abi_camel(spec);
    let calls_trait = format_ident!("{abi}Hypercalls");
    let transports = spec
        .transports
        .iter()
        .enumerate()
        .map(|(i, t)| transport(spec, t, i == 0));
    let default = crate::names::camel_ident(&spec.default_transport().name.v);
    let default_doc = format!("The default transport: [`{default}`].");
    let default_doc_attrs = doc(&default_doc);
    let arg_regs = spec.arg_regs();

    let wrappers = spec.hypercalls.iter().map(|h| {
        if !h.mem.is_empty() {
            return super::guest_mem::wrapper(spec, h);
        }
        let params = h.args.iter().map(|a| {
            let id = crate::names::ident(&a.name.v);
            let ty = arg_type(spec, &a.ty);
            quote! { #id: #ty }
        });
        let mut regs: Vec<TokenStream> = h
            .args
            .iter()
            .map(|a| {
                to_u64(spec, &a.ty, {
                    let id = crate::names::ident(&a.name.v);
                    quote! { #id }
                })
            })
            .collect();
        while regs.len() < arg_regs {
            regs.push(quote! { 0 });
        }
        let mut text = format!("{}\n\nHypercall `{}` (number {}).", h.doc, h.name.v, h.nr.v);
        if !h.args.is_empty() {
            text.push_str("\n\n# Arguments\n");
            for a in &h.args {
                let c = super::constraint_text(spec, a);
                // One list item: the argument's doc flows as one paragraph.
                let mut parts: Vec<String> = a
                    .doc
                    .iter()
                    .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect();
                if !c.is_empty() {
                    parts.push(format!("The host requires: {c}."));
                }
                text.push_str(&format!("\n* `{}`: {}", a.name.v, parts.join(" ")));
            }
        }
        if let Some(r) = &h.ret {
            text.push_str(&format!("\n\nReturns {r}"));
        }
        text.push_str(&super::results::guest_doc(spec, h));
        let params: Vec<TokenStream> = params.collect();
        wrapper_method(spec, h, &text, &params, &[], &regs)
    });
    let calls_doc = format!(
        "A typed method per hypercall of the `{}` ABI, on every [`Transport`].\n\nEach loads every argument register of the transport, unused ones with 0, so the host never sees a stale register.",
        spec.abi.name.v
    );
    let calls_doc_attrs = doc(&calls_doc);
    let lens = super::len_allow(spec.hypercalls.iter().map(|h| h.name.v.as_str()));
    let translate = super::guest_mem::translate_trait(spec);

    let transport_trait = if spec.has_results() {
        super::results::transport_trait()
    } else {
        quote! {
            /// A way for the guest to trap to the host with a hypercall.
            ///
            /// The generated transports execute the real instruction; tests and in-process hosts
            /// implement it to call the host's dispatch directly.
            pub trait Transport {
                /// Traps to the host with call number `nr` and arguments `args`, and returns the
                /// result register.
                fn hypercall(&self, nr: u64, args: [u64; super::numbers::ARG_REGS]) -> u64;
            }

            impl<T: Transport + ?::core::marker::Sized> Transport for &T {
                #[inline]
                fn hypercall(&self, nr: u64, args: [u64; super::numbers::ARG_REGS]) -> u64 {
                    (**self).hypercall(nr, args)
                }
            }
        }
    };
    let call_error = spec.has_results().then(super::results::call_error);
    let items = quote! {
        #transport_trait

        #call_error

        #(#transports)*

        #translate

        #default_doc_attrs
        pub type DefaultTransport = #default;

        #calls_doc_attrs
        #lens
        pub trait #calls_trait: Transport {
            #(#wrappers)*
        }

        impl<T: Transport + ?::core::marker::Sized> #calls_trait for T {}
    };
    Module {
        name: "guest",
        doc: format!(
            "Guest side of the `{}` ABI: transports and a typed wrapper per hypercall.",
            spec.abi.name.v
        ),
        items,
    }
}

/// Bytes an `out` transport writes: every one writes eax.
const OUT_BYTES: u16 = 4;

fn reg_lit(r: Reg) -> String {
    r.name().to_string()
}

/// The `asm!` for one transport: registers loaded as the spec says, `rbx` (which Rust
/// reserves) swapped in and out around the instruction through a scratch register.
fn transport(spec: &Spec, t: &Transport, is_default: bool) -> TokenStream {
    let id = crate::names::camel_ident(&t.name.v);
    let arg_regs = spec.arg_regs();
    let (lines, operands) = asm_call(spec, t, false);
    let regs: Vec<String> = t.args.iter().map(|r| r.name().to_string()).collect();
    let mut text = String::new();
    if let Some(d) = &t.doc {
        text.push_str(d.trim());
        text.push_str("\n\n");
    }
    let arg_list = regs
        .iter()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let nr_text = match t.nr {
        Nr::Reg(r) => format!("call number in `{}`", r.name()),
        Nr::Port => "the call number is the port written to".into(),
        Nr::Address => "the call number is the guest-physical address the value is stored to (a 64-bit store: an MMIO exit)".into(),
    };
    let ret_text = match t.ret {
        Some(r) => format!("result in `{}`", r.name()),
        None => {
            "no result register (every call returns 0 here; results travel in guest memory)".into()
        }
    };
    text.push_str(&format!(
        "Transport `{}`: `{}`{}, {nr_text}, {} in {}, {ret_text}.",
        t.name.v,
        t.instruction.name(),
        t.port.map_or(String::new(), |p| format!(" to port {p:#x}")),
        if matches!(t.nr, Nr::Reg(_)) {
            "arguments"
        } else {
            "the value written"
        },
        arg_list,
    ));
    if is_default {
        text.push_str(" The ABI's default transport.");
    }
    let d = doc(&text);
    let safety = format!(
        "The caller must be running as a guest of a host that implements this ABI over `{}`: anywhere else the instruction faults or does something else entirely.",
        t.instruction.name()
    );
    let safety_doc = doc(&format!("# Safety\n\n{safety}"));
    // A host needs the port to tell hypercall exits from other port I/O.
    let port_const = t.port.map(|p| {
        let p = syn::LitInt::new(&format!("{p:#x}"), proc_macro2::Span::call_site());
        let bytes = proc_macro2::Literal::u16_unsuffixed(OUT_BYTES);
        quote! {
            /// The I/O port the call number is written to: a host serves this port's exits.
            pub const PORT: u16 = #p;

            /// Bytes the `out` writes from [`Self::PORT`] (it writes eax): the call touches
            /// ports `PORT..PORT + PORT_BYTES`, which a host's I/O permissions must let trap.
            pub const PORT_BYTES: u16 = #bytes;
        }
    });
    let safety_comment = super::comment(&format!(
        "SAFETY: `{id}::new` made its caller promise that `{}` traps to a host implementing this ABI, which preserves every register but the result; the host may read and write guest memory, so no `nomem`.",
        t.instruction.name()
    ));
    // A transport the spec called `new` has a constructor called `new`.
    let self_named = (id == "New").then(|| {
        let c = super::comment("The transport is called `new` in the ABI; its constructor is `new` like every transport's.");
        quote! { #c #[allow(clippy::self_named_constructors)] }
    });
    // With no argument register in use, the arguments (all none of them) go unread.
    let args_param = if arg_regs == 0 {
        quote! { _args }
    } else {
        quote! { args }
    };
    // Where a host finds the call in a trapped vCPU's registers.
    let lit = proc_macro2::Literal::usize_unsuffixed;
    let nr_reg_const = match t.nr {
        Nr::Reg(r) => {
            let n = lit(r.encoding());
            quote! {
                /// The call number's register, as a host numbers a vCPU's registers (x86
                /// encoding order: rax 0, rcx 1, rdx 2, rbx 3, rsp 4, rbp 5, rsi 6, rdi 7,
                /// r8..r15 8..15).
                pub const NR_REG: usize = #n;
            }
        }
        Nr::Port => quote! {
            /// The call number is the I/O port written to: a host serves the exits of every
            /// port that is a call's number.
            pub const NR_IS_PORT: bool = true;
        },
        Nr::Address => quote! {
            /// The call number is the guest-physical address stored to: a host serves the
            /// MMIO exits of every address that is a call's number.
            pub const NR_IS_ADDRESS: bool = true;
        },
    };
    let arg_regs_doc = if matches!(t.nr, Nr::Reg(_)) {
        quote! {
            /// The argument registers, in argument order, numbered as [`Self::NR_REG`].
        }
    } else {
        quote! {
            /// The argument registers, in argument order, as a host numbers a vCPU's
            /// registers (x86 encoding order: rax 0, rcx 1, rdx 2, rbx 3, rsp 4, rbp 5, rsi
            /// 6, rdi 7, r8..r15 8..15).
        }
    };
    let ret_reg_const = t.ret.map(|r| {
        let n = lit(r.encoding());
        quote! {
            /// The result register, numbered as [`Self::NR_REG`].
            pub const RET_REG: usize = #n;
        }
    });
    let arg_encodings: Vec<_> = t
        .args
        .iter()
        .take(arg_regs)
        .map(|r| lit(r.encoding()))
        .collect();
    let (ret_decl, ret_value) = if t.ret.is_some() {
        (quote! { let ret: u64; }, quote! { ret })
    } else {
        (TokenStream::new(), quote! { 0 })
    };
    let (result_regs_const, results_method) = if spec.has_results() {
        let (rlines, rops) = asm_call(spec, t, true);
        let outs: Vec<proc_macro2::Ident> = (0..spec.result_regs())
            .map(|i| format_ident!("r{i}"))
            .collect();
        let decls = outs.iter().map(|o| {
            if o == "r0" && t.ret.is_none() {
                quote! { let r0: u64 = 0; }
            } else {
                quote! { let #o: u64; }
            }
        });
        let konst = t.ret.map(|r| {
            let mut encs = vec![lit(r.encoding())];
            encs.extend(t.args.iter().take(arg_regs).map(|r| lit(r.encoding())));
            quote! {
                /// The registers a call may answer in, numbered as [`Self::ARG_REGS`]: the
                /// result register, then the argument registers (what
                /// [`Transport::hypercall_results`] hands back, and where a host puts its
                /// `ResultRegs`).
                pub const RESULT_REGS: [usize; super::numbers::RESULT_REGS] = [#(#encs),*];
            }
        });
        let results_safety = super::comment(&format!(
            "SAFETY: `{id}::new` made its caller promise that `{}` traps to a host implementing this ABI, which may change the result and argument registers (all outputs here) and preserves the rest; the host may read and write guest memory, so no `nomem`.",
            t.instruction.name()
        ));
        let method = quote! {
            #[inline]
            fn hypercall_results(&self, nr: u64, #args_param: [u64; super::numbers::ARG_REGS]) -> [u64; super::numbers::RESULT_REGS] {
                #(#decls)*
                #results_safety
                unsafe {
                    ::core::arch::asm!(
                        #(#rlines,)*
                        #(#rops,)*
                        options(nostack),
                    );
                }
                [#(#outs),*]
            }
        };
        (konst, method)
    } else {
        (None, TokenStream::new())
    };
    quote! {
        #d
        #[derive(Debug)]
        pub struct #id {
            _guest_only: (),
        }

        impl #id {
            #port_const

            #nr_reg_const
            #arg_regs_doc
            pub const ARG_REGS: [usize; super::numbers::ARG_REGS] = [#(#arg_encodings),*];
            #ret_reg_const
            #result_regs_const

            /// A handle on the transport.
            ///
            #safety_doc
            #self_named
            pub const unsafe fn new() -> Self {
                #id { _guest_only: () }
            }
        }

        impl Transport for #id {
            #[inline]
            fn hypercall(&self, nr: u64, #args_param: [u64; super::numbers::ARG_REGS]) -> u64 {
                #ret_decl
                #safety_comment
                unsafe {
                    ::core::arch::asm!(
                        #(#lines,)*
                        #(#operands,)*
                        options(nostack),
                    );
                }
                #ret_value
            }

            #results_method
        }
    }
}

/// A wrapper method of the `…Hypercalls` trait: its docs (`text`) and lints, then `fills`
/// (statements that compute registers from memory arguments), then the trap with `regs`.
pub(super) fn wrapper_method(
    spec: &Spec,
    h: &Hypercall,
    text: &str,
    params: &[TokenStream],
    fills: &[TokenStream],
    regs: &[TokenStream],
) -> TokenStream {
    let name = crate::names::ident(&h.name.v);
    let nr = nr_const(&h.name.v);
    let d = doc(text);
    let many = super::many_args(params.len());
    let allows = super::abi_name_allows(&h.name.v);
    let call = quote! { Transport::hypercall(self, super::numbers::#nr, [#(#regs),*]) };
    let (ret, call) = match &h.ret {
        _ if !h.results.is_empty() => super::results::guest_call(spec, h, regs),
        Some(_) => (quote! { -> u64 }, call),
        None => (quote! {}, quote! { #call; }),
    };
    quote! {
        #allows
        #d
        #[inline]
        #many
        fn #name(&self, #(#params),*) #ret { #(#fills)* #call }
    }
}

/// The lines and operands of one transport's `asm!`: registers loaded as the spec says,
/// `rbx` (which Rust reserves) swapped in and out around the instruction through a scratch
/// register. With `all`, every register a result may come back in is an output (`r0` the
/// result register, `rN` argument register N-1); without, only the result register (`ret`).
fn asm_call(spec: &Spec, t: &Transport, all: bool) -> (Vec<String>, Vec<TokenStream>) {
    let arg_regs = spec.arg_regs();
    let mut operands: Vec<TokenStream> = Vec::new();
    let mut rbx_in: Option<TokenStream> = None;
    let mut rbx_out: Option<TokenStream> = None;
    let ret_out = if all {
        quote! { r0 }
    } else {
        quote! { ret }
    };
    // The call number.
    let nr_val = quote! { nr };
    let ret_reg = t.ret;
    match t.nr {
        Nr::Reg(Reg::Rbx) => {
            rbx_in = Some(nr_val);
            // The result may come back in the call number's register, rbx included.
            if ret_reg == Some(Reg::Rbx) {
                rbx_out = Some(ret_out.clone());
            }
        }
        Nr::Reg(nr) => {
            let r = reg_lit(nr);
            if ret_reg == Some(nr) {
                operands.push(quote! { inout(#r) #nr_val => #ret_out });
            } else {
                operands.push(quote! { in(#r) #nr_val });
            }
        }
        // The port is the call number (the parser keeps call numbers of such an ABI in
        // 16 bits).
        Nr::Port => operands.push(quote! { in("dx") #nr_val as u16 }),
        Nr::Address => operands.push(quote! { addr = in(reg) #nr_val }),
    }
    // The arguments; registers past ARG_REGS carry 0.
    for (i, reg) in t.args.iter().enumerate() {
        let val = if i < arg_regs {
            let i = super::usize_lit(i as u64);
            quote! { args[#i] }
        } else {
            quote! { 0u64 }
        };
        let out = (all && i < arg_regs).then(|| format_ident!("r{}", i + 1));
        if *reg == Reg::Rbx {
            rbx_in = Some(val);
            if let Some(o) = out {
                rbx_out = Some(quote! { #o });
            }
        } else {
            let r = reg_lit(*reg);
            match out {
                Some(o) => operands.push(quote! { inout(#r) #val => #o }),
                None => operands.push(quote! { in(#r) #val }),
            }
        }
    }
    // The result, when it has a register of its own.
    if let Some(rr) = ret_reg
        && Nr::Reg(rr) != t.nr
    {
        if rr == Reg::Rbx {
            rbx_out = Some(ret_out.clone());
        } else {
            let r = reg_lit(rr);
            operands.push(quote! { lateout(#r) #ret_out });
        }
    }
    let insn = match t.instruction {
        Instruction::Vmcall => "vmcall".to_string(),
        Instruction::Vmmcall => "vmmcall".to_string(),
        // eax: OUT_BYTES wide.
        Instruction::Out => match t.port {
            Some(p) if p <= 0xff => format!("out {p:#x}, eax"),
            _ => "out dx, eax".to_string(),
        },
        Instruction::Mmio => format!(
            "mov qword ptr [{{addr}}], {}",
            t.args.first().map_or("rax", |r| r.name())
        ),
    };
    if t.instruction == Instruction::Out
        && let Some(p) = t.port
        && p > 0xff
    {
        operands.push(quote! { in("dx") #p });
    }
    let mut lines: Vec<String> = Vec::new();
    if rbx_in.is_some() || rbx_out.is_some() {
        let input = rbx_in.unwrap_or(quote! { 0u64 });
        let out = rbx_out.unwrap_or(quote! { _ });
        operands.insert(0, quote! { rbx_swap = inout(reg) #input => #out });
        lines.push("xchg {rbx_swap}, rbx".into());
        lines.push(insn.clone());
        lines.push("xchg {rbx_swap}, rbx".into());
    } else {
        lines.push(insn);
    }
    (lines, operands)
}
