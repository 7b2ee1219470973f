//! The README's five-minute tour, followed as written: its spec snippet goes where it says,
//! the mistake it describes gives exactly the diagnostics it shows (line numbers included),
//! and the corrected call changes exactly the golden files it names. A spec or README edit
//! that makes the tour wrong fails here, not in a newcomer's first five minutes.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The first fenced block of `lang` after `marker` in `text`, dedented.
fn block(text: &str, marker: &str, lang: &str) -> String {
    let from = text
        .find(marker)
        .unwrap_or_else(|| panic!("README has {marker:?}"));
    let open = format!("```{lang}\n");
    let start = from + text[from..].find(&open).expect("a block") + open.len();
    let end = start + text[start..].find("```").expect("a closed block");
    let body = &text[start..end];
    // The block is indented like its list item, closing fence included.
    let indent = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = body
        .lines()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n") + "\n"
}

/// `spec` with `snippet` after its last `[[hypercall]]` table, as step 1 says.
fn add_after_last_hypercall(spec: &str, snippet: &str) -> String {
    let last = spec
        .rfind("\n[[hypercall]]\n")
        .expect("the spec has hypercalls");
    // The table ends at the first blank line followed by something that is not part of it.
    let mut at = last + 1;
    loop {
        let next = spec[at..].find("\n\n").map_or(spec.len(), |i| at + i + 2);
        let rest = &spec[next..];
        if next >= spec.len() || rest.starts_with('#') || rest.starts_with('[') {
            at = next;
            break;
        }
        at = next;
    }
    format!("{}{snippet}\n{}", &spec[..at], &spec[at..])
}

#[test]
fn the_tour_works_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let spec = std::fs::read_to_string(root().join("spec/lguest.toml")).expect("spec");
    let tour = &readme[readme.find("## Five minutes").expect("the tour")..];
    let snippet = block(tour, "1. **Add it to the spec.**", "toml");
    let shown = block(tour, "2. **Check it.**", "text");

    // Step 2: the number typed as 17 gives exactly what the README shows.
    let typo = add_after_last_hypercall(&spec, &snippet.replace("nr = 19", "nr = 17"));
    let d = codegen::load("spec/lguest.toml", &typo).expect_err("17 is taken");
    assert_eq!(d.to_string() + "\n", shown, "step 2's diagnostics");

    // Step 4: the call as written changes only the golden files the README names.
    let fixed = add_after_last_hypercall(&spec, &snippet);
    let (old, new) = (
        codegen::load("spec/lguest.toml", &spec).expect("valid"),
        codegen::load("spec/lguest.toml", &fixed).expect("the tour's spec is valid"),
    );
    let render = |s: &codegen::Spec, src: &str| {
        codegen::generate(s, &codegen::header(s, "spec/lguest.toml", src)).expect("renders")
    };
    let (a, b) = (render(&old, &spec), render(&new, &fixed));
    let changed: Vec<&str> = a
        .files
        .iter()
        .zip(&b.files)
        .filter(|(x, y)| x.contents != y.contents)
        .map(|(x, _)| x.path.as_str())
        .collect();
    let step4 = &tour[tour
        .find("4. **Review the generated diff.**")
        .expect("step 4")..];
    for f in &changed {
        assert!(step4.contains(&format!("`{f}`")), "step 4 names {f}");
    }
    assert_eq!(changed.len(), 4, "{changed:?}");
}
