//! Target: the shadow page tables against an independent model of what the guest may map.
//!
//! The model keeps the guest's mappings as a plain map (table, address) -> frame and writes
//! the guest's 4-level tables from it, so it knows what they say without walking them.
//! After every operation, whatever the shadow maps must be something the guest's tables
//! mapped there at some point (with at least the permissions the shadow gives), never a
//! frame outside guest memory; a fault must fill exactly what the tables say now, or be
//! reflected exactly when they refuse, or be refused exactly when they name memory the
//! guest does not have; flushes and SET_PMD must leave nothing below what they drop.

use std::collections::HashMap;

use host_stubs::GuestMem;
use host_stubs::mmu::{Fault, Shadow, ShadowConfig};
use paging::fault::{USER, WRITE};
use paging::{A, ADDR, D, LEVELS, P, RW, US};

use crate::Input;
use crate::calls::MAX_WORK_PER_CALL;

const MEM: u64 = 2 << 20;
/// Where the model's page-table pages come from.
const TABLES: u64 = 0x8_0000;
/// Frames the guest maps: below the tables.
const FRAMES: u64 = 0x7f;
const KERNEL: u64 = 0x0000_4000_0000_0000;
const PGDIRS: usize = 6;
const VAS: usize = 48;

/// The probe addresses: user and kernel, sharing tables at every level in places.
const fn va(i: usize) -> u64 {
    let i = i as u64;
    let top = if i.is_multiple_of(3) { KERNEL } else { 0 };
    top | ((i % 2) << 39) | (((i / 2) % 3) << 30) | (((i / 6) % 2) << 21) | ((i % 5) << 12)
}

/// The probe addresses, by number (checked after every operation: computed once).
const PROBES: [u64; VAS] = {
    let mut v = [0; VAS];
    let mut i = 0;
    while i < VAS {
        v[i] = va(i);
        i += 1;
    }
    v
};

/// The bits of `va` that pick its table at `level` (every address shares the root).
fn prefix(level: usize, va: u64) -> u64 {
    if level == 0 {
        0
    } else {
        // Which entry of the level above leads there: every bit above its span.
        va / paging::span(level - 1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Map {
    frame: u64,
    write: bool,
    user: bool,
}

/// A mapping the guest's tables once gave: (frame, writable, user).
type Granted = (u64, bool, bool);

/// The model, by pgdir number and probe number (a probe's address is [`PROBES`]`[i]`).
struct Model {
    mem: GuestMem,
    next_table: u64,
    /// (pgdir, level, address prefix) -> the table there.
    tables: HashMap<(usize, usize, u64), u64>,
    /// The same tables as seen from each probe: the table at each level on its way
    /// (0: none made yet), written as `tables` grows, so the checks after every operation
    /// read them here instead of looking each up again.
    paths: [[[u64; LEVELS]; VAS]; PGDIRS],
    /// What each guest table maps now.
    now: [[Option<Map>; VAS]; PGDIRS],
    /// Everything each has ever mapped (each mapping once).
    ever: [[Vec<Granted>; VAS]; PGDIRS],
    pgdirs: [u64; PGDIRS],
}

impl Model {
    fn new() -> Model {
        let mem = GuestMem::new(MEM).expect("guest memory maps");
        let mut m = Model {
            mem,
            next_table: TABLES,
            tables: HashMap::new(),
            paths: [[[0; LEVELS]; VAS]; PGDIRS],
            now: [[None; VAS]; PGDIRS],
            ever: std::array::from_fn(|_| std::array::from_fn(|_| Vec::new())),
            pgdirs: [0; PGDIRS],
        };
        for p in 0..PGDIRS {
            m.pgdirs[p] = m.alloc();
            m.made(p, 0, 0, m.pgdirs[p]);
        }
        m
    }

    fn alloc(&mut self) -> u64 {
        let t = self.next_table;
        self.next_table += 4096;
        assert!(self.next_table <= MEM, "the model ran out of table pages");
        t
    }

    /// Records table `t` at `level` under pgdir `p` for the addresses starting `va`'s way.
    fn made(&mut self, p: usize, level: usize, va: u64, t: u64) {
        self.tables.insert((p, level, prefix(level, va)), t);
        for (i, probe) in PROBES.into_iter().enumerate() {
            if prefix(level, probe) == prefix(level, va) {
                self.paths[p][i][level] = t;
            }
        }
    }

    /// The table at `level` on the way to `va` under pgdir `p`, made if missing (upper
    /// entries allow everything: permissions are the leaves').
    fn table(&mut self, p: usize, level: usize, va: u64) -> u64 {
        if let Some(t) = self.tables.get(&(p, level, prefix(level, va))) {
            return *t;
        }
        let parent = self.table(p, level - 1, va);
        let t = self.alloc();
        let at = parent + paging::index(level - 1, va) as u64 * 8;
        self.mem.write_u64(at, t | P | RW | US).expect("inside");
        self.made(p, level, va, t);
        t
    }

    /// The leaf entry's address for probe `i` under `p`.
    fn leaf(&mut self, p: usize, i: usize) -> u64 {
        self.table(p, 3, PROBES[i]) + paging::index(3, PROBES[i]) as u64 * 8
    }

    /// The tables on the way to probe `i` under `p` that exist, with the index used in
    /// each.
    fn path(&self, p: usize, i: usize) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.paths[p][i]
            .iter()
            .enumerate()
            .map_while(move |(l, t)| (*t != 0).then(|| (*t, paging::index(l, PROBES[i]))))
    }
}

/// Target: random page-table operations, the shadow checked against the model after each.
pub fn shadow_model(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut m = Model::new();
    let cfg = ShadowConfig {
        pool_pages: 7 + inp.below(40) as u32,
        host_entry: 0x7fff_f000 | P | RW | A,
        ..ShadowConfig::default()
    };
    let mut s = Shadow::new(cfg, m.pgdirs[0]);
    let mut current = 0usize;
    for _ in 0..512 {
        if inp.is_empty() {
            break;
        }
        let p = inp.below(PGDIRS as u64) as usize;
        let probe = inp.below(VAS as u64) as usize;
        let v = PROBES[probe];
        let before = s.work();
        match inp.u8() % 9 {
            0..=2 => {
                // Map v to a frame of guest RAM, or (rarely) to memory it does not have.
                let bad = inp.u8() < 16;
                let frame = if bad {
                    MEM + inp.below(16) * 4096
                } else {
                    (1 + inp.below(FRAMES)) * 4096
                };
                let (write, user) = (inp.bool(), !inp.u8().is_multiple_of(4));
                let mut pte = frame | P;
                if write {
                    pte |= RW;
                }
                if user {
                    pte |= US;
                }
                if inp.bool() {
                    pte |= A | D;
                }
                let at = m.leaf(p, probe);
                m.mem.write_u64(at, pte).expect("inside");
                m.now[p][probe] = Some(Map { frame, write, user });
                let granted = (frame, write, user);
                if !bad && !m.ever[p][probe].contains(&granted) {
                    m.ever[p][probe].push(granted);
                }
                if inp.bool() {
                    let r = s.set_pte(&m.mem, m.pgdirs[p], v, pte, KERNEL);
                    assert_eq!(r.is_err(), bad, "SET_PTE of {pte:#x}");
                    if !bad && pte & (A | D) == 0 {
                        // Not yet accessed: the shadow drops it rather than fill it.
                        assert_eq!(s.lookup(m.pgdirs[p], v), None);
                    }
                }
            }
            3 => {
                let at = m.leaf(p, probe);
                m.mem.write_u64(at, 0).expect("inside");
                m.now[p][probe] = None;
                if inp.bool() {
                    s.set_pte(&m.mem, m.pgdirs[p], v, 0, KERNEL)
                        .expect("0 is fine");
                    assert_eq!(s.lookup(m.pgdirs[p], v), None, "SET_PTE(0) unmaps");
                }
            }
            4 => {
                let error = if inp.bool() { WRITE } else { 0 } | if inp.bool() { USER } else { 0 };
                let want = m.now[current][probe];
                match s.fault(&m.mem, v, error) {
                    Ok(Fault::Filled) => {
                        let w = want.expect("filled what the tables do not map");
                        assert!(w.frame < MEM);
                        assert!(
                            error & WRITE == 0 || w.write,
                            "filled a write the tables refuse"
                        );
                        assert!(
                            error & USER == 0 || w.user,
                            "filled a user access the tables refuse"
                        );
                        let e = s.lookup(m.pgdirs[current], v).expect("filled, so mapped");
                        assert_eq!(e & ADDR, w.frame);
                        if error & WRITE != 0 {
                            assert_ne!(e & RW, 0, "a write fault leaves the page writable");
                        }
                    }
                    Ok(Fault::Reflect) => {
                        if let Some(w) = want {
                            assert!(
                                w.frame < MEM
                                    && ((error & WRITE != 0 && !w.write)
                                        || (error & USER != 0 && !w.user)),
                                "reflected an allowed access: {w:?}, error {error:#x}"
                            );
                        }
                    }
                    Err(bad) => {
                        let w = want.expect("refused an entry the tables do not have");
                        assert!(w.frame >= MEM, "refused a good frame: {bad}");
                    }
                }
            }
            5 => {
                s.flush_all();
                for p in 0..PGDIRS {
                    for v in PROBES {
                        assert_eq!(s.lookup(m.pgdirs[p], v), None);
                    }
                }
            }
            6 => {
                s.flush_user(KERNEL);
                for v in PROBES.into_iter().filter(|v| *v < KERNEL) {
                    assert_eq!(s.lookup(m.pgdirs[current], v), None);
                }
            }
            7 => {
                current = p;
                s.switch(m.pgdirs[p]);
                assert_eq!(s.gpgdir(), m.pgdirs[p]);
            }
            _ => {
                // SET_PMD on one of the tables on v's way.
                let path: Vec<_> = m.path(p, probe).collect();
                if !path.is_empty() {
                    let (table, index) = path[inp.below(path.len() as u64) as usize];
                    s.set_pmd(table, index);
                    for q in 0..PGDIRS {
                        for (i, v) in PROBES.into_iter().enumerate() {
                            if m.path(q, i).any(|step| step == (table, index)) && index != 511 {
                                assert_eq!(s.lookup(m.pgdirs[q], v), None, "below SET_PMD");
                            }
                        }
                    }
                }
            }
        }
        assert!(s.work() - before <= MAX_WORK_PER_CALL);
        // Whatever the shadow maps, the guest's tables mapped there once, as permissively.
        for p in 0..PGDIRS {
            for (i, v) in PROBES.into_iter().enumerate() {
                let Some(e) = s.lookup(m.pgdirs[p], v) else {
                    continue;
                };
                let frame = e & ADDR;
                assert!(
                    frame < MEM,
                    "the shadow maps {frame:#x}, outside guest memory"
                );
                let ever = &m.ever[p][i];
                let ok = ever
                    .iter()
                    .any(|(f, w, u)| *f == frame && (e & RW == 0 || *w) && (e & US == 0 || *u));
                // A kernel address may come from another table's mapping (SET_PTE of a
                // kernel address reaches every root).
                let shared = || {
                    v >= KERNEL
                        && (0..PGDIRS).any(|q| m.ever[q][i].iter().any(|(f, _, _)| *f == frame))
                };
                assert!(
                    ok || shared(),
                    "shadow of {v:#x} in table {p}: {e:#x}, guest had {ever:?}"
                );
            }
        }
    }
}
