//! `lguest-run`: boot the lguest guest kernel under KVM and report what it did.
//!
//! `lguest-run --help` lists the options, each with its own help. Exit status: 0 when the
//! guest powered off cleanly, 1 when it panicked, restarted into a failure or was killed
//! (the reason is printed), 2 for a bad command line or a VM that could not be set up.

use std::process::ExitCode;
use std::time::Duration;

use clap::builder::PossibleValuesParser;
use clap::{Parser, ValueEnum};
use lguest_kernel::{Fault, Mode, Workload};
use lguest_vmm::run::MAX_TICK_NS;
use lguest_vmm::{Choice, Config, boot};

/// Boots the lguest guest kernel in a KVM virtual machine (at ring 3), every hypercall
/// served by the dispatch generated from spec/lguest.toml and the reference host; prints the
/// guest's console, then a report. Where /dev/kvm is not usable it says why and runs the
/// same kernel code in process.
///
/// Exit status: 0 on a clean power off, 1 on a kill or a guest panic, 2 on a bad command
/// line or a VM that could not be set up.
#[derive(Parser, Debug)]
#[command(name = "lguest-run", version, about, long_about)]
struct Args {
    /// Print the report as one JSON object (and nothing else on stdout).
    #[arg(long)]
    json: bool,
    /// End through the machine's `panic` op (the run exits 1).
    #[arg(long, conflicts_with = "restart")]
    panic: bool,
    /// End through the machine's `restart` op: the host boots the kernel again, as the
    /// Launcher re-executes itself.
    #[arg(long)]
    restart: bool,
    /// What the kernel runs after booting.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Boot)]
    workload: WorkloadArg,
    /// Pages the mmu workload maps and unmaps.
    #[arg(long, value_name = "N", value_parser = number)]
    pages: Option<u64>,
    /// Run the mmu workload with lazy mode off (one exit per page-table update).
    #[arg(long)]
    eager: bool,
    /// Timer ticks the idle loop waits for.
    #[arg(long, value_name = "N", value_parser = ticks)]
    ticks: Option<u32>,
    /// Microseconds between ticks (1 to 1000000).
    #[arg(long, value_name = "N", value_parser = tick_us)]
    tick_us: Option<u64>,
    /// Guest RAM in MiB (even, at most 1024).
    #[arg(long, value_name = "N", value_parser = number)]
    mem_mib: Option<u64>,
    /// How long the guest may run without going idle (halting with nothing to deliver)
    /// before it is killed, however many exits it makes meanwhile (default 5000).
    #[arg(long, value_name = "MS", value_parser = number)]
    watchdog_ms: Option<u64>,
    /// End the whole run (every boot of it) after this many milliseconds.
    #[arg(long, value_name = "MS", value_parser = number)]
    timeout_ms: Option<u64>,
    /// Where to run the guest: KVM, or in process where KVM is not usable (`auto`).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Break the ABI on purpose: the host must end the guest with a typed reason.
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(Fault::ALL.map(Fault::name)))]
    fault: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// The whole boot path, including 64 pages mapped and unmapped in lazy mode.
    Boot,
    /// Boot, then map and unmap `--pages` pages between two marks.
    Mmu,
    /// As `mmu`, reading each page once before unmapping it: a page fault each.
    Touch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// KVM, or in process (saying why) where KVM is not usable.
    Auto,
    /// KVM or an error.
    Kvm,
    /// In process.
    InProcess,
}

/// A number, `_` allowed between digits.
fn number(v: &str) -> Result<u64, String> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("`{v}` is not a number"))
}

fn ticks(v: &str) -> Result<u32, String> {
    u32::try_from(number(v)?).map_err(|_| format!("`{v}` ticks are too many"))
}

fn tick_us(v: &str) -> Result<u64, String> {
    let us = number(v)?;
    let max = MAX_TICK_NS / 1000;
    if us == 0 || us > max {
        return Err(format!("a tick is 1 to {max} µs, not {us}"));
    }
    Ok(us)
}

impl Args {
    fn config(&self) -> Result<Config, String> {
        let mut cfg = Config {
            mode: if self.panic {
                Mode::Panic
            } else if self.restart {
                Mode::Restart
            } else {
                Mode::PowerOff
            },
            workload: match self.workload {
                WorkloadArg::Boot => Workload::Boot,
                WorkloadArg::Mmu => Workload::Mmu,
                WorkloadArg::Touch => Workload::Touch,
            },
            eager: self.eager,
            live_console: !self.json,
            ..Config::default()
        };
        if let Some(p) = self.pages {
            cfg.pages = p;
        }
        if let Some(t) = self.ticks {
            cfg.ticks = t;
        }
        if let Some(us) = self.tick_us {
            cfg.tick_ns = us * 1000;
        }
        if let Some(mib) = self.mem_mib {
            cfg.mem = mib
                .checked_mul(1 << 20)
                .ok_or(format!("--mem-mib {mib} is more memory than there is"))?;
        }
        if let Some(ms) = self.watchdog_ms {
            cfg.watchdog = Duration::from_millis(ms);
        }
        cfg.timeout = self.timeout_ms.map(Duration::from_millis);
        if let Some(name) = &self.fault {
            cfg.fault = Fault::ALL
                .into_iter()
                .find(|f| f.name() == name)
                .ok_or(format!("unknown fault `{name}`"))?;
        }
        cfg.check()?;
        Ok(cfg)
    }

    fn choice(&self) -> Choice {
        match self.backend {
            BackendArg::Auto => Choice::Auto,
            BackendArg::Kvm => Choice::Kvm,
            BackendArg::InProcess => Choice::InProcess,
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2, --help and --version 0, as clap does.
    let args = Args::parse();
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lguest-run: {e}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
    let outcome = match boot(&cfg, args.choice()) {
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
    if args.json {
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
        if args.json {
            eprintln!(
                "lguest-run: the guest did not power off cleanly: {}",
                r.stop
            );
        }
        ExitCode::from(1)
    }
}
