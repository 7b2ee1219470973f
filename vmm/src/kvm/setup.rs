//! Room: building the VM. Opening KVM, the memory slots (guest RAM, the host's read-only
//! region and its writable stack), loading the kernel, its boot block and boot page tables,
//! and the vCPU's first state: long mode at ring 3 in the boot segments.

use std::time::Instant;

use host_stubs::clock::SystemClock;
use host_stubs::mmu::ShadowConfig;
use host_stubs::{GuestMem, Host, HostConfig};
use kvm_bindings::{
    KVM_API_VERSION, KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY, Msrs, kvm_msr_entry, kvm_regs,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuFd, VmFd};
use lguest_abi::numbers::{IDT_ENTRIES, PAGE_SIZE};
use x86::bits64::rflags::RFlags;
use x86::controlregs::{Cr0, Cr4};
use x86::msr::IA32_LSTAR;

use crate::elf;
use crate::layout::{self, BOOT_BLOCK, BOOT_CS, BOOT_DS, HOST_SIZE, RO_SIZE, STACK_OFF, TSS_SEL};
use crate::run::Config;

use super::tables::write_gdt;
use super::vcpu::Cpu;
use super::{EFLAGS_IF, Machine, VmError, kvm_err};

fn mem_err(e: impl std::fmt::Display) -> VmError {
    VmError::Memory(e.to_string())
}

impl Machine {
    /// Opens KVM, maps guest memory and the host's region, loads the kernel and sets up the
    /// vCPU at the kernel's entry.
    pub(super) fn new(cfg: &Config, kernel: &[u8]) -> Result<Machine, VmError> {
        let kvm = open_kvm()?;
        let vm = kvm
            .create_vm()
            .map_err(|e| VmError::NoKvm(format!("creating a VM: {e}")))?;
        let mem = GuestMem::new(cfg.mem).map_err(mem_err)?;
        let region = GuestMem::new(HOST_SIZE).map_err(mem_err)?;
        let host_gpa = cfg.mem;
        let readonly = kvm.check_extension(Cap::ReadonlyMem);
        map_memory(&vm, &mem, &region, host_gpa, readonly)?;
        let (entry, boot_pgdir) = load_images(cfg, kernel, &mem, &region, host_gpa)?;

        let vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
        let tsc_khz = vcpu.get_tsc_khz().unwrap_or(0);
        // The host, and the shadow pool it builds the guest's page tables in: beyond RAM and
        // the host's region, read-only to the VM.
        let host = Host::new(
            mem,
            SystemClock::with_tsc_khz(tsc_khz),
            HostConfig {
                boot_pgdir,
                shadow: ShadowConfig {
                    pool_gpa: layout::pool_gpa(host_gpa),
                    pool_pages: layout::POOL_PAGES,
                    host_entry: layout::host_pml4_entry(host_gpa),
                    nx: false,
                },
                ..HostConfig::default()
            },
        );
        let mut host = host;
        super::paging::pool_slot(&vm, &host, readonly, true)?;
        // Freshly registered: KVM has cached nothing of the pool yet.
        host.take_shadow_stale();
        let cr3 = host.shadow_root();
        first_state(&vcpu, entry, cr3)?;
        let lstar = read_msr(&vcpu, IA32_LSTAR)?;

        let mut vcpu = vcpu;
        let sync = kvm.check_extension(Cap::SyncRegs);
        if sync {
            vcpu.set_sync_valid_reg(SyncReg::Register);
            vcpu.set_sync_valid_reg(SyncReg::SystemRegister);
        }
        let gdt_seen = host.gdt().to_vec();
        let idt_seen = host.idt().to_vec();
        Ok(Machine {
            cpu: Cpu { vcpu, sync },
            vm,
            readonly,
            host,
            region,
            host_gpa,
            cr3,
            pool_reloads: 0,
            gdt_seen,
            idt_seen,
            lstar,
            ts_seen: false,
            stub_return: None,
            exits: 0,
            kicks: 0,
            ticks: 0,
            traps: 0,
            start: Instant::now(),
            marks: Vec::new(),
            console_shown: 0,
        })
    }
}

/// Opens the KVM device (LGUEST_KVM_DEVICE names another node; tests use a missing one to
/// see the fallback) and checks it has what this VMM needs.
fn open_kvm() -> Result<Kvm, VmError> {
    let path = std::env::var("LGUEST_KVM_DEVICE").unwrap_or_else(|_| "/dev/kvm".into());
    let cpath = std::ffi::CString::new(path.clone())
        .map_err(|_| VmError::NoKvm(format!("{path:?} is not a path")))?;
    let kvm =
        Kvm::new_with_path(&cpath).map_err(|e| VmError::NoKvm(format!("opening {path}: {e}")))?;
    // Any file opens; only a KVM device answers KVM_GET_API_VERSION with KVM's version.
    let version = kvm.get_api_version();
    if i64::from(version) != i64::from(KVM_API_VERSION) {
        let err = std::io::Error::last_os_error();
        return Err(VmError::NoKvm(if version < 0 {
            format!("{path} is not a KVM device (KVM_GET_API_VERSION: {err})")
        } else {
            format!("{path} speaks KVM API version {version}, not {KVM_API_VERSION}")
        }));
    }
    for (cap, name) in [
        (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(VmError::NoKvm(format!("the kernel's KVM lacks {name}")));
        }
    }
    Ok(kvm)
}

/// Three memslots: guest RAM at 0, the host's region above it (read-only where KVM can),
/// and the host's writable ring-0 stack in that region. (The fourth, the shadow pool, comes
/// with the host.)
fn map_memory(
    vm: &VmFd,
    mem: &GuestMem,
    region: &GuestMem,
    host_gpa: u64,
    readonly: bool,
) -> Result<(), VmError> {
    let slots = [
        (0, 0, host_gpa, mem, 0, 0),
        (
            1,
            host_gpa,
            RO_SIZE,
            region,
            0,
            if readonly { KVM_MEM_READONLY } else { 0 },
        ),
        (
            2,
            host_gpa + STACK_OFF,
            HOST_SIZE - STACK_OFF,
            region,
            STACK_OFF,
            0,
        ),
    ];
    for (slot, gpa, size, backing, offset, flags) in slots {
        let ptr = backing.host_ptr(offset, size).map_err(mem_err)?;
        let r = kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: ptr.as_ptr() as u64,
        };
        // SAFETY: the range is a live anonymous mapping owned by `mem` or `region`,
        // which the Machine keeps until after the VM is closed (field order), and
        // nothing else in this process aliases it as a Rust reference.
        unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

/// The kernel, its boot block, the boot page tables, the host's region. Returns the
/// kernel's entry point and the boot top-level table.
fn load_images(
    cfg: &Config,
    kernel: &[u8],
    mem: &GuestMem,
    region: &GuestMem,
    host_gpa: u64,
) -> Result<(u64, u64), VmError> {
    let tables_at = cfg.mem - layout::BOOT_TABLE_PAGES * PAGE_SIZE;
    let loaded = elf::load(kernel, mem, tables_at)?;
    if loaded.end <= BOOT_BLOCK + PAGE_SIZE {
        return Err(VmError::Config("the kernel overlaps the boot block".into()));
    }
    let params = cfg.boot_params().to_bytes();
    mem.write(BOOT_BLOCK, &params).map_err(mem_err)?;
    let (boot_pgdir, tables) = layout::boot_tables(cfg.mem);
    mem.write(tables_at, &tables).map_err(mem_err)?;
    region
        .write(0, &layout::host_region(host_gpa))
        .map_err(mem_err)?;
    write_gdt(region, &layout::real_gdt(&[]))?;
    region
        .write(layout::IDT_OFF, &layout::real_idt(&[]))
        .map_err(mem_err)?;
    Ok((loaded.entry, boot_pgdir))
}

/// Long mode, paging on the shadow of the boot tables, ring 3 in the boot segments, at
/// `entry` with the boot block as stack and first argument.
fn first_state(vcpu: &VcpuFd, entry: u64, cr3: u64) -> Result<(), VmError> {
    let gdt = layout::real_gdt(&[]);
    let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    sregs.cr0 = (Cr0::CR0_ENABLE_PAGING
        | Cr0::CR0_NUMERIC_ERROR
        | Cr0::CR0_EXTENSION_TYPE
        | Cr0::CR0_MONITOR_COPROCESSOR
        | Cr0::CR0_PROTECTED_MODE)
        .bits() as u64;
    sregs.cr4 = (Cr4::CR4_UNMASKED_SSE | Cr4::CR4_ENABLE_SSE | Cr4::CR4_ENABLE_PAE).bits() as u64;
    sregs.efer = EFER_LMA | EFER_LME;
    sregs.cr3 = cr3;
    sregs.cs = layout::kvm_segment(BOOT_CS, gdt[usize::from(BOOT_CS >> 3)]);
    let ds = layout::kvm_segment(BOOT_DS, gdt[usize::from(BOOT_DS >> 3)]);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (ds, ds, ds, ds, ds);
    let t = usize::from(TSS_SEL >> 3);
    sregs.tr = layout::kvm_segment(TSS_SEL, gdt[t]);
    sregs.tr.base |= gdt[t + 1] << 32;
    sregs.tr.s = 0;
    sregs.ldt.unusable = 1;
    sregs.gdt.base = layout::va(layout::GDT_OFF);
    sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
    sregs.idt.base = layout::va(layout::IDT_OFF);
    sregs.idt.limit = (size_of::<[u128; IDT_ENTRIES as usize]>() - 1) as u16;
    vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;
    let regs = kvm_regs {
        rip: entry,
        rsp: BOOT_BLOCK,
        rdi: BOOT_BLOCK,
        rflags: RFlags::FLAGS_A1.bits() | EFLAGS_IF,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))
}

/// EFER's long-mode bits (x86 architecture; the `x86` crate names the MSR, not its bits).
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

fn read_msr(vcpu: &VcpuFd, index: u32) -> Result<u64, VmError> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index,
        ..Default::default()
    }])
    .map_err(|e| VmError::NoKvm(format!("building a KVM_GET_MSRS request: {e:?}")))?;
    vcpu.get_msrs(&mut msrs).map_err(kvm_err("KVM_GET_MSRS"))?;
    Ok(msrs.as_slice().first().map_or(0, |m| m.data))
}
