#!/usr/bin/env bash
# The generator's cost (BENCHMARKS.md, part 4):
#   1. `pvgen generate` (release build) on spec/lguest.toml and on synthetic specs of 100,
#      1,000 and 10,000 hypercalls (bench/synth_spec.py): wall time (median of RUNS) and
#      peak RSS (/usr/bin/time -v "Maximum resident set size"), growth factor per 10x;
#   2. where the time goes: bench/src/bin/gen_phases.rs on the same specs;
#   3. proc-macro expansion of spec/lguest.toml: `cargo build` (dev profile) of a tiny
#      crate whose only item is `pv_macros::abi!("spec/lguest.toml")`, against the same
#      crate `include!`-ing the generated file instead and the same crate empty (each
#      timed after `touch src/lib.rs`, dependencies already built; median of RUNS);
#   4. build time of the generated crate: `pvgen crate spec/lguest.toml --out DIR`, then
#      `cargo build --offline` in DIR, clean (with its one dependency, x86) and of the crate
#      alone (x86 built, src/lib.rs touched); dev and release; median of RUNS.
# Every cargo build here runs with CARGO_INCREMENTAL=0.
#
#   bench/generator.sh            everything (about 2 minutes on 2 cores)
#   RUNS=3 bench/generator.sh     fewer repetitions
#
# Uses CARGO_TARGET_DIR (default target/bench); scratch files go to a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/bench}
RUNS=${RUNS:-5}
# Whole-crate compiles only: an incremental cache would let a touched crate skip work.
export CARGO_INCREMENTAL=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build -q --release --bin pvgen --manifest-path "$root/Cargo.toml"
cargo build -q --release -p pv-bench --bin gen_phases --manifest-path "$root/Cargo.toml"
pvgen=$CARGO_TARGET_DIR/release/pvgen

median() { python3 -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# Runs "$@" RUNS times; prints "median_seconds max_rss_kb".
measure() {
    local times=() rss=0 i t m
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>&1
        read -r t m <"$work/time"
        times+=("$t")
        ((m > rss)) && rss=$m
    done
    echo "$(median "${times[@]}") $rss"
}

# Like measure, but the wall time of a command with a setup step run (untimed) before each.
measure_with() {
    local setup=$1
    shift
    local times=() i s e
    for ((i = 0; i < RUNS; i++)); do
        eval "$setup"
        s=$(date +%s.%N)
        "$@" >/dev/null 2>&1
        e=$(date +%s.%N)
        times+=("$(python3 -c "print($e - $s)")")
    done
    median "${times[@]}"
}

echo "== 1. pvgen generate (release), median of $RUNS runs"
cp "$root/spec/lguest.toml" "$work/lguest.toml"
specs=("$work/lguest.toml")
for n in 100 1000 10000; do
    python3 "$root/bench/synth_spec.py" "$n" >"$work/synth_$n.toml"
    "$pvgen" check "$work/synth_$n.toml" >/dev/null
    specs+=("$work/synth_$n.toml")
done
declare -A T M
printf '%-16s %8s %10s %12s %12s\n' spec hypercalls "time (s)" "peak RSS MB" "output MB"
for s in "${specs[@]}"; do
    name=$(basename "$s" .toml)
    calls=$(grep -c '^\[\[hypercall\]\]' "$s")
    read -r t m < <(measure "$pvgen" generate "$s" --out "$work/out_$name")
    T[$name]=$t
    M[$name]=$m
    out=$(du -sb "$work/out_$name" | cut -f1)
    printf '%-16s %8d %10.3f %12.1f %12.1f\n' "$name" "$calls" "$t" "$(python3 -c "print($m / 1024)")" \
        "$(python3 -c "print($out / 1e6)")"
done
echo "growth per 10x hypercalls (time, peak RSS):"
python3 - "${T[synth_100]}" "${T[synth_1000]}" "${T[synth_10000]}" \
    "${M[synth_100]}" "${M[synth_1000]}" "${M[synth_10000]}" <<'PY'
import sys
t1, t2, t3, m1, m2, m3 = map(float, sys.argv[1:])
print(f"  100 -> 1,000:    time x{t2 / t1:.1f}, RSS x{m2 / m1:.1f}")
print(f"  1,000 -> 10,000: time x{t3 / t2:.1f}, RSS x{m3 / m2:.1f}")
PY

echo
echo "== 2. phases (bench/src/bin/gen_phases.rs), one run each"
for s in "${specs[@]}"; do
    echo "-- $(basename "$s")"
    "$CARGO_TARGET_DIR/release/gen_phases" "$s"
done

echo
echo "== 3. proc-macro expansion of spec/lguest.toml (dev build of one crate), median of $RUNS"
# The combined generated file, as build.rs writes it, for the include! variant.
cargo build -q -p host-stubs --manifest-path "$root/Cargo.toml"
combined=$(ls -t "$CARGO_TARGET_DIR"/debug/build/host-stubs-*/out/lguest.rs | head -1)
mk() { # name, lib.rs body
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
pv-macros = { path = "$root/pv-macros" }
x86 = "0.52"

[workspace]
TOML
    printf '%s\n' "#![allow(warnings)]" "$2" >"$work/$1/src/lib.rs"
    cp "$root/Cargo.lock" "$work/$1/Cargo.lock"
}
mk pvb-empty "pub fn nothing() {}"
mk pvb-include "pub mod abi { include!(\"$combined\"); }"
mk pvb-macro "pub mod abi { pv_macros::abi!(\"$root/spec/lguest.toml\"); }"
declare -A B
for c in pvb-empty pvb-include pvb-macro; do
    dir=$work/$c
    cargo build -q --offline --manifest-path "$dir/Cargo.toml" --target-dir "$work/macro-target"
    B[$c]=$(measure_with "touch $dir/src/lib.rs" \
        cargo build -q --offline --manifest-path "$dir/Cargo.toml" --target-dir "$work/macro-target")
    printf '%-12s %8.3f s\n' "$c" "${B[$c]}"
done
python3 - "${B[pvb-empty]}" "${B[pvb-include]}" "${B[pvb-macro]}" <<'PY'
import sys
e, i, m = map(float, sys.argv[1:])
print(f"abi! - include! (the expansion itself):      {m - i:+.3f} s")
print(f"abi! - empty (expansion + compiling the ABI): {m - e:+.3f} s")
print(f"include! - empty (compiling the ABI):         {i - e:+.3f} s")
PY

echo
echo "== 4. build of the generated crate (pvgen crate spec/lguest.toml), median of $RUNS"
"$pvgen" crate "$root/spec/lguest.toml" --out "$work/lguest-abi" >/dev/null
cp "$root/Cargo.lock" "$work/lguest-abi/Cargo.lock"
for profile in dev release; do
    flag=""
    [ $profile = release ] && flag="--release"
    build=(cargo build -q --offline $flag --manifest-path "$work/lguest-abi/Cargo.toml" --target-dir "$work/abi-target")
    clean=$(measure_with "rm -rf $work/abi-target" "${build[@]}")
    # The crate alone: its dependency (x86) already built, its source touched.
    alone=$(measure_with "touch $work/lguest-abi/src/lib.rs" "${build[@]}")
    printf '%-8s clean build (with x86) %7.3f s   lguest-abi alone %7.3f s\n' "$profile" "$clean" "$alone"
done
