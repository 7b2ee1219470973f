//! Three ways for a host to get from a trap (`nr`, argument registers) to a handler, all
//! calling the same do-nothing handlers after the same argument checks:
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
//! SHUTDOWN and NOTIFY take a string in guest memory. The benchmark's guest memory is
//! [`ZeroMem`], all zeros, so the generated decode copies an empty string wherever one is;
//! the hand-written entries know that and pass the handler an empty string without reading.

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

/// Guest memory of zeros at every address: what the generated dispatch reads memory
/// arguments from in the benchmarks, so every string argument is an empty one.
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

/// The generated dispatch's scratch space for string arguments, boxed.
pub fn scratch() -> Box<Scratch> {
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
}

/// One hand-written entry: check the arguments as the spec says, call the handler.
pub type Entry = fn(&mut NopHost, [u64; ARG_REGS]) -> Result<u64, HandError>;

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

// The entries, written from spec/lguest.toml's constraints (checked against the generated
// dispatch by the test below).
fn e_unknown(_: &mut NopHost, _: [u64; ARG_REGS]) -> Result<u64, HandError> {
    // The table's holes (3, 11, 12, 13); the number itself is reported by the caller.
    Err(HandError::Unknown(u64::MAX))
}
fn e_flush_async(h: &mut NopHost, _: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let Ok(()) = h.flush_async();
    Ok(0)
}
fn e_lguest_init(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let data = align(numbers::LGUEST_INIT, 0, a[0], 8)?;
    let Ok(()) = h.lguest_init(data);
    Ok(0)
}
fn e_shutdown(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let kind = some(numbers::SHUTDOWN, 1, ShutdownKind::from_raw(a[1]))?;
    // The string at a[0] in all-zero memory: empty.
    let Ok(()) = h.shutdown(&[], kind);
    Ok(0)
}
fn e_new_pgtable(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let pgdir = align(numbers::NEW_PGTABLE, 0, a[0], numbers::PAGE_SIZE)?;
    let Ok(()) = h.new_pgtable(pgdir);
    Ok(0)
}
fn e_flush_tlb(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let scope = some(numbers::FLUSH_TLB, 0, FlushScope::from_raw(a[0]))?;
    let Ok(()) = h.flush_tlb(scope);
    Ok(0)
}
fn e_load_idt_entry(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
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
fn e_set_stack(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let nr = numbers::SET_STACK;
    let ss = range(nr, 0, a[0], 0, 65535)?;
    let sp = align(nr, 1, a[1], 16)?;
    let pages = range(nr, 2, a[2], 1, numbers::MAX_STACK_PAGES)?;
    let Ok(()) = h.set_stack(ss, sp, pages);
    Ok(0)
}
fn e_ts(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let state = some(numbers::TS, 0, TsState::from_raw(a[0]))?;
    let Ok(()) = h.ts(state);
    Ok(0)
}
fn e_set_clockevent(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let Ok(()) = h.set_clockevent(a[0]);
    Ok(0)
}
fn e_halt(h: &mut NopHost, _: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let Ok(()) = h.halt();
    Ok(0)
}
fn e_set_pte(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let pgdir = align(numbers::SET_PTE, 0, a[0], numbers::PAGE_SIZE)?;
    let Ok(()) = h.set_pte(pgdir, a[1], a[2]);
    Ok(0)
}
fn e_set_pmd(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let table = align(numbers::SET_PMD, 0, a[0], numbers::PAGE_SIZE)?;
    let index = range(numbers::SET_PMD, 1, a[1], 0, 511)?;
    let Ok(()) = h.set_pmd(table, index);
    Ok(0)
}
fn e_load_tls(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    // The descriptors at a[0] in all-zero memory: all zero.
    let tls = [TlsDescriptor::ZERO; numbers::TLS_ENTRIES as usize];
    let Ok(()) = h.load_tls(&tls, a[1]);
    Ok(0)
}
fn e_notify(h: &mut NopHost, _: [u64; ARG_REGS]) -> Result<u64, HandError> {
    // The string at a[0] in all-zero memory: empty.
    let Ok(()) = h.notify(&[]);
    Ok(0)
}
fn e_load_gdt_entry(h: &mut NopHost, a: [u64; ARG_REGS]) -> Result<u64, HandError> {
    let nr = numbers::LOAD_GDT_ENTRY;
    let index = range(nr, 0, a[0], 0, numbers::GDT_ENTRIES - 1)?;
    let lo = range(nr, 1, a[1], 0, u64::from(u32::MAX))?;
    let hi = range(nr, 2, a[2], 0, u64::from(u32::MAX))?;
    let Ok(()) = h.load_gdt_entry(index, lo, hi);
    Ok(0)
}

/// Every entry with its call number (the holes are not listed).
pub const ENTRIES: [(u64, Entry); 15] = [
    (numbers::FLUSH_ASYNC, e_flush_async),
    (numbers::LGUEST_INIT, e_lguest_init),
    (numbers::SHUTDOWN, e_shutdown),
    (numbers::NEW_PGTABLE, e_new_pgtable),
    (numbers::FLUSH_TLB, e_flush_tlb),
    (numbers::LOAD_IDT_ENTRY, e_load_idt_entry),
    (numbers::SET_STACK, e_set_stack),
    (numbers::TS, e_ts),
    (numbers::SET_CLOCKEVENT, e_set_clockevent),
    (numbers::HALT, e_halt),
    (numbers::SET_PTE, e_set_pte),
    (numbers::SET_PMD, e_set_pmd),
    (numbers::LOAD_TLS, e_load_tls),
    (numbers::NOTIFY, e_notify),
    (numbers::LOAD_GDT_ENTRY, e_load_gdt_entry),
];

/// A hand-written single `match` on the number, each arm the same entry (checks, then the
/// handler), all in the caller's crate: what a generated dispatch that decodes and runs in
/// one `match`, inlined into the host, would be. Not one of the three contenders;
/// it is here to show where the generated dispatch's time goes (BENCHMARKS.md).
#[inline]
pub fn fused_match(host: &mut NopHost, nr: u64, args: [u64; ARG_REGS]) -> Result<u64, HandError> {
    match nr {
        numbers::FLUSH_ASYNC => e_flush_async(host, args),
        numbers::LGUEST_INIT => e_lguest_init(host, args),
        numbers::SHUTDOWN => e_shutdown(host, args),
        numbers::NEW_PGTABLE => e_new_pgtable(host, args),
        numbers::FLUSH_TLB => e_flush_tlb(host, args),
        numbers::LOAD_IDT_ENTRY => e_load_idt_entry(host, args),
        numbers::SET_STACK => e_set_stack(host, args),
        numbers::TS => e_ts(host, args),
        numbers::SET_CLOCKEVENT => e_set_clockevent(host, args),
        numbers::HALT => e_halt(host, args),
        numbers::SET_PTE => e_set_pte(host, args),
        numbers::SET_PMD => e_set_pmd(host, args),
        numbers::LOAD_TLS => e_load_tls(host, args),
        numbers::NOTIFY => e_notify(host, args),
        numbers::LOAD_GDT_ENTRY => e_load_gdt_entry(host, args),
        _ => Err(HandError::Unknown(nr)),
    }
}

/// Slots in the function-pointer table: the highest call number plus one.
pub const TABLE_LEN: usize = 19;

/// A hand-written function-pointer table, indexed by the call number.
#[derive(Debug)]
pub struct FnTable {
    table: [Entry; TABLE_LEN],
}

impl Default for FnTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FnTable {
    /// The table, holes pointing at an "unknown" entry.
    pub fn new() -> Self {
        let mut table: [Entry; TABLE_LEN] = [e_unknown; TABLE_LEN];
        for (nr, e) in ENTRIES {
            table[nr as usize] = e;
        }
        FnTable { table }
    }

    /// Bounds-checks `nr`, then calls through the table.
    #[inline]
    pub fn dispatch(
        &self,
        host: &mut NopHost,
        nr: u64,
        args: [u64; ARG_REGS],
    ) -> Result<u64, HandError> {
        let Some(e) = usize::try_from(nr).ok().and_then(|i| self.table.get(i)) else {
            return Err(HandError::Unknown(nr));
        };
        e(host, args).map_err(|err| match err {
            HandError::Unknown(_) => HandError::Unknown(nr),
            bad => bad,
        })
    }
}

/// A registry entry: the same entries, as boxed closures.
pub type Boxed = Box<dyn Fn(&mut NopHost, [u64; ARG_REGS]) -> Result<u64, HandError>>;

/// A `HashMap<u64, Box<dyn Fn>>` registry (std's SipHash hasher).
pub struct Registry {
    map: HashMap<u64, Boxed>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("entries", &self.map.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// Registers every entry under its number.
    pub fn new() -> Self {
        let mut map: HashMap<u64, Boxed> = HashMap::new();
        for (nr, e) in ENTRIES {
            map.insert(nr, Box::new(e));
        }
        Registry { map }
    }

    /// Looks `nr` up and calls it.
    #[inline]
    pub fn dispatch(
        &self,
        host: &mut NopHost,
        nr: u64,
        args: [u64; ARG_REGS],
    ) -> Result<u64, HandError> {
        match self.map.get(&nr) {
            Some(e) => e(host, args),
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
    use host_stubs::abi::host::{DispatchError, dispatch};

    /// The three paths accept and refuse the same calls, and reach the same handlers.
    #[test]
    fn the_three_dispatchers_agree() {
        let table = FnTable::new();
        let registry = Registry::new();
        let mut r = XorShift::new(7);
        let mut s = scratch();
        let mut calls = random_calls(2000, 3);
        // Invalid ones too: any number, arguments near the limits.
        for _ in 0..20_000 {
            let nr = r.next_u64() % 24;
            let pick = |r: &mut XorShift| match r.next_u64() % 6 {
                0 => 0,
                1 => r.next_u64(),
                2 => r.next_u64() % 600,
                3 => (r.next_u64() % 4) << 12,
                4 => u64::from(u32::MAX) + (r.next_u64() % 3),
                _ => r.next_u64() % 16,
            };
            let args = [pick(&mut r), pick(&mut r), pick(&mut r), 0];
            calls.push((nr, args));
        }
        for (nr, args) in calls {
            let (mut a, mut b, mut c) =
                (NopHost::default(), NopHost::default(), NopHost::default());
            let generated = dispatch(&mut a, &ZeroMem, &mut s, nr, args);
            let t = table.dispatch(&mut b, nr, args);
            let m = registry.dispatch(&mut c, nr, args);
            assert_eq!(t, m, "{nr} {args:x?}");
            let mut d = NopHost::default();
            assert_eq!(t, fused_match(&mut d, nr, args), "{nr} {args:x?}");
            assert_eq!(b.acc, d.acc);
            match (generated, t) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(DispatchError::UnknownHypercall { nr: n }), Err(HandError::Unknown(m))) => {
                    assert_eq!(n, m)
                }
                (Err(DispatchError::BadArgument(bad)), Err(HandError::Bad { nr: n, index })) => {
                    assert_eq!((bad.call.nr(), bad.index), (n, index))
                }
                (g, t) => panic!("{nr} {args:x?}: generated {g:?}, table {t:?}"),
            }
            assert_eq!(a.acc, b.acc, "{nr} {args:x?}");
            assert_eq!(a.acc, c.acc);
        }
    }

    #[test]
    fn generated_calls_are_valid() {
        let mut h = NopHost::default();
        let mut s = scratch();
        for (nr, args) in random_calls(1000, 1)
            .into_iter()
            .chain(sequential_calls(100, 2))
        {
            assert!(
                dispatch(&mut h, &ZeroMem, &mut s, nr, args).is_ok(),
                "{nr} {args:x?}"
            );
        }
    }
}
