//! An in-process fake host for the guest's tests: a loopback transport that drains the
//! async ring on every synchronous hypercall (stopping after a NOTIFY, as lguest's host
//! does), runs every call through the generated `dispatch` (which reads the strings of
//! SHUTDOWN and NOTIFY through [`FakeMem`]), and records what it ran.

#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use guest::abi::guest::Transport;
use guest::abi::host::{
    DispatchError, GuestMemory, LguestDefaultHost, OutsideMemory, Scratch as HostScratch, dispatch,
    dispatch_slot,
};
use guest::abi::numbers::{ARG_REGS, NOTIFY, RESERVE_MEM};
use guest::abi::shared::{LguestData, RING_ARGS, RING_DONE, RING_READY, RING_SIZE};
use guest::abi::types::{Gpa, ShutdownKind};
use guest::{DirectMap, Lguest, RawCpuid, Scratch};

/// Guest-physical = host-virtual - `PHYS_OFFSET`: a test guest's "physical" addresses are
/// visibly not its pointers, and the fake host maps them back to read strings.
pub const PHYS_OFFSET: u64 = 0x1000_0000_0000;

/// The translation the test guests use.
pub const TRANSLATE: DirectMap = DirectMap::new(PHYS_OFFSET, 0);

/// How a call reached the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// A hypercall exit.
    Sync,
    /// Queued in the async ring, run while draining it.
    Queued,
}

/// One call the host ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub nr: u64,
    pub args: [u64; ARG_REGS],
    pub how: How,
}

impl Call {
    pub fn sync(nr: u64, args: [u64; ARG_REGS]) -> Self {
        Call {
            nr,
            args,
            how: How::Sync,
        }
    }
    pub fn queued(nr: u64, args: [u64; ARG_REGS]) -> Self {
        Call {
            nr,
            args,
            how: How::Queued,
        }
    }
}

/// What the host's handlers saw beyond the raw registers.
#[derive(Debug, Default)]
pub struct Seen {
    /// Strings read at NOTIFY addresses.
    pub notify_strings: Vec<Vec<u8>>,
    /// SHUTDOWN reasons read from guest memory, with the kind.
    pub shutdowns: Vec<(Vec<u8>, ShutdownKind)>,
    /// LOAD_TLS descriptors (lower, upper) as the generated decode copied them.
    pub tls_loads: Vec<Vec<(u32, u32)>>,
    /// irq_enabled at the time of each call (sync or drained).
    pub irq_enabled_at_call: Vec<u32>,
}

/// What the fake host writes at LGUEST_INIT.
pub const HOST_TSC_KHZ: u32 = 2_400_000;
pub const HOST_TIME: (u64, u64) = (1_234_567_890, 500);
pub const HOST_PGDIR: u64 = 0x7f_f000;

/// The host-side state: handlers plus the ring consumer's cursor.
pub struct FakeHost {
    page: *const LguestData,
    cursor: usize,
    pub log: Vec<Call>,
    pub seen: Seen,
}

// SAFETY: the page pointer is only dereferenced while the `LguestData` it came from is
// alive (the fake host borrows it for its whole life through `Loopback<'a>`).
unsafe impl Send for FakeHost {}

impl FakeHost {
    fn page<'p>(&self) -> &'p LguestData {
        // SAFETY: see the `Send` impl: the page outlives the host.
        unsafe { &*self.page }
    }

    /// The host's `do_async_hcalls`: run ready slots in order from our cursor, set each
    /// back to done, stop at the first slot that is not ready or after a NOTIFY.
    pub fn drain(&mut self, scratch: &mut HostScratch) {
        for _ in 0..RING_SIZE {
            let n = self.cursor;
            let page = self.page();
            if page.hcall_status[n].load(Ordering::Acquire) != RING_READY {
                break;
            }
            self.cursor = (n + 1) % RING_SIZE;
            let slot = &page.hcalls[n];
            let nr = slot.nr.load(Ordering::Relaxed);
            let mut args = [0u64; RING_ARGS];
            for (a, s) in args.iter_mut().zip(&slot.args) {
                *a = s.load(Ordering::Relaxed);
            }
            self.log
                .push(Call::queued(nr, [args[0], args[1], args[2], 0]));
            let irq = page.irq_enabled.load(Ordering::Relaxed);
            self.seen.irq_enabled_at_call.push(irq);
            if let Err(e) = dispatch_slot(self, &FakeMem, scratch, nr, args) {
                panic!("queued hypercall {nr} {args:x?} refused: {e:?}");
            }
            self.page().hcall_status[n].store(RING_DONE, Ordering::Release);
            if nr == NOTIFY {
                break;
            }
        }
    }
}

// Only the calls the tests look at; every other call is accepted by the generated
// default (`LguestDefaultHost::unhandled`), so this host follows the spec.
impl LguestDefaultHost for FakeHost {
    type Error = String;

    fn lguest_init(&mut self, data: Gpa) -> Result<(), String> {
        let page = self.page();
        let expect = TRANSLATE_PA(self.page);
        if data != expect {
            return Err(format!("LGUEST_INIT at {data:#x}, page is at {expect:#x}"));
        }
        page.tsc_khz.store(HOST_TSC_KHZ, Ordering::Relaxed);
        page.time_sec.store(HOST_TIME.0, Ordering::Relaxed);
        page.time_nsec.store(HOST_TIME.1, Ordering::Relaxed);
        page.reserve_mem.store(RESERVE_MEM, Ordering::Relaxed);
        page.pgdir.store(HOST_PGDIR, Ordering::Relaxed);
        Ok(())
    }
    fn shutdown(&mut self, reason: &[u8], kind: ShutdownKind) -> Result<(), String> {
        self.seen.shutdowns.push((reason.to_vec(), kind));
        Ok(())
    }
    fn notify(&mut self, addr: &[u8]) -> Result<(), String> {
        self.seen.notify_strings.push(addr.to_vec());
        Ok(())
    }
    fn load_tls(
        &mut self,
        tls: &[guest::abi::structs::TlsDescriptor],
        _cpu: u64,
    ) -> Result<(), String> {
        let t = tls.iter().map(|d| (d.lower, d.upper)).collect();
        self.seen.tls_loads.push(t);
        Ok(())
    }
}

thread_local! {
    /// Guest-physical ranges a test lent the fake host with [`lend`]: readable whole.
    static LENT: std::cell::RefCell<Vec<std::ops::Range<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Lets the fake host read `len` bytes at `p` in one go (a buffer argument), on this
/// thread, until [`unlend`].
///
/// # Safety
///
/// `p` must stay valid for reads of `len` bytes until [`unlend`].
pub unsafe fn lend<X>(p: *const X, len: usize) {
    let at = pa(p);
    LENT.with(|l| l.borrow_mut().push(at..at + len as u64));
}

/// Takes back everything [`lend`] lent on this thread.
pub fn unlend() {
    LENT.with(|l| l.borrow_mut().clear());
}

/// The test process's memory as the generated decode's guest memory, at guest-physical =
/// host-virtual - `PHYS_OFFSET`. All the fake host knows is that a test guest hands over
/// live strings, readable up to their NUL, and the buffers a test [`lend`]s: so it serves
/// a lent range whole and anything else one byte at a time, refusing longer reads (which
/// the generated decode then makes byte by byte, stopping at a string's NUL), and never
/// reads past a string's end.
pub struct FakeMem;

impl GuestMemory for FakeMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutsideMemory> {
        let end = gpa.checked_add(buf.len() as u64).ok_or(OutsideMemory)?;
        let lent = LENT.with(|l| l.borrow().iter().any(|r| r.start <= gpa && end <= r.end));
        if buf.len() != 1 && !lent {
            return Err(OutsideMemory);
        }
        let p = gpa.wrapping_add(PHYS_OFFSET) as *const u8;
        // SAFETY: test guests only hand over addresses of live strings and buffers, mapped
        // back with the offset they were translated with; the decode reads a string no
        // further than its NUL, and a longer read lies in a range a test lent (`lend`).
        unsafe { p.copy_to_nonoverlapping(buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
    fn write(&self, _gpa: u64, _buf: &[u8]) -> Result<(), OutsideMemory> {
        Err(OutsideMemory)
    }
    fn contains(&self, _gpa: u64, _len: u64) -> bool {
        false
    }
}

#[allow(non_snake_case)]
fn TRANSLATE_PA<X>(p: *const X) -> u64 {
    guest::Translate::pa(&TRANSLATE, p.cast())
}

/// The guest-physical address a test guest gives `p`.
pub fn pa<X>(p: *const X) -> u64 {
    TRANSLATE_PA(p)
}

/// The loopback transport: a hypercall is an exit into the fake host.
pub struct Loopback {
    pub host: Mutex<FakeHost>,
    scratch: Mutex<Box<HostScratch>>,
}

impl Loopback {
    pub fn new(page: &LguestData) -> Self {
        Loopback {
            host: Mutex::new(FakeHost {
                page,
                cursor: 0,
                log: Vec::new(),
                seen: Seen::default(),
            }),
            scratch: Mutex::default(),
        }
    }

    /// Everything the host ran so far.
    pub fn log(&self) -> Vec<Call> {
        self.host.lock().unwrap().log.clone()
    }

    /// Forgets the log.
    pub fn clear(&self) {
        let mut h = self.host.lock().unwrap();
        h.log.clear();
        h.seen = Seen::default();
    }

    /// The host drains the ring on its own, as at any exit.
    pub fn drain(&self) {
        self.host
            .lock()
            .unwrap()
            .drain(&mut self.scratch.lock().unwrap());
    }

    /// Hypercall exits so far.
    pub fn exits(&self) -> usize {
        self.log().iter().filter(|c| c.how == How::Sync).count()
    }
}

impl Transport for Loopback {
    fn hypercall(&self, nr: u64, args: [u64; ARG_REGS]) -> u64 {
        let mut host = self.host.lock().unwrap();
        let mut scratch = self.scratch.lock().unwrap();
        // Like lguest's host: every exit runs the queued calls first.
        host.drain(&mut scratch);
        host.log.push(Call::sync(nr, args));
        let irq = host.page().irq_enabled.load(Ordering::Relaxed);
        host.seen.irq_enabled_at_call.push(irq);
        match dispatch(&mut *host, &FakeMem, &mut scratch, nr, args) {
            Ok(ret) => ret,
            Err(DispatchError::Host(e)) => panic!("host refused hypercall {nr}: {e}"),
            Err(e) => panic!("hypercall {nr} {args:x?} breaks the spec: {e:?}"),
        }
    }
}

/// Recorded cpuid leaves: (leaf, subleaf) -> result; anything else reads as zeros.
pub struct Recorded(pub Vec<((u32, u32), core::arch::x86_64::CpuidResult)>);

impl RawCpuid for Recorded {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
        self.0
            .iter()
            .find(|(k, _)| *k == (leaf, subleaf))
            .map(|(_, r)| *r)
            .unwrap_or(core::arch::x86_64::CpuidResult {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            })
    }
}

/// A test guest: its page, buffers and fake host, all owned by the test.
pub struct World {
    pub page: Box<LguestData>,
    pub scratch: Box<Scratch>,
    pub host: Box<Loopback>,
}

pub type TestGuest<'a> = Lguest<'a, &'a Loopback, Recorded, DirectMap>;

impl World {
    pub fn new() -> Self {
        let page = Box::new(LguestData::new());
        let host = Box::new(Loopback::new(&page));
        World {
            page,
            scratch: Box::new(Scratch::new()),
            host,
        }
    }

    /// A guest over this world, with no recorded cpuid leaves.
    pub fn guest(&self) -> TestGuest<'_> {
        self.guest_with_cpuid(Recorded(Vec::new()))
    }

    pub fn guest_with_cpuid(&self, cpuid: Recorded) -> TestGuest<'_> {
        Lguest::new(&self.page, &self.scratch, &*self.host, cpuid, TRANSLATE)
    }
}

/// A 4 KiB-aligned page-table page.
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

impl Table {
    pub fn new() -> Box<Self> {
        Box::new(Table([0; 512]))
    }
}
