//! `pvgen`: check a paravirtual ABI spec and generate code and docs from it.
//!
//! A thin shell over the `codegen` library, its command line parsed by clap. Exit codes:
//! 0 ok; 1 spec errors or stale output; 2 usage or I/O errors (clap's own usage errors
//! exit 2 too).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codegen::lock::{self, Class, Facts, Report};

const EXIT_CODES: &str = "exit codes: 0 ok, 1 spec errors or stale output, 2 usage or I/O errors";

/// Check a paravirtual ABI spec and generate guest, host and docs from it.
#[derive(Parser, Debug)]
#[command(name = "pvgen", version, after_help = EXIT_CODES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Validate SPEC and report every problem at once, each at its file:line:col; where
    /// SPEC.lock exists, compare the ABI with it: an unmarked breaking change is an error.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The spec (TOML).
        spec: PathBuf,
    },
    /// Write SPEC.lock beside SPEC: every ABI fact a built guest or host depends on.
    /// Refuses to record an unmarked breaking change over an existing lock.
    #[command(after_help = EXIT_CODES)]
    Lock {
        /// The spec (TOML).
        spec: PathBuf,
        /// Write nothing: exit 1 when SPEC.lock is missing or differs from what it would be.
        #[arg(long)]
        check: bool,
        /// Record the spec even over an unmarked breaking change (an ABI never released).
        #[arg(long)]
        force: bool,
    },
    /// Classify every difference between two specs or locks, from both sides: exit 0 when
    /// compatible or additive, 1 when breaking.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The old spec or lock.
        old: PathBuf,
        /// The new spec or lock.
        new: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write one file per module, mod.rs and ABI.md (ABI the spec's name) into DIR, with a
    /// manifest (pvgen.manifest) so a later run removes what it no longer generates.
    #[command(after_help = EXIT_CODES)]
    Generate {
        /// The spec (TOML).
        spec: PathBuf,
        /// The output folder (created if missing).
        #[arg(long, short, value_name = "DIR")]
        out: PathBuf,
        /// Write nothing: exit 1 when DIR is stale (a file missing, different or left
        /// over from an earlier spec).
        #[arg(long)]
        check: bool,
    },
    /// Print the Markdown ABI reference on stdout.
    #[command(after_help = EXIT_CODES)]
    Doc {
        /// The spec (TOML).
        spec: PathBuf,
    },
    /// Write a standalone Cargo crate for the ABI into DIR.
    #[command(after_help = EXIT_CODES)]
    Crate {
        /// The spec (TOML).
        spec: PathBuf,
        /// The crate's folder (created if missing).
        #[arg(long, short, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Reports an I/O or internal error: exit 2.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("pvgen: {e}");
    ExitCode::from(2)
}

fn load(path: &Path) -> Result<(codegen::Spec, String, codegen::Generated), ExitCode> {
    match codegen::load_file(path) {
        Ok((spec, src)) => {
            let header = codegen::header(&spec, &path.display().to_string(), &src);
            match codegen::generate(&spec, &header) {
                Ok(g) => Ok((spec, src, g)),
                Err(e) => Err(fail(e)),
            }
        }
        Err(codegen::Error::Spec(d)) => {
            eprintln!("{d}");
            Err(ExitCode::from(1))
        }
        Err(e) => Err(fail(e)),
    }
}

/// Reads a spec or lock into its ABI facts (exit 1 on a bad one, 2 when unreadable).
fn facts(path: &Path) -> Result<Facts, ExitCode> {
    match Facts::load(path) {
        Ok(f) => Ok(f),
        Err(codegen::Error::Spec(d)) => {
            eprintln!("{d}");
            Err(ExitCode::from(1))
        }
        Err(e) => Err(fail(e)),
    }
}

/// The spec's lock, compared with the spec, if there is one.
fn against_lock(spec: &Path, new: &Facts) -> Result<Option<(Facts, Report)>, ExitCode> {
    let lock = lock::lock_path(spec);
    if !lock.exists() {
        return Ok(None);
    }
    let old = facts(&lock)?;
    let report = Report::new(&old, new);
    Ok(Some((old, report)))
}

fn run(cmd: Cmd) -> Result<(), ExitCode> {
    match cmd {
        Cmd::Check { spec } => {
            let (s, src, _) = load(&spec)?;
            let file = spec.display().to_string();
            let new = Facts::from_spec(&s, &file, &src);
            let lock_note = match against_lock(&spec, &new)? {
                None => format!(
                    ": none (`pvgen lock {file}` writes {})",
                    lock::lock_path(&spec).display()
                ),
                Some((old, report)) => {
                    eprint!("{}", report.diagnostics(&old, &new, &file));
                    let errors = report.errors();
                    if errors > 0 {
                        eprintln!(
                            "error: {file} breaks the ABI of {} in {errors} place{}",
                            old.file,
                            if errors == 1 { "" } else { "s" }
                        );
                        return Err(ExitCode::from(1));
                    }
                    let (c, a, b) = report.counts();
                    if a + b + c == 0 {
                        format!(": matches {}", old.file)
                    } else {
                        format!(
                            ": against {}: {b} marked breaking, {a} additive, {c} compatible change{} (`pvgen lock {file}` records them)",
                            old.file,
                            if a + b + c == 1 { "" } else { "s" }
                        )
                    }
                }
            };
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
            println!("{file}: ABI lock{}", lock_note);
            Ok(())
        }
        Cmd::Lock { spec, check, force } => {
            let (s, src, _) = load(&spec)?;
            let file = spec.display().to_string();
            let new = Facts::from_spec(&s, &file, &src);
            let path = lock::lock_path(&spec);
            let text = new.lock_text();
            let current = std::fs::read_to_string(&path).ok();
            if check {
                if current.as_deref() == Some(text.as_str()) {
                    println!("{}: up to date with {file}", path.display());
                    return Ok(());
                }
                eprintln!(
                    "{}: {} {file}\nrun `pvgen lock {file}` to update it",
                    path.display(),
                    if current.is_some() {
                        "differs from"
                    } else {
                        "is missing for"
                    }
                );
                return Err(ExitCode::from(1));
            }
            if !force
                && let Some((old, report)) = against_lock(&spec, &new)?
                && report.errors() > 0
            {
                eprint!("{}", report.diagnostics(&old, &new, &file));
                eprintln!(
                    "error: not recording {file}: it breaks the ABI of {} without a version bump (--force records it anyway)",
                    old.file
                );
                return Err(ExitCode::from(1));
            }
            codegen::write_if_changed(&path, &text).map_err(fail)?;
            println!(
                "{}: {} facts of ABI `{}` v{}",
                path.display(),
                new.map.len(),
                new.abi(),
                new.version()
            );
            Ok(())
        }
        Cmd::Diff { old, new, json } => {
            let (a, b) = (facts(&old)?, facts(&new)?);
            let report = Report::new(&a, &b);
            if json {
                print!("{}", report.json(&a, &b));
            } else {
                print!("{}", report.text(&a, &b));
            }
            if report.class() == Class::Breaking {
                return Err(ExitCode::from(1));
            }
            Ok(())
        }
        Cmd::Doc { spec } => {
            let (_, _, g) = load(&spec)?;
            let md = g
                .files
                .iter()
                .find(|f| f.path.ends_with(".md"))
                .map(|f| f.contents.clone());
            print!("{}", md.unwrap_or_default());
            Ok(())
        }
        Cmd::Generate { spec, out, check } => {
            let (_, _, g) = load(&spec)?;
            if check {
                let state = codegen::outdir::check_dir(&out, &g).map_err(fail)?;
                if state.no_manifest {
                    eprintln!(
                        "note: {} has no {}: files pvgen stamped count as generated",
                        out.display(),
                        codegen::outdir::MANIFEST
                    );
                }
                if state.stale.is_empty() {
                    println!("{}: up to date with {}", out.display(), spec.display());
                    return Ok(());
                }
                let list = |f: fn(&codegen::outdir::Stale) -> bool| {
                    state
                        .stale
                        .iter()
                        .filter(|s| f(s))
                        .map(|s| s.path())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut why = Vec::new();
                for (what, names) in [
                    (
                        "differ",
                        list(|s| matches!(s, codegen::outdir::Stale::Differs(_))),
                    ),
                    (
                        "missing",
                        list(|s| matches!(s, codegen::outdir::Stale::Missing(_))),
                    ),
                    (
                        "left over from an earlier spec",
                        list(|s| matches!(s, codegen::outdir::Stale::Leftover(_))),
                    ),
                ] {
                    if !names.is_empty() {
                        why.push(format!("{what}: {names}"));
                    }
                }
                eprintln!(
                    "{}: stale against {}\n  {}\nrun `pvgen generate {} --out {}` to update",
                    out.display(),
                    spec.display(),
                    why.join("\n  "),
                    spec.display(),
                    out.display()
                );
                return Err(ExitCode::from(1));
            }
            let w = codegen::outdir::write_dir(&out, &g).map_err(fail)?;
            print!("{}: wrote {} files", out.display(), w.files);
            if !w.removed.is_empty() {
                print!(", removed {}", w.removed.join(", "));
            }
            println!();
            Ok(())
        }
        Cmd::Crate { spec, out } => {
            let (s, _, g) = load(&spec)?;
            codegen::write_crate(&s, &g, &out).map_err(fail)?;
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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
