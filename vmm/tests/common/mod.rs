//! What the VM tests share: booting under KVM where it is usable (saying which backend
//! was checked, and why not KVM), and picking the end of a run apart.

#![allow(dead_code)]

use host_stubs::abi::numbers::Hypercall;
use host_stubs::clock::SystemClock;
use host_stubs::{Host, Kill, Stop};
use lguest_vmm::kvm::{self, VmError};
use lguest_vmm::{Config, KERNEL_ELF, Report, inproc};

/// Boots under KVM, or says why not and boots in process.
pub fn boot_with<T>(cfg: &Config, inspect: impl Fn(&Host<SystemClock>) -> T) -> (Report, T) {
    match kvm::run_with(cfg, KERNEL_ELF, &inspect) {
        Ok(r) => {
            println!("checked under KVM");
            r
        }
        Err(VmError::NoKvm(why)) => {
            assert!(
                std::env::var("LGUEST_REQUIRE_KVM").is_err(),
                "LGUEST_REQUIRE_KVM is set but KVM is not usable: {why}"
            );
            println!("NOT checked under KVM ({why}): checking the in-process run instead");
            inproc::run_with(cfg, inspect).expect("the in-process run")
        }
        Err(e) => panic!("the VM could not run: {e}"),
    }
}

pub fn boot(cfg: &Config) -> Report {
    boot_with(cfg, |_| ()).0
}

pub fn count(r: &Report, call: Hypercall) -> u64 {
    r.hypercalls
        .iter()
        .find(|(n, _)| *n == call.name())
        .map_or(0, |(_, c)| *c)
}

pub fn shut_down(r: &Report) -> &host_stubs::Shutdown {
    match &r.stop {
        Stop::Shutdown(s) => s,
        other => panic!("expected a shutdown, got {other}\n{}", r.console),
    }
}

pub fn killed(r: &Report) -> &Kill {
    match &r.stop {
        Stop::Killed(k) => &k.reason,
        other => panic!("expected a kill, got {other}\n{}", r.console),
    }
}
