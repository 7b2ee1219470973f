//! Arguments in guest memory, through the host generated from
//! tests/specs/fixtures/memory.toml: structs, buffers and strings are copied out once,
//! checked, handed to the handler typed, and `out` values written back; every way a guest
//! can get them wrong is a `BadMemory` naming the argument (and the field); and, as
//! properties over random memory sizes, addresses, lengths and contents, decode never
//! panics, reads each byte at most once, and writes nothing but the call's `out` ranges
//! after its handler ran.

use std::cell::RefCell;

use proptest::prelude::*;
use pv_tests::memory::host::{
    self, BadMemory, DispatchError, GuestMemory, MemViolation, MemdemoHost, OutsideMemory, Scratch,
    Violation,
};
use pv_tests::memory::numbers::Hypercall;
use pv_tests::memory::structs::{Batch, Header, OpenParams, Update};

/// Guest-virtual addresses start here; virtual page `p` maps physical page `pages - 1 - p`,
/// so a virtual range that crosses a page is not contiguous in physical memory.
const VBASE: u64 = 0x4000_0000;

/// Guest memory as a byte vector that counts every byte read and written.
struct TestMem {
    bytes: RefCell<Vec<u8>>,
    reads: RefCell<Vec<u32>>,
    writes: RefCell<Vec<u32>>,
}

impl TestMem {
    fn new(size: usize) -> Self {
        TestMem {
            bytes: RefCell::new(vec![0; size]),
            reads: RefCell::new(vec![0; size]),
            writes: RefCell::new(vec![0; size]),
        }
    }

    fn size(&self) -> u64 {
        self.bytes.borrow().len() as u64
    }

    fn range(&self, gpa: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let end = gpa.checked_add(len as u64)?;
        (end <= self.size()).then_some(gpa as usize..end as usize)
    }

    fn put(&self, gpa: u64, data: &[u8]) {
        self.bytes.borrow_mut()[gpa as usize..gpa as usize + data.len()].copy_from_slice(data);
    }

    fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
        self.bytes.borrow()[gpa as usize..gpa as usize + len].to_vec()
    }

    fn max_reads(&self) -> u32 {
        self.reads.borrow().iter().copied().max().unwrap_or(0)
    }

    fn written(&self) -> Vec<usize> {
        let w = self.writes.borrow();
        (0..w.len()).filter(|i| w[*i] > 0).collect()
    }

    fn reset_counts(&self) {
        self.reads.borrow_mut().fill(0);
        self.writes.borrow_mut().fill(0);
    }
}

impl GuestMemory for TestMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), OutsideMemory> {
        let r = self.range(gpa, buf.len()).ok_or(OutsideMemory)?;
        buf.copy_from_slice(&self.bytes.borrow()[r.clone()]);
        for c in &mut self.reads.borrow_mut()[r] {
            *c += 1;
        }
        Ok(())
    }

    fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), OutsideMemory> {
        let r = self.range(gpa, buf.len()).ok_or(OutsideMemory)?;
        self.bytes.borrow_mut()[r.clone()].copy_from_slice(buf);
        for c in &mut self.writes.borrow_mut()[r] {
            *c += 1;
        }
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|e| e <= self.size())
    }

    fn translate(&self, gva: u64) -> Option<u64> {
        let pages = self.size() / 4096;
        let page = gva.checked_sub(VBASE)? / 4096;
        (page < pages).then(|| (pages - 1 - page) * 4096 + gva % 4096)
    }
}

/// A host that records what its handlers were given and fills in `out` values.
#[derive(Default)]
struct Host {
    log: Vec<String>,
    opened: Vec<(OpenParams, Vec<u8>)>,
    written: Vec<(u32, Vec<u8>)>,
    updates: Vec<Update>,
    ran: u32,
}

impl MemdemoHost for Host {
    type Error = std::convert::Infallible;

    fn log(&mut self, msg: &str) -> Result<(), Self::Error> {
        self.ran += 1;
        self.log.push(msg.to_string());
        Ok(())
    }

    fn open(&mut self, params: &mut OpenParams, file_name: &[u8]) -> Result<u64, Self::Error> {
        self.ran += 1;
        self.opened.push((*params, file_name.to_vec()));
        params.fd = -2;
        params.seq += 1;
        // An `in` field changed by the handler is not written back.
        params.name = 0xdead;
        Ok(0)
    }

    fn write(&mut self, fd: u32, data: &[u8], count: u64) -> Result<u64, Self::Error> {
        self.ran += 1;
        assert_eq!(data.len() as u64, count);
        self.written.push((fd, data.to_vec()));
        Ok(count)
    }

    fn read(&mut self, data: &mut [u8], _count: u64) -> Result<(), Self::Error> {
        self.ran += 1;
        for (i, b) in data.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        Ok(())
    }

    fn mmu_update(&mut self, batch: &mut Batch, updates: &[Update]) -> Result<(), Self::Error> {
        self.ran += 1;
        self.updates.extend_from_slice(updates);
        batch.done = updates.len() as u32;
        Ok(())
    }

    fn stats(&mut self, counters: &mut [u32]) -> Result<(), Self::Error> {
        self.ran += 1;
        for (i, c) in counters.iter_mut().enumerate() {
            *c = 100 + i as u32;
        }
        Ok(())
    }

    fn scale(&mut self, values: &mut [u16], _n: u8, factor: u8) -> Result<(), Self::Error> {
        self.ran += 1;
        for v in values {
            *v = v.wrapping_mul(u16::from(factor));
        }
        Ok(())
    }

    fn ping(&mut self) -> Result<(), Self::Error> {
        self.ran += 1;
        Ok(())
    }
}

type Outcome = Result<u64, DispatchError<std::convert::Infallible>>;

fn call(mem: &TestMem, host: &mut Host, nr: Hypercall, args: [u64; 4]) -> Outcome {
    let mut scratch = Box::new(Scratch::new());
    host::dispatch(host, mem, &mut scratch, nr.nr(), args)
}

fn bad(e: Outcome) -> BadMemory {
    match e {
        Err(DispatchError::BadMemory(b)) => b,
        other => panic!("expected BadMemory, got {other:?}"),
    }
}

fn open_params() -> OpenParams {
    OpenParams {
        hdr: Header {
            version: 1,
            flags: 0,
            cookie: 0x1120,
            ..Header::ZERO
        },
        name: 0x800,
        mode: 1,
        tags: *b"abcd",
        fd: 77,
        seq: 5,
        ..OpenParams::ZERO
    }
}

#[test]
fn struct_in_and_out_fields_and_a_string_at_a_field() {
    let mem = TestMem::new(0x2000);
    mem.put(0x100, &open_params().to_bytes());
    mem.put(0x800, b"/etc/motd\0");
    let mut h = Host::default();
    assert_eq!(call(&mem, &mut h, Hypercall::Open, [0x100, 0, 0, 0]), Ok(0));
    let (p, name) = &h.opened[0];
    assert_eq!(
        (p.hdr.cookie, p.mode, &p.tags, p.seq),
        (0x1120, 1, b"abcd", 5)
    );
    assert_eq!(name, b"/etc/motd");
    let back = OpenParams::from_bytes(&mem.get(0x100, OpenParams::SIZE).try_into().unwrap());
    // `fd` (out) and `seq` (inout) are written back; `name` (in) is not.
    assert_eq!((back.fd, back.seq, back.name), (-2, 6, 0x800));
    assert!(mem.max_reads() <= 1, "a byte was read twice");
    let off_fd = std::mem::offset_of!(OpenParams, fd);
    let off_seq = std::mem::offset_of!(OpenParams, seq);
    let mut expect: Vec<usize> = (0x100 + off_fd..0x100 + off_fd + 4).collect();
    expect.extend(0x100 + off_seq..0x100 + off_seq + 8);
    assert_eq!(mem.written(), expect, "only the out fields are written");
}

#[test]
fn buffers_in_out_inout_and_of_structs() {
    let mem = TestMem::new(0x3000);
    mem.put(0x40, b"hello");
    let mut h = Host::default();
    assert_eq!(call(&mem, &mut h, Hypercall::Write, [9, 0x40, 5, 0]), Ok(5));
    assert_eq!(h.written, vec![(9, b"hello".to_vec())]);

    // An out buffer at a guest-virtual address that crosses a page (so two physical pages).
    let va = VBASE + 4096 - 3;
    assert_eq!(call(&mem, &mut h, Hypercall::Read, [va, 6, 0, 0]), Ok(0));
    let (p0, p1) = (mem.translate(va).unwrap(), mem.translate(va + 3).unwrap());
    assert_eq!(mem.get(p0, 3), vec![0x5a, 0x5b, 0x58]);
    assert_eq!(mem.get(p1, 3), vec![0x59, 0x5e, 0x5f]);

    mem.put(0x200, &[2, 0, 3, 0, 4, 0]);
    assert_eq!(
        call(&mem, &mut h, Hypercall::Scale, [0x200, 3, 2, 0]),
        Ok(0)
    );
    assert_eq!(mem.get(0x200, 6), vec![4, 0, 6, 0, 8, 0]);

    assert_eq!(
        call(&mem, &mut h, Hypercall::Stats, [0x300, 0, 0, 0]),
        Ok(0)
    );
    let c: Vec<u32> = mem
        .get(0x300, 32)
        .chunks(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(c, (100..108).collect::<Vec<u32>>());

    let batch = Batch {
        count: 2,
        done: 0,
        list: 0x1000,
    };
    mem.put(0x500, &batch.to_bytes());
    mem.put(0x1000, &Update { ptr: 8, val: 1 }.to_bytes());
    mem.put(0x1010, &Update { ptr: 16, val: 2 }.to_bytes());
    mem.reset_counts();
    assert_eq!(
        call(&mem, &mut h, Hypercall::MmuUpdate, [0x500, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(
        h.updates,
        vec![Update { ptr: 8, val: 1 }, Update { ptr: 16, val: 2 }]
    );
    assert_eq!(u32::from_le_bytes(mem.get(0x504, 4).try_into().unwrap()), 2);
    assert!(mem.max_reads() <= 1);
}

#[test]
fn every_memory_fault_names_its_argument_and_field() {
    let mem = TestMem::new(0x2000);
    let mut h = Host::default();
    // A struct that runs off the end of memory.
    let b = bad(call(&mem, &mut h, Hypercall::Open, [0x2000 - 8, 0, 0, 0]));
    assert_eq!((b.call, b.arg), (Hypercall::Open, "params"));
    assert!(matches!(b.violation, MemViolation::Outside { .. }), "{b}");
    // A misaligned struct.
    let b = bad(call(&mem, &mut h, Hypercall::Open, [0x104, 0, 0, 0]));
    assert_eq!(b.violation, MemViolation::Misaligned { align: 8 });
    // A nested field out of its range, an enum field with no variant, an inout field.
    let mut p = open_params();
    p.hdr.version = 3;
    mem.put(0x100, &p.to_bytes());
    let b = bad(call(&mem, &mut h, Hypercall::Open, [0x100, 0, 0, 0]));
    assert_eq!(
        b.violation,
        MemViolation::Field {
            field: "hdr.version",
            value: 3,
            violation: Violation::Range { lo: 1, hi: 2 }
        }
    );
    assert_eq!(
        b.to_string(),
        "hypercall open (2): argument `params` at 0x100: field `hdr.version` = 0x3 is outside the range 0x1..=0x2"
    );
    let mut p = open_params();
    p.mode = 7;
    mem.put(0x100, &p.to_bytes());
    let b = bad(call(&mem, &mut h, Hypercall::Open, [0x100, 0, 0, 0]));
    assert_eq!(
        b.violation,
        MemViolation::Field {
            field: "mode",
            value: 7,
            violation: Violation::Enum { ty: "open_mode" }
        }
    );
    let mut p = open_params();
    p.seq = 1001;
    mem.put(0x100, &p.to_bytes());
    let b = bad(call(&mem, &mut h, Hypercall::Open, [0x100, 0, 0, 0]));
    assert!(
        matches!(b.violation, MemViolation::Field { field: "seq", .. }),
        "{b}"
    );
    // A string with no NUL within its maximum; one that is not UTF-8.
    mem.put(0x100, &[b'x'; 40]);
    let b = bad(call(&mem, &mut h, Hypercall::Log, [0x100, 0, 0, 0]));
    assert_eq!(
        (b.arg, b.violation),
        ("msg", MemViolation::NoNul { max: 32 })
    );
    mem.put(0x100, b"ok\xff\0");
    let b = bad(call(&mem, &mut h, Hypercall::Log, [0x100, 0, 0, 0]));
    assert_eq!(b.violation, MemViolation::NotUtf8 { valid_up_to: 2 });
    // The string at the address in a struct field, with no NUL before memory ends.
    let mut p = open_params();
    p.name = 0x2000 - 4;
    mem.put(0x100, &p.to_bytes());
    mem.put(0x2000 - 4, b"abcd");
    let b = bad(call(&mem, &mut h, Hypercall::Open, [0x100, 0, 0, 0]));
    assert_eq!(b.arg, "file_name");
    assert!(
        matches!(b.violation, MemViolation::Outside { addr: 0x2000, .. }),
        "{b}"
    );
    // ... but one that ends just before memory does is accepted.
    mem.put(0x2000 - 4, b"abc\0");
    assert_eq!(call(&mem, &mut h, Hypercall::Open, [0x100, 0, 0, 0]), Ok(0));
    // A length over its maximum: refused before anything is read.
    mem.reset_counts();
    let b = bad(call(&mem, &mut h, Hypercall::Write, [1, 0x100, 257, 0]));
    assert_eq!(
        (b.arg, b.violation),
        ("data", MemViolation::TooLong { len: 257, max: 256 })
    );
    assert_eq!(mem.max_reads(), 0);
    // A struct buffer whose length is a field out of its range, and a bad element.
    mem.put(
        0x500,
        &Batch {
            count: 17,
            done: 0,
            list: 0x1000,
        }
        .to_bytes(),
    );
    let b = bad(call(&mem, &mut h, Hypercall::MmuUpdate, [0x500, 0, 0, 0]));
    assert_eq!(
        (b.arg, b.violation),
        (
            "batch",
            MemViolation::Field {
                field: "count",
                value: 17,
                violation: Violation::Range { lo: 0, hi: 16 }
            }
        )
    );
    mem.put(
        0x500,
        &Batch {
            count: 2,
            done: 0,
            list: 0x1000,
        }
        .to_bytes(),
    );
    mem.put(0x1000, &Update { ptr: 8, val: 1 }.to_bytes());
    mem.put(0x1010, &Update { ptr: 9, val: 2 }.to_bytes());
    let b = bad(call(&mem, &mut h, Hypercall::MmuUpdate, [0x500, 0, 0, 0]));
    assert_eq!(
        (b.arg, b.violation),
        (
            "updates",
            MemViolation::Element {
                index: 1,
                field: "ptr",
                value: 9,
                violation: Violation::Align { align: 8 }
            }
        )
    );
    // An out buffer outside memory is refused before the handler runs; an unmapped
    // virtual page likewise.
    let ran = h.ran;
    let b = bad(call(&mem, &mut h, Hypercall::Stats, [0x2000 - 16, 0, 0, 0]));
    assert_eq!(b.arg, "counters");
    let b = bad(call(
        &mem,
        &mut h,
        Hypercall::Read,
        [VBASE + 0x2000 - 2, 4, 0, 0],
    ));
    assert_eq!(
        b.violation,
        MemViolation::Unmapped {
            addr: VBASE + 0x2000
        }
    );
    assert_eq!(h.ran, ran, "no handler ran");
    assert!(mem.written().is_empty() || h.ran > 0);
}

/// The guest-memory ranges the call may write: its `out` and `inout` memory.
/// (start, length) pairs.
fn out_ranges(mem: &TestMem, nr: Hypercall, args: [u64; 4]) -> Vec<(u64, u64)> {
    match nr {
        Hypercall::Open => vec![(args[0], OpenParams::SIZE as u64)],
        Hypercall::Read => (0..args[1])
            .filter_map(|i| mem.translate(args[0] + i).map(|p| (p, 1)))
            .collect(),
        Hypercall::MmuUpdate => vec![(args[0], Batch::SIZE as u64)],
        Hypercall::Stats => vec![(args[0], 32)],
        Hypercall::Scale => vec![(args[0], 2 * args[1])],
        _ => vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random memory (size and contents), random call, addresses near the interesting
    /// places (0, the end of memory, random), random lengths: dispatch never panics,
    /// reads no byte twice, writes only the call's out ranges and only when the call
    /// succeeded, and an error names an argument of the call.
    #[test]
    fn hostile_memory_arguments(
        pages in 1usize..4,
        extra in 0usize..4096,
        fill in proptest::collection::vec(any::<u8>(), 64),
        nr in 1u64..=8,
        raw in proptest::array::uniform4(any::<u64>()),
        pick in proptest::array::uniform4(0u8..6),
    ) {
        let size = pages * 4096 + extra;
        let mem = TestMem::new(size);
        {
            let mut b = mem.bytes.borrow_mut();
            for (i, x) in b.iter_mut().enumerate() {
                *x = fill[i % fill.len()] ^ (i as u8);
            }
        }
        let near = |k: usize, r: u64| -> u64 {
            match pick[k] {
                0 => r % 64,
                1 => (size as u64).wrapping_sub(r % 64),
                2 => r % (size as u64 + 64),
                3 => VBASE + r % (size as u64 + 64),
                4 => r % 300,
                _ => r,
            }
        };
        let args = [near(0, raw[0]), near(1, raw[1]), near(2, raw[2]), near(3, raw[3])];
        let nr = Hypercall::try_from(nr).unwrap();
        let mut h = Host::default();
        let before = mem.bytes.borrow().clone();
        let out = call(&mem, &mut h, nr, args);
        prop_assert!(mem.max_reads() <= 1, "a byte was read twice");
        match &out {
            Ok(_) => {
                let ranges = out_ranges(&mem, nr, args);
                for i in mem.written() {
                    prop_assert!(ranges.iter().any(|(s, n)| (*s..*s + *n).contains(&(i as u64))), "wrote {i:#x} outside the out ranges");
                }
            }
            Err(e) => {
                prop_assert_eq!(h.ran, 0);
                prop_assert!(mem.written().is_empty());
                prop_assert_eq!(&*mem.bytes.borrow(), &before);
                if let DispatchError::BadMemory(b) = e {
                    prop_assert_eq!(b.call, nr);
                    let names: &[&str] = match nr {
                        Hypercall::Log => &["msg"],
                        Hypercall::Open => &["params", "file_name"],
                        Hypercall::Write | Hypercall::Read => &["data"],
                        Hypercall::MmuUpdate => &["batch", "updates"],
                        Hypercall::Stats => &["counters"],
                        Hypercall::Scale => &["values"],
                        Hypercall::Ping => &[],
                    };
                    prop_assert!(names.contains(&b.arg), "{} is not a memory argument of {}", b.arg, nr);
                    let _ = e.to_string();
                }
            }
        }
    }
}
