#!/usr/bin/env bash
# Regenerates the zero-cost listings: the release-mode instructions of the functions in
# guest/src/zero_cost.rs, each a hypercall made through a generated wrapper (generated.s),
# and of their twins in guest/examples/zero_cost_hand.rs, the same hypercalls in
# hand-written inline asm (hand_written.s).
#
#   guest/asm/regen.sh            rewrite guest/asm/generated.s and guest/asm/hand_written.s
#   guest/asm/regen.sh OUTDIR     write them to OUTDIR instead (what the test does)
#
# tests/zero_cost.rs checks that each pair has the same instructions and that the
# committed listings are what this script produces now.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here}
target=${ZERO_COST_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/zero-cost}
mkdir -p "$out"
cargo=${CARGO:-cargo}
# Only the guest package itself is rebuilt each time (its dependencies stay built), so
# that rustc runs and writes fresh listings.
"$cargo" clean -q --release -p guest --manifest-path "$root/Cargo.toml" --target-dir "$target"
"$cargo" rustc -q --release -p guest --lib --features zero-cost-listing \
    --manifest-path "$root/Cargo.toml" --target-dir "$target" -- --emit asm
"$cargo" rustc -q --release -p guest --example zero_cost_hand \
    --manifest-path "$root/Cargo.toml" --target-dir "$target" -- --emit asm
lib_asm=$(ls "$target"/release/deps/guest-*.s)
hand_asm=$(ls "$target"/release/examples/zero_cost_hand-*.s)

# Each function from its label to the end of its body, without assembler directives
# other than the label itself.
extract() {
    awk -v prefix="$2" '
        $0 ~ "^" prefix "[a-z0-9_]*:$" { on = 1; print; next }
        on && /^\.Lfunc_end/ { on = 0; print ""; next }
        on && /^[[:space:]]*\.cfi_/ { next }
        on && /^[[:space:]]*#/ { next }
        on { print }
    ' "$1"
}
{
    echo "# Generated wrappers (guest/src/zero_cost.rs). Regenerate: guest/asm/regen.sh"
    extract "$lib_asm" zc_generated_
} > "$out/generated.s"
{
    echo "# Hand-written inline asm (guest/examples/zero_cost_hand.rs). Regenerate: guest/asm/regen.sh"
    extract "$hand_asm" zc_hand_
} > "$out/hand_written.s"
