//! Room: what a run ends with, from either backend: the [`Report`] (backend, exits, calls
//! by name, ring and shadow counters, the phase marks, how the guest stopped), as text and
//! as JSON, and the counters read off the reference host to fill it.

use host_stubs::Host;
use host_stubs::Stop;
use host_stubs::clock::Clock;
use lguest_abi::numbers::POWER_DOWN;
use lguest_abi::types::ShutdownKind;
use serde_json::json;

/// Which backend ran the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A KVM virtual machine.
    Kvm,
    /// The host process itself, through the loopback transport.
    InProcess,
}

impl Backend {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Kvm => "kvm",
            Backend::InProcess => "in-process",
        }
    }
}

/// Counters at one instant, for the difference between two marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Guest exits so far.
    pub exits: u64,
    /// Hypercalls run so far (sync and from the ring).
    pub hypercalls: u64,
    /// Ring entries drained so far.
    pub ring_drained: u64,
    /// Nanoseconds since the run started.
    pub wall_ns: u64,
    /// Page faults the host handled so far (each one an exit under KVM).
    pub faults: u64,
}

impl Snapshot {
    /// `self - earlier`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            exits: self.exits - earlier.exits,
            hypercalls: self.hypercalls - earlier.hypercalls,
            ring_drained: self.ring_drained - earlier.ring_drained,
            wall_ns: self.wall_ns - earlier.wall_ns,
            faults: self.faults - earlier.faults,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Report {
    /// Which backend.
    pub backend: Backend,
    /// Guest exits to the VMM (in process: calls through the transport).
    pub exits: u64,
    /// Times the VMM interrupted the running guest (timer, watchdog).
    pub kicks: u64,
    /// Each hypercall by name with how often the host ran it, in spec order.
    pub hypercalls: Vec<(&'static str, u64)>,
    /// Calls whose number named no hypercall.
    pub unknown_hypercalls: u64,
    /// Async-ring entries the host ran.
    pub ring_drained: u64,
    /// Interrupts delivered.
    pub interrupts: u64,
    /// Timer interrupts delivered.
    pub ticks: u64,
    /// SET_PTE calls that mapped a present page.
    pub pages_mapped: u64,
    /// Exceptions reflected into the guest.
    pub traps: u64,
    /// Wall time of the run.
    pub wall_ns: u64,
    /// The guest's console text.
    pub console: String,
    /// How it ended.
    pub stop: Stop,
    /// Counters between the workload's two marks, if it made them.
    pub workload: Option<Snapshot>,
    /// How many times the guest booted (a restart boots it again).
    pub boots: u32,
    /// What the shadow page tables did.
    pub shadow: ShadowCounts,
}

/// The shadow page tables' counters in a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShadowCounts {
    /// Page faults the host filled from the guest's tables.
    pub filled: u64,
    /// Page faults the guest's tables refused (reflected to the guest).
    pub reflected: u64,
    /// Times every shadow was dropped (FLUSH_TLB(all) or a full pool).
    pub resets: u64,
    /// Times KVM was made to forget its cache of the shadow tables.
    pub reloads: u64,
}

impl ShadowCounts {
    /// The host's counters (`reloads` is the VMM's).
    pub fn of<C: Clock>(host: &Host<C>, reloads: u64) -> ShadowCounts {
        let s = host.shadow().stats();
        ShadowCounts {
            filled: s.filled,
            reflected: s.reflected,
            resets: s.resets,
            reloads,
        }
    }
}

impl Report {
    /// Whether the guest powered off cleanly: the `power_off` op's own reason.
    pub fn clean(&self) -> bool {
        matches!(&self.stop, Stop::Shutdown(s)
            if s.kind == ShutdownKind::Poweroff && s.reason == POWER_DOWN)
    }

    /// Adds an earlier boot's counts to this one's (after a restart).
    pub fn absorb(&mut self, earlier: &Report) {
        self.exits += earlier.exits;
        self.kicks += earlier.kicks;
        for ((_, n), (_, m)) in self.hypercalls.iter_mut().zip(&earlier.hypercalls) {
            *n += m;
        }
        self.unknown_hypercalls += earlier.unknown_hypercalls;
        self.ring_drained += earlier.ring_drained;
        self.interrupts += earlier.interrupts;
        self.ticks += earlier.ticks;
        self.pages_mapped += earlier.pages_mapped;
        self.traps += earlier.traps;
        self.wall_ns += earlier.wall_ns;
        self.console = format!("{}{}", earlier.console, self.console);
        self.boots += earlier.boots;
        self.shadow.filled += earlier.shadow.filled;
        self.shadow.reflected += earlier.shadow.reflected;
        self.shadow.resets += earlier.shadow.resets;
        self.shadow.reloads += earlier.shadow.reloads;
    }

    /// Total hypercalls.
    pub fn total_hypercalls(&self) -> u64 {
        self.hypercalls.iter().map(|(_, n)| n).sum::<u64>() + self.unknown_hypercalls
    }

    /// One JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let calls: serde_json::Map<String, serde_json::Value> = self
            .hypercalls
            .iter()
            .map(|(n, c)| ((*n).to_string(), json!(c)))
            .collect();
        let shutdown = match &self.stop {
            Stop::Shutdown(s) => json!({ "kind": s.kind.name(), "reason": s.reason }),
            Stop::Killed(k) => json!({ "kind": "killed", "reason": k.to_string() }),
        };
        json!({
            "backend": self.backend.name(),
            "clean": self.clean(),
            "exits": self.exits,
            "kicks": self.kicks,
            "hypercalls": calls,
            "hypercalls_total": self.total_hypercalls(),
            "unknown_hypercalls": self.unknown_hypercalls,
            "ring_drained": self.ring_drained,
            "interrupts": self.interrupts,
            "ticks": self.ticks,
            "pages_mapped": self.pages_mapped,
            "traps": self.traps,
            "wall_ns": self.wall_ns,
            "boots": self.boots,
            "shadow": json!({
                "faults_filled": self.shadow.filled,
                "faults_reflected": self.shadow.reflected,
                "resets": self.shadow.resets,
                "kvm_reloads": self.shadow.reloads,
            }),
            "console": self.console,
            "shutdown": shutdown,
            "workload": self.workload.map(|w| json!({
                "exits": w.exits,
                "hypercalls": w.hypercalls,
                "ring_drained": w.ring_drained,
                "wall_ns": w.wall_ns,
                "page_faults": w.faults,
            })),
        })
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let end = match &self.stop {
            Stop::Shutdown(sd) => format!("shutdown ({}): {}", sd.kind.name(), sd.reason),
            Stop::Killed(k) => k.to_string(),
        };
        s.push_str(&format!(
            "--- lguest-run report ({}) ---\n",
            self.backend.name()
        ));
        s.push_str(&format!("end:          {end}\n"));
        s.push_str(&format!(
            "wall time:    {:.3} ms ({} boot{})\n",
            self.wall_ns as f64 / 1e6,
            self.boots,
            if self.boots == 1 { "" } else { "s" }
        ));
        s.push_str(&format!(
            "exits:        {} ({} hypercalls, {} from the ring; {} kicks)\n",
            self.exits,
            self.total_hypercalls(),
            self.ring_drained,
            self.kicks
        ));
        s.push_str(&format!(
            "interrupts:   {} ({} ticks); traps reflected: {}\n",
            self.interrupts, self.ticks, self.traps
        ));
        s.push_str(&format!("pages mapped: {}\n", self.pages_mapped));
        s.push_str(&format!(
            "shadow:       {} page faults filled, {} reflected; {} resets, {} KVM reloads\n",
            self.shadow.filled, self.shadow.reflected, self.shadow.resets, self.shadow.reloads
        ));
        if let Some(w) = &self.workload {
            s.push_str(&format!(
                "workload:     {} exits, {} hypercalls ({} from the ring), {} page faults, {:.3} ms\n",
                w.exits,
                w.hypercalls,
                w.ring_drained,
                w.faults,
                w.wall_ns as f64 / 1e6
            ));
        }
        s.push_str("hypercalls:\n");
        for (name, n) in &self.hypercalls {
            if *n > 0 {
                s.push_str(&format!("  {name:<16}{n:>9}\n"));
            }
        }
        if self.unknown_hypercalls > 0 {
            s.push_str(&format!(
                "  {:<16}{:>9}\n",
                "(unknown)", self.unknown_hypercalls
            ));
        }
        s
    }
}

/// The host's counters, as a report has them: (hypercalls by name, unknown, ring entries
/// drained, interrupts delivered, pages mapped).
pub fn host_counts<C: Clock>(host: &Host<C>) -> (Vec<(&'static str, u64)>, u64, u64, u64, u64) {
    let (calls, unknown) = host.counts();
    (
        calls.map(|(c, n)| (c.name(), n)).collect(),
        unknown,
        host.ring_drained(),
        host.interrupts_delivered(),
        host.pages_mapped(),
    )
}

/// Total hypercalls the host ran, for progress and snapshots.
pub fn host_total_calls<C: Clock>(host: &Host<C>) -> u64 {
    let (calls, unknown) = host.counts();
    calls.map(|(_, n)| n).sum::<u64>() + unknown
}

/// Prints the console text past `shown` bytes, and moves `shown` on.
pub fn show_console(text: &str, shown: &mut usize) {
    use std::io::Write;
    if let Some(new) = text.get(*shown..).filter(|t| !t.is_empty()) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(new.as_bytes());
        let _ = out.flush();
        *shown = text.len();
    }
}
