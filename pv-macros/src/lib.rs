//! Proc macros over `codegen`: a thin layer that parses macro input with `syn` and calls
//! the library, in the manner of wasmtime's `bindgen!`.
//!
//! | macro | what |
//! |---|---|
//! | [`abi!`] | the generated modules of a spec, in place (instead of build.rs + `include!`) |
//! | [`pv_ops`] | on an `impl <Table>Ops for T`: checks every op is there, makes callee-save thunks |
//! | [`pv_call!`] | a patchable pv_op call site, recorded in the `pv_sites` linker section |
//!
//! Spec paths are relative to `CARGO_MANIFEST_DIR` (or, failing that, to the directory of
//! the file invoking the macro); the expansion tracks the spec, so editing it rebuilds. A
//! spec with problems is a compile error per problem, each starting with `file:line:col`.
//! The runtime half of [`pv_call!`] (record format, iterator, slots) is the `pv-sites`
//! crate.
//!
//! This crate only parses its input (`input`: one option parser for both macros) and
//! finds the spec (`spec_file`); what each macro expands to is `codegen::tokens` and
//! `codegen::macros`, where it is unit-tested.
//!
//! # Seeing an expansion
//!
//! With `PVABI_DEBUG_EXPAND=DIR` in the environment of the build, every expansion is
//! written, formatted, to a file in `DIR` (`<crate>.<file>.<line>.<col>.<macro>.rs`, after
//! a comment naming the invocation) and the macro expands to an `include!` of that file,
//! so a compile error inside generated code points at a line one can open:
//!
//! ```text
//! PVABI_DEBUG_EXPAND=/tmp/expanded cargo build -p lguest-kernel
//! ```
//!
//! A relative `DIR` is taken from the directory rustc runs in (the workspace root, under
//! Cargo). Cargo does not know the macros read the variable: touch a source file (or
//! `cargo clean -p CRATE`) to expand an already built crate again.

mod debug_expand;
mod input;
mod spec_file;

use debug_expand::Shape;
use input::at_call_site;

use proc_macro::TokenStream;

/// Expands a spec file into the generated modules (`numbers`, `types`, `guest`, `lazy`,
/// `shared`, `pv_ops`, `patch`, `host`): the same items `codegen::Config::compile` writes
/// for `include!`.
///
/// ```ignore
/// pub mod abi {
///     pv_macros::abi!("../spec/lguest.toml");
/// }
/// let nr = abi::numbers::Hypercall::SetPte.nr();
/// ```
///
/// The path is relative to `CARGO_MANIFEST_DIR`. Spec errors become compile errors
/// carrying `file:line:col`; the spec is tracked, so editing it rebuilds the crate.
#[proc_macro]
pub fn abi(input: TokenStream) -> TokenStream {
    let lit = syn::parse_macro_input!(input as syn::LitStr);
    let expanded = spec_file::load(&lit).map(|spec| {
        let track = spec.track();
        let tokens = codegen::tokens(&spec.spec);
        quote::quote! {
            #track
            #tokens
        }
    });
    finish("abi", Shape::Items, expanded)
}

/// The macro's result: the expansion (through `PVABI_DEBUG_EXPAND` when it is set), or
/// its errors.
fn finish(
    name: &str,
    shape: Shape,
    expanded: syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    match expanded {
        Ok(tokens) => debug_expand::finish(name, shape, tokens),
        Err(e) => e.to_compile_error(),
    }
    .into()
}

/// Checks an `impl` of a generated pv_op trait against the spec, and makes a callee-save
/// thunk for each op the spec marks `callee_save`.
///
/// ```ignore
/// struct Lguest;
///
/// #[pv_macros::pv_ops(spec = "../spec/lguest.toml")]
/// impl abi::pv_ops::IrqOps for Lguest {
///     fn save_fl() -> u64 { /* ... */ }
///     fn restore_fl(flags: u64) { /* ... */ }
///     // ... every op of table `irq`
/// }
///
/// // Made by the attribute, as associated functions of the impl's type:
/// static SAVE_FL: pv_sites::Slot = pv_sites::Slot::new(Lguest::save_fl_callee_save as *const ());
/// ```
///
/// Options:
/// - `spec = "path"` (required): the spec, relative to `CARGO_MANIFEST_DIR`.
/// - `table = "irq"`: the op table; by default the one whose trait (`<Camel(table)>Ops`)
///   is the impl's trait path's last segment. Given, it wins over the trait's name (for a
///   trait imported under another name).
///
/// It is a compile error, pointing at the impl's trait, when an op of the table is missing
/// (one error naming all of them), and an error when the trait or table is not in the spec,
/// the spec cannot be read or has problems, or an option is unknown or repeated.
///
/// For each callee-save op `op`, in an inherent impl of the impl's type `Ty` with the same
/// generics (so `impl<I: Instance> IrqOps for Ops<I>` gets thunks per instantiation):
/// - `Ty::<op>_extern_c`: `extern "C" fn` calling `<Ty as Trait>::op`, and
/// - `Ty::<op>_callee_save`: a naked `extern "C" fn` with the op's signature that
///   saves every caller-saved register but the return register (`rcx`, `rdx`, `rsi`, `rdi`,
///   `r8`-`r11`, and the vector registers the target has: `xmm0`-`xmm15` with SSE,
///   `ymm0`-`ymm15` with AVX), calls the `extern_c` function with the arguments still in
///   their registers, restores them and returns. Linux's `PV_CALLEE_SAVE_REGS_THUNK`. Put
///   it in the op's slot: its call sites only expect `rax` to change.
///
/// For an `unsafe` op both are `unsafe fn`s whose `# Safety` section is the op's contract
/// from the spec: they pass their arguments to the op unchanged, so the guarantees their
/// caller gives are the ones the op relies on.
///
/// Builds with AVX-512 enabled are refused (the thunks would not save `zmm16`-`zmm31`
/// and the mask registers).
#[proc_macro_attribute]
pub fn pv_ops(attr: TokenStream, item: TokenStream) -> TokenStream {
    let input::OpsArgs(opts) = syn::parse_macro_input!(attr as input::OpsArgs);
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    let expanded = (|| {
        let lit = opts
            .str("spec")
            .ok_or_else(|| at_call_site("missing option `spec = \"path/to/spec.toml\"`"))?;
        let spec = spec_file::load(lit)?;
        let tokens = codegen::macros::thunks::expand(&spec, opts.str("table"), &item)?;
        let track = spec.track();
        Ok(quote::quote! {
            #tokens
            #track
        })
    })();
    finish("pv_ops", Shape::Items, expanded)
}

/// A pv_op call site the kernel can patch at boot: an indirect call through a slot, padded
/// with NOPs to the op's site length, and a record of it in the `pv_sites` linker section
/// (Linux's `PVOP_CALL` and `.parainstructions`).
///
/// ```ignore
/// static SAVE_FL: pv_sites::Slot = pv_sites::Slot::new(lguest_save_fl_callee_save as *const ());
/// static RESTORE_FL: pv_sites::Slot = pv_sites::Slot::new(lguest_restore_fl_callee_save as *const ());
///
/// // SAFETY: the slots hold the ops' callee-save thunks.
/// let flags: u64 = unsafe { pv_macros::pv_call!(spec = "../spec/lguest.toml", slot = SAVE_FL, irq.save_fl()) };
/// unsafe { pv_macros::pv_call!(spec = "../spec/lguest.toml", slot = RESTORE_FL, irq.restore_fl(flags)) };
/// ```
///
/// Input: options `spec = "path"` and `slot = PATH` (a `static` whose first 8 bytes are the
/// target's address, such as a `pv_sites::Slot`), then the call `table.op(args...)`.
///
/// The site is `call qword ptr [rip + slot]` (6 bytes) then `nop`s up to
/// `max(6, site_len)`, where `site_len` is the longest form of the op's template in the
/// spec. The arguments go in the System V argument registers (`rdi`, `rsi`, `rdx`, `rcx`,
/// `r8`, `r9`) with the spec's argument types, the result comes back in `rax` with the
/// spec's return type. A callee-save op's site clobbers only `rax` (and the flags); any
/// other op's clobbers everything the C ABI lets a call clobber. The record
/// (`pv_sites::SiteRecord`) holds the site's address relative to the record, the op's
/// `PvOpId::id()`, the site's length and its clobber mask (`pv_sites::clobber` bits).
///
/// The expansion is an expression using `asm!`, so it must be inside `unsafe`: the caller
/// guarantees the slot holds an `extern "C"` function with the op's signature that changes
/// no register outside the site's clobbers (the op's callee-save thunk, for callee-save
/// ops). Errors: unknown option, repeated option, missing `spec`/`slot`, unknown table or
/// op, wrong argument count, more than 6 arguments, a site longer than a record's length
/// byte allows (255), an op whose number does not fit a record's 16-bit id, and every spec
/// error.
#[proc_macro]
pub fn pv_call(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as input::PvCall);
    let expanded = (|| {
        let needs = |what: &str| at_call_site(format!("pv_call! needs {what}"));
        let lit = input
            .opts
            .str("spec")
            .ok_or_else(|| needs("`spec = \"path/to/spec.toml\"`"))?;
        let slot = input
            .opts
            .path("slot")
            .ok_or_else(|| needs("`slot = PATH` (the static the site calls through)"))?;
        let call = input
            .call
            .as_ref()
            .ok_or_else(|| needs("the call, `table.op(args...)`"))?;
        let spec = spec_file::load(lit)?;
        codegen::macros::call_site::expand(&spec, slot, call)
    })();
    finish("pv_call", Shape::Expr, expanded)
}
