"""mdns benchmark: time to a full mesh and steady-state packet rate, agents in network namespaces.

For each size N: N-1 agents are started and left to mesh; then the last agent starts, and the time
from launching its process to every agent's /p2p/peers listing all N-1 others is the mesh time (it
includes the agent's own start-up: loading plugins, binding sockets). Then packets sent per agent
are counted over a window (chorus_mdns_packets_total{direction="out"}, all interfaces, IPv4 + IPv6)
and reported per minute. Prints a markdown table. Needs root and `ip netns` (see run.sh).
"""
import argparse
import statistics
import sys
import time

import mdnslab
from mdnslab import Lab, full_mesh, unique_tag, wait_until


def run_size(n, window_s, interval_ms, rounds):
    times = []
    rate = None
    for r in range(rounds):
        lab = Lab()
        try:
            tag = unique_tag("bench")
            cfg = {"service_tag": tag, "query_interval_ms": interval_ms}
            first = [lab.start_agent(cfg) for _ in range(n - 1)]
            if len(first) > 1:
                wait_until(lambda: full_mesh(first), 60, f"mesh of the first {n - 1}")
            t0 = time.monotonic()
            last = lab.start_agent(cfg, wait=False)
            Lab.wait_agent(last)
            everyone = first + [last]
            wait_until(lambda: full_mesh(everyone), 60, f"mesh of {n}", interval=0.005)
            times.append(time.monotonic() - t0)
            if r == rounds - 1 and window_s > 0:
                before = [a.metric("chorus_mdns_packets_total", 'direction="out"') for a in everyone]
                time.sleep(window_s)  # a measurement window, not a synchronisation
                after = [a.metric("chorus_mdns_packets_total", 'direction="out"') for a in everyone]
                rate = statistics.mean((b - a) * 60.0 / window_s for a, b in zip(before, after))
        finally:
            lab.close()
    return times, rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,10,20")
    ap.add_argument("--window", type=float, default=30.0, help="seconds of steady state to count packets")
    ap.add_argument("--interval-ms", type=int, default=10000, help="query_interval_ms (plugin default 10000)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    why = mdnslab.lab_missing_reason()
    if why:
        print(f"mdns benchmark skipped: {why}", file=sys.stderr)
        return 77
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        times, rate = run_size(n, args.window, args.interval_ms, args.rounds)
        rows.append((n, times, rate))
        print(f"N={n}: mesh {['%.0f ms' % (t * 1000) for t in times]}, {rate:.1f} packets/min/agent", file=sys.stderr)
    print(f"| agents | full mesh after the last agent starts (median of {args.rounds}, min-max) | "
          f"packets sent per agent per minute (steady state, query interval {args.interval_ms / 1000:g} s) |")
    print("|---|---|---|")
    for n, times, rate in rows:
        print(f"| {n} | {statistics.median(times) * 1000:.0f} ms ({min(times) * 1000:.0f}-{max(times) * 1000:.0f}) | "
              f"{rate:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
