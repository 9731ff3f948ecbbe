#!/usr/bin/env python3
"""Anonymous memory of every agent through load, a partition and its heal (issue 21's "RSS growth
bounded"), every 10 s. The tool behind docs/benchmarks.md ("Memory through a partition heal"); nothing
is asserted here, soak.py judges growth.

  sudo python3 tests/cluster/heal_memory.py --build build --agents 10 --long
  sudo python3 tests/cluster/heal_memory.py --build build --wait-file /tmp/go   # attach heaptrack -p first

The first two agents form the minority side of the partition. With --wait-file the load starts once
that file exists (the agents' pids are printed before), so a heap profiler can attach to one of them.
Needs what soak.py needs (root, iproute2, nats-server, age-keygen, a build tree).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import soak  # noqa: E402 - sets sys.path for the shared test helpers
from footprint import prerequisites_met  # noqa: E402


def anon_mib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Anonymous:")) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("CHORUS_BUILD_DIR", ""))
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--long", action="store_true", help="the --long soak's load rates (default: --short's)")
    ap.add_argument("--load", type=float, default=60, help="seconds of load before the partition")
    ap.add_argument("--partition", type=float, default=20, help="seconds the partition holds")
    ap.add_argument("--after", type=float, default=40, help="seconds of load after the heal")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE in every agent's environment")
    ap.add_argument("--wait-file", default="", help="start the load once this file exists")
    args = ap.parse_args()
    if not prerequisites_met(args):
        return soak.SKIP
    import monitors
    from footprint import form_cluster, new_lab
    from harness import wait_for
    from scenario import LONG, SHORT
    plan = LONG if args.long else SHORT
    lab = new_lab(args.env)
    t0 = time.monotonic()

    def report(phase):
        print(f"[{time.monotonic() - t0:5.0f}s] {phase:9s} anon MiB: "
              + " ".join(f"{anon_mib(n.pid):5.1f}" for n in lab.nodes), flush=True)

    def hold(seconds, phase, every=10):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(every, max(0.0, end - time.monotonic())))  # the phase's own duration
            report(phase)

    try:
        form_cluster(lab, args.agents)
        print("pids:", " ".join(str(n.pid) for n in lab.nodes), flush=True)
        if args.wait_file:
            wait_for(lambda: os.path.exists(args.wait_file), 3600, args.wait_file, interval=0.5)
        t0 = time.monotonic()
        report("formed")
        probe = monitors.PubsubProbe(lab.nodes, plan["pubsub_every"])
        for n in lab.nodes:
            probe.attach(n)
        ai = monitors.AiLoad(lab.nodes, plan["ai_clients"])
        tickers = [probe.ticker, monitors.TaskLoad(lab.nodes, plan["task_every"], lab.tag).ticker,
                   monitors.StoreLoad(lab.nodes, plan["store_every"], lab.tag).ticker]
        ai.start()
        for t in tickers:
            t.start()
        hold(args.load, "load")
        lab.partition(lab.nodes[:2], lab.nodes[2:])
        hold(args.partition, "partition", 5)
        lab.heal()
        hold(args.after, "healed")
        ai.stop()
        for t in tickers:
            t.stop()
        probe.close()
        hold(20, "quiet")
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
