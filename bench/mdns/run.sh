#!/bin/sh
# mdns benchmarks: time from the last agent's start to a full mesh for 3, 10 and 20 agents, each in its
# own network namespace on one bridge, and mDNS packets sent per agent per minute at steady state.
# Prints a markdown table for docs/benchmarks.md. Needs root, iproute2 and a build with chorus-agent,
# the p2p plugin and the mdns plugin:
#   bench/mdns/run.sh [BUILD_DIR] [--sizes 3,10,20] [--window 30] [--rounds 3] [--interval-ms 10000]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
plugins="$build/lib/chorus/plugins"
export CHORUS_AGENT_BIN="$build/bin/chorus-agent"
export CHORUS_MDNS_PLUGIN_DIR="$plugins" CHORUS_P2P_PLUGIN_DIR="$plugins"
export PYTHONPATH="$root/plugins/mdns/tests:$root/tests/integration"
for f in "$CHORUS_AGENT_BIN" "$plugins/chorus-mdns.so" "$plugins/chorus-p2p.so"; do
  [ -e "$f" ] || { echo "missing $f (build chorus-agent chorus_plugin_p2p chorus_plugin_mdns in $build)" >&2; exit 2; }
done
exec python3 "$here/mesh_bench.py" "$@"
