//! A guest transport that calls the host in process: the "hypercall instruction" is a
//! function call into [`Host::hypercall`], so guest code can run against the host with no
//! CPU in between.

use std::cell::{Ref, RefCell, RefMut};

use crate::abi::guest::Transport;
use crate::abi::numbers::ARG_REGS;
use crate::clock::Clock;
use crate::host::Host;
use crate::kill::Stop;

/// The host behind a [`Transport`]. A `RefCell` because guest code holds the transport by
/// shared reference; the host never calls back into the guest, so the borrow never nests.
#[derive(Debug)]
pub struct Loopback<C: Clock> {
    host: RefCell<Host<C>>,
}

impl<C: Clock> Loopback<C> {
    /// Wraps `host`.
    pub fn new(host: Host<C>) -> Self {
        Loopback {
            host: RefCell::new(host),
        }
    }

    /// The host, to look at.
    pub fn host(&self) -> Ref<'_, Host<C>> {
        self.host.borrow()
    }

    /// The host, to drive (interrupts, `next`).
    pub fn host_mut(&self) -> RefMut<'_, Host<C>> {
        self.host.borrow_mut()
    }

    /// Makes one hypercall and returns the host's verdict, stop included.
    pub fn call(&self, nr: u64, args: [u64; ARG_REGS]) -> Result<u64, Stop> {
        self.host.borrow_mut().hypercall(nr, args)
    }

    /// The host back.
    pub fn into_host(self) -> Host<C> {
        self.host.into_inner()
    }
}

impl<C: Clock> Transport for Loopback<C> {
    /// A stopped guest would never run again; in process the guest's code carries on, so
    /// the result register reads 0 and [`Host::stopped`] says why the run ended.
    fn hypercall(&self, nr: u64, args: [u64; ARG_REGS]) -> u64 {
        self.call(nr, args).unwrap_or(0)
    }
}
