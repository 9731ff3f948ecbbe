#!/usr/bin/env python3
"""Where an idle agent's memory and CPU go (issue 21's per-agent targets), with every plugin enabled.

Starts the soak's cluster (clusterlab.py: N agents in namespaces, nats-server, the fake LLMs), waits until
every agent's directory lists every other one, lets it idle, then prints per agent RSS and CPU % of a
core, and for the first agent: smaps_rollup, the resident memory per mapping kind (heap, arenas, thread
stacks, each .so) and the CPU of each thread. Nothing is asserted: this is the measuring tool behind
docs/benchmarks.md ("Per-agent footprint"); soak.py checks the figures.

  sudo python3 tests/cluster/footprint.py --build build --agents 3 --idle 30 --default-timings
  sudo python3 tests/cluster/footprint.py --build build --env GLIBC_TUNABLES=glibc.malloc.arena_max=1
  sudo python3 tests/cluster/footprint.py --build build --agents 10 --default-timings --load 70 --sample-during-load

Needs what soak.py needs (root, iproute2, nats-server, age-keygen, a build tree).
"""
import argparse
import collections
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import soak  # noqa: E402 - sets sys.path for the shared test helpers

CLK_TCK = os.sysconf("SC_CLK_TCK")


def smaps_by_mapping(pid):
    """{mapping label: [rss kB, anon kB]} from /proc/pid/smaps. Anonymous mappings carry no name: one of
    about 8 MiB is a thread's stack (glibc's default size), one followed by a PROT_NONE reservation that
    completes it to 64 MiB is a malloc arena (its heap grows into the reservation)."""
    maps = []  # [start, end, perms, name, rss, anon]
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$", line)
            if m:
                maps.append([int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4).strip(), 0, 0])
            elif line.startswith("Rss:"):
                maps[-1][4] += int(line.split()[1])
            elif line.startswith("Anonymous:"):
                maps[-1][5] += int(line.split()[1])
    out = collections.defaultdict(lambda: [0, 0])
    for i, (start, end, perms, name, rss, anon) in enumerate(maps):
        size = end - start
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        if name:
            label = os.path.basename(name) if name.startswith("/") else name
        elif abs(size - (8 << 20)) <= 8192:
            label = "[anon: thread stacks]"
        elif nxt and not nxt[3] and nxt[2].startswith("---") and nxt[0] == end and \
                nxt[1] - start == 64 << 20:
            label = "[anon: malloc arenas]"
        else:
            label = "[anon: other]"
        out[label][0] += rss
        out[label][1] += anon
    return out


def thread_ticks(pid):
    """{tid: (name, utime + stime ticks)}."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            fields = s.rsplit(")", 1)[1].split()
            out[tid] = (name, int(fields[11]) + int(fields[12]))
        except (OSError, ValueError):
            pass
    return out


def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def prerequisites_met(args):
    """soak.prerequisites for the tools of this folder (every plugin required); prints why not."""
    args.allow_missing_plugins = False
    reason = soak.prerequisites(args)
    if reason:
        print(f"SKIPPED: {reason}")
    return not reason


def new_lab(env, default_timings=False):
    """The soak's ClusterLab (soak.prerequisites ran), every agent with `env` (KEY=VALUE strings)."""
    import clusterlab
    import ucxitest
    role_key, recipient = ucxitest.make_role_key()
    lab = clusterlab.ClusterLab(os.environ["CHORUS_CLUSTER_PLUGIN_DIR"], os.environ["NATS_SERVER_BIN"], role_key,
                                recipient, default_timings=default_timings)
    lab.agent_env = dict(e.split("=", 1) for e in env)
    return lab


def form_cluster(lab, agents):
    """Starts nats-server, the fake LLMs and `agents` agents, and waits until every agent's directory
    lists every other one."""
    from fake_ai import FakeServer
    from harness import free_port
    lab.start_services(FakeServer, free_port(lab.bridge_ip))
    for _ in range(agents):
        lab.add_node()
    for node in lab.nodes:
        lab.start(node)
    lab.wait_directories(90)


def run_load(lab, seconds):
    """The soak's load (monitors.py) at its --short rates for `seconds`."""
    import monitors
    from scenario import SHORT
    probe = monitors.PubsubProbe(lab.nodes, SHORT["pubsub_every"])
    for n in lab.nodes:
        probe.attach(n)
    ai = monitors.AiLoad(lab.nodes, SHORT["ai_clients"])
    tasks = monitors.TaskLoad(lab.nodes, SHORT["task_every"], lab.tag)
    store = monitors.StoreLoad(lab.nodes, SHORT["store_every"], lab.tag)
    ai.start()
    for t in (probe.ticker, tasks.ticker, store.ticker):
        t.start()
    time.sleep(seconds)  # the load lasts this long
    ai.stop()
    for t in (probe.ticker, tasks.ticker, store.ticker):
        t.stop()
    probe.close()
    print(f"load: {len(probe.published)} publications, {len(ai.results)} AI requests, {len(tasks.accepted)} tasks, "
          f"{len(store.ucxi_acked)} UCXI puts", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("CHORUS_BUILD_DIR", ""))
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30, help="seconds of idle measured after the cluster formed")
    ap.add_argument("--settle", type=float, default=10, help="seconds left out after the cluster formed")
    ap.add_argument("--default-timings", action="store_true", help="the plugins' default periods and timeouts")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE in every agent's environment")
    ap.add_argument("--load", type=float, default=0,
                    help="seconds of the soak's load (AI chat, pubsub, tasks, UCXI/DHT) before the idle period")
    ap.add_argument("--sample-during-load", action="store_true",
                    help="also print every agent's RSS before the load and late in it")
    ap.add_argument("--hold", action="store_true", help="keep the cluster running until Enter (to inspect it)")
    args = ap.parse_args()
    if not prerequisites_met(args):
        return soak.SKIP
    lab = new_lab(args.env, args.default_timings)
    try:
        form_cluster(lab, args.agents)
        if args.load:
            if args.sample_during_load:
                import threading
                pids = [n.pid for n in lab.nodes]
                idle_rss = [rss_kib(p) / 1024 for p in pids]
                load = threading.Thread(target=run_load, args=(lab, args.load))
                load.start()
                time.sleep(args.load * 0.85)  # late in the load, when its state has built up
                rss = [rss_kib(p) / 1024 for p in pids]
                print(f"== RSS (MiB) idle before the load: mean {sum(idle_rss) / len(idle_rss):.1f}, "
                      f"max {max(idle_rss):.1f}; at {args.load * 0.85:.0f} s of load: mean {sum(rss) / len(rss):.1f}, "
                      f"max {max(rss):.1f}", flush=True)
                load.join()
            else:
                run_load(lab, args.load)
        time.sleep(args.settle)  # start-up work (DHT bootstrap, first announcements) is not idle
        pids = [n.pid for n in lab.nodes]
        t0, c0, th0 = time.monotonic(), [proc_ticks(p) for p in pids], thread_ticks(pids[0])
        time.sleep(args.idle)  # the measured idle period
        dt = time.monotonic() - t0
        cpu = [100.0 * (proc_ticks(p) - c) / CLK_TCK / dt for p, c in zip(pids, c0)]
        th1 = thread_ticks(pids[0])
        rss = [rss_kib(p) / 1024 for p in pids]
        timings = "default" if args.default_timings else "test"
        print(f"== {args.agents} agents, {timings} timings, env {lab.agent_env or '-'}, "
              f"{f'after {args.load:.0f} s of load, ' if args.load else ''}idle {dt:.0f} s")
        for n, c, r in zip(lab.nodes, cpu, rss):
            print(f"  {n.name}: RSS {r:.1f} MiB, CPU {c:.2f} % of a core")
        print(f"  mean: RSS {sum(rss) / len(rss):.1f} MiB, CPU {sum(cpu) / len(cpu):.2f} %")
        print(f"== {lab.nodes[0].name} smaps_rollup")
        with open(f"/proc/{pids[0]}/smaps_rollup") as f:
            print("".join("  " + l for l in f if re.match(r"^(Rss|Pss|Pss_Anon|Pss_File|Anonymous|Private_Dirty|"
                                                        r"Shared_Clean|Private_Clean)", l)), end="")
        print(f"== {lab.nodes[0].name} resident kB per mapping (rss, anon), largest first")
        rows = sorted(smaps_by_mapping(pids[0]).items(), key=lambda kv: -kv[1][0])
        for label, (r, a) in rows[:25]:
            print(f"  {r:7d} {a:7d}  {label}")
        print(f"== {lab.nodes[0].name} CPU per thread over the idle period (% of a core), busiest first")
        busy = sorted(((100.0 * (t - th0.get(tid, (None, 0))[1]) / CLK_TCK / dt, name, tid)
                       for tid, (name, t) in th1.items()), reverse=True)
        for pct, name, tid in busy[:12]:
            print(f"  {pct:6.2f}  {name} ({tid})")
        print(f"  threads: {len(th1)}")
        if args.hold:
            print("pids:", pids, "- Enter ends the cluster", flush=True)
            sys.stdin.readline()
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
