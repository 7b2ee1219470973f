//! Room: the SIGSEGV handler the register tests stand in for a host with. `out` to a port
//! without I/O permission faults in a process (#GP, delivered as SIGSEGV), so a handler
//! installed here sees the registers exactly as the instruction did.

/// An SA_SIGINFO handler: signal, info, and the `ucontext_t` it may edit.
pub type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// SIGSEGV goes to a handler until [`Installed::restore`] puts the old action back.
pub struct Installed(libc::sigaction);

/// Installs `handler` for SIGSEGV.
pub fn install(handler: Handler) -> Installed {
    // SAFETY: a plain sigaction with an SA_SIGINFO handler (the callers' handlers only
    // touch atomics and the ucontext they are given); the old action is kept to restore.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, &mut old), 0);
        Installed(old)
    }
}

impl Installed {
    /// Puts back the action SIGSEGV had before [`install`].
    pub fn restore(self) {
        // SAFETY: restores the action saved by `install`.
        unsafe {
            assert_eq!(
                libc::sigaction(libc::SIGSEGV, &self.0, std::ptr::null_mut()),
                0
            );
        }
    }
}
