//! Room: the vCPU's registers. Read and written through the `kvm_run` sync area where KVM
//! offers it (no ioctl per access), KVM_GET/SET_(S)REGS otherwise.

use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::{SyncReg, VcpuFd};

use super::{VmError, kvm_err};

/// Registers through the `kvm_run` sync area where KVM offers it (no ioctl per access),
/// KVM_GET/SET_(S)REGS otherwise.
pub(super) struct Cpu {
    pub(super) vcpu: VcpuFd,
    pub(super) sync: bool,
}

impl Cpu {
    pub(super) fn regs(&self) -> Result<kvm_regs, VmError> {
        if self.sync {
            Ok(self.vcpu.sync_regs().regs)
        } else {
            self.vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))
        }
    }

    pub(super) fn set_regs(&mut self, r: &kvm_regs) -> Result<(), VmError> {
        if self.sync {
            self.vcpu.sync_regs_mut().regs = *r;
            self.vcpu.set_sync_dirty_reg(SyncReg::Register);
            Ok(())
        } else {
            self.vcpu.set_regs(r).map_err(kvm_err("KVM_SET_REGS"))
        }
    }

    pub(super) fn sregs(&self) -> Result<kvm_sregs, VmError> {
        if self.sync {
            Ok(self.vcpu.sync_regs().sregs)
        } else {
            self.vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))
        }
    }

    pub(super) fn set_sregs(&mut self, s: &kvm_sregs) -> Result<(), VmError> {
        if self.sync {
            self.vcpu.sync_regs_mut().sregs = *s;
            self.vcpu.set_sync_dirty_reg(SyncReg::SystemRegister);
            Ok(())
        } else {
            self.vcpu.set_sregs(s).map_err(kvm_err("KVM_SET_SREGS"))
        }
    }

    /// The 16 general registers in x86 encoding order, as the generated transport
    /// constants number them.
    pub(super) fn gprs(r: &kvm_regs) -> [u64; 16] {
        [
            r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ]
    }

    pub(super) fn set_gpr(r: &mut kvm_regs, index: usize, v: u64) {
        let slot = match index {
            0 => &mut r.rax,
            1 => &mut r.rcx,
            2 => &mut r.rdx,
            3 => &mut r.rbx,
            4 => &mut r.rsp,
            5 => &mut r.rbp,
            6 => &mut r.rsi,
            7 => &mut r.rdi,
            8 => &mut r.r8,
            9 => &mut r.r9,
            10 => &mut r.r10,
            11 => &mut r.r11,
            12 => &mut r.r12,
            13 => &mut r.r13,
            14 => &mut r.r14,
            _ => &mut r.r15,
        };
        *slot = v;
    }
}
