#!/usr/bin/env bash
# Cold-start benchmark of chorus-agent with 1, 10 and 50 no-op plugins, and `chorus-agent check` on 50.
#
#   bench/cold_start.sh [BUILD_DIR]        (default: build-bench next to this script's parent)
#
# Needs a build configured with -DCHORUS_BUILD_BENCH=ON (bench/run.sh does that) and python3. Uses
# hyperfine for the `check` timing when it is installed, else a python3 loop.
# Environment: REPEAT (default 20) runs per plugin count, COUNTS (default 1,10,50),
#              CHECK_RUNS (default 30), OUT_DIR (default BUILD_DIR/bench-results) for raw JSON.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:-$here/../build-bench}" && pwd)"
if [[ ! -f "$build/bench-env.sh" ]]; then
  echo "cold_start.sh: $build/bench-env.sh not found; configure with -DCHORUS_BUILD_BENCH=ON and build" >&2
  exit 2
fi
# shellcheck source=/dev/null
source "$build/bench-env.sh"
REPEAT="${REPEAT:-20}"
COUNTS="${COUNTS:-1,10,50}"
CHECK_RUNS="${CHECK_RUNS:-30}"
OUT_DIR="${OUT_DIR:-$build/bench-results}"
mkdir -p "$OUT_DIR"

for f in "$CHORUS_AGENT_BIN" "$CHORUS_BENCH_PLUGIN_DIR/chorus-bench.noop-$(printf %02d "$CHORUS_BENCH_NOOP_COUNT").so"; do
  [[ -e "$f" ]] || { echo "cold_start.sh: $f is missing; build the bench tree first" >&2; exit 2; }
done

echo "== chorus-agent run: cold start (build type $CHORUS_BENCH_BUILD_TYPE)"
python3 "$here/cold_start.py" --agent "$CHORUS_AGENT_BIN" --plugin-dir "$CHORUS_BENCH_PLUGIN_DIR" \
  --counts "$COUNTS" --repeat "$REPEAT" --json "$OUT_DIR/cold_start.json"

echo
echo "== chorus-agent check: 1 and $CHORUS_BENCH_NOOP_COUNT no-op plugins"
cfg_dir="$(mktemp -d /tmp/chorus-check-bench-XXXXXX)"
trap 'rm -rf "$cfg_dir"' EXIT
python3 "$here/cold_start.py" --agent "$CHORUS_AGENT_BIN" --plugin-dir "$CHORUS_BENCH_PLUGIN_DIR" \
  --counts "1,$CHORUS_BENCH_NOOP_COUNT" --config-dir "$cfg_dir" --configs-only
cfg1="$cfg_dir/chorus-1.yaml"
cfgN="$cfg_dir/chorus-$CHORUS_BENCH_NOOP_COUNT.yaml"
# Fail loudly if check does not accept the config (a benchmark of an error path is worthless).
"$CHORUS_AGENT_BIN" check -c "$cfgN" > /dev/null
if command -v hyperfine > /dev/null; then
  hyperfine -N --warmup 3 --runs "$CHECK_RUNS" --export-json "$OUT_DIR/check.json" \
    -n "check 1 plugin" "$CHORUS_AGENT_BIN check -c $cfg1" \
    -n "check $CHORUS_BENCH_NOOP_COUNT plugins" "$CHORUS_AGENT_BIN check -c $cfgN"
  python3 - "$OUT_DIR/check.json" "$CHORUS_BENCH_NOOP_COUNT" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
def p90(x):
    t = sorted(x["times"])
    return t[math.ceil(0.9 * len(t)) - 1] * 1e3
m1, mN = r[0]["median"] * 1e3, r[1]["median"] * 1e3
print(f"check 1 plugin: median {m1:.2f} ms, p90 {p90(r[0]):.2f} ms; {n} plugins: median {mN:.2f} ms, p90 {p90(r[1]):.2f} ms")
print(f"check added per plugin: (median{n} - median1)/{n - 1} = {(mN - m1) / (n - 1):.3f} ms")
PY
else
  python3 - "$CHORUS_AGENT_BIN" "$cfg1" "$cfgN" "$CHORUS_BENCH_NOOP_COUNT" "$CHECK_RUNS" <<'PY'
import statistics, subprocess, sys, time
agent, cfg1, cfgN, n, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def bench(cfg):
    for _ in range(3):
        subprocess.run([agent, "check", "-c", cfg], stdout=subprocess.DEVNULL, check=True)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        subprocess.run([agent, "check", "-c", cfg], stdout=subprocess.DEVNULL, check=True)
        t.append((time.perf_counter_ns() - t0) / 1e6)
    return t
for label, cfg in (("1 plugin", cfg1), (f"{n} plugins", cfgN)):
    t = sorted(bench(cfg))
    print(f"check {label}: median {statistics.median(t):.2f} ms, p90 {t[int(len(t) * 0.9 + 0.5) - 1]:.2f} ms ({runs} runs, python loop)")
PY
fi
