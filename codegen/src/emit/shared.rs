//! `shared`: the page shared by guest and host as a `#[repr(C)]` struct of atomics, with
//! const offsets and compile-time layout asserts, and the ring slot type.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Module, doc, int_lit, usize_lit};
use crate::check::{shared_size, slot_size};
use crate::names::{camel, upper};
use crate::spec::{FieldType, Prim, Spec};

fn atomic(p: Prim) -> TokenStream {
    match p {
        Prim::U8 | Prim::Bool => quote! { ::core::sync::atomic::AtomicU8 },
        Prim::U16 => quote! { ::core::sync::atomic::AtomicU16 },
        Prim::U32 => quote! { ::core::sync::atomic::AtomicU32 },
        Prim::U64 => quote! { ::core::sync::atomic::AtomicU64 },
    }
}

pub(crate) fn emit(spec: &Spec) -> Module {
    let sh = spec
        .shared
        .as_ref()
        .expect("shared is emitted only with [shared]");
    let ring = spec.ring.as_ref();
    let id = crate::names::camel_ident(&sh.name.v);
    let size = usize_lit(shared_size(sh, ring));

    let fields = sh.fields.iter().map(|f| {
        let name = crate::names::ident(&f.name.v);
        let ty = match &f.ty {
            FieldType::Prim(p) => atomic(*p),
            FieldType::Array(p, n) => {
                let a = atomic(*p);
                let n = usize_lit(*n);
                quote! { [#a; #n] }
            }
            FieldType::RingStatus => quote! { [::core::sync::atomic::AtomicU8; RING_SIZE] },
            FieldType::RingSlots => quote! { [RingSlot; RING_SIZE] },
        };
        let d = doc(&format!(
            "{}\n\nOffset {}; written by {}{}.",
            f.doc.as_deref().unwrap_or(""),
            f.offset,
            match f.writer {
                crate::spec::Writer::Guest => "the guest",
                crate::spec::Writer::Host => "the host",
                crate::spec::Writer::Both => "the guest and the host",
            },
            if f.init != 0 {
                format!("; starts as {:#x}", f.init)
            } else {
                String::new()
            }
        ));
        quote! { #d pub #name: #ty }
    });
    let inits = sh.fields.iter().map(|f| {
        let name = crate::names::ident(&f.name.v);
        match &f.ty {
            FieldType::Prim(p) => {
                let a = atomic(*p);
                let v = int_lit(f.init, *p);
                quote! { #name: #a::new(#v) }
            }
            FieldType::Array(p, n) => {
                let a = atomic(*p);
                let v = int_lit(f.init, *p);
                let n = usize_lit(*n);
                quote! { #name: [const { #a::new(#v) }; #n] }
            }
            FieldType::RingStatus => {
                quote! { #name: [const { ::core::sync::atomic::AtomicU8::new(RING_DONE) }; RING_SIZE] }
            }
            FieldType::RingSlots => quote! { #name: [const { RingSlot::new() }; RING_SIZE] },
        }
    });
    let offsets = sh.fields.iter().map(|f| {
        let c = format_ident!("{}_OFFSET", upper(&f.name.v));
        let o = usize_lit(f.offset);
        let d = doc(&format!("Byte offset of [`{id}::{}`].", f.name.v));
        quote! { #d pub const #c: usize = #o; }
    });
    let asserts = sh.fields.iter().map(|f| {
        let name = crate::names::ident(&f.name.v);
        let c = format_ident!("{}_OFFSET", upper(&f.name.v));
        quote! { assert!(::core::mem::offset_of!(#id, #name) == #id::#c); }
    });
    let infos = sh.fields.iter().map(|f| {
        let name = &f.name.v;
        let c = format_ident!("{}_OFFSET", upper(&f.name.v));
        let (sz, _) = crate::check::field_size_align(&f.ty, ring);
        let sz = usize_lit(sz);
        let w = format_ident!("{}", camel(f.writer.name()));
        quote! { FieldInfo { name: #name, offset: #id::#c, size: #sz, writer: Writer::#w } }
    });
    let nfields = usize_lit(sh.fields.len() as u64);

    let ring_items = ring.map(|r| {
        let n = usize_lit(r.size);
        let args = usize_lit(r.args);
        let ready = int_lit(u64::from(r.ready), Prim::U8);
        let done = int_lit(u64::from(r.done), Prim::U8);
        let ss = usize_lit(slot_size(r));
        let rd = doc(r.doc.as_deref().unwrap_or("The async hypercall ring."));
        quote! {
            /// Slots in the async hypercall ring.
            pub const RING_SIZE: usize = #n;
            /// Arguments a ring slot holds besides the call number.
            pub const RING_ARGS: usize = #args;
            /// Status of a slot the guest has filled and the host has not run yet.
            pub const RING_READY: u8 = #ready;
            /// Status of a slot the host is done with (and every slot at boot).
            pub const RING_DONE: u8 = #done;

            #rd
            ///
            /// One slot: the call number and its arguments.
            #[repr(C)]
            #[derive(Debug, Default)]
            pub struct RingSlot {
                /// The call number.
                pub nr: ::core::sync::atomic::AtomicU64,
                /// The arguments, unused ones 0.
                pub args: [::core::sync::atomic::AtomicU64; RING_ARGS],
            }

            impl RingSlot {
                /// Size of a slot in bytes.
                pub const SIZE: usize = #ss;
                /// Byte offset of [`RingSlot::nr`].
                pub const NR_OFFSET: usize = 0;
                /// Byte offset of [`RingSlot::args`].
                pub const ARGS_OFFSET: usize = 8;

                /// An empty slot.
                pub const fn new() -> Self {
                    RingSlot {
                        nr: ::core::sync::atomic::AtomicU64::new(0),
                        args: [const { ::core::sync::atomic::AtomicU64::new(0) }; RING_ARGS],
                    }
                }
            }

            const _: () = {
                assert!(::core::mem::size_of::<RingSlot>() == RingSlot::SIZE);
                assert!(::core::mem::offset_of!(RingSlot, args) == RingSlot::ARGS_OFFSET);
            };
        }
    });
    let page_doc = doc(sh
        .doc
        .as_deref()
        .unwrap_or("The page shared by guest and host."));
    let layout_c = super::comment(
        "The layout is the ABI: these fail the build if the struct and the spec's offsets ever disagree.",
    );

    // A page the spec called `new` has a constructor called `new`.
    let self_named = (id == "New").then(|| {
        let c = super::comment(
            "The page is called `new` in the ABI; its constructor is `new` like every page's.",
        );
        quote! { #c #[allow(clippy::self_named_constructors)] }
    });
    let items = quote! {
        #ring_items

        #page_doc
        ///
        /// Every field is an atomic: the host writes the page while the guest holds a
        /// reference to it. Plain loads and stores (`Relaxed`) compile to ordinary moves.
        #[repr(C)]
        #[derive(Debug)]
        pub struct #id {
            #(#fields,)*
        }

        impl #id {
            /// Size of the struct in bytes.
            pub const SIZE: usize = #size;

            #(#offsets)*

            /// Every field's name, offset, size and writer, in layout order.
            pub const FIELDS: [FieldInfo; #nfields] = [#(#infos),*];

            /// The page as the guest sets it up before its first hypercall: every field at
            /// its spec's initial value (0 unless the spec says otherwise), every ring
            /// slot done.
            #self_named
            pub const fn new() -> Self {
                #id { #(#inits,)* }
            }
        }

        impl ::core::default::Default for #id {
            fn default() -> Self {
                Self::new()
            }
        }

        #layout_c
        const _: () = {
            assert!(::core::mem::size_of::<#id>() == #id::SIZE);
            #(#asserts)*
        };

        /// Who writes a shared-page field.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Writer {
            /// Only the guest.
            Guest,
            /// Only the host.
            Host,
            /// Both.
            Both,
        }

        /// Where a shared-page field is.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct FieldInfo {
            /// The field's name.
            pub name: &'static str,
            /// Byte offset in the page.
            pub offset: usize,
            /// Size in bytes.
            pub size: usize,
            /// Who writes it.
            pub writer: Writer,
        }
    };
    Module {
        name: "shared",
        doc: format!(
            "The page shared by guest and host in the `{}` ABI{}.",
            spec.abi.name.v,
            if ring.is_some() {
                ", with the async hypercall ring"
            } else {
                ""
            }
        ),
        items,
    }
}
