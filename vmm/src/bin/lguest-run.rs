//! `lguest-run`: boot the lguest guest kernel under KVM and report what it did.
//!
//! ```text
//! lguest-run [--json] [--panic | --restart] [--workload boot|mmu] [--pages N] [--eager]
//!            [--ticks N] [--tick-us N] [--mem-mib N] [--watchdog-ms N]
//!            [--backend auto|kvm|in-process] [--fault NAME]
//! ```
//!
//! Exit status: 0 when the guest powered off cleanly, 1 when it panicked, restarted into a
//! failure or was killed (the reason is printed), 2 for a bad command line or a VM that
//! could not be set up.

use std::process::ExitCode;
use std::time::Duration;

use lguest_kernel::{Fault, Mode, Workload};
use lguest_vmm::{Choice, Config, boot};

const USAGE: &str =
    "usage: lguest-run [--json] [--panic | --restart] [--workload boot|mmu] [--pages N] [--eager]
                  [--ticks N] [--tick-us N] [--mem-mib N] [--watchdog-ms N]
                  [--backend auto|kvm|in-process] [--fault NAME]

Boots the lguest guest kernel in a KVM virtual machine (at ring 3), every hypercall served by
the dispatch generated from spec/lguest.toml and the reference host; prints the guest's console,
then a report. Where /dev/kvm is not usable it says why and runs the same kernel code in process.";

struct Args {
    cfg: Config,
    json: bool,
    choice: Choice,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        cfg: Config::default(),
        json: false,
        choice: Choice::Auto,
    };
    let mut it = args.iter();
    let num = |flag: &str, v: Option<&String>| -> Result<u64, String> {
        let v = v.ok_or(format!("{flag} needs a value"))?;
        v.replace('_', "")
            .parse()
            .map_err(|_| format!("{flag}: `{v}` is not a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => a.json = true,
            "--panic" => a.cfg.mode = Mode::Panic,
            "--restart" => a.cfg.mode = Mode::Restart,
            "--eager" => a.cfg.eager = true,
            "--workload" => {
                a.cfg.workload = match it.next().map(String::as_str) {
                    Some("boot") => Workload::Boot,
                    Some("mmu") => Workload::Mmu,
                    other => {
                        return Err(format!("--workload: expected boot or mmu, got {other:?}"));
                    }
                }
            }
            "--pages" => a.cfg.pages = num(arg, it.next())?,
            "--ticks" => {
                a.cfg.ticks = u32::try_from(num(arg, it.next())?)
                    .map_err(|_| "--ticks: too many".to_string())?
            }
            "--tick-us" => a.cfg.tick_ns = num(arg, it.next())?.saturating_mul(1000),
            "--mem-mib" => a.cfg.mem = num(arg, it.next())?.saturating_mul(1 << 20),
            "--watchdog-ms" => a.cfg.watchdog = Duration::from_millis(num(arg, it.next())?),
            "--backend" => {
                a.choice = match it.next().map(String::as_str) {
                    Some("auto") => Choice::Auto,
                    Some("kvm") => Choice::Kvm,
                    Some("in-process") => Choice::InProcess,
                    other => {
                        return Err(format!(
                            "--backend: expected auto, kvm or in-process, got {other:?}"
                        ));
                    }
                }
            }
            "--fault" => {
                let name = it.next().ok_or("--fault needs a value")?;
                a.cfg.fault = Fault::ALL
                    .into_iter()
                    .find(|f| f.name() == name)
                    .ok_or(format!("--fault: unknown fault `{name}`"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    a.cfg.live_console = !a.json;
    a.cfg.check()?;
    Ok(a)
}

fn fault_names() -> String {
    Fault::ALL.map(Fault::name).join(", ")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse(&args) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!(
                "{USAGE}\n\nFaults (the guest breaks the ABI on purpose): {}",
                fault_names()
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("lguest-run: {e}\n\n{USAGE}\n\nFaults: {}", fault_names());
            return ExitCode::from(2);
        }
    };
    let outcome = match boot(&a.cfg, a.choice) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lguest-run: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(why) = &outcome.fallback {
        eprintln!("lguest-run: {why}; running the same kernel code in process instead");
    }
    let r = &outcome.report;
    if a.json {
        println!("{}", r.to_json());
    } else {
        // The console went out as it came.
        if !r.console.ends_with('\n') && !r.console.is_empty() {
            println!();
        }
        print!("{}", r.to_text());
    }
    if r.clean() {
        ExitCode::SUCCESS
    } else {
        if a.json {
            eprintln!(
                "lguest-run: the guest did not power off cleanly: {}",
                r.stop
            );
        }
        ExitCode::from(1)
    }
}
