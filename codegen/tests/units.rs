//! Room: the unit tests of codegen's library: diagnostics, names, the Markdown of spec
//! prose, the crate `pvgen crate` writes, and the generators behind pv-macros' `abi!`,
//! `#[pv_ops]` and `pv_call!`, each through the public API. They live here rather than in
//! `src/` so the library is compiled once, not a second time with `cfg(test)`.

mod test_spec {
    //! The spec of pv-macros' compile-fail tests (`pv-macros/tests/ui`), which the generators'
    //! tests share.

    use codegen::macros::MacroSpec;

    /// `pv-macros/tests/ui/specs/mini.toml`, checked.
    pub fn mini() -> MacroSpec {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pv-macros/tests/ui/specs/mini.toml"
        );
        let src = std::fs::read_to_string(path).expect("the macros' test spec is readable");
        let spec = codegen::load("mini.toml", &src).expect("mini.toml is a good spec");
        MacroSpec {
            spec,
            path: path.into(),
            shown: "specs/mini.toml".into(),
        }
    }
}

mod diag {
    use codegen::diag::*;

    #[test]
    fn renders_file_line_col_and_caret() {
        let src = "[abi]\nname = \"x\"\nlazzy = true\n";
        let start = src.find("lazzy").unwrap();
        let d =
            Diagnostic::new(start..start + 5, "unknown key `lazzy`").help("did you mean `lazy`?");
        let text = d.render("a.toml", src);
        assert_eq!(
            text,
            "error: unknown key `lazzy`\n --> a.toml:3:1\n  |\n3 | lazzy = true\n  | ^^^^^\n  = help: did you mean `lazy`?\n"
        );
    }

    fn caret_line(text: &str) -> (&str, &str) {
        let lines: Vec<&str> = text.lines().collect();
        (lines[3], lines[4])
    }

    #[test]
    fn carets_line_up_after_tabs_and_on_a_bom_line() {
        let src = "\u{feff}\tname\t= 1\n";
        let at = src.find("= 1").unwrap();
        let text = Diagnostic::new(at..at + 1, "x").render("a.toml", src);
        assert!(text.contains("--> a.toml:1:7"), "{text}");
        let (line, caret) = caret_line(&text);
        assert_eq!(line, "1 |     name    = 1");
        assert_eq!(caret, "  |             ^");
        assert_eq!(line.find('='), caret.find('^'));
    }

    #[test]
    fn crlf_lines_end_before_their_cr() {
        let src = "a = 1\r\nbad = 2\r\n";
        let at = src.find("bad").unwrap();
        let text = Diagnostic::new(at..src.len(), "x").render("a.toml", src);
        let (line, caret) = caret_line(&text);
        assert_eq!(line, "2 | bad = 2");
        assert_eq!(caret, "  | ^^^^^^^");
    }

    #[test]
    fn control_and_bidi_characters_are_not_echoed() {
        let src = "doc = \"a\u{202e}b\rc\"\nx = 1\n";
        let at = src.find('c').unwrap();
        let text = Diagnostic::new(at..at + 1, "x").render("a.toml", src);
        let (line, caret) = caret_line(&text);
        assert_eq!(line, "1 | doc = \"a\u{fffd}b\u{fffd}c\"");
        assert_eq!(line.chars().position(|c| c == 'c'), caret.find('^'));
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let src = format!(
            "x = \"{}key{}\"\n",
            "a".repeat(300_000),
            "b".repeat(300_000)
        );
        let at = src.find("key").unwrap();
        let text = Diagnostic::new(at..at + 3, "x").render("a.toml", &src);
        assert!(text.len() < 400, "{} bytes", text.len());
        let (line, caret) = caret_line(&text);
        assert!(
            line.starts_with("1 | ...a") && line.ends_with("b..."),
            "{line}"
        );
        let c = caret.find('^').unwrap();
        assert_eq!(&line[c..c + 3], "key");
        assert_eq!(&caret[c..], "^^^");
    }

    #[test]
    fn many_problems_render_in_one_pass_and_are_capped() {
        let src = "k = 1\n".repeat(100_000);
        let mut d = Diagnostics::new("big.toml", src.clone());
        for i in 0..100_000 {
            d.push(Diagnostic::new(i * 6..i * 6 + 1, "bad key"));
        }
        let all = d.render(usize::MAX);
        assert_eq!(all.matches("error: bad key").count(), 100_000);
        assert!(all.contains("--> big.toml:100000:1"));
        let shown = d.to_string();
        assert_eq!(shown.matches("error: bad key").count(), SHOWN);
        assert!(shown.ends_with(&format!(
            "note: {} more problems not shown\n\nerror: big.toml has 100000 problems",
            100_000 - SHOWN
        )));
    }

    #[test]
    fn non_utf8_input_names_the_byte_and_line() {
        let d = decode("b.toml", b"[abi]\nname = \"\xff\"\n".to_vec()).unwrap_err();
        let text = d.to_string();
        assert!(
            text.starts_with("error: the spec is not UTF-8: byte 0xff at offset 14 (line 2)"),
            "{text}"
        );
        assert!(text.contains("--> b.toml:2:9"), "{text}");
    }

    #[test]
    fn names_are_escaped_for_generated_files() {
        assert_eq!(escape_name("lguest.toml"), "lguest.toml");
        assert_eq!(
            escape_name("a\nfn x() {}"),
            "a\\u{a}fn x\\u{28}\\u{29} \\u{7b}\\u{7d}"
        );
        assert_eq!(escape_name("x-->y\u{202e}"), "x--\\u{3e}y\\u{202e}");
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("lazzy", &["lazy", "name", "args"]),
            Some("lazy")
        );
        assert_eq!(did_you_mean("frobnicate", &["lazy", "name"]), None);
    }
}

mod names {
    use codegen::names::*;

    #[test]
    fn snake_case_rules() {
        for good in [
            "set_pte", "a1_b2", "type", "in", "ref", "match", "self_", "arg1", "_x", "x_", "gen",
        ] {
            assert!(snake_case_problem(good).is_none(), "{good}");
        }
        for bad in [
            "SetPte", "__x", "a__b", "1a", "", "set-pte", "self", "super", "crate", "Self", "_",
            "_1", "x__",
        ] {
            assert!(snake_case_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn unspellable_names_say_what_to_write() {
        let (_, hint) = name_problem("self").expect("refused");
        assert!(hint.contains("`self_`"), "{hint}");
        let (_, hint) = name_problem("SetPte").expect("refused");
        assert!(hint.contains("`set_pte`"), "{hint}");
    }

    #[test]
    fn keywords_are_raw() {
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("gen").to_string(), "r#gen");
        assert_eq!(ident("pgdir").to_string(), "pgdir");
        assert_eq!(camel_ident("self_").to_string(), "Self_");
    }

    #[test]
    fn derived_names() {
        assert_eq!(camel("lguest_data"), "LguestData");
        assert_eq!(camel("x86_64_thing"), "X8664Thing");
        assert_eq!(camel("_x_"), "X");
        assert_eq!(upper("set_pte"), "SET_PTE");
    }
}

mod markdown {
    use codegen::markdown::{Fence, clean_text, doc_lines, run_on};

    #[test]
    fn a_fence_closes_only_on_as_many_of_its_own_character() {
        let six = Fence::opened_by("``````").unwrap();
        assert!(!six.closed_by("```"), "a shorter run is a line of code");
        assert!(
            !six.closed_by("~~~~~~"),
            "the other character is a line of code"
        );
        assert!(!six.closed_by("``````x"), "a closer carries nothing else");
        assert!(!six.closed_by("    ``````"), "four columns in, it is code");
        assert!(six.closed_by("``````"));
        assert!(six.closed_by("  ````````"), "a longer run closes");
        let tilde = Fence::opened_by("~~~~ text `x`").unwrap();
        assert!(!tilde.closed_by("```````"));
        assert!(!tilde.closed_by("~~~"));
        assert!(tilde.closed_by("~~~~"));
        assert_eq!(
            Fence::opened_by("``` a`b"),
            None,
            "a backtick in the info string"
        );
        assert_eq!(Fence::opened_by("    ```"), None, "indented code");
        assert_eq!(Fence::opened_by("``"), None);
    }

    #[test]
    fn clean_text_closes_what_a_doc_leaves_open_with_a_closer_as_long_as_its_opener() {
        assert_eq!(clean_text("``````\ncode\n```"), "``````\ncode\n```\n``````");
        assert_eq!(
            clean_text("~~~~\ncode\n```\n~~~"),
            "~~~~\ncode\n```\n~~~\n~~~~"
        );
        assert_eq!(clean_text("````\ncode\n~~~~~"), "````\ncode\n~~~~~\n````");
        // Closed already: a longer closer closes, nothing is added.
        assert_eq!(
            clean_text("```\ncode\n`````\nprose"),
            "```\ncode\n`````\nprose"
        );
        // In a list item, closed at the opener's indent so the item holds the closer.
        assert_eq!(
            clean_text("Reads:\n- item\n\n  ````\n  code\n  ```"),
            "Reads:\n- item\n\n  ````\n  code\n  ```\n  ````"
        );
    }

    fn render(text: &str) -> String {
        doc_lines(text).join("\n")
    }

    #[test]
    fn a_short_closer_leaves_a_long_fence_open_and_the_renderer_closes_it() {
        // The specgen case: six backticks, then three, then the generated `# Safety`.
        let out = render("Reads:\n``````\nvalue\n```\n\n# Safety\n\nNone.");
        assert_eq!(
            out,
            " Reads:\n ``````text\n value\n ```\n\n # Safety\n\n None.\n ``````"
        );
        // Once closed by a run as long, what follows is prose again (and is wrapped).
        let long = "word ".repeat(30);
        let out = render(&format!("``````\nvalue\n```\n````````\n{long}"));
        assert!(out.lines().all(|l| l.chars().count() <= 89), "{out}");
        // Tildes do not close backticks, nor backticks tildes.
        assert!(render("````\nv\n~~~~~").ends_with("\n ````"));
        assert!(render("~~~\nv\n```").ends_with("\n ~~~"));
        // A fence in a list item is closed in the item.
        assert!(render("Reads:\n- item\n\n  ````\n  v\n  ```").ends_with("\n   ```\n   ````"));
        // A fence opened on a list item's or a quote's marker is not a doctest either.
        assert_eq!(render("- ```\nv"), " - ```text\n   v");
        assert_eq!(render("> ```rust\n> v"), " > ```text\n > v");
        // Nothing is added to a doc whose fences are closed.
        assert_eq!(
            render("```\nv\n`````\nafter"),
            " ```text\n v\n `````\n after"
        );
    }

    #[test]
    fn a_sentence_after_a_closing_fence_starts_a_paragraph() {
        assert_eq!(run_on("Ping.", " (number 1)."), "Ping. (number 1).");
        assert_eq!(
            run_on("Ping:\n```\nx\n```", " (number 1)."),
            "Ping:\n```\nx\n```\n\n(number 1)."
        );
    }
}

mod cargo_crate {
    use crate::test_spec::mini;

    /// The package name of the crate `pvgen crate` writes for ABI `abi` (the compile-fail
    /// tests' spec, renamed), read back from its `Cargo.toml`.
    fn package_name(abi: &str) -> String {
        let mut spec = mini().spec;
        spec.abi.name.v = abi.to_string();
        let g = codegen::generate(&spec, "stamp").expect("generates");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("units-package-names")
            .join(abi);
        codegen::write_crate(&spec, &g, &dir).expect("the crate is written");
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let name = cargo
            .lines()
            .skip_while(|l| *l != "[package]")
            .find_map(|l| l.strip_prefix("name = "))
            .expect("the package has a name");
        name.trim_matches('"').to_string()
    }

    #[test]
    fn package_names_are_ones_cargo_and_rustc_accept() {
        assert_eq!(package_name("lguest"), "lguest-abi");
        assert_eq!(package_name("kvm_x86"), "kvm-x86-abi");
        assert_eq!(package_name("self_"), "self-abi");
        assert_eq!(package_name("_r7_n5k"), "r7-n5k-abi");
        assert_eq!(package_name("type"), "type-abi");
    }
}

mod expansion {
    use codegen::macros::expansion::*;
    use quote::quote;

    #[test]
    fn items_are_formatted_after_the_header() {
        let text = items(
            &quote! { pub mod m { pub const A: u8 = 1; } },
            "abi! at x.rs:1:1",
        )
        .unwrap();
        assert_eq!(
            text,
            "// abi! at x.rs:1:1\npub mod m {\n    pub const A: u8 = 1;\n}\n"
        );
    }

    #[test]
    fn an_expression_comes_back_whole_and_formatted() {
        let block = quote! {
            {
                const _: &[u8] = ::core::include_bytes!("/s.toml");
                let __pv_arg0: u64 = flags;
                ::core::arch::asm!("2:", "call qword ptr [rip + {slot}]", slot = sym SLOT, in("rdi") __pv_arg0,)
            }
        };
        let text = expr(&block, "pv_call! at k.rs:3:9\nsecond line").unwrap();
        assert!(
            text.starts_with("// pv_call! at k.rs:3:9\n// second line\n{\n    const _"),
            "{text}"
        );
        assert!(text.ends_with("}\n"), "{text}");
        // What include! reads is the same expression.
        let src: String = text
            .lines()
            .filter(|l| !l.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let back: syn::Expr = syn::parse_str(&src).expect("the file is one expression");
        assert_eq!(quote!(#back).to_string(), block.to_string());
    }

    #[test]
    fn tokens_of_the_wrong_kind_are_an_error_not_a_panic() {
        assert!(
            items(&quote! { 1 + }, "h")
                .unwrap_err()
                .contains("does not parse as items")
        );
        assert!(
            expr(&quote! { fn }, "h")
                .unwrap_err()
                .contains("does not parse as an expression")
        );
    }
}

mod call_site {
    use codegen::macros::MacroSpec;
    use codegen::macros::call_site::*;
    use pv_sites::clobber;

    use crate::test_spec::mini;

    /// The compile-fail tests' spec, with table `irq` grown to `ops` ops.
    fn spec_with_irq_ops(ops: usize) -> MacroSpec {
        let mut spec = mini();
        let irq = &mut spec.spec.pv_tables[0];
        assert_eq!(irq.name.v, "irq");
        let model = irq.ops[0].clone();
        while irq.ops.len() < ops {
            let mut op = model.clone();
            op.name.v = format!("op_{}", irq.ops.len());
            irq.ops.push(op);
        }
        spec
    }

    /// The record id the expansion `out` of a call site writes (`.short <id>`), if one.
    fn record_id(out: &str) -> Option<u16> {
        let at = out.find("\".short ")? + "\".short ".len();
        out[at..].split('"').next()?.parse().ok()
    }

    // No spec file: tens of thousands of ops would make the spec and its checks the
    // test's whole cost, and the limit is the call site's.
    #[test]
    fn an_op_past_65535_has_no_record_id() {
        let spec = spec_with_irq_ops(usize::from(u16::MAX) + 2);
        let id = |call: &str| expand_call_in(&spec, call).map(|out| record_id(&out));
        assert_eq!(id("irq.save_fl()"), Ok(Some(0)));
        assert_eq!(id("irq.op_65535()"), Ok(Some(u16::MAX)));
        assert_eq!(
            id("irq.op_65536()"),
            Err(
                "op `irq.op_65536` is op number 65536 of the spec; a site record holds a \
                 16-bit op id (at most 65535)"
                    .to_string()
            )
        );
        // Ops after the overflowing table are past the limit too.
        let now = id("time.now()").unwrap_err();
        assert!(now.contains("a site record holds a 16-bit op id"), "{now}");
    }

    /// The expansion of `pv_call!(src)` through slot `SLOT` with `spec`, or its error.
    fn expand_call_in(spec: &MacroSpec, src: &str) -> Result<String, String> {
        let expr: syn::ExprMethodCall = syn::parse_str(src).expect("a call");
        let syn::Expr::Path(table) = &*expr.receiver else {
            panic!("a table name")
        };
        let call = Call {
            table: table.path.get_ident().expect("one name").clone(),
            op: expr.method.clone(),
            paren: expr.paren_token,
            args: expr.args.clone(),
        };
        let slot: syn::Path = syn::parse_quote!(SLOT);
        expand(spec, &slot, &call)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    fn expand_call(src: &str) -> Result<String, String> {
        expand_call_in(&mini(), src)
    }

    #[test]
    fn a_callee_save_site_clobbers_only_rax_and_records_itself() {
        let out = expand_call("irq.restore_fl(flags)").unwrap();
        let want = [
            "let __pv_arg0 : u64 = flags ;",
            "\"call qword ptr [rip + {slot}]\"",
            "\".short 1\"",
            &format!("\".short {:#06x}\"", clobber::CALLEE_SAVE),
            "in (\"rdi\") __pv_arg0",
            "lateout (\"rax\") _",
        ];
        for w in want {
            assert!(out.contains(w), "{w} in {out}");
        }
        assert!(!out.contains("clobber_abi"), "{out}");
        // A C-ABI op clobbers what a call may.
        let now = expand_call("time.now()").unwrap();
        assert!(now.contains("clobber_abi (\"C\")"), "{now}");
    }

    #[test]
    fn a_wrong_call_is_an_error_naming_what_the_op_takes() {
        assert_eq!(
            expand_call("irq.restore_fl()").unwrap_err(),
            "op `irq.restore_fl` takes 1 argument (flags: u64), 0 given"
        );
        assert!(
            expand_call("irq.save_f()")
                .unwrap_err()
                .starts_with("pv_op table `irq` has no op `save_f`")
        );
        assert!(
            expand_call("wide.seven(1, 2, 3, 4, 5, 6, 7)")
                .unwrap_err()
                .contains("at most 6")
        );
    }

    /// The compile-fail tests' spec with `irq.save_fl` patched by template `cli`, whose
    /// one form is grown to `len` bytes: a call site of the op needs `len` bytes.
    fn spec_with_site_len(len: usize) -> MacroSpec {
        let mut spec = mini();
        let s = &mut spec.spec;
        assert_eq!(s.templates[0].name.v, "cli");
        s.templates[0].forms.truncate(1);
        s.templates[0].forms[0].bytes = vec![0x90; len];
        let irq = &mut s.pv_tables[0];
        assert_eq!(irq.ops[2].name.v, "irq_disable");
        irq.ops[0].template = irq.ops[2].template.clone();
        assert_eq!(s.site_len(&s.pv_tables[0].ops[0]), len);
        spec
    }

    /// The site length the expansion `out` of a call site records (`.byte <len>, 0, 0, 0`).
    fn record_len(out: &str) -> Option<u8> {
        let at = out.find("\".byte ")? + "\".byte ".len();
        out[at..].split(',').next()?.parse().ok()
    }

    #[test]
    fn a_site_past_255_bytes_has_no_record_length() {
        let len = |site: usize| {
            expand_call_in(&spec_with_site_len(site), "irq.save_fl()").map(|out| record_len(&out))
        };
        assert_eq!(len(255), Ok(Some(255)));
        assert_eq!(
            len(256),
            Err(
                "op `irq.save_fl` needs a 256-byte site; a site record holds at most 255"
                    .to_string()
            )
        );
    }
}

mod thunks {
    use codegen::macros::MacroSpec;
    use codegen::macros::thunks::*;
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::{ImplItem, ItemImpl, LitStr};

    use crate::test_spec::mini;

    /// What `#[pv_ops]` adds after the impl `src` of table `table` of the mini spec: its
    /// expansion with `table = "<table>"` but the impl, which comes first, unchanged.
    fn thunks_of(spec: &MacroSpec, table: &str, src: &str) -> TokenStream {
        let item: ItemImpl = syn::parse_str(src).expect("the impl parses");
        let lit = LitStr::new(table, proc_macro2::Span::call_site());
        let out = expand(spec, Some(&lit), &item).expect("thunks for the impl");
        let mut file: syn::File = syn::parse2(out).expect("the expansion parses");
        let first = file.items.remove(0);
        assert_eq!(
            quote!(#first).to_string(),
            quote!(#item).to_string(),
            "the impl comes first, unchanged"
        );
        let rest = file.items;
        quote! { #(#rest)* }
    }

    const IRQ_IMPL: &str = "impl abi::pv_ops::IrqOps for Guest {
        fn save_fl() -> u64 { 0 }
        fn restore_fl(_: u64) {}
        fn irq_disable() {}
    }";

    const TIME_IMPL: &str = "impl abi::pv_ops::TimeOps for Guest {
        fn now() -> u64 { 0 }
        unsafe fn arm(deadline: *mut u64, at: u64) -> u64 {
            // SAFETY: the caller passes a valid pointer (the op's contract).
            unsafe { deadline.replace(at) }
        }
    }";

    fn docs(attrs: &[syn::Attribute]) -> String {
        attrs
            .iter()
            .filter_map(|a| match &a.meta {
                syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The functions of the inherent impl the thunks are emitted in.
    fn fns(tokens: TokenStream) -> Vec<syn::ImplItemFn> {
        let file: syn::File = syn::parse2(tokens).expect("the thunks parse");
        file.items
            .into_iter()
            .filter_map(|i| match i {
                syn::Item::Impl(imp) => Some(imp.items),
                _ => None,
            })
            .flatten()
            .filter_map(|i| match i {
                ImplItem::Fn(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_unsafe_ops_shim_and_thunks_state_and_forward_its_contract() {
        let spec = mini();
        let contract = spec.spec.pv_tables[1].ops[1]
            .safety
            .clone()
            .expect("arm's safety");
        let fns = fns(thunks_of(&spec, "time", TIME_IMPL));
        let arm: Vec<&syn::ImplItemFn> = fns
            .iter()
            .filter(|f| f.sig.ident.to_string().starts_with("arm_"))
            .collect();
        // The shim and one thunk per vector-register width.
        assert_eq!(
            arm.len(),
            4,
            "{:?}",
            fns.iter().map(|f| &f.sig.ident).collect::<Vec<_>>()
        );
        for f in &arm {
            let d = docs(&f.attrs);
            assert!(f.sig.unsafety.is_some(), "{} is an unsafe fn", f.sig.ident);
            let safety = d.find("# Safety").expect("a # Safety section");
            let section = &d[safety..];
            assert!(
                section.contains(&contract),
                "{} states the op's contract: {d}",
                f.sig.ident
            );
            assert!(
                section.contains("`time.arm` (`<Guest as abi::pv_ops::TimeOps>::arm`)")
                    && section.contains("unchanged"),
                "and says it is the op's, passed through: {d}"
            );
        }
        let shim = arm
            .iter()
            .find(|f| f.sig.ident == "arm_extern_c")
            .expect("the shim");
        assert!(
            docs(&shim.attrs).contains("relies on the guarantees this function's caller gives"),
            "the shim says its unsafe call rests on its caller"
        );
        // The body is the one unsafe call of the op, arguments as they came.
        let body = quote!(#shim).to_string();
        assert!(
            body.contains("unsafe { < Self as abi :: pv_ops :: TimeOps > :: arm (deadline , at) }"),
            "{body}"
        );
    }

    #[test]
    fn an_impl_is_checked_against_its_table() {
        let spec = mini();
        let expand = |src: &str, table: Option<&str>| {
            let item: ItemImpl = syn::parse_str(src).expect("the impl parses");
            let lit = table.map(|t| LitStr::new(t, proc_macro2::Span::call_site()));
            expand(&spec, lit.as_ref(), &item).map_err(|e| e.to_string())
        };
        assert_eq!(
            expand("impl IrqOps for Guest { fn save_fl() -> u64 { 0 } }", None).unwrap_err(),
            "missing ops of pv_op table `irq`: `restore_fl`, `irq_disable`"
        );
        assert!(
            expand("impl ClockOps for Guest {}", None)
                .unwrap_err()
                .starts_with("`ClockOps` is not a pv_op trait of spec `specs/mini.toml`")
        );
        // A table named by the option wins over the trait's name.
        let time = "impl Renamed for Guest { fn now() -> u64 { 0 } unsafe fn arm(d: *mut u64, a: u64) -> u64 { 0 } }";
        let out = expand(time, Some("time"))
            .expect("the time table's ops are all there")
            .to_string();
        assert!(
            out.contains("arm_callee_save") && !out.contains("now_callee_save"),
            "{out}"
        );
    }

    #[test]
    fn safe_ops_have_no_safety_section() {
        for f in fns(thunks_of(&mini(), "irq", IRQ_IMPL)) {
            assert!(f.sig.unsafety.is_none(), "{} is safe", f.sig.ident);
            assert!(!docs(&f.attrs).contains("# Safety"), "{}", f.sig.ident);
        }
    }

    /// Compiles `src` as a library with `rustc` and target features `features`: its
    /// success, and its diagnostics.
    fn rustc(src: &str, features: &str) -> (bool, String) {
        let dir = std::env::temp_dir().join(format!(
            "pv-macros-thunks-{}-{}",
            std::process::id(),
            features.replace(['+', ','], "_")
        ));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let file = dir.join("thunks.rs");
        std::fs::write(&file, src).expect("the source is written");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let mut cmd = std::process::Command::new(rustc);
        cmd.args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--crate-name",
            "thunks",
        ])
        .arg("--emit=obj")
        .arg("--out-dir")
        .arg(&dir)
        .arg(&file);
        if !features.is_empty() {
            cmd.arg(format!("-Ctarget-feature={features}"));
        }
        let out = cmd.output().expect("rustc runs");
        let _ = std::fs::remove_dir_all(&dir);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    // The test compiles the expansion itself (the generated ABI, an impl, and the thunks
    // `#[pv_ops]` adds) once per target feature set, without building the proc macro.
    #[test]
    fn thunks_compile_for_sse_and_avx_and_avx512_builds_are_refused() {
        let spec = mini();
        let abi = codegen::tokens(&spec.spec);
        let thunks = thunks_of(&spec, "irq", IRQ_IMPL);
        let src = format!(
            "#![allow(dead_code, missing_docs)]\npub mod abi {{ {abi} }}\npub struct Guest;\n\
             {IRQ_IMPL}\n{thunks}\n"
        );
        for features in ["", "+avx"] {
            let (ok, stderr) = rustc(&src, features);
            assert!(ok, "the thunks build with `{features}`:\n{stderr}");
        }
        let (ok, stderr) = rustc(&src, "+avx512f");
        assert!(!ok, "an AVX-512 build is refused");
        assert!(
            stderr.contains(
                "error: the callee-save thunks of table `irq` do not save AVX-512 registers: \
                 build without target feature avx512f"
            ),
            "{stderr}"
        );
    }
}
