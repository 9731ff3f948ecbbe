#!/usr/bin/env bash
# Builds the benchmark tree (Release) and runs the benchmarks, printing the figures.
#
#   bench/run.sh [SUITE...]      suites: machine service_call cold_start shhh (default: all, in that order);
#                                election (bench/election/run.py, ~12 min, on request only)
#
# Environment:
#   BUILD_DIR   build tree (default: <repo>/build-bench); configured with
#               -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_TESTS=OFF -DCHORUS_BUILD_BENCH=ON
#   OUT_DIR     raw results (JSON) go here (default: $BUILD_DIR/bench-results)
#   REPS        Google Benchmark repetitions (default 10; the median is the figure to quote)
#   REPEAT, COUNTS, CHECK_RUNS   passed on to bench/cold_start.sh
#   NO_BUILD=1  skip configure + build
#
# To add a benchmark for a later issue: build it from bench/CMakeLists.txt (add it to the
# chorus_bench target and, if a script needs its path, to bench-env.sh there), then add a
# suite_<name> function below and its name to ALL_SUITES.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$src/build-bench}"
REPS="${REPS:-10}"
ALL_SUITES=(machine service_call cold_start shhh)

if [[ "${NO_BUILD:-0}" != 1 ]]; then
  gen=()
  if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]] && command -v ninja > /dev/null; then gen=(-G Ninja); fi
  cmake -S "$src" -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCHORUS_BUILD_TESTS=OFF \
    -DCHORUS_BUILD_BENCH=ON > /dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target chorus_bench
fi
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
# shellcheck source=/dev/null
source "$BUILD_DIR/bench-env.sh"
OUT_DIR="${OUT_DIR:-$BUILD_DIR/bench-results}"
export OUT_DIR
mkdir -p "$OUT_DIR"
if [[ "$CHORUS_BENCH_BUILD_TYPE" != Release ]]; then
  echo "run.sh: warning: $BUILD_DIR is a '$CHORUS_BENCH_BUILD_TYPE' build; published figures come from Release" >&2
fi

suite_machine() {
  echo "== machine"
  echo "nproc: $(nproc)"
  lscpu | head
  free -h
  echo "compiler: $CHORUS_BENCH_CXX ($(c++ --version | head -1))"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
}

suite_service_call() {
  echo "== bench_service_call (median of $REPS repetitions)"
  "$CHORUS_BENCH_SERVICE_CALL_BIN" --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT_DIR/service_call.json" --benchmark_out_format=json
  echo
}

suite_cold_start() {
  "$here/cold_start.sh" "$BUILD_DIR"
  echo
}

suite_shhh() {
  echo "== shhh_bench (SHHH sentinel, built-in rules, 1 KiB lines, one core; median of $REPS repetitions)"
  taskset -c 1 "$BUILD_DIR/bin/shhh_bench" --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT_DIR/shhh.json" --benchmark_out_format=json
  echo
}

suite_election() {
  echo "== election (failover over 30 admin kills, idle 10-agent cluster; ~12 minutes)"
  python3 "$here/election/run.py" --build "$BUILD_DIR" --json "$OUT_DIR/election.json"
  echo
}

suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=("${ALL_SUITES[@]}")
for s in "${suites[@]}"; do
  if ! declare -F "suite_$s" > /dev/null; then
    echo "run.sh: unknown suite '$s' (have: ${ALL_SUITES[*]})" >&2
    exit 2
  fi
  "suite_$s"
done
echo "raw results: $OUT_DIR"
