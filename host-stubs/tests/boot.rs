//! The in-process harness: the guest crate's paravirt layer against the reference host
//! through a loopback transport, the shared page and every table living in the host's
//! guest memory. It runs the seed's boot path minus the CPU, then checks the host's state
//! against what the guest did.

use std::collections::BTreeMap;
use std::ffi::CStr;

use guest::abi::shared::LguestData;
use guest::misc::KERNEL_DS;
use guest::{DirectMap, IrqGates, Lguest, NativeCpuid, Scratch};
use host_stubs::abi::numbers::{
    ARG_REGS, CR0_TS, FIRST_EXTERNAL_VECTOR, GUEST_PL, Hypercall, IDT_ENTRIES, IRQS,
    MAX_STACK_PAGES, NOTIFY_MAX, PAGE_SIZE, RESERVE_MEM, TLS_ENTRIES, TLS_FIRST,
};
use host_stubs::abi::types::{ShutdownKind, TsState};
use host_stubs::clock::{Clock, ManualClock, WallTime};
use host_stubs::desc::{INTERRUPT_GATE, fix_segment};
use host_stubs::host::{Delivery, Host, HostConfig, Next, Stack};
use host_stubs::kill::{Kill, Origin, Shutdown, Stop};
use host_stubs::loopback::Loopback;
use host_stubs::memory::GuestMem;
use host_stubs::mmu::Fault;
use x86::bits64::paging::{PDEntry, PML4Entry, PTEntry};
use x86::dtables::DescriptorTablePointer;
use x86::segmentation::Descriptor;

const MEM: u64 = 0x40_0000;
const DATA: u64 = 0x1000;
const SCRATCH: u64 = 0x2000;
const STRINGS: u64 = 0x3000;
const GDT: u64 = 0x4000;
const IDT: u64 = 0x5000;
const TLS: u64 = 0x6000;
const BOOT_PGDIR: u64 = 0x8000;
const TABLES: u64 = 0x10_0000;
const KERNEL: u64 = 0xffff_8000_0000_0000;
const WALL: WallTime = WallTime {
    sec: 1_000_000,
    nsec: 0,
};
const TSC_KHZ: u32 = 3_000_000;
/// Present, writable, for upper-level entries.
const UPPER: u64 = 0x3;
/// Present, writable, accessed, dirty.
const LEAF: u64 = 0x63;
/// Where the guest stands when the host decides on interrupts: not in the window.
const RIP: u64 = KERNEL + 0x10_0000;

/// The guest crate's transport, into the host's loopback.
struct Loop<'a>(&'a Loopback<ManualClock>);

impl guest::abi::guest::Transport for Loop<'_> {
    fn hypercall(&self, nr: u64, args: [u64; ARG_REGS]) -> u64 {
        host_stubs::abi::guest::Transport::hypercall(self.0, nr, args)
    }
}

type Guest<'a> = Lguest<'a, Loop<'a>, NativeCpuid, DirectMap>;

/// A host with guest memory, and what the guest keeps in it.
struct World {
    lb: Loopback<ManualClock>,
    clock: ManualClock,
    /// Host address of guest-physical 0.
    base: u64,
    next_table: std::cell::Cell<u64>,
}

impl World {
    fn new() -> World {
        let mem = GuestMem::new(MEM).unwrap();
        let base = mem.host_ptr(0, MEM).unwrap().as_ptr() as u64;
        let clock = ManualClock::new(WALL, TSC_KHZ);
        let cfg = HostConfig {
            boot_pgdir: BOOT_PGDIR,
            ..HostConfig::default()
        };
        let w = World {
            lb: Loopback::new(Host::new(mem, clock.clone(), cfg)),
            clock,
            base,
            next_table: std::cell::Cell::new(TABLES),
        };
        // The guest's statically initialised shared page and scratch buffers, in place.
        // SAFETY: both ranges are inside guest memory (host_ptr checks), suitably aligned
        // (asserted in `ptr`), and no reference to them exists yet.
        unsafe {
            w.ptr::<LguestData>(DATA, LguestData::SIZE as u64)
                .write(LguestData::new());
            w.ptr::<Scratch>(SCRATCH, size_of::<Scratch>() as u64)
                .write(Scratch::new());
        }
        w
    }

    fn host(&self) -> std::cell::Ref<'_, Host<ManualClock>> {
        self.lb.host()
    }

    fn host_mut(&self) -> std::cell::RefMut<'_, Host<ManualClock>> {
        self.lb.host_mut()
    }

    /// The host address of `[gpa, gpa + len)`, checked and aligned for `T`.
    fn ptr<T>(&self, gpa: u64, len: u64) -> *mut T {
        let p = self.lb.host().mem().host_ptr(gpa, len).unwrap().as_ptr();
        assert_eq!(p as usize % align_of::<T>(), 0, "misaligned {gpa:#x}");
        p.cast()
    }

    /// The guest, borrowing the shared page and scratch buffers from guest memory.
    fn guest(&self) -> Guest<'_> {
        // SAFETY: the mapping behind these pointers lives as long as `self.lb` (the host
        // owns it and never moves or shrinks it), which outlives the returned guest. The
        // shared page is all atomics, and the host touches it only with atomic loads and
        // stores of the same sizes through vm-memory, so the guest's `&LguestData` never
        // sees a non-atomic race; nothing mutable is reachable from `&Scratch` except
        // through its lock, and the host only reads it.
        let (data, scratch) = unsafe {
            (
                &*self.ptr::<LguestData>(DATA, LguestData::SIZE as u64),
                &*self.ptr::<Scratch>(SCRATCH, size_of::<Scratch>() as u64),
            )
        };
        // __pa(): host pointers into the mapping, back to guest-physical addresses.
        Lguest::new(
            data,
            scratch,
            Loop(&self.lb),
            NativeCpuid,
            DirectMap::new(self.base, 0),
        )
    }

    /// A NUL-terminated string in guest memory.
    fn cstr(&self, at: u64, s: &[u8]) -> &CStr {
        self.lb.host().mem().write(STRINGS + at, s).unwrap();
        let p = self.ptr::<u8>(STRINGS + at, s.len() as u64);
        // SAFETY: `s` (with its NUL) was just written there, and the mapping outlives self.
        unsafe { CStr::from_ptr(p.cast()) }
    }

    /// A zeroed page for page tables.
    fn alloc(&self) -> u64 {
        let gpa = self.next_table.get();
        self.next_table.set(gpa + PAGE_SIZE);
        gpa
    }

    fn entry<T>(&self, table: u64, index: u64) -> *mut T {
        self.ptr::<T>(table + index * 8, 8)
    }

    fn read(&self, gpa: u64) -> u64 {
        self.lb.host().mem().read_u64(gpa).unwrap()
    }

    /// The guest's page table holding `vaddr`'s leaf under `pgdir`, by the one walk.
    fn leaf_table(&self, pgdir: u64, vaddr: u64) -> u64 {
        let h = self.lb.host();
        let w = paging::walk(&host_stubs::mmu::GuestTables(h.mem()), pgdir, vaddr).unwrap();
        assert_eq!(w.depth, paging::LEVELS, "{vaddr:#x} has a page table");
        w.last().table
    }

    /// Maps `vaddr` to `frame` under `pgdir` the way the kernel does: upper-level entries
    /// through `set_pmd`, the leaf through `set_pte_at`.
    fn map(&self, g: &Guest<'_>, pgdir: u64, vaddr: u64, frame: u64) {
        // Each round adds one missing table (found by the one page walk); the last reaches
        // the leaf table.
        let table = loop {
            let w = {
                let h = self.lb.host();
                paging::walk(&host_stubs::mmu::GuestTables(h.mem()), pgdir, vaddr).unwrap()
            };
            let last = w.last();
            match w.end {
                paging::End::NotPresent { level } if level < paging::PT => {
                    let t = self.alloc();
                    // SAFETY: `entry` checked that the 8 bytes of entry `last.index` (< 512)
                    // of the table page `last.table` lie inside guest memory and are aligned
                    // for `PDEntry`; the mapping lives as long as `self.lb`, and the host
                    // only copies guest memory, so nothing else holds a reference to the
                    // entry the guest writes.
                    unsafe {
                        g.set_pmd(
                            self.entry::<PDEntry>(last.table, last.index as u64),
                            PDEntry(t | UPPER),
                        )
                    };
                }
                _ => break last.table,
            }
        };
        let ptep = self.entry::<PTEntry>(table, paging::index(paging::PT, vaddr) as u64);
        // SAFETY: `table` is the leaf table the walk above reached from `pgdir` for `vaddr`,
        // so `ptep` is the live entry mapping `vaddr` under `pgdir`, as `set_pte_at` asks;
        // `entry` and `ptr` checked both ranges (inside guest memory, aligned), the mapping
        // outlives this call, and the host only copies guest memory.
        unsafe {
            g.set_pte_at(
                self.ptr::<PML4Entry>(pgdir, PAGE_SIZE),
                vaddr,
                ptep,
                PTEntry(frame | LEAF),
            )
        };
    }

    /// The guest's own page tables: every present 4 KiB leaf under `pgdir`.
    fn guest_tables(&self, pgdir: u64) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        let sign = |v: u64| {
            if v & (1 << 47) != 0 {
                v | 0xffff_0000_0000_0000
            } else {
                v
            }
        };
        for i4 in 0..512 {
            let e4 = self.read(pgdir + i4 * 8);
            if e4 & 1 == 0 {
                continue;
            }
            for i3 in 0..512 {
                let e3 = self.read((e4 & !0xfff) + i3 * 8);
                if e3 & 1 == 0 {
                    continue;
                }
                for i2 in 0..512 {
                    let e2 = self.read((e3 & !0xfff) + i2 * 8);
                    if e2 & 1 == 0 {
                        continue;
                    }
                    for i1 in 0..512 {
                        let e1 = self.read((e2 & !0xfff) + i1 * 8);
                        if e1 & 1 != 0 {
                            let v = sign((i4 << 39) | (i3 << 30) | (i2 << 21) | (i1 << 12));
                            out.insert(v, e1);
                        }
                    }
                }
            }
        }
        out
    }

    /// The calls the host saw from index `from` on: (name, from the ring?).
    fn calls_since(&self, from: usize) -> Vec<(&'static str, bool)> {
        self.host().calls()[from..]
            .iter()
            .map(|c| {
                (
                    c.call().map_or("?", Hypercall::name),
                    matches!(c.origin, Origin::Ring(_)),
                )
            })
            .collect()
    }

    fn ncalls(&self) -> usize {
        self.host().calls().len()
    }
}

/// A flat GDT like x86_64 Linux's: null, kernel code, kernel data, user code, user data.
fn gdt_entries() -> [Descriptor; 5] {
    [
        Descriptor { lower: 0, upper: 0 },
        Descriptor {
            lower: 0xffff,
            upper: 0x00af_9a00,
        },
        Descriptor {
            lower: 0xffff,
            upper: 0x00cf_9200,
        },
        Descriptor {
            lower: 0xffff,
            upper: 0x00af_fa00,
        },
        Descriptor {
            lower: 0xffff,
            upper: 0x00cf_f200,
        },
    ]
}

/// Boots as far as the guest can go without a CPU; returns the two address spaces.
fn boot(w: &World, g: &Guest<'_>) -> (u64, u64) {
    // ----- LGUEST_INIT -----
    let noirq = guest::init::noirq_window();
    g.lguest_init(KERNEL, noirq.clone());
    {
        let h = w.host();
        assert_eq!(h.stopped(), None);
        assert_eq!(h.shared_page(), Some(DATA));
        assert_eq!(h.noirq(), (noirq.start, noirq.end));
        assert_eq!(h.kernel_address(), KERNEL);
    }
    assert_eq!(g.reserve_mem(), RESERVE_MEM);
    assert_eq!(g.tsc_khz(), u64::from(TSC_KHZ));
    assert_eq!(g.get_wallclock(), WALL.sec);
    assert_eq!(g.read_cr3(), BOOT_PGDIR);

    // ----- GDT: the whole table, then one entry -----
    let gdt = w.ptr::<Descriptor>(GDT, 8 * 5);
    let entries = gdt_entries();
    // SAFETY: `ptr` checked that the 5 descriptors at GDT lie inside guest memory and are
    // aligned for `Descriptor`, which is also the array's alignment; no reference to that
    // range exists, and the host does not touch it.
    unsafe { gdt.cast::<[Descriptor; 5]>().write(entries) };
    // SAFETY: the limit describes exactly the 5 readable descriptors written above, and
    // entry 4 is one of them, writable, in memory that outlives both calls.
    unsafe {
        g.load_gdt(&DescriptorTablePointer {
            limit: (5 * 8 - 1) as u16,
            base: gdt,
        });
        g.write_gdt_entry(
            gdt,
            4,
            Descriptor {
                lower: 0xffff,
                upper: 0x00cf_f300,
            },
        );
    }
    {
        let h = w.host();
        for (i, d) in entries.iter().enumerate().take(4) {
            assert_eq!(h.gdt()[i], fix_segment(d.lower, d.upper), "GDT entry {i}");
        }
        assert_eq!(h.gdt()[4], fix_segment(0xffff, 0x00cf_f300));
        assert_eq!(
            h.gdt()[1].dpl(),
            GUEST_PL as u32,
            "kernel code runs at GUEST_PL"
        );
    }

    // ----- IDT: interrupt gates for every line, then the whole table -----
    let idt = w.ptr::<u128>(IDT, 16 * IDT_ENTRIES);
    let handlers: [u64; IRQS as usize] = std::array::from_fn(|i| KERNEL + 0x2000 + 16 * i as u64);
    // SAFETY: `ptr` checked that IDT_ENTRIES 16-byte gates at IDT lie inside guest memory
    // and are aligned; that table is writable, outlives the `IrqGates` (a temporary of this
    // statement) and the calls, and is the live IDT the next call loads, with a limit of
    // exactly IDT_ENTRIES gates.
    unsafe {
        g.init_irq(&IrqGates::new(idt, 0x10, &handlers));
        g.load_idt(&DescriptorTablePointer {
            limit: (16 * IDT_ENTRIES - 1) as u16,
            base: idt,
        });
    }
    {
        let h = w.host();
        for (line, handler) in handlers.iter().enumerate() {
            let gate = h.idt()[FIRST_EXTERNAL_VECTOR as usize + line];
            assert!(gate.present());
            assert_eq!(
                (gate.offset(), gate.gate_type()),
                (*handler, INTERRUPT_GATE)
            );
            assert_eq!(gate.selector(), 0x10 | GUEST_PL as u16);
        }
        assert!(!h.idt()[0].present());
    }

    // ----- Page tables, in lazy mode: everything queued, then one flush -----
    let a = w.alloc();
    let from = w.ncalls();
    g.enter_lazy_mmu();
    for i in 0..8 {
        w.map(g, a, 0x40_0000 + i * PAGE_SIZE, 0x20_0000 + i * PAGE_SIZE);
    }
    for i in 0..4 {
        w.map(g, a, KERNEL + i * PAGE_SIZE, i * PAGE_SIZE);
    }
    assert_eq!(w.ncalls(), from, "nothing reached the host while lazy");
    g.leave_lazy_mmu();
    let seen = w.calls_since(from);
    assert_eq!(seen.last(), Some(&("flush_async", false)));
    assert!(seen[..seen.len() - 1].iter().all(|(_, ring)| *ring));
    assert_eq!(seen.iter().filter(|c| c.0 == "set_pte").count(), 12);
    assert_eq!(seen.iter().filter(|c| c.0 == "set_pmd").count(), 6);
    assert_eq!(
        w.host().ring_cursor(),
        g.ring_cursor(),
        "cursors in lockstep"
    );

    // ----- Switch to it; page-table updates out of lazy mode go straight through -----
    // SAFETY: `a` is the top-level table built above, mapping the kernel's first pages; in
    // process no CPU walks it, so the write only stores the shared page's `pgdir` and sends
    // NEW_PGTABLE.
    unsafe { g.write_cr3(a) };
    assert_eq!(w.host().pgdir(), a);
    let from = w.ncalls();
    w.map(g, a, 0x50_0000, 0x30_0000);
    assert_eq!(w.calls_since(from), [("set_pte", false)]);
    // The kernel unmaps a page natively, then flushes it: the record forgets it.
    let ptep = {
        let pt = w.leaf_table(a, 0x40_7000);
        w.entry::<PTEntry>(pt, 7)
    };
    // SAFETY: `entry` checked the 8 bytes (inside guest memory, aligned), which are the live
    // leaf entry of 0x40_7000 the record points at; the host only copies guest memory.
    unsafe { ptep.write_volatile(PTEntry(0)) };
    g.flush_tlb_single(0x40_7000);
    // A legacy set_pte (no address given): FLUSH_TLB(all) now that cr3 changed.
    let ptep = {
        let pt = w.leaf_table(a, 0x40_6000);
        w.entry::<PTEntry>(pt, 6)
    };
    // SAFETY: as above: the checked, aligned, live leaf entry of 0x40_6000.
    assert!(unsafe { g.set_pte(ptep, PTEntry(0x2f_0000 | LEAF)) }.is_some());
    g.flush_tlb_user();
    assert_eq!(w.host().flushes(), [1, 1]);

    // ----- A second address space sharing the kernel half, switched to lazily -----
    let b = w.alloc();
    let kslot = (KERNEL >> 39) & 511;
    // SAFETY: `b` is a fresh page-table page inside guest memory and `kslot` < 512, so
    // `entry` gives a checked, aligned, live upper-level entry nobody else references.
    unsafe { g.set_pmd(w.entry::<PDEntry>(b, kslot), PDEntry(w.read(a + kslot * 8))) };
    let from = w.ncalls();
    // A task switch, as the seed's switch_to brackets it.
    g.start_context_switch();
    w.map(g, b, 0x40_0000, 0x38_0000);
    // SAFETY: `b` shares `a`'s kernel half (the entry just copied) and maps its own user
    // page; in process no CPU walks it, so the write only records it and queues NEW_PGTABLE.
    unsafe { g.write_cr3(b) };
    g.load_sp0(KERNEL + 0x10_0000);
    g.end_context_switch();
    assert_eq!(
        w.calls_since(from),
        [
            ("set_pmd", true),
            ("set_pmd", true),
            ("set_pmd", true),
            ("set_pte", true),
            ("new_pgtable", true),
            ("set_stack", true),
            ("flush_async", false),
        ],
        "lazy calls queued in order, flushed by the end of the context switch"
    );
    // A kernel page the guest has touched changes: the shadow follows SET_PTE.
    let kpage = KERNEL + 3 * PAGE_SIZE;
    assert_eq!(w.host_mut().demand_page(kpage, 0), Ok(Fault::Filled));
    w.map(g, b, kpage, 0x3f_0000);
    {
        let h = w.host();
        assert_eq!(h.pgdir(), b);
        assert_eq!(
            h.stack(),
            Some(Stack {
                ss: KERNEL_DS | GUEST_PL,
                sp: KERNEL + 0x10_0000,
                pages: MAX_STACK_PAGES
            })
        );
        assert_eq!(
            h.shadow().lookup(b, kpage).map(|e| e & paging::ADDR),
            Some(0x3f_0000)
        );
    }
    (a, b)
}

#[test]
fn the_whole_boot_path_runs_and_the_host_state_matches_the_guest() {
    let w = World::new();
    let g = w.guest();
    let (_, b) = boot(&w, &g);

    // Every page the guest mapped faults into the shadow as its own tables map it.
    for (va, pte) in w.guest_tables(b) {
        assert_eq!(
            w.host_mut().demand_page(va, 0),
            Ok(Fault::Filled),
            "{va:#x}"
        );
        let spte = w.host().shadow().lookup(b, va).unwrap();
        assert_eq!(spte & paging::ADDR, pte & paging::ADDR, "{va:#x}");
    }

    // ----- TLS, cr0 -----
    let tls = w.ptr::<[Descriptor; TLS_ENTRIES as usize]>(TLS, 8 * TLS_ENTRIES);
    // SAFETY: `ptr` checked the TLS_ENTRIES descriptors at TLS (inside guest memory, aligned for the
    // array); no reference to them exists and the host does not touch them.
    unsafe {
        tls.write([
            Descriptor {
                lower: 0xffff,
                upper: 0x00cf_f200,
            },
            Descriptor { lower: 0, upper: 0 },
            Descriptor {
                lower: 0x1234,
                upper: 0x00cf_9200,
            },
        ])
    };
    // SAFETY: `tls` points at the three descriptors just written, in memory that outlives
    // the call; nothing writes them while the shared reference lives (the host only reads),
    // and the guest is not in lazy mode, so the call is made (and read) at once.
    unsafe { g.load_tls(&*tls, 0) };
    g.write_cr0(CR0_TS);
    assert_eq!(w.host().ts(), TsState::Set);
    g.clts();
    {
        let h = w.host();
        assert_eq!(h.ts(), TsState::Clear);
        let t = h.tls();
        assert_eq!(t[0], fix_segment(0xffff, 0x00cf_f200));
        assert_eq!(t[1].raw(), 0);
        assert_eq!(t[2].dpl(), GUEST_PL as u32);
        assert_eq!(h.gdt()[TLS_FIRST as usize + 2], t[2]);
    }

    // ----- Time: the timer stays blocked until time_init -----
    g.set_next_event(50_000).unwrap();
    assert_eq!(w.host().timer(), Some(50_000));
    g.set_clockevent_mode(guest::time::ClockEventMode::Shutdown)
        .unwrap();
    assert_eq!(w.host().timer(), None, "shutdown stops the clock");
    g.irq_enable();
    g.set_next_event(10_000).unwrap();
    w.clock.advance(10_000);
    assert_eq!(
        w.lb.host_mut().next(RIP),
        Ok(Next::Run),
        "line 0 still blocked"
    );
    g.time_init();
    let Ok(Next::Deliver(d)) = w.lb.host_mut().next(RIP) else {
        panic!("timer not delivered")
    };
    assert_eq!((d.line, d.vector), (0, FIRST_EXTERNAL_VECTOR as u8));
    assert_eq!(g.save_fl(), 0, "an interrupt gate disabled interrupts");
    let mut ticks = 0;
    g.timer_interrupt(|| ticks += 1);
    g.irq_enable();
    assert_eq!(ticks, 1);

    // ----- Halt: sleep until the next event, wake with it delivered -----
    g.set_next_event(20_000).unwrap();
    g.irq_disable();
    g.safe_halt();
    assert!(w.host().halted());
    let now = w.clock.now_ns();
    assert_eq!(
        w.lb.host_mut().next(RIP),
        Ok(Next::Sleep {
            until: Some(now + 20_000)
        })
    );
    w.clock.advance(20_000);
    assert!(matches!(
        w.lb.host_mut().next(RIP),
        Ok(Next::Deliver(Delivery { line: 0, .. }))
    ));
    assert!(!w.host().halted());
    // A device interrupt inside the no-interrupt window waits for the window to pass.
    g.irq_enable();
    w.lb.host_mut().raise_irq(2).unwrap();
    assert_eq!(w.lb.host_mut().next(g_noirq_start()), Ok(Next::Run));
    assert!(matches!(
        w.lb.host_mut().next(RIP),
        Ok(Next::Deliver(Delivery { line: 2, .. }))
    ));
    assert_eq!(g.save_fl(), 0);
    g.irq_enable();
    assert_eq!(g.clock_read(), WALL.sec * 1_000_000_000 + w.clock.now_ns());

    // ----- Console -----
    let text = b"Booting the lguest guest in process.\n";
    let mut rest = &text[..];
    while !rest.is_empty() {
        let n = g.early_put_chars(rest);
        assert!(n < NOTIFY_MAX as usize);
        rest = &rest[n..];
    }
    assert_eq!(w.host().console(), std::str::from_utf8(text).unwrap());

    // ----- Power off -----
    let before = w.ncalls();
    g.power_off();
    assert_eq!(
        w.host().stopped(),
        Some(&Stop::Shutdown(Shutdown {
            kind: ShutdownKind::Poweroff,
            reason: "Power down".into()
        }))
    );
    assert_eq!(w.calls_since(before), [("shutdown", false)]);
    // The run is over: nothing the guest does afterwards reaches the host.
    g.safe_halt();
    assert!(!w.host().halted());
    assert_eq!(w.ncalls(), before + 1);
}

fn g_noirq_start() -> u64 {
    guest::init::noirq_window().start
}

#[test]
fn restart_ends_the_run_with_its_reason() {
    let w = World::new();
    let g = w.guest();
    boot(&w, &g);
    g.restart(w.cstr(0, b"reboot requested\0"));
    assert_eq!(
        w.host().stopped(),
        Some(&Stop::Shutdown(Shutdown {
            kind: ShutdownKind::Restart,
            reason: "reboot requested".into()
        }))
    );
}

#[test]
fn a_panic_powers_off_with_the_message() {
    let w = World::new();
    let g = w.guest();
    boot(&w, &g);
    g.panic(w.cstr(0x100, b"Kernel panic - not syncing: test\0"));
    assert_eq!(
        w.host().stopped(),
        Some(&Stop::Shutdown(Shutdown {
            kind: ShutdownKind::Poweroff,
            reason: "Kernel panic - not syncing: test".into()
        }))
    );
}

#[test]
fn a_panic_message_outside_guest_memory_kills_naming_it() {
    let w = World::new();
    let g = w.guest();
    boot(&w, &g);
    // A string in the test binary, not in guest memory: its "physical address" is junk.
    g.panic(c"not in guest memory");
    let stop = w.host().stopped().cloned().unwrap();
    let k = stop.killed().expect("a kill");
    assert!(
        matches!(
            k.reason,
            Kill::OutsideMemory {
                call: Hypercall::Shutdown,
                arg: "reason",
                ..
            }
        ),
        "{k}"
    );
}

#[test]
fn a_guest_that_skips_init_is_killed_at_its_first_call() {
    let w = World::new();
    let g = w.guest();
    g.safe_halt();
    assert_eq!(
        w.host()
            .stopped()
            .and_then(Stop::killed)
            .map(|k| k.reason.clone()),
        Some(Kill::BeforeInit {
            call: Hypercall::Halt
        })
    );
}
