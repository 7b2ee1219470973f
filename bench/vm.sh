#!/usr/bin/env bash
# Batching on the real VM and the host's memory (BENCHMARKS.md, parts 1 and 5b).
#
#   1. `lguest-run --workload mmu --pages N` (lazy) and `... --eager`, N = 1,000 and 10,000,
#      interleaved lazy/eager RUNS times in one go: the exits and wall time of the workload
#      phase (between the kernel's two marks) from the `--json` report; median per cell;
#      the eager/lazy ratio per N. Targets: lazy exits <= 2N/64 + 8; eager/lazy wall >= 20
#      at N = 10,000.
#   2. Peak RSS of the lguest-run process (/usr/bin/time -v) for the default boot and for
#      the N = 10,000 runs.
#   3. Demand paging: `--workload touch --pages N` (lazy), which also reads every mapped page
#      once (a page fault each, filled by the host from the guest's tables): what a page
#      fault costs, as (touch wall - lazy wall) / (touch faults - lazy faults).
#
#   bench/vm.sh            RUNS=5
#   RUNS=3 bench/vm.sh
#
# Needs /dev/kvm (it says so and stops otherwise: the in-process backend has no exits).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
cargo build -q --release --bin lguest-run --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/lguest-run"
if ! [ -w /dev/kvm ]; then
  echo "bench/vm.sh: /dev/kvm is not usable here; the VM numbers need KVM" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # label args...
  local label=$1; shift
  /usr/bin/time -v "$bin" --json --backend kvm --ticks 1 "$@" >"$work/out.json" 2>"$work/time.txt"
  python3 - "$label" "$work/out.json" "$work/time.txt" >>"$work/rows.txt" <<'EOF'
import json, re, sys
label, out, tim = sys.argv[1:]
r = json.load(open(out))
w = r.get("workload") or {}
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(tim).read())
print(label, w.get("exits", -1), w.get("wall_ns", -1), w.get("hypercalls", -1),
      w.get("ring_drained", -1), r["exits"], r["wall_ns"], rss.group(1) if rss else -1,
      w.get("page_faults", -1), r.get("shadow", {}).get("faults_filled", -1))
EOF
}

for i in $(seq "$RUNS"); do
  for n in 1000 10000; do
    run "lazy-$n" --workload mmu --pages "$n"
    run "eager-$n" --workload mmu --pages "$n" --eager
    run "touch-$n" --workload touch --pages "$n"
  done
  run boot
done

python3 - "$work/rows.txt" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, *v = line.split()
    rows.setdefault(label, []).append([int(x) for x in v])
med = lambda label, i: statistics.median(r[i] for r in rows[label])
print("| N | mode | workload exits | of which page faults | target | workload wall (ms) | hypercalls | from the ring |")
print("|---|---|---|---|---|---|---|---|")
for n in (1000, 10000):
    for mode in ("lazy", "eager"):
        l = f"{mode}-{n}"
        target = f"<= {2 * n / 64 + 8:.1f} + faults" if mode == "lazy" else "(2N + faults)"
        print(f"| {n:,} | {mode} | {med(l, 0):.0f} | {med(l, 7):.0f} | {target} | {med(l, 1) / 1e6:.2f} | {med(l, 2):.0f} | {med(l, 3):.0f} |")
print()
print("| N | touch: workload exits | page faults | workload wall (ms) | per page fault (us) |")
print("|---|---|---|---|---|")
for n in (1000, 10000):
    t, l = f"touch-{n}", f"lazy-{n}"
    per = (med(t, 1) - med(l, 1)) / max(1, med(t, 7) - med(l, 7)) / 1e3
    print(f"| {n:,} | {med(t, 0):.0f} | {med(t, 7):.0f} | {med(t, 1) / 1e6:.2f} | {per:.1f} |")
print()
print("| N | eager/lazy wall time | eager/lazy exits | target |")
print("|---|---|---|---|")
for n in (1000, 10000):
    wr = med(f"eager-{n}", 1) / med(f"lazy-{n}", 1)
    er = med(f"eager-{n}", 0) / med(f"lazy-{n}", 0)
    print(f"| {n:,} | {wr:.1f} | {er:.1f} | {'>= 20' if n == 10000 else '-'} |")
print()
print("| run | whole-run exits | page faults filled | whole-run wall (ms) | peak RSS (MiB) |")
print("|---|---|---|---|---|")
for l in ("boot", "lazy-10000", "eager-10000", "touch-10000"):
    print(f"| {l} | {med(l, 4):.0f} | {med(l, 8):.0f} | {med(l, 5) / 1e6:.1f} | {med(l, 6) / 1024:.1f} |")
print(f"\n(medians of {len(rows['boot'])} runs each, interleaved)")
EOF
