//! `pvgen`: check a paravirtual ABI spec and generate code and docs from it.
//!
//! A thin shell over the `codegen` library. Exit codes: 0 ok; 1 spec errors or stale
//! output; 2 usage or I/O errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  pvgen check SPEC                      validate SPEC, report every problem at once
  pvgen generate SPEC --out DIR [--check]
                                        write the generated modules into DIR;
                                        with --check, only report whether DIR is stale
  pvgen doc SPEC                        print the Markdown ABI reference
  pvgen crate SPEC --out DIR            write a standalone Cargo crate for the ABI

exit codes: 0 ok, 1 spec errors or stale output, 2 usage or I/O errors";

enum Cmd {
    Check(PathBuf),
    Generate {
        spec: PathBuf,
        out: PathBuf,
        check: bool,
    },
    Doc(PathBuf),
    Crate {
        spec: PathBuf,
        out: PathBuf,
    },
}

fn parse_args(args: &[String]) -> Result<Cmd, String> {
    let mut it = args.iter();
    let cmd = it.next().ok_or("missing command")?;
    if matches!(cmd.as_str(), "-h" | "--help" | "help") {
        return Err(String::new());
    }
    let mut spec = None;
    let mut out = None;
    let mut check = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" | "-o" => {
                out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?))
            }
            "--check" => check = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s => {
                if spec.replace(PathBuf::from(s)).is_some() {
                    return Err(format!("more than one spec given (`{s}`)"));
                }
            }
        }
    }
    let spec = spec.ok_or("missing SPEC")?;
    let need_out = |out: Option<PathBuf>| out.ok_or_else(|| format!("`{cmd}` needs --out DIR"));
    let no_flags = |check: bool, out: &Option<PathBuf>| -> Result<(), String> {
        if check {
            return Err(format!("--check does not apply to `{cmd}`"));
        }
        if out.is_some() {
            return Err(format!("--out does not apply to `{cmd}`"));
        }
        Ok(())
    };
    match cmd.as_str() {
        "check" => {
            no_flags(check, &out)?;
            Ok(Cmd::Check(spec))
        }
        "doc" => {
            no_flags(check, &out)?;
            Ok(Cmd::Doc(spec))
        }
        "generate" => Ok(Cmd::Generate {
            spec,
            out: need_out(out)?,
            check,
        }),
        "crate" => {
            if check {
                return Err("--check does not apply to `crate`".into());
            }
            Ok(Cmd::Crate {
                spec,
                out: need_out(out)?,
            })
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

fn load(path: &Path) -> Result<(codegen::Spec, codegen::Generated), ExitCode> {
    match codegen::load_file(path) {
        Ok((spec, src)) => {
            let header = codegen::header(&spec, &path.display().to_string(), &src);
            match codegen::generate(&spec, &header) {
                Ok(g) => Ok((spec, g)),
                Err(e) => {
                    eprintln!("pvgen: {e}");
                    Err(ExitCode::from(2))
                }
            }
        }
        Err(codegen::Error::Spec(d)) => {
            eprintln!("{d}");
            Err(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("pvgen: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn run(cmd: Cmd) -> Result<(), ExitCode> {
    match cmd {
        Cmd::Check(spec) => {
            let (s, _) = load(&spec)?;
            println!(
                "{}: ABI `{}` v{}: {} hypercalls, {} transports, {} pv_ops, {} templates: ok",
                spec.display(),
                s.abi.name.v,
                s.abi.version,
                s.hypercalls.len(),
                s.transports.len(),
                s.pv_ops().count(),
                s.templates.len()
            );
            Ok(())
        }
        Cmd::Doc(spec) => {
            let (_, g) = load(&spec)?;
            let md = g
                .files
                .iter()
                .find(|f| f.path.ends_with(".md"))
                .map(|f| f.contents.clone());
            print!("{}", md.unwrap_or_default());
            Ok(())
        }
        Cmd::Generate { spec, out, check } => {
            let (_, g) = load(&spec)?;
            if check {
                let stale: Vec<&str> = g
                    .files
                    .iter()
                    .filter(|f| {
                        std::fs::read_to_string(out.join(&f.path)).ok().as_deref()
                            != Some(f.contents.as_str())
                    })
                    .map(|f| f.path.as_str())
                    .collect();
                if stale.is_empty() {
                    println!("{}: up to date with {}", out.display(), spec.display());
                    return Ok(());
                }
                eprintln!(
                    "{}: stale against {}: {}\nrun `pvgen generate {} --out {}` to update",
                    out.display(),
                    spec.display(),
                    stale.join(", "),
                    spec.display(),
                    out.display()
                );
                return Err(ExitCode::from(1));
            }
            for f in &g.files {
                codegen::write_if_changed(&out.join(&f.path), &f.contents).map_err(|e| {
                    eprintln!("pvgen: {e}");
                    ExitCode::from(2)
                })?;
            }
            println!("{}: wrote {} files", out.display(), g.files.len());
            Ok(())
        }
        Cmd::Crate { spec, out } => {
            let (s, g) = load(&spec)?;
            codegen::write_crate(&s, &g, &out).map_err(|e| {
                eprintln!("pvgen: {e}");
                ExitCode::from(2)
            })?;
            println!(
                "{}: wrote crate `{}-abi`",
                out.display(),
                s.abi.name.v.replace('_', "-")
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(cmd) => match run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                ExitCode::SUCCESS
            } else {
                eprintln!("pvgen: {msg}\n\n{USAGE}");
                ExitCode::from(2)
            }
        }
    }
}
