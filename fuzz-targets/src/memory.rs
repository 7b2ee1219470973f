//! Target: the generated decode of arguments in guest memory, over the host generated from
//! tests/specs/fixtures/memory.toml, the fixture with every kind of memory argument the
//! format has (structs in, out and inout, nested, with constrained fields; buffers whose
//! length is a register, a struct field or fixed; strings, UTF-8 or bytes; guest-physical
//! and guest-virtual addresses; an address taken from a struct field). Guest memory of any
//! size and contents, a virtual mapping with holes, any call number and registers; the
//! spec itself, loaded with `codegen`, is the oracle for which arguments live in memory.
//!
//! What must hold, whatever the input: decode and run never panic; decode writes nothing
//! and reads each byte at most once per memory argument (no double fetch: only arguments the
//! guest overlapped share bytes); a refusal names the call it was
//! given and, for memory, one of that call's memory arguments; a call decode accepted runs
//! and writes back without error, and only to bytes decode read or checked were there; a
//! refused call writes nothing.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::Input;

/// The code generated from tests/specs/fixtures/memory.toml (its build script writes it).
pub mod memdemo {
    include!(concat!(env!("OUT_DIR"), "/memdemo.rs"));
}

use memdemo::host::{
    DecodeError, DispatchError, GuestMemory, MemdemoDefaultHost, OutsideMemory, Scratch, decode,
    run,
};
use memdemo::numbers::{ARG_REGS, Hypercall};

/// Guest-virtual addresses start here; virtual page `p` maps physical page `pages - 1 - p`
/// (so a virtual range across a page boundary is not contiguous), unless the input
/// unmapped it.
pub const VBASE: u64 = 0x4000_0000;

/// Most bytes of guest memory an input gets.
const MAX_SIZE: u64 = 4 * 4096 + 64;

/// Guest memory as a byte vector that counts what the generated code does with each byte.
struct FuzzMem {
    bytes: RefCell<Vec<u8>>,
    reads: RefCell<Vec<u8>>,
    writes: RefCell<Vec<u8>>,
    /// Bytes the generated code asked about with `contains` and was told are there.
    probed: RefCell<Vec<bool>>,
    /// Virtual pages (of the first 64) that map nothing.
    holes: u64,
}

impl FuzzMem {
    fn new(size: usize, holes: u64) -> Self {
        FuzzMem {
            bytes: RefCell::new(vec![0; size]),
            reads: RefCell::new(vec![0; size]),
            writes: RefCell::new(vec![0; size]),
            probed: RefCell::new(vec![false; size]),
            holes,
        }
    }

    fn size(&self) -> u64 {
        self.bytes.borrow().len() as u64
    }

    /// The bytes `[gpa, gpa + len)`, if they are all guest memory.
    fn range(&self, gpa: u64, len: u64) -> Option<std::ops::Range<usize>> {
        let end = gpa.checked_add(len)?;
        (end <= self.size()).then_some(gpa as usize..end as usize)
    }

    /// Copies `data` to `gpa`, cut at the end of memory.
    fn plant(&self, gpa: u64, data: &[u8]) {
        let mut b = self.bytes.borrow_mut();
        for (i, x) in data.iter().enumerate() {
            if let Some(slot) = usize::try_from(gpa)
                .ok()
                .and_then(|g| g.checked_add(i))
                .and_then(|at| b.get_mut(at))
            {
                *slot = *x;
            }
        }
    }
}

impl GuestMemory for FuzzMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutsideMemory> {
        let r = self.range(gpa, buf.len() as u64).ok_or(OutsideMemory)?;
        buf.copy_from_slice(&self.bytes.borrow()[r.clone()]);
        for c in &mut self.reads.borrow_mut()[r] {
            *c = c.saturating_add(1);
        }
        Ok(())
    }

    fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), OutsideMemory> {
        let r = self.range(gpa, buf.len() as u64).ok_or(OutsideMemory)?;
        self.bytes.borrow_mut()[r.clone()].copy_from_slice(buf);
        for c in &mut self.writes.borrow_mut()[r] {
            *c = c.saturating_add(1);
        }
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        match self.range(gpa, len) {
            Some(r) => {
                self.probed.borrow_mut()[r].fill(true);
                true
            }
            None => false,
        }
    }

    fn translate(&self, gva: u64) -> Option<u64> {
        let pages = self.size() / 4096;
        let page = gva.checked_sub(VBASE)? / 4096;
        let hole = page < 64 && self.holes & (1 << page) != 0;
        (page < pages && !hole).then(|| (pages - 1 - page) * 4096 + gva % 4096)
    }
}

/// What the spec says of one call: its memory arguments' names, how many are written
/// back, and its register arguments' names.
struct CallFacts {
    nr: u64,
    mem: Vec<String>,
    /// How many of them are written back.
    writers: usize,
    regs: Vec<String>,
}

/// The fixture's calls, read from the spec with `codegen` (once).
fn facts() -> &'static [CallFacts] {
    static FACTS: OnceLock<Vec<CallFacts>> = OnceLock::new();
    FACTS.get_or_init(|| {
        let src = include_str!("../../tests/specs/fixtures/memory.toml");
        let spec = codegen::load("memory.toml", src).expect("the memory fixture is a valid spec");
        spec.hypercalls
            .iter()
            .map(|h| CallFacts {
                nr: h.nr.v,
                mem: h.mem.iter().map(|m| m.name.v.clone()).collect(),
                writers: h.mem.iter().filter(|m| m.dir.writes()).count(),
                regs: h.args.iter().map(|a| a.name.v.clone()).collect(),
            })
            .collect()
    })
}

/// A handler for every call that accepts it: `out` memory goes back as decode made it.
struct Accept;

impl MemdemoDefaultHost for Accept {
    type Error = ();
}

/// How one input ended, for a runner that wants to see the target explores (every kind
/// should turn up in a few thousand inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Decoded and ran; `wrote` whether it wrote guest memory back.
    Ran {
        /// Whether anything was written back.
        wrote: bool,
    },
    /// Refused: no such call.
    Unknown,
    /// Refused: a register argument broke the spec.
    BadArgument,
    /// Refused: an argument in guest memory broke the spec.
    BadMemory,
}

/// Target: any guest memory, any call, any registers, through the generated decode and run.
pub fn memory_decode(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    let size = 1 + inp.below(MAX_SIZE);
    let mem = FuzzMem::new(size as usize, inp.u64() & inp.u64());
    // Contents: a repeated pattern, then chunks of the input planted where it says (a struct,
    // a string, a length, near the interesting places).
    let pattern: Vec<u8> = (0..1 + inp.below(32)).map(|_| inp.u8()).collect();
    for (i, b) in mem.bytes.borrow_mut().iter_mut().enumerate() {
        *b = pattern[i % pattern.len()];
    }
    let places = [0, size, size / 2, VBASE, VBASE + 4096];
    for _ in 0..inp.below(6) {
        let near = inp.pick(&places);
        let at = inp.value(near);
        let chunk: Vec<u8> = (0..inp.below(48)).map(|_| inp.u8()).collect();
        let at = mem.translate(at).unwrap_or(at);
        mem.plant(at, &chunk);
    }
    let nr = if inp.u8() < 240 {
        let all = Hypercall::ALL;
        all[inp.below(all.len() as u64) as usize].nr()
    } else {
        inp.value(0)
    };
    let regs: [u64; ARG_REGS] = [(); ARG_REGS].map(|()| {
        let near = inp.pick(&places);
        inp.value(near)
    });
    let before = mem.bytes.borrow().clone();
    let facts = facts().iter().find(|f| f.nr == nr);
    let mut scratch = Box::<Scratch>::default();
    let decoded = decode(&mem, &mut scratch, nr, regs);
    // Each argument is copied once; two arguments the guest placed over each other (a
    // string inside the struct that points at it) are two copies of the same bytes.
    let copies = facts.map_or(1, |f| f.mem.len().max(1));
    if let Some(i) = mem
        .reads
        .borrow()
        .iter()
        .position(|&n| usize::from(n) > copies)
    {
        panic!(
            "decode of call {nr} {regs:#x?} read byte {i:#x} more than once per argument: {decoded:?}"
        );
    }
    assert!(
        mem.writes.borrow().iter().all(|&n| n == 0),
        "decode wrote guest memory"
    );
    let call = match decoded {
        Ok(call) => call,
        Err(e) => {
            check_refusal(&e, nr, &regs, facts);
            assert_eq!(*mem.bytes.borrow(), before, "a refused call changed memory");
            return match e {
                DispatchError::UnknownHypercall { .. } => Outcome::Unknown,
                DispatchError::BadArgument(_) => Outcome::BadArgument,
                _ => Outcome::BadMemory,
            };
        }
    };
    let facts = facts.expect("decode accepted a number the spec does not have");
    assert_eq!(call.hypercall().nr(), nr, "decode renamed the call");
    let _ = format!("{call:?}");
    let ran = run(&mut Accept, &mem, call);
    assert_eq!(ran, Ok(0), "an accepted call failed to run or write back");
    let writes = mem.writes.borrow();
    let reads = mem.reads.borrow();
    let probed = mem.probed.borrow();
    for (i, &n) in writes.iter().enumerate() {
        if n > 0 {
            assert!(
                facts.writers > 0,
                "call {nr} has no out memory, yet wrote {i:#x}"
            );
            assert!(
                usize::from(n) <= facts.writers,
                "byte {i:#x} written {n} times"
            );
            assert!(
                reads[i] > 0 || probed[i],
                "wrote {i:#x}, which decode neither read nor checked"
            );
        }
    }
    Outcome::Ran {
        wrote: writes.iter().any(|&n| n > 0),
    }
}

/// A refusal names the call it was given, and the argument that was wrong.
fn check_refusal(e: &DecodeError, nr: u64, regs: &[u64; ARG_REGS], facts: Option<&CallFacts>) {
    let _ = e.to_string();
    match e {
        DispatchError::UnknownHypercall { nr: n } => {
            assert_eq!(*n, nr);
            assert!(facts.is_none(), "{nr} is a hypercall of the spec");
        }
        DispatchError::BadArgument(b) => {
            let f = facts.expect("a known call");
            assert_eq!(b.call.nr(), nr, "the refusal names another call");
            assert_eq!(f.regs.get(b.index), Some(&b.arg.to_string()));
            assert_eq!(b.value, regs[b.index], "the refusal shows another value");
        }
        DispatchError::BadMemory(b) => {
            let f = facts.expect("a known call");
            assert_eq!(b.call.nr(), nr, "the refusal names another call");
            assert!(
                f.mem.iter().any(|m| m == b.arg),
                "`{}` is not a memory argument of call {nr}",
                b.arg
            );
            // An argument whose address travels in a register is named with that address.
            if let Some(i) = f.regs.iter().position(|r| r == b.arg) {
                assert_eq!(b.addr, regs[i], "the refusal names another address");
            }
        }
        DispatchError::Host(never) => match *never {},
    }
}
