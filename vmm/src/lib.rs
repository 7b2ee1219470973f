//! `lguest-run`: boots the lguest guest kernel (`kernel/`) in a real VM under KVM, with every
//! hypercall served by the dispatch generated from `spec/lguest.toml` and the reference host
//! of `host-stubs`; where /dev/kvm is not usable, runs the same kernel code in process.
//!
//! - [`kvm`]: the VM (rust-vmm's `kvm-ioctls`): ring-3 guest, host-owned descriptor tables
//!   and trap stubs ([`layout`]), interrupts delivered lguest's way, a kicker thread.
//! - [`inproc`]: the same workload through a loopback transport.
//! - [`elf`]: loading the kernel image, bounds-checked.
//! - [`run`]: the configuration both backends take; [`report`]: the report both produce.

#![deny(warnings)]

pub mod elf;
pub mod inproc;
pub mod kvm;
pub mod layout;
pub mod report;
pub mod run;

pub use run::{Backend, Config, Report};

/// The kernel ELF that `build.rs` built.
pub const KERNEL_ELF: &[u8] = include_bytes!(env!("LGUEST_KERNEL_ELF"));

/// Which backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// KVM, or in process (saying why) where KVM is not usable.
    Auto,
    /// KVM or an error.
    Kvm,
    /// In process.
    InProcess,
}

/// How a run went: its report, or why it could not run at all.
#[derive(Debug)]
pub struct Outcome {
    /// The report, one per boot (a restart boots again).
    pub report: Report,
    /// Why KVM was not used, where `Choice::Auto` fell back.
    pub fallback: Option<String>,
}

/// Runs the guest: boots it, and boots it again once if it asks for a restart (as the
/// original Launcher re-executes itself), then returns the last boot's report with the
/// boot count.
pub fn boot(cfg: &Config, choice: Choice) -> Result<Outcome, String> {
    let started = std::time::Instant::now();
    let mut fallback = None;
    let once = |cfg: &Config, fallback: &mut Option<String>| -> Result<Report, String> {
        match choice {
            Choice::InProcess => inproc::run(cfg),
            Choice::Kvm => kvm::run(cfg, KERNEL_ELF).map_err(|e| e.to_string()),
            Choice::Auto if fallback.is_some() => inproc::run(cfg),
            Choice::Auto => match kvm::run(cfg, KERNEL_ELF) {
                Ok(r) => Ok(r),
                Err(kvm::VmError::NoKvm(why)) => {
                    *fallback = Some(why);
                    inproc::run(cfg)
                }
                Err(e) => Err(e.to_string()),
            },
        }
    };
    let mut report = once(cfg, &mut fallback)?;
    let restarted = matches!(&report.stop, host_stubs::Stop::Shutdown(s)
        if s.kind == lguest_abi::types::ShutdownKind::Restart);
    if restarted {
        if let host_stubs::Stop::Shutdown(s) = &report.stop {
            eprintln!(
                "lguest-run: the guest asked for a restart ({}); booting it again",
                s.reason
            );
        }
        // The restarted kernel boots normally, within what is left of the time limit.
        let again = Config {
            mode: lguest_kernel::Mode::PowerOff,
            timeout: cfg.timeout.map(|t| {
                t.saturating_sub(started.elapsed())
                    .max(std::time::Duration::from_millis(1))
            }),
            ..cfg.clone()
        };
        let first = report;
        report = once(&again, &mut fallback)?;
        report.absorb(&first);
    }
    Ok(Outcome { report, fallback })
}
