//! `lazy`: the seed's `async_hcall()` and `lazy_hcallN()`: queue a hypercall in the async
//! ring while the guest is in lazy mode, call it directly otherwise or when the ring is full.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, abi_camel, arg_type, doc, nr_const, to_u64};
use crate::spec::Spec;

pub(crate) fn emit(spec: &Spec) -> Module {
    let ring = spec
        .ring
        .as_ref()
        .expect("lazy is emitted only with a ring");
    let shared = spec
        .shared
        .as_ref()
        .expect("lazy is emitted only with a shared page");
    let page = crate::names::camel_ident(&shared.name.v);
    let status = shared
        .fields
        .iter()
        .find(|f| f.ty == crate::spec::FieldType::RingStatus)
        .map(|f| crate::names::ident(&f.name.v))
        .expect("check.rs requires a ring.status field");
    let slots = shared
        .fields
        .iter()
        .find(|f| f.ty == crate::spec::FieldType::RingSlots)
        .map(|f| crate::names::ident(&f.name.v))
        .expect("check.rs requires a ring.slots field");
    let abi = abi_camel(spec);
    let lazy_trait = format_ident!("{abi}LazyHypercalls");
    let calls_trait = format_ident!("{abi}Hypercalls");
    let ring_args = ring.args as usize;
    let arg_regs = spec.arg_regs();
    let lazies: Vec<_> = spec.hypercalls.iter().filter(|h| h.lazy).collect();

    let widen = (0..arg_regs).map(|i| {
        if i < ring_args {
            let i = super::usize_lit(i as u64);
            quote! { args[#i] }
        } else {
            quote! { 0 }
        }
    });

    let methods = lazies.iter().map(|h| {
        if !h.mem.is_empty() {
            return mem_method(spec, h, ring_args, &calls_trait);
        }
        let name = crate::names::ident(&h.name.v);
        let nr = nr_const(&h.name.v);
        let params: Vec<TokenStream> = h
            .args
            .iter()
            .map(|a| {
                let id = crate::names::ident(&a.name.v);
                let ty = arg_type(spec, &a.ty);
                quote! { #id: #ty }
            })
            .collect();
        let mut vals: Vec<TokenStream> = h
            .args
            .iter()
            .map(|a| {
                let id = crate::names::ident(&a.name.v);
                to_u64(spec, &a.ty, quote! { #id })
            })
            .collect();
        while vals.len() < ring_args {
            vals.push(quote! { 0 });
        }
        let many = super::many_args(h.args.len());
        let allows = super::abi_name_allows(&h.name.v);
        let d = doc(&format!(
            "Queue `{}` (number {}) while in lazy mode, otherwise call it directly: see [`super::guest::{calls_trait}::{}`].",
            h.name.v, h.nr.v, h.name.v
        ));
        (
            quote! { #allows #d #many fn #name(&self, #(#params),*) -> Sent; },
            quote! {
                #allows
                #[inline]
                #many
                fn #name(&self, #(#params),*) -> Sent {
                    Batch::call(self, super::numbers::#nr, [#(#vals),*])
                }
            },
        )
    });
    let (decls, impls): (Vec<_>, Vec<_>) = methods.unzip();
    let trait_doc = format!(
        "The lazy hypercalls of the `{}` ABI: the ones the spec marks `lazy`.",
        spec.abi.name.v
    );
    let trait_doc_attrs = doc(&trait_doc);
    let lens = super::len_allow(lazies.iter().map(|h| h.name.v.as_str()));
    let ready_c = super::comment(
        "Arguments first, then the status byte with release ordering: the host must never see a ready slot with stale arguments.",
    );
    let full_c = super::comment(
        "The slot is still the host's: the ring is full. A direct call makes the host drain the whole ring first, so order is kept.",
    );

    // The direct path is an exit (microseconds): out of line, and with its arguments in
    // registers where they fit, so the queued path carries neither its stack frame nor a
    // spill of the arguments.
    let (out_of_line, to_direct) = if ring_args <= 4 {
        let names: Vec<_> = (0..ring_args).map(|i| format_ident!("a{i}")).collect();
        let idx = (0..ring_args as u64).map(super::usize_lit);
        (
            quote! {
                /// [`Self::direct`] out of line, the arguments in registers.
                #[cold]
                #[inline(never)]
                fn direct_cold(&self, nr: u64, #(#names: u64),*) -> Sent {
                    self.direct(nr, [#(#names),*])
                }
            },
            quote! { self.direct_cold(nr, #(args[#idx]),*) },
        )
    } else {
        (quote! {}, quote! { self.direct(nr, args) })
    };
    // A one-slot ring is always at slot 0 (and `% 1` is clippy's `modulo_one`).
    let (slot_index, advance) = if ring.size == 1 {
        (quote! { 0 }, TokenStream::new())
    } else {
        (
            quote! { self.cursor.slot() % super::shared::RING_SIZE },
            quote! {
                self.cursor
                    .next
                    .store((i + 1) % super::shared::RING_SIZE, Ordering::Relaxed);
            },
        )
    };
    let direct_args = if ring_args == 0 || arg_regs == 0 {
        quote! { _args }
    } else {
        quote! { args }
    };
    let items = quote! {
        /// How a lazy hypercall went out.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Sent {
            /// Queued in this ring slot; the host runs it at the next exit.
            Queued(usize),
            /// Made directly: the guest was not in lazy mode, or the ring was full.
            Direct,
        }

        /// The guest's position in the ring: the seed's `static next_call`. It lives in
        /// guest-private memory, so the host cannot move it.
        #[derive(Debug, Default)]
        pub struct RingCursor {
            next: ::core::sync::atomic::AtomicUsize,
        }

        impl RingCursor {
            /// A cursor at slot 0, where the host's cursor starts too.
            pub const fn new() -> Self {
                RingCursor { next: ::core::sync::atomic::AtomicUsize::new(0) }
            }

            /// The next slot the guest will fill.
            #[inline]
            pub fn slot(&self) -> usize {
                self.next.load(::core::sync::atomic::Ordering::Relaxed)
            }
        }

        /// The producer side of the async ring for one call site: a transport, the shared
        /// page, the guest's cursor, and whether the guest is in lazy mode right now.
        ///
        /// The guest must keep interrupts disabled while it uses a `Batch`, as the seed's
        /// `async_hcall()` does, so that no interrupt handler queues into the same slot.
        #[derive(Debug)]
        pub struct Batch<'a, T: ?Sized> {
            /// How to reach the host.
            pub transport: &'a T,
            /// The page shared with the host.
            pub page: &'a super::shared::#page,
            /// The guest's ring position.
            pub cursor: &'a RingCursor,
            /// Queue calls (true) or make them directly (false).
            pub lazy: bool,
        }

        impl<T: super::guest::Transport + ?Sized> Batch<'_, T> {
            /// Queues hypercall `nr` with `args` when in lazy mode, calls it directly
            /// otherwise.
            #[inline]
            pub fn call(&self, nr: u64, args: [u64; super::shared::RING_ARGS]) -> Sent {
                if self.lazy { self.queue(nr, args) } else { #to_direct }
            }

            /// Queues hypercall `nr` with `args` in the next slot, or calls it directly when
            /// that slot is not free (the ring is full).
            #[inline]
            pub fn queue(&self, nr: u64, args: [u64; super::shared::RING_ARGS]) -> Sent {
                use ::core::sync::atomic::Ordering;
                let i = #slot_index;
                let status = &self.page.#status[i];
                if status.load(Ordering::Acquire) != super::shared::RING_DONE {
                    #full_c
                    return #to_direct;
                }
                let slot = &self.page.#slots[i];
                slot.nr.store(nr, Ordering::Relaxed);
                for (a, v) in slot.args.iter().zip(args) {
                    a.store(v, Ordering::Relaxed);
                }
                #ready_c
                status.store(super::shared::RING_READY, Ordering::Release);
                #advance
                Sent::Queued(i)
            }

            /// Makes hypercall `nr` now, loading the unused argument registers with 0.
            #[inline]
            pub fn direct(&self, nr: u64, #direct_args: [u64; super::shared::RING_ARGS]) -> Sent {
                super::guest::Transport::hypercall(self.transport, nr, [#(#widen),*]);
                Sent::Direct
            }

            #out_of_line
        }

        #trait_doc_attrs
        #lens
        pub trait #lazy_trait {
            #(#decls)*
        }

        impl<T: super::guest::Transport + ?Sized> #lazy_trait for Batch<'_, T> {
            #(#impls)*
        }
    };
    Module {
        name: "lazy",
        doc: format!(
            "Lazy hypercalls of the `{}` ABI: the async ring's producer (the seed's `async_hcall`).",
            spec.abi.name.v
        ),
        items,
    }
}

/// The lazy method of a call with memory arguments: it takes references and slices like
/// the synchronous wrapper, and is `unsafe`, because a queued call's memory is read when the
/// host drains the ring, after the borrows end.
fn mem_method(
    spec: &Spec,
    h: &crate::spec::Hypercall,
    ring_args: usize,
    calls_trait: &proc_macro2::Ident,
) -> (TokenStream, TokenStream) {
    let name = crate::names::ident(&h.name.v);
    let nr = nr_const(&h.name.v);
    let (params, fills, mut regs) =
        super::guest_mem::parts(spec, h, &quote! { super::guest::Translate });
    while regs.len() < ring_args {
        regs.push(quote! { 0 });
    }
    let names = |write: bool| {
        h.mem
            .iter()
            .filter(|m| m.dir.writes() == write)
            .map(|m| format!("`{}`", m.name.v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (read, written) = (names(false), names(true));
    let mut safety = String::from(
        "Queued, the call's memory is read by the host when it drains the ring (at the guest's next synchronous hypercall), after this returns and the borrows end: ",
    );
    if !read.is_empty() {
        safety.push_str(&format!(
            "the memory of {read} must stay valid and unchanged until then"
        ));
    }
    if !written.is_empty() {
        if !read.is_empty() {
            safety.push_str("; ");
        }
        safety.push_str(&format!(
            "the memory of {written} must stay valid, and be neither read nor written, until then (the host writes it back then)"
        ));
    }
    safety.push_str(". Made directly ([`Sent::Direct`]), the call is over when this returns.");
    let d = doc(&format!(
        "Queue `{}` (number {}) while in lazy mode, otherwise call it directly: see [`super::guest::{calls_trait}::{}`].\n\n# Safety\n\n{safety}",
        h.name.v, h.nr.v, h.name.v
    ));
    let many = super::many_args(params.len());
    let allows = super::abi_name_allows(&h.name.v);
    (
        quote! { #allows #d #many unsafe fn #name(&self, #(#params),*) -> Sent; },
        quote! {
            #allows
            #[inline]
            #many
            unsafe fn #name(&self, #(#params),*) -> Sent {
                #(#fills)*
                Batch::call(self, super::numbers::#nr, [#(#regs),*])
            }
        },
    )
}
