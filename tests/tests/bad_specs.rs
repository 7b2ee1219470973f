//! The bad-spec corpus: tests/specs/bad/<rule>.toml, each breaking one validation rule,
//! with the exact diagnostics expected in <rule>.stderr.
//!
//! `UPDATE_GOLDEN=1 cargo test -p pv-tests --test bad_specs` rewrites the .stderr files.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/bad")
}

/// Every rule the issue names, with a phrase its diagnostic must contain. A rule missing
/// from the corpus fails the test.
const RULES: &[(&str, &str)] = &[
    ("toml_syntax", "TOML syntax"),
    ("missing_key", "missing required key `doc`"),
    ("unknown_key", "unknown key `lazzy`"),
    ("duplicate_name", "duplicate hypercall `halt`"),
    ("duplicate_number", "share number 10"),
    ("not_snake_case", "is not snake_case"),
    ("rust_keyword", "`super` cannot be a Rust identifier"),
    ("too_many_args", "transport `pio` has 2 argument registers"),
    ("unknown_type", "unknown type `gap`"),
    ("constraint_wrong_type", "cannot apply to"),
    ("align_not_power_of_two", "is not a power of two"),
    ("range_outside_type", "outside the bounds of u8"),
    ("lazy_too_many_args", "a ring slot holds 3"),
    ("register_twice", "used twice"),
    ("out_without_port", "has no `port`"),
    (
        "missing_template",
        "names template `clii`, which does not exist",
    ),
    ("template_not_hex", "is not a hex byte"),
    (
        "template_unknown_field",
        "unknown shared-page field `irq_enable`",
    ),
    ("rust_type_parse", "is not a Rust type"),
    ("many_errors", "has 4 problems"),
    ("offset_mismatch", "the C layout rules put it at 8"),
    ("range_unknown_const", "unknown const `gdt_entrys`"),
    ("const_text_as_number", "is a text, not a number"),
    ("unsafe_without_safety", "has no `safety`"),
    ("wrong_value_type", "must be an integer, not a string"),
    ("value_out_of_range", "must be between 0 and 2^64-1"),
    (
        "unspellable_name",
        "cannot be a Rust identifier, not even a raw one",
    ),
    ("doc_empty", "`doc` in hypercall `ping` is empty"),
    ("doc_control", "contains a carriage return"),
    ("doc_bidi", "contains the bidirectional control U+202E"),
    ("enum_bool_repr", "cannot travel as `bool`"),
    ("shared_name_clash", "would generate `Writer`"),
    ("pv_op_id_clash", "both become `PvOpId::ABC`"),
    ("array_too_large", "larger than the 4096-byte shared page"),
    ("pv_op_ref_ret", "a reference without a lifetime"),
    ("pv_op_impl_trait", "`impl Trait`"),
    (
        "pv_op_array_len_unknown_const",
        "unknown const `tls_entrys` in the array length",
    ),
    ("parse_and_check", "has 2 problems"),
    (
        "template_byte_sign",
        "`+f` in the bytes of template `t` is not a hex byte",
    ),
    ("range_overflow", "outside 0..2^64"),
    ("ring_args_overflow", "more than any transport carries"),
    ("type_named_primitive", "has the name of a primitive"),
    ("type_named_str", "has the name of the string argument type"),
    ("hypercall_unhandled", "`DemoDefaultHost::unhandled`"),
    (
        "struct_implicit_padding",
        "needs 4 bytes of padding before it",
    ),
    ("struct_tail_padding", "but C pads it to 16"),
    (
        "struct_offset_mismatch",
        "has `offset = 4` but the C layout rules put it at 8",
    ),
    (
        "struct_unknown_type",
        "unknown type `heder` in field `hdr` of struct `params`",
    ),
    (
        "struct_constraint_signed",
        "constraints cannot apply to field `delta`",
    ),
    (
        "struct_nested_dir",
        "nests a struct whose fields have a `dir`",
    ),
    ("struct_empty", "struct `params` has no fields"),
    ("unknown_direction", "unknown direction `ot`"),
    ("mem_unknown_struct", "unknown struct `parms`"),
    ("mem_struct_dir", "`dir` does not apply to argument `p`"),
    ("mem_string_out", "is a string, which only travels `in`"),
    (
        "result_not_in_transport",
        "is in `r9`, which transport `vmcall` does not hand back",
    ),
    ("result_register_twice", "are both in `rdx`"),
    (
        "result_unknown_type",
        "unknown type `u46` in result `value`",
    ),
    ("result_error_not_enum", "which is not an enum"),
    ("result_ret_and_results", "has both `ret` and `results`"),
    ("result_ok_is_variant", "has the success value 0"),
    (
        "result_place_differs",
        "argument register 0 of transport `vmcall` but argument register 1 of `pio`",
    ),
    (
        "result_lazy",
        "a call queued in the ring answers in no register",
    ),
    ("result_two_errors", "has two error results"),
    ("result_ok_without_error", "belongs to an error result"),
    ("result_not_a_register", "`rdz` in result `value`"),
    ("result_in_nr_register", "(it carries the call number)"),
    (
        "mem_string_no_max",
        "missing required key `max` in argument `s`",
    ),
    (
        "mem_buffer_no_len",
        "missing required key `len` in argument `b`",
    ),
    (
        "mem_buffer_no_max",
        "has a length from the guest but no `max`",
    ),
    ("mem_buffer_too_large", "outside 1 to 1048576 bytes"),
    ("mem_fixed_len_and_max", "has a fixed `len` and a `max`"),
    ("mem_len_unknown_arg", "names no argument of hypercall `op`"),
    (
        "mem_len_const_and_arg",
        "names both a const and an argument of hypercall `op`",
    ),
    ("mem_at_not_address", "field `fd` is not a u64 (an address)"),
    (
        "mem_at_out_field",
        "field `ret` is `out`, so the guest does not pass it",
    ),
    ("mem_at_later_arg", "`p` is not an earlier struct argument"),
    ("mem_addr_kind", "unknown address kind `linear`"),
    (
        "mem_utf8_on_buffer",
        "`utf8` does not apply to argument `b`",
    ),
    (
        "struct_bool_field",
        "is an alias of bool, which is no C type",
    ),
    ("struct_name_clash", "both become `A1` in Rust"),
    ("struct_named_primitive", "has the name of a [types] entry"),
    (
        "mem_len_not_integer",
        "names an argument that is not an integer",
    ),
    ("mem_len_later_memory", "names a memory argument"),
    ("transport_named_translate", "would generate `Translate`"),
    ("mem_at_underscore", "differ only by a leading underscore"),
];

#[test]
fn every_bad_spec_fails_with_its_diagnostics() {
    let bless = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for (rule, phrase) in RULES {
        let file = format!("{rule}.toml");
        let src = std::fs::read_to_string(dir().join(&file))
            .unwrap_or_else(|e| panic!("the corpus lacks {file}: {e}"));
        let diags = match codegen::load(&file, &src) {
            Ok(_) => {
                problems.push(format!("{file} is accepted, but it breaks the rule"));
                continue;
            }
            Err(d) => d.to_string(),
        };
        if !diags.contains(phrase) {
            problems.push(format!(
                "{file}: expected a diagnostic containing {phrase:?}, got:\n{diags}"
            ));
        }
        // Every diagnostic says what to do.
        if let Err(d) = codegen::load(&file, &src)
            && let Some(bare) = d.list.iter().find(|x| x.help.is_none())
        {
            problems.push(format!("{file}: `{}` has no help", bare.message));
        }
        // Every diagnostic points at a line and column of the spec.
        if !diags.contains(&format!("--> {file}:")) {
            problems.push(format!("{file}: diagnostics lack file:line:col:\n{diags}"));
        }
        let expected_path = dir().join(format!("{rule}.stderr"));
        if bless {
            codegen::write_if_changed(&expected_path, &diags).expect("writes .stderr");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == diags => {}
            Ok(expected) => problems.push(format!(
                "{rule}.stderr differs.\n--- expected\n{expected}\n--- actual\n{diags}"
            )),
            Err(e) => problems.push(format!("{rule}.stderr is missing ({e})")),
        }
    }
    // No stray files: every .toml in the corpus is a listed rule.
    for e in std::fs::read_dir(dir()).expect("corpus dir") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".toml").trim_end_matches(".stderr");
        if !RULES.iter().any(|(r, _)| *r == stem) {
            problems.push(format!("specs/bad/{name} belongs to no rule in RULES"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\n(UPDATE_GOLDEN=1 rewrites the .stderr files)",
        problems.join("\n\n")
    );
}

#[test]
fn the_many_errors_spec_reports_each_problem_in_source_order() {
    let src = std::fs::read_to_string(dir().join("many_errors.toml")).expect("reads");
    let d = codegen::load("many_errors.toml", &src).expect_err("invalid");
    let msgs: Vec<&str> = d.list.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert!(msgs[0].contains("`Halt` is not snake_case"), "{msgs:?}");
    assert!(msgs[1].contains("unknown key `lazzy`"), "{msgs:?}");
    assert!(msgs[2].contains("missing required key `doc`"), "{msgs:?}");
    assert!(msgs[3].contains("`align = 3`"), "{msgs:?}");
    let lines: Vec<usize> = d.list.iter().map(|x| x.line_col(&src).line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn parse_level_problems_do_not_hide_check_level_ones() {
    let src = std::fs::read_to_string(dir().join("parse_and_check.toml")).expect("reads");
    let d = codegen::load("parse_and_check.toml", &src).expect_err("invalid");
    let msgs: Vec<&str> = d.list.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("unknown key `lazzy`"), "{msgs:?}");
    assert!(msgs[1].contains("share number 0"), "{msgs:?}");
}
