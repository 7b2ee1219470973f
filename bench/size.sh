#!/usr/bin/env bash
# Bytes of machine code per generated wrapper and per lazy variant, release build, over the
# real `vmcall` transport: the `pvb_size_*` functions of bench/src/probes.rs, each one
# wrapper (or lazy variant, or the raw `Transport::hypercall` twin of a wrapper) compiled
# out of line, sized with `nm -S` (symbol size: from the entry to the `ret`, padding not
# included).
#
#   bench/size.sh
#
# Uses CARGO_TARGET_DIR (default target/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/bench}
cargo build -q --release -p pv-bench --lib --manifest-path "$root/Cargo.toml"
rlib=$CARGO_TARGET_DIR/release/libpv_bench.rlib
nm -S --defined-only "$rlib" 2>/dev/null | python3 -c '
import statistics, sys
size = {}
for line in sys.stdin:
    f = line.split()
    if len(f) == 4 and f[3].startswith("pvb_size_"):
        kind, call = f[3][len("pvb_size_"):].split("_", 1)
        size[kind, call] = int(f[1], 16)
calls = sorted(c for k, c in size if k == "wrap")
print("%-18s %6s %6s %6s %6s" % ("hypercall", "wrap", "raw", "ratio", "lazy"))
for c in calls:
    w, r = size["wrap", c], size["raw", c]
    lazy = size.get(("lazy", c), "-")
    print(f"{c:<18} {w:>6} {r:>6} {w / r:>6.3f} {lazy:>6}")
print()
print("%-8s %3s %5s %7s %5s %7s" % ("bytes", "n", "min", "median", "max", "mean"))
for kind in ("wrap", "raw", "lazy"):
    v = [s for (k, _), s in size.items() if k == kind]
    print(f"{kind:<8} {len(v):>3} {min(v):>5} {statistics.median(v):>7g} {max(v):>5} {statistics.mean(v):>7.1f}")
w = sum(s for (k, _), s in size.items() if k == "wrap")
r = sum(s for (k, _), s in size.items() if k == "raw")
print(f"total wrap / total raw: {w} / {r} = {w / r:.3f}")
'
# Whether the lazy variants still call the guest crate's RingCursor::slot out of line (not
# counted above); with `#[inline]` on it there is no such symbol.
echo
echo "out-of-line RingCursor::slot the lazy variants would call (guest crate):"
guest_rlib=$(ls -t "$CARGO_TARGET_DIR"/release/deps/libguest-*.rlib | head -1)
nm -S --defined-only -C "$guest_rlib" 2>/dev/null | python3 -c '
import sys
found = False
for line in sys.stdin:
    f = line.split(maxsplit=3)
    if len(f) == 4 and "RingCursor::slot" in f[3]:
        print(f"  {f[3].strip()}: {int(f[1], 16)} bytes")
        found = True
if not found:
    print("  none (inlined)")
'
