//! Room: kicking the vCPU out of `KVM_RUN`. A thread that signals the vCPU thread at a
//! deadline (the clock event, a pending interrupt, the watchdog), and the signal handler
//! that sets `immediate_exit` so the signal is never lost.

use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Instant;

use kvm_bindings::kvm_run;

use super::VmError;

const KICK_SIGNAL: libc::c_int = libc::SIGUSR1;

thread_local! {
    /// This thread's vCPU's `kvm_run`, for the kick handler.
    pub(super) static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `run` is this thread's vCPU's kvm_run mapping, set while the vCPU lives
        // (and cleared before it goes); a one-byte volatile store is async-signal-safe. If
        // the signal lands outside KVM_RUN, the next KVM_RUN returns at once.
        unsafe { (&raw mut (*run).immediate_exit).write_volatile(1) };
    }
}

pub(super) fn install_kick_handler() -> Result<(), VmError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with our handler and an empty mask is valid; the
        // handler only does an async-signal-safe store. No SA_RESTART: KVM_RUN must return.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(KICK_SIGNAL, &sa, std::ptr::null_mut()) != 0 {
                result = Err(VmError::NoKvm(format!(
                    "cannot install the vCPU kick handler: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
    });
    result
}

#[derive(Default)]
struct KickState {
    deadline: Option<Instant>,
    quit: bool,
}

/// A thread that signals the vCPU thread at a deadline.
pub(super) struct Kicker {
    state: Arc<(Mutex<KickState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Kicker {
    pub(super) fn new(target: libc::pthread_t) -> Kicker {
        let state = Arc::new((Mutex::new(KickState::default()), Condvar::new()));
        let s = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*s;
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if st.quit {
                    return;
                }
                match st.deadline {
                    None => st = cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            st.deadline = None;
                            // SAFETY: `target` is the vCPU thread, which outlives this
                            // thread (Drop joins us before the vCPU thread goes on).
                            unsafe { libc::pthread_kill(target, KICK_SIGNAL) };
                        } else {
                            st = cv
                                .wait_timeout(st, d - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
            }
        });
        Kicker {
            state,
            thread: Some(thread),
        }
    }

    /// Sets the deadline. The thread is woken only when it must kick sooner than it
    /// planned: a later deadline (the watchdog's, pushed back each time the guest goes idle) it finds
    /// when it wakes, which keeps a cross-thread wake-up off every exit.
    pub(super) fn arm(&self, deadline: Option<Instant>) {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let sooner = match (deadline, st.deadline) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        st.deadline = deadline;
        if sooner {
            cv.notify_one();
        }
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.state;
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            st.quit = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
