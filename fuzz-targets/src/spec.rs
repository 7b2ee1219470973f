//! Target: the spec parser and checker on arbitrary text, and the generator on every spec
//! they accept.

/// Parses and checks `data` as a spec (if it is UTF-8); a spec that passes must generate.
/// Never panics on any input: a bad spec is diagnostics, not a crash.
pub fn spec_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match codegen::load("fuzz.toml", text) {
        Ok(spec) => {
            let header = codegen::header(&spec, "fuzz.toml", text);
            if let Err(e) = codegen::generate(&spec, &header) {
                panic!("a spec that passed the checks does not generate: {e}");
            }
        }
        Err(d) => assert!(!d.is_empty(), "a refused spec comes with diagnostics"),
    }
}
