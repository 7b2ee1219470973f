//! Whatever the text, `load` answers with a spec or with diagnostics, never a panic (in this
//! debug build, integer overflow panics too), and a spec it accepts always renders.
//! Inputs: the repository's specs and fixtures, edited at random (bytes replaced, lines
//! dropped or doubled, numbers swapped for extreme ones).

use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for dir in ["spec", "tests/specs/fixtures", "tests/specs/bad"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "toml")
                && let Ok(s) = std::fs::read_to_string(e.path())
            {
                out.push(s);
            }
        }
    }
    out.sort();
    assert!(out.len() > 20, "the corpus is there");
    out
}

/// Values that have broken generators: the edges of every width, and text that is hard
/// to render.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "255",
    "256",
    "4096",
    "4097",
    "65536",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "0xffffffffffffffff",
    "\"x - 18446744073709551615\"",
    "\"\"",
    "\"\\r\"",
    "\"\\t{}\"",
    "\"```\"",
    "\"type\"",
    "\"self\"",
    "\"a__b\"",
    "\"[u64; 2305843009213693952]\"",
    "\"&'a u64\"",
    "\"impl Fn()\"",
    "[]",
    "{}",
];

#[derive(Clone, Debug)]
enum Edit {
    Byte(usize, u8),
    DropLine(usize),
    DupLine(usize),
    Value(usize, usize),
}

fn edit(src: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        match *e {
            Edit::Byte(at, b) => {
                let i = at % lines.len();
                let mut bytes = lines[i].clone().into_bytes();
                if !bytes.is_empty() {
                    let j = at % bytes.len();
                    let table = b" =[]{}\",.#0123456789abcxyz_-+";
                    bytes[j] = table[usize::from(b) % table.len()];
                }
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
            Edit::DropLine(at) => {
                lines.remove(at % lines.len());
            }
            Edit::DupLine(at) => {
                let i = at % lines.len();
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            Edit::Value(at, v) => {
                let i = at % lines.len();
                if let Some((k, _)) = lines[i].split_once(" = ") {
                    lines[i] = format!("{k} = {}", EXTREMES[v % EXTREMES.len()]);
                }
            }
        }
    }
    lines.join("\n")
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
            any::<usize>().prop_map(Edit::DropLine),
            any::<usize>().prop_map(Edit::DupLine),
            (any::<usize>(), any::<usize>()).prop_map(|(a, v)| Edit::Value(a, v)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, v)| Edit::Value(a, v)),
        ],
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn load_never_panics_and_what_it_accepts_renders(pick in any::<usize>(), e in edits()) {
        let corpus = corpus();
        let src = edit(&corpus[pick % corpus.len()], &e);
        match codegen::load("edited.toml", &src) {
            Ok(spec) => {
                let header = codegen::header(&spec, "edited.toml", &src);
                prop_assert!(codegen::generate(&spec, &header).is_ok(), "{src}");
            }
            Err(d) => {
                prop_assert!(!d.is_empty());
                let _ = d.to_string();
            }
        }
    }
}
