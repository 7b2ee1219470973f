#!/usr/bin/env bash
# Instruction counts (valgrind --tool=callgrind) of the guest-side probes in
# bench/src/bin/callgrind_probe.rs: the generated typed wrapper against the same call by
# hand (the two counts must be equal), the cost of queueing one lazy call, and the ring
# drain per entry. Each probe is an #[inline(never)] function; --toggle-collect counts the
# instructions executed inside it (inclusive: callees too), over N calls.
#
#   bench/callgrind.sh          print the table; exit 1 if a typed/raw pair differs
#
# Uses CARGO_TARGET_DIR (default target/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/bench}
cargo build -q --release -p pv-bench --bin callgrind_probe --manifest-path "$root/Cargo.toml"
probe=$CARGO_TARGET_DIR/release/callgrind_probe
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Instructions inside function $2 (a callgrind --toggle-collect pattern) over $3 calls of
# mode $1, per call.
count() {
    local mode=$1 fn=$2 n=$3 per=${4:-1}
    valgrind -q --tool=callgrind --callgrind-out-file="$out/$mode" --toggle-collect="$fn" \
        "$probe" "$mode" "$n" >/dev/null
    local total
    total=$(awk '/^(summary|totals):/ { print $2; exit }' "$out/$mode")
    if [ -z "$total" ] || [ "$total" = 0 ]; then
        echo "no instructions collected for $fn in mode $mode" >&2
        exit 1
    fi
    awk -v t="$total" -v n="$n" -v p="$per" 'BEGIN { printf "%.2f", t / (n * p) }'
}

N=1000
typed_min=$(count typed-minimal pvb_typed_recorder $N)
raw_min=$(count raw-minimal pvb_raw_recorder $N)
typed_loop=$(count typed-loopback pvb_typed_loopback $N)
raw_loop=$(count raw-loopback pvb_raw_loopback $N)
lazy=$(count lazy-queue pvb_lazy_set_pte 64)
lazy_hand=$(count lazy-by-hand pvb_lazy_by_hand 64)
guest_lazy=$(count guest-lazy pvb_guest_lazy 64)
drain_nop=$(count drain-nop '*ring*drain*' 100 64)
drain_ref=$(count drain-reference '*Host*drain_ring*' 100 64)

printf '%-58s %14s\n' "probe (instructions per call, inclusive)" "Ir"
printf '%-58s %14s\n' "typed wrapper set_pte, minimal transport" "$typed_min"
printf '%-58s %14s\n' "raw Transport::hypercall(SET_PTE), minimal transport" "$raw_min"
printf '%-58s %14s\n' "typed wrapper set_clockevent, loopback into Host" "$typed_loop"
printf '%-58s %14s\n' "raw Transport::hypercall(SET_CLOCKEVENT), loopback" "$raw_loop"
printf '%-58s %14s\n' "queue one lazy set_pte (generated Batch, lazy mode)" "$lazy"
printf '%-58s %14s\n' "  the same queue by hand, cursor read inline (not generated)" "$lazy_hand"
printf '%-58s %14s\n' "Lguest::load_sp0 in lazy mode (guest's whole lazy path)" "$guest_lazy"
printf '%-58s %14s\n' "ring drain per entry, do-nothing host, generated layout" "$drain_nop"
printf '%-58s %14s\n' "ring drain per entry, Host::drain_ring (reference host)" "$drain_ref"

status=0
if [ "$typed_min" != "$raw_min" ]; then
    echo "MISMATCH: minimal transport typed $typed_min != raw $raw_min" >&2
    status=1
fi
if [ "$typed_loop" != "$raw_loop" ]; then
    echo "MISMATCH: loopback typed $typed_loop != raw $raw_loop" >&2
    status=1
fi
[ $status = 0 ] && echo "typed == raw on both transports"
exit $status
