#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ with libFuzzer's coverage instrumentation
# and runs each for SECONDS (default 60), from its seed corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      all targets when none is named
#   SALON_FUZZ_RUNS=N scripts/fuzz.sh 0 T      N inputs instead of a duration
#   SALON_FUZZ_JOBS=J                           targets run J at a time (default:
#                                               the number of cores)
#
# Stable Rust: the flags below are those cargo-fuzz passes (sanitizer-coverage
# through LLVM's sancov pass, which rustc exposes as stable -C options), minus
# the address sanitizer, which needs nightly; libfuzzer-sys brings libFuzzer.
# Overflow checks and debug assertions are on (fuzz/Cargo.toml). Seeds live in
# fuzz/corpus/<target> (committed, small); what the fuzzer finds goes to
# target/fuzz/corpus/<target>, and a crashing input to
# target/fuzz/artifacts/<target>/ (add it as a regression test next to the
# parser, then to the seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
all=$(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^salon-fuzz$' || true)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(echo $all)"

command -v c++ >/dev/null || { echo "fuzz: libFuzzer needs a C++ compiler: apt-get install g++ (or run scripts/setup.sh)" >&2; exit 1; }
export CARGO_TARGET_DIR=${SALON_FUZZ_TARGET_DIR:-$PWD/target/fuzz}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
# An explicit --target keeps the flags off build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$triple" --bins
bin="$CARGO_TARGET_DIR/$triple/release"

run_one() {
  local t=$1 corpus="$CARGO_TARGET_DIR/corpus/$1" artifacts="$CARGO_TARGET_DIR/artifacts/$1"
  mkdir -p "$corpus" "$artifacts" "fuzz/corpus/$t"
  local limit=(-max_total_time="$seconds")
  [ -n "${SALON_FUZZ_RUNS:-}" ] && limit=(-runs="$SALON_FUZZ_RUNS")
  local log="$CARGO_TARGET_DIR/$t.log"
  if "$bin/$t" "${limit[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$corpus" "fuzz/corpus/$t" >"$log" 2>&1; then
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $t passed: ${runs:-?} inputs, ${cov:-cov: ?} edges, $(ls "$corpus" | wc -l) inputs in its corpus"
  else
    echo "fuzz: $t FAILED; the input is in $artifacts; the end of its log:" >&2
    tail -40 "$log" >&2
    return 1
  fi
}

jobs_max=${SALON_FUZZ_JOBS:-$(nproc)}
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs_max at a time"
status=0
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
