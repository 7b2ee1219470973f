//! Three ways for a host to get from a trap (`nr`, argument registers) to a handler, all
//! calling the same do-nothing handlers after the same argument checks and the same reads
//! of guest memory:
//!
//! - the generated `match` ([`host_stubs::abi::host::dispatch`]) over [`NopHost`], a
//!   generated `LguestDefaultHost` (so it follows the spec without an edit);
//! - [`FnTable`]: a hand-written `[fn; 19]` indexed by the call number, each entry checking
//!   its arguments as the spec says and calling the handler. It is the baseline a host
//!   author would write without the generator, so it restates each call's argument order
//!   and checks on purpose (bounds by the spec's constant names where the spec has one);
//!   `the_three_dispatchers_agree` fails when it drifts from the generated `decode`;
//! - [`Registry`]: a `HashMap<u64, Box<dyn Fn>>` holding the same entries, boxed.
//!
//! "Do nothing" means: add the call number into [`NopHost::acc`] and return; every path's
//! result is `black_box`ed, so no check before a handler can be optimised away. (A spec
//! with memory arguments gives the generated default host the call, not its arguments.)
//!
//! SHUTDOWN and NOTIFY take a NUL-terminated string in guest memory, LOAD_TLS an array of
//! `TLS_ENTRIES` descriptors. The hand-written entries read them as the generated `decode`
//! does, from the same [`GuestMemory`]: the string copied a page at a time into the host's
//! buffer ([`HandScratch`], `SHUTDOWN_REASON_MAX` or `NOTIFY_MAX` bytes), byte by byte near
//! the end of guest memory, refused with no NUL there (the spec asks no UTF-8 of either);
//! each descriptor read on its own and parsed with `TlsDescriptor::from_bytes`. The
//! benchmarks read from [`ZeroMem`], all zeros (every string empty); the agreement test also
//! from [`TestMem`], a short memory of random bytes, so the refusals are compared too.

use std::collections::HashMap;
use std::convert::Infallible;

use host_stubs::abi::host::{GuestMemory, LguestHost, OutsideMemory, Scratch};
use host_stubs::abi::numbers::{self, ARG_REGS, Hypercall};
use host_stubs::abi::structs::TlsDescriptor;
use host_stubs::abi::types::{FlushScope, ShutdownKind, TsState};

/// A host whose handlers do nothing but fold their arguments into `acc`.
#[derive(Debug, Default)]
pub struct NopHost {
    /// The sum of every argument any handler saw (wrapping), plus one per call.
    pub acc: u64,
}

impl NopHost {
    #[inline]
    fn take(&mut self, v: u64) {
        self.acc = self.acc.wrapping_add(v).wrapping_add(1);
    }
}

/// The handlers. Every path below ends in one of these: the generated default host's
/// `unhandled`, so `NopHost` follows the spec (a new hypercall needs no edit here).
// Not imported: the hand-written tables below call the handlers as `LguestHost`'s.
impl host_stubs::abi::host::LguestDefaultHost for NopHost {
    type Error = Infallible;

    #[inline]
    fn unhandled(&mut self, call: Hypercall) -> Result<u64, Infallible> {
        self.take(call.nr());
        Ok(0)
    }
}

/// Guest memory of zeros at every address: what every contender reads memory arguments
/// from in the benchmarks, so every string argument is an empty one.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeroMem;

impl GuestMemory for ZeroMem {
    #[inline]
    fn read(&self, _gpa: u64, buf: &mut [u8]) -> Result<(), OutsideMemory> {
        buf.fill(0);
        Ok(())
    }

    #[inline]
    fn write(&self, _gpa: u64, _buf: &[u8]) -> Result<(), OutsideMemory> {
        Ok(())
    }

    #[inline]
    fn contains(&self, _gpa: u64, _len: u64) -> bool {
        true
    }
}

/// A short guest memory of random bytes at guest-physical 0 and nothing past them: what
/// the agreement test reads memory arguments from, so strings with and without a NUL in
/// time, strings running into the end of memory and addresses outside it all occur.
#[derive(Clone, Debug)]
pub struct TestMem {
    bytes: Vec<u8>,
}

impl TestMem {
    /// `len` bytes from `seed`, about one in 40 of them a NUL: some strings end within
    /// `NOTIFY_MAX` bytes, most within `SHUTDOWN_REASON_MAX`, some in neither.
    pub fn random(len: usize, seed: u64) -> Self {
        let mut r = XorShift::new(seed);
        let bytes = (0..len)
            .map(|_| {
                let v = r.next_u64();
                if v.is_multiple_of(40) {
                    0
                } else {
                    (v >> 8) as u8 | 1
                }
            })
            .collect();
        TestMem { bytes }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn span(&self, gpa: u64, len: u64) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(gpa).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= self.bytes.len()).then_some(start..end)
    }
}

impl GuestMemory for TestMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutsideMemory> {
        let span = self.span(gpa, buf.len() as u64).ok_or(OutsideMemory)?;
        buf.copy_from_slice(&self.bytes[span]);
        Ok(())
    }

    /// Read-only: checks the range and writes nothing (no hypercall here writes memory).
    fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), OutsideMemory> {
        self.span(gpa, buf.len() as u64)
            .map(|_| ())
            .ok_or(OutsideMemory)
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.span(gpa, len).is_some()
    }
}

/// The generated dispatch's scratch space for string arguments, boxed.
pub fn scratch() -> Box<Scratch> {
    Box::default()
}

/// The hand-written host's buffers for arguments in guest memory, as long as the spec's
/// constants say (strings with their NUL): what its entries copy into, as the generated
/// [`Scratch`] is for `decode`.
#[derive(Debug)]
pub struct HandScratch {
    reason: [u8; numbers::SHUTDOWN_REASON_MAX as usize],
    tls: [TlsDescriptor; numbers::TLS_ENTRIES as usize],
    notify: [u8; numbers::NOTIFY_MAX as usize],
}

impl Default for HandScratch {
    fn default() -> Self {
        HandScratch {
            reason: [0; numbers::SHUTDOWN_REASON_MAX as usize],
            tls: [TlsDescriptor::ZERO; numbers::TLS_ENTRIES as usize],
            notify: [0; numbers::NOTIFY_MAX as usize],
        }
    }
}

/// The hand-written entries' buffers, boxed (as [`scratch`] boxes the generated one).
pub fn hand_scratch() -> Box<HandScratch> {
    Box::default()
}

/// Why a hand-written entry refused a call: the same cases as the generated
/// `DispatchError` minus the handler's (which cannot fail here), carrying less.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandError {
    /// No hypercall has this number.
    Unknown(u64),
    /// Argument `index` broke the spec.
    Bad {
        /// The call number.
        nr: u64,
        /// Which argument.
        index: usize,
    },
    /// Argument `index`, in guest memory, could not be read or broke the spec.
    Memory {
        /// The call number.
        nr: u64,
        /// Which argument.
        index: usize,
        /// What was wrong.
        fault: MemFault,
    },
}

/// The refusal of call `nr`'s argument `index` for a fault reading it from guest memory.
fn in_memory(nr: u64, index: usize) -> impl FnOnce(MemFault) -> HandError {
    move |fault| HandError::Memory { nr, index, fault }
}

/// What was wrong with an argument in guest memory (of the generated `MemViolation`s, the
/// two this ABI's memory arguments can have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemFault {
    /// A byte of it is outside guest memory.
    Outside,
    /// A string with no NUL within its maximum length.
    NoNul,
}

/// One hand-written entry: check the arguments as the spec says, copy those in guest
/// memory out of `M` into the [`HandScratch`], call the handler.
pub type Entry<M> =
    fn(&mut NopHost, &M, &mut HandScratch, [u64; ARG_REGS]) -> Result<u64, HandError>;

#[inline]
fn align(nr: u64, index: usize, v: u64, a: u64) -> Result<u64, HandError> {
    if v.is_multiple_of(a) {
        Ok(v)
    } else {
        Err(HandError::Bad { nr, index })
    }
}

#[inline]
fn range(nr: u64, index: usize, v: u64, lo: u64, hi: u64) -> Result<u64, HandError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(HandError::Bad { nr, index })
    }
}

#[inline]
fn some<T>(nr: u64, index: usize, v: Option<T>) -> Result<T, HandError> {
    v.ok_or(HandError::Bad { nr, index })
}

/// Copies `buf.len()` bytes at `gpa` into `buf`; a range that wraps past the top of the
/// address space is outside, whatever `mem` says.
#[inline]
fn read_at<M: GuestMemory>(mem: &M, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault> {
    if gpa.checked_add(buf.len() as u64).is_none() {
        return Err(MemFault::Outside);
    }
    mem.read(gpa, buf).map_err(|_| MemFault::Outside)
}

/// Copies the NUL-terminated string at `addr` into `buf` (room for the longest string and
/// its NUL) and returns its length, NUL excluded. Reads a page at a time, each byte once;
/// where a page's read fails (the end of guest memory) it goes on byte by byte, so a string
/// whose NUL comes before the end is taken.
#[inline]
fn read_cstr<M: GuestMemory>(mem: &M, addr: u64, buf: &mut [u8]) -> Result<usize, MemFault> {
    let mut done = 0;
    while done < buf.len() {
        let at = addr.checked_add(done as u64).ok_or(MemFault::Outside)?;
        let n = ((numbers::PAGE_SIZE - at % numbers::PAGE_SIZE) as usize).min(buf.len() - done);
        let chunk = &mut buf[done..done + n];
        if read_at(mem, at, chunk).is_ok() {
            if let Some(i) = chunk.iter().position(|&b| b == 0) {
                return Ok(done + i);
            }
        } else {
            for (i, byte) in chunk.iter_mut().enumerate() {
                let mut one = [0u8; 1];
                // Cannot wrap: the byte before was read, so `at + i` is in the address space.
                read_at(mem, at + i as u64, &mut one)?;
                *byte = one[0];
                if one[0] == 0 {
                    return Ok(done + i);
                }
            }
        }
        done += n;
    }
    Err(MemFault::NoNul)
}

// The entries, written from spec/lguest.toml's constraints (checked against the generated
// dispatch by the test below). Generic over the guest memory, as the generated one is.
fn e_unknown<M>(
    _: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    _: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    // The table's holes (3, 11, 12, 13); the number itself is reported by the caller.
    Err(HandError::Unknown(u64::MAX))
}
fn e_flush_async<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    _: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let Ok(()) = h.flush_async();
    Ok(0)
}
fn e_lguest_init<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let data = align(numbers::LGUEST_INIT, 0, a[0], 8)?;
    let Ok(()) = h.lguest_init(data);
    Ok(0)
}
fn e_shutdown<M: GuestMemory>(
    h: &mut NopHost,
    mem: &M,
    s: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let nr = numbers::SHUTDOWN;
    let kind = some(nr, 1, ShutdownKind::from_raw(a[1]))?;
    let n = read_cstr(mem, a[0], &mut s.reason).map_err(in_memory(nr, 0))?;
    let Ok(()) = h.shutdown(&s.reason[..n], kind);
    Ok(0)
}
fn e_new_pgtable<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let pgdir = align(numbers::NEW_PGTABLE, 0, a[0], numbers::PAGE_SIZE)?;
    let Ok(()) = h.new_pgtable(pgdir);
    Ok(0)
}
fn e_flush_tlb<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let scope = some(numbers::FLUSH_TLB, 0, FlushScope::from_raw(a[0]))?;
    let Ok(()) = h.flush_tlb(scope);
    Ok(0)
}
fn e_load_idt_entry<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let vector = range(
        numbers::LOAD_IDT_ENTRY,
        0,
        a[0],
        0,
        numbers::IDT_ENTRIES - 1,
    )?;
    let Ok(()) = h.load_idt_entry(vector, a[1], a[2]);
    Ok(0)
}
fn e_set_stack<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let nr = numbers::SET_STACK;
    let ss = range(nr, 0, a[0], 0, 65535)?;
    let sp = align(nr, 1, a[1], 16)?;
    let pages = range(nr, 2, a[2], 1, numbers::MAX_STACK_PAGES)?;
    let Ok(()) = h.set_stack(ss, sp, pages);
    Ok(0)
}
fn e_ts<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let state = some(numbers::TS, 0, TsState::from_raw(a[0]))?;
    let Ok(()) = h.ts(state);
    Ok(0)
}
fn e_set_clockevent<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let Ok(()) = h.set_clockevent(a[0]);
    Ok(0)
}
fn e_halt<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    _: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let Ok(()) = h.halt();
    Ok(0)
}
fn e_set_pte<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let pgdir = align(numbers::SET_PTE, 0, a[0], numbers::PAGE_SIZE)?;
    let Ok(()) = h.set_pte(pgdir, a[1], a[2]);
    Ok(0)
}
fn e_set_pmd<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let table = align(numbers::SET_PMD, 0, a[0], numbers::PAGE_SIZE)?;
    let index = range(numbers::SET_PMD, 1, a[1], 0, 511)?;
    let Ok(()) = h.set_pmd(table, index);
    Ok(0)
}
fn e_load_tls<M: GuestMemory>(
    h: &mut NopHost,
    mem: &M,
    s: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    // `TLS_ENTRIES` descriptors at a[0], each read on its own and parsed (the spec puts no
    // constraint on their fields). Cannot wrap: each read checked the one before.
    for (i, d) in s.tls.iter_mut().enumerate() {
        let mut bytes = [0u8; TlsDescriptor::SIZE];
        read_at(mem, a[0] + (i * TlsDescriptor::SIZE) as u64, &mut bytes)
            .map_err(in_memory(numbers::LOAD_TLS, 0))?;
        *d = TlsDescriptor::from_bytes(&bytes);
    }
    let Ok(()) = h.load_tls(&s.tls, a[1]);
    Ok(0)
}
fn e_notify<M: GuestMemory>(
    h: &mut NopHost,
    mem: &M,
    s: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let nr = numbers::NOTIFY;
    let n = read_cstr(mem, a[0], &mut s.notify).map_err(in_memory(nr, 0))?;
    let Ok(()) = h.notify(&s.notify[..n]);
    Ok(0)
}
fn e_load_gdt_entry<M>(
    h: &mut NopHost,
    _: &M,
    _: &mut HandScratch,
    a: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    let nr = numbers::LOAD_GDT_ENTRY;
    let index = range(nr, 0, a[0], 0, numbers::GDT_ENTRIES - 1)?;
    let lo = range(nr, 1, a[1], 0, u64::from(u32::MAX))?;
    let hi = range(nr, 2, a[2], 0, u64::from(u32::MAX))?;
    let Ok(()) = h.load_gdt_entry(index, lo, hi);
    Ok(0)
}

/// Every entry with its call number (the holes are not listed), over guest memory `M`.
pub fn entries<M: GuestMemory>() -> [(u64, Entry<M>); 15] {
    [
        (numbers::FLUSH_ASYNC, e_flush_async::<M>),
        (numbers::LGUEST_INIT, e_lguest_init::<M>),
        (numbers::SHUTDOWN, e_shutdown::<M>),
        (numbers::NEW_PGTABLE, e_new_pgtable::<M>),
        (numbers::FLUSH_TLB, e_flush_tlb::<M>),
        (numbers::LOAD_IDT_ENTRY, e_load_idt_entry::<M>),
        (numbers::SET_STACK, e_set_stack::<M>),
        (numbers::TS, e_ts::<M>),
        (numbers::SET_CLOCKEVENT, e_set_clockevent::<M>),
        (numbers::HALT, e_halt::<M>),
        (numbers::SET_PTE, e_set_pte::<M>),
        (numbers::SET_PMD, e_set_pmd::<M>),
        (numbers::LOAD_TLS, e_load_tls::<M>),
        (numbers::NOTIFY, e_notify::<M>),
        (numbers::LOAD_GDT_ENTRY, e_load_gdt_entry::<M>),
    ]
}

/// A hand-written single `match` on the number, each arm the same entry (checks, memory
/// reads, then the handler), all in the caller's crate: what a generated dispatch that
/// decodes and runs in one `match`, inlined into the host, would be. Not one of the issue's
/// three contenders; it is here to show where the generated dispatch's time goes
/// (BENCHMARKS.md).
#[inline]
pub fn fused_match<M: GuestMemory>(
    host: &mut NopHost,
    mem: &M,
    s: &mut HandScratch,
    nr: u64,
    args: [u64; ARG_REGS],
) -> Result<u64, HandError> {
    match nr {
        numbers::FLUSH_ASYNC => e_flush_async(host, mem, s, args),
        numbers::LGUEST_INIT => e_lguest_init(host, mem, s, args),
        numbers::SHUTDOWN => e_shutdown(host, mem, s, args),
        numbers::NEW_PGTABLE => e_new_pgtable(host, mem, s, args),
        numbers::FLUSH_TLB => e_flush_tlb(host, mem, s, args),
        numbers::LOAD_IDT_ENTRY => e_load_idt_entry(host, mem, s, args),
        numbers::SET_STACK => e_set_stack(host, mem, s, args),
        numbers::TS => e_ts(host, mem, s, args),
        numbers::SET_CLOCKEVENT => e_set_clockevent(host, mem, s, args),
        numbers::HALT => e_halt(host, mem, s, args),
        numbers::SET_PTE => e_set_pte(host, mem, s, args),
        numbers::SET_PMD => e_set_pmd(host, mem, s, args),
        numbers::LOAD_TLS => e_load_tls(host, mem, s, args),
        numbers::NOTIFY => e_notify(host, mem, s, args),
        numbers::LOAD_GDT_ENTRY => e_load_gdt_entry(host, mem, s, args),
        _ => Err(HandError::Unknown(nr)),
    }
}

/// Slots in the function-pointer table: the highest call number plus one.
pub const TABLE_LEN: usize = 19;

/// A hand-written function-pointer table, indexed by the call number, over guest memory `M`.
#[derive(Debug)]
pub struct FnTable<M> {
    table: [Entry<M>; TABLE_LEN],
}

impl<M: GuestMemory> Default for FnTable<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: GuestMemory> FnTable<M> {
    /// The table, holes pointing at an "unknown" entry.
    pub fn new() -> Self {
        let mut table: [Entry<M>; TABLE_LEN] = [e_unknown::<M>; TABLE_LEN];
        for (nr, e) in entries::<M>() {
            table[nr as usize] = e;
        }
        FnTable { table }
    }

    /// Bounds-checks `nr`, then calls through the table.
    #[inline]
    pub fn dispatch(
        &self,
        host: &mut NopHost,
        mem: &M,
        s: &mut HandScratch,
        nr: u64,
        args: [u64; ARG_REGS],
    ) -> Result<u64, HandError> {
        let Some(e) = usize::try_from(nr).ok().and_then(|i| self.table.get(i)) else {
            return Err(HandError::Unknown(nr));
        };
        e(host, mem, s, args).map_err(|err| match err {
            HandError::Unknown(_) => HandError::Unknown(nr),
            bad => bad,
        })
    }
}

/// A registry entry: the same entries, as boxed closures.
pub type Boxed<M> =
    Box<dyn Fn(&mut NopHost, &M, &mut HandScratch, [u64; ARG_REGS]) -> Result<u64, HandError>>;

/// A `HashMap<u64, Box<dyn Fn>>` registry (std's SipHash hasher), over guest memory `M`.
pub struct Registry<M> {
    map: HashMap<u64, Boxed<M>>,
}

impl<M> std::fmt::Debug for Registry<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("entries", &self.map.len())
            .finish()
    }
}

impl<M: GuestMemory + 'static> Default for Registry<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: GuestMemory + 'static> Registry<M> {
    /// Registers every entry under its number.
    pub fn new() -> Self {
        let mut map: HashMap<u64, Boxed<M>> = HashMap::new();
        for (nr, e) in entries::<M>() {
            map.insert(nr, Box::new(e));
        }
        Registry { map }
    }

    /// Looks `nr` up and calls it.
    #[inline]
    pub fn dispatch(
        &self,
        host: &mut NopHost,
        mem: &M,
        s: &mut HandScratch,
        nr: u64,
        args: [u64; ARG_REGS],
    ) -> Result<u64, HandError> {
        match self.map.get(&nr) {
            Some(e) => e(host, mem, s, args),
            None => Err(HandError::Unknown(nr)),
        }
    }
}

/// Arguments that pass every check of `call`, varied by `seed`: the generated
/// `sample_args`, so the benchmark follows the spec's constraints without restating them.
pub fn valid_args(call: Hypercall, seed: u64) -> [u64; ARG_REGS] {
    host_stubs::abi::host::sample_args(call, seed)
}

/// A small deterministic generator (xorshift64*), so no `rand` dependency.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` valid calls with uniformly random numbers (of the 15 that exist).
pub fn random_calls(n: usize, seed: u64) -> Vec<(u64, [u64; ARG_REGS])> {
    let mut r = XorShift::new(seed);
    (0..n)
        .map(|_| {
            let call = Hypercall::ALL[(r.next_u64() % Hypercall::ALL.len() as u64) as usize];
            (call.nr(), valid_args(call, r.next_u64()))
        })
        .collect()
}

/// `n` valid calls cycling through the numbers in order (0, 1, 2, 4, ..., 18, 0, ...).
pub fn sequential_calls(n: usize, seed: u64) -> Vec<(u64, [u64; ARG_REGS])> {
    let mut r = XorShift::new(seed);
    (0..n)
        .map(|i| {
            let call = Hypercall::ALL[i % Hypercall::ALL.len()];
            (call.nr(), valid_args(call, r.next_u64()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_stubs::abi::host::{DispatchError, MemViolation, dispatch};

    /// The three paths accept and refuse the same calls, for the same reason, and reach the
    /// same handlers, reading memory arguments from `mem`: 22,000 random calls, and where
    /// guest memory ends (`mem_len`), each call with a memory argument at every address
    /// up to 8 bytes past the end.
    fn agree<M: GuestMemory + std::fmt::Debug + 'static>(mem: &M, mem_len: Option<u64>) {
        let table = FnTable::<M>::new();
        let registry = Registry::<M>::new();
        let mut r = XorShift::new(7);
        let mut s = scratch();
        let mut hs = hand_scratch();
        let mut calls = random_calls(2000, 3);
        // Invalid ones too: any number, arguments near the limits (and near the end of
        // guest memory and of the address space, for the memory arguments).
        for _ in 0..20_000 {
            let nr = r.next_u64() % 24;
            let pick = |r: &mut XorShift| match r.next_u64() % 8 {
                0 => 0,
                1 => r.next_u64(),
                2 => r.next_u64() % 600,
                3 => (r.next_u64() % 4) << 12,
                4 => u64::from(u32::MAX) + (r.next_u64() % 3),
                5 => mem_len.unwrap_or(0).wrapping_sub(r.next_u64() % 24),
                6 => u64::MAX - r.next_u64() % 24,
                _ => r.next_u64() % 16,
            };
            let args = [pick(&mut r), pick(&mut r), pick(&mut r), 0];
            calls.push((nr, args));
        }
        for addr in 0..mem_len.map_or(0, |l| l + 8) {
            for nr in [numbers::SHUTDOWN, numbers::LOAD_TLS, numbers::NOTIFY] {
                calls.push((nr, [addr, 1, 0, 0]));
            }
        }
        let mut memory_refusals = 0;
        for (nr, args) in calls {
            let (mut a, mut b, mut c) =
                (NopHost::default(), NopHost::default(), NopHost::default());
            let generated = dispatch(&mut a, mem, &mut s, nr, args);
            let t = table.dispatch(&mut b, mem, &mut hs, nr, args);
            let m = registry.dispatch(&mut c, mem, &mut hs, nr, args);
            assert_eq!(t, m, "{nr} {args:x?}");
            let mut d = NopHost::default();
            assert_eq!(
                t,
                fused_match(&mut d, mem, &mut hs, nr, args),
                "{nr} {args:x?}"
            );
            assert_eq!(b.acc, d.acc);
            match (generated, t) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(DispatchError::UnknownHypercall { nr: n }), Err(HandError::Unknown(m))) => {
                    assert_eq!(n, m)
                }
                (Err(DispatchError::BadArgument(bad)), Err(HandError::Bad { nr: n, index })) => {
                    assert_eq!((bad.call.nr(), bad.index), (n, index))
                }
                (
                    Err(DispatchError::BadMemory(bad)),
                    Err(HandError::Memory {
                        nr: n,
                        index,
                        fault,
                    }),
                ) => {
                    memory_refusals += 1;
                    assert_eq!(
                        (bad.call.nr(), bad.call.arg_index(bad.arg)),
                        (n, Some(index))
                    );
                    let want = match bad.violation {
                        MemViolation::Outside { .. } => MemFault::Outside,
                        MemViolation::NoNul { .. } => MemFault::NoNul,
                        v => panic!("{nr} {args:x?}: generated {v:?}, not in MemFault"),
                    };
                    assert_eq!(want, fault, "{nr} {args:x?}");
                }
                (g, t) => panic!("{nr} {args:x?}: generated {g:?}, table {t:?}"),
            }
            assert_eq!(a.acc, b.acc, "{nr} {args:x?}");
            assert_eq!(a.acc, c.acc);
        }
        // In all-zero memory without end, only addresses that wrap are refused; in the
        // short random one, far more.
        assert!(
            memory_refusals > 0,
            "{mem:?}: no memory argument was refused"
        );
    }

    /// Three pages and a bit of random bytes: page-multiple addresses land inside, the last
    /// one 7 bytes before the end (the byte-by-byte path).
    fn test_mem() -> TestMem {
        TestMem::random(3 * numbers::PAGE_SIZE as usize + 7, 5)
    }

    #[test]
    fn the_three_dispatchers_agree() {
        agree(&ZeroMem, None);
        let mem = test_mem();
        agree(&mem, Some(mem.len()));
    }

    /// The short random memory gives every outcome of a string argument: taken (the
    /// longest one the spec allows too), no NUL in time, outside guest memory.
    #[test]
    fn test_memory_gives_every_outcome() {
        let mem = test_mem();
        for max in [numbers::NOTIFY_MAX, numbers::SHUTDOWN_REASON_MAX] {
            let mut buf = vec![0u8; max as usize];
            let mut seen = [false; 4];
            for addr in 0..mem.len() + 8 {
                let i = match read_cstr(&mem, addr, &mut buf) {
                    Ok(n) if n as u64 == max - 1 => 0,
                    Ok(_) => 1,
                    Err(MemFault::NoNul) => 2,
                    Err(MemFault::Outside) => 3,
                };
                seen[i] = true;
            }
            assert_eq!(seen, [true; 4], "{max}: longest, shorter, no NUL, outside");
        }
    }

    #[test]
    fn generated_calls_are_valid() {
        let mut h = NopHost::default();
        let mut s = scratch();
        let table = FnTable::<ZeroMem>::new();
        let mut hs = hand_scratch();
        for (nr, args) in random_calls(1000, 1)
            .into_iter()
            .chain(sequential_calls(100, 2))
        {
            assert!(
                dispatch(&mut h, &ZeroMem, &mut s, nr, args).is_ok(),
                "{nr} {args:x?}"
            );
            assert!(
                table.dispatch(&mut h, &ZeroMem, &mut hs, nr, args).is_ok(),
                "{nr} {args:x?}"
            );
        }
    }
}
