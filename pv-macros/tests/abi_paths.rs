//! `pv_macros::abi!` and the build.rs path (`codegen::Config::compile` + `include!`)
//! generate the same items.

use proc_macro2::TokenStream;

/// The macro path (both modules are only partly used).
#[allow(dead_code)]
mod by_macro {
    pv_macros::abi!("../spec/lguest.toml");
}

/// The build.rs path: pv-macros' own build script ran `Config::compile` on the same spec.
#[allow(dead_code)]
mod by_build {
    include!(concat!(env!("OUT_DIR"), "/lguest.rs"));
}

/// The items printed one canonical way: comments are gone (they are not tokens), docs
/// are attributes again, and layout is prettyplease's on both sides.
fn printed(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("generated code parses");
    prettyplease::unparse(&file)
}

#[test]
fn build_rs_output_and_macro_tokens_are_the_same_items() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/lguest.toml");
    let src = std::fs::read_to_string(path).unwrap();
    let spec = codegen::load(path, &src).unwrap();
    let built = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/lguest.rs")).unwrap();
    let from_build: TokenStream = built.parse().expect("build.rs output lexes");
    let (a, b) = (printed(from_build), printed(codegen::tokens(&spec)));
    assert!(
        a.contains("pub trait IrqOps {"),
        "the comparison sees the items"
    );
    assert!(
        a.contains("/// Op `irq.save_fl`. Callee-save"),
        "and their docs"
    );
    if let Some((i, (x, y))) = a
        .lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
    {
        panic!("line {} differs:\nbuild.rs: {x}\nabi!:     {y}", i + 1);
    }
    assert_eq!(a.lines().count(), b.lines().count());
}

#[test]
fn both_paths_compile_to_the_same_values() {
    use by_build as b;
    use by_macro as m;
    assert_eq!(m::numbers::SET_PTE, b::numbers::SET_PTE);
    assert_eq!(m::numbers::ARG_REGS, b::numbers::ARG_REGS);
    assert_eq!(m::shared::LguestData::SIZE, b::shared::LguestData::SIZE);
    assert_eq!(m::shared::RING_SIZE, b::shared::RING_SIZE);
    assert_eq!(m::patch::MAX_TEMPLATE_LEN, b::patch::MAX_TEMPLATE_LEN);
    assert_eq!(m::pv_ops::IRQ_OPS, b::pv_ops::IRQ_OPS);
    assert_eq!(m::pv_ops::CPU_OPS, b::pv_ops::CPU_OPS);
    for nr in 0..64u64 {
        let (x, y) = (
            m::numbers::Hypercall::try_from(nr).ok(),
            b::numbers::Hypercall::try_from(nr).ok(),
        );
        assert_eq!(x.map(|h| h.name()), y.map(|h| h.name()), "nr {nr}");
        assert_eq!(
            x.map(|h| h.arg_count()),
            y.map(|h| h.arg_count()),
            "nr {nr}"
        );
    }
    for id in 0..=u16::from(u8::MAX) {
        let (x, y) = (
            m::pv_ops::PvOpId::from_id(id),
            b::pv_ops::PvOpId::from_id(id),
        );
        assert_eq!(x.map(|o| o.name()), y.map(|o| o.name()), "op {id}");
        assert_eq!(
            x.map(m::patch::site_len),
            y.map(b::patch::site_len),
            "site of op {id}"
        );
    }
}
