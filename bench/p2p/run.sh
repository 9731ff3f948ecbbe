#!/bin/sh
# p2p benchmarks in one run: chorus-agent <-> chorus-agent and js-libp2p <-> js-libp2p (the reference
# peer in tests/interop/js): raw (sink) and sha256-verified (echo) throughput over 1 and 64 streams,
# Noise handshakes per second, and memory per idle connection. Prints a markdown section for
# docs/benchmarks.md (see bench.py for what each row measures).
#
#   bench/p2p/run.sh [BUILD_DIR] [--total-mib N] [--handshakes N] [--idle N] [--repeat N]
#                    [--modes send,echo] [--only chorus|js] [--json FILE]
#
# The in-process micro-benchmarks of the same layers are bench_p2p (bench_p2p.cpp, built with
# -DCHORUS_BUILD_BENCH=ON): BUILD_DIR/bin/bench_p2p.
#
# BUILD_DIR (default: build) must contain chorus-agent, chorus-p2p.so and chorus-test.p2p-probe.so:
#   cmake --build BUILD_DIR --target chorus-agent chorus_plugin_p2p chorus_test_p2p_probe
# and tests/interop/js needs `npm ci` (scripts/setup.sh does it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=build
case "${1:-}" in
  ""|--*) ;;
  *) build=$1; shift ;;
esac
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build dir $build" >&2; exit 2; }

find_one() { find "$build" -name "$1" -not -path '*/CMakeFiles/*' 2>/dev/null | head -n 1; }
agent=$(find_one chorus-agent)
p2p=$(find_one chorus-p2p.so)
probe=$(find_one chorus-test.p2p-probe.so)
# Anything missing only skips the chorus column (bench.py says why); the js column still runs.
[ -n "$agent" ] && export CHORUS_AGENT_BIN="$agent"
[ -n "$p2p" ] && export CHORUS_P2P_PLUGIN_DIR=$(dirname "$p2p")
[ -n "$probe" ] && export CHORUS_P2P_PROBE_DIR=$(dirname "$probe")
export PYTHONPATH="$src/tests/integration:$src/tests/interop"
exec python3 "$here/bench.py" --command "bench/p2p/run.sh $build $*" "$@"
