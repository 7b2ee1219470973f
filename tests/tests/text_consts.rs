//! Text consts (`[consts] NAME = { text = "..." }`) come out as `&str` consts holding
//! exactly what the spec wrote, whatever a string literal would trip on
//! (tests/specs/fixtures/texts.toml), and the lguest spec's power-off reason is one.

use pv_tests::texts::numbers;

#[test]
fn every_text_is_the_specs_byte_for_byte() {
    assert_eq!(numbers::POWER_DOWN, "Power down");
    assert_eq!(numbers::QUOTES, "say \"hi\" and 'bye'");
    assert_eq!(numbers::BACKSLASHES, r"C:\new\table\\");
    assert_eq!(numbers::RAW_END, "\"# {} {0} {name:?} %s");
    assert_eq!(numbers::LINES, "one\ntwo\tthree\r\n");
    assert_eq!(numbers::UNICODE, "Grüße, 日本, 🦀");
    assert_eq!(numbers::MARKDOWN, "a `code` | pipe");
    assert_eq!(numbers::EMPTY, "");
    assert_eq!(numbers::COUNT, 3);
}

#[test]
fn texts_are_in_the_reference_and_the_lock() {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/fixtures/texts.toml"),
    )
    .unwrap();
    let spec = codegen::load("texts.toml", &src).unwrap();
    let facts = codegen::lock::Facts::from_spec(&spec, "texts.toml", &src);
    assert_eq!(
        facts.get("const.quotes").and_then(|v| v.str()),
        Some("say \"hi\" and 'bye'")
    );
    let lock = facts.lock_text();
    let again = codegen::lock::Facts::parse_lock("texts.lock", &lock).unwrap();
    assert_eq!(
        again.get("const.lines").and_then(|v| v.str()),
        Some("one\ntwo\tthree\r\n"),
        "a text survives the lock's round trip:\n{lock}"
    );
    assert_eq!(again.lock_text(), lock);
    let reference = codegen::generate(&spec, "header").unwrap();
    let md = &reference
        .files
        .iter()
        .find(|f| f.path.ends_with(".md"))
        .unwrap()
        .contents;
    assert!(
        md.contains("| `POWER_DOWN` | `` \"Power down\" `` (text) |"),
        "{md}"
    );
}

#[test]
fn the_lguest_power_off_reason_is_a_spec_text() {
    assert_eq!(pv_tests::lguest::numbers::POWER_DOWN, "Power down");
}
