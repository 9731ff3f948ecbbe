#!/usr/bin/env python3
"""gossip benchmarks: chorus-agents (p2p + gossip + the bench.gossip-load plugin) and js-libp2p gossipsub
nodes (tests/interop/js/gossip_peer.mjs) in the same run, over loopback. Standard library only.

  python3 bench/gossip/run.py [--build BUILD_DIR] [--only chorus|js] [--json FILE] [scenario options]

BUILD_DIR (default: build) must hold chorus-agent, chorus-p2p.so, chorus-gossip.so and
chorus-bench.gossip-load.so (configure with -DCHORUS_BUILD_BENCH=ON, then
`cmake --build BUILD_DIR --target chorus-agent chorus_plugin_p2p chorus_plugin_gossip bench_plugin_gossip_load`);
the js column needs `npm ci` in tests/interop/js. A missing side is skipped with the reason.

Scenarios (each run once per implementation; both sides get the same workload and the same payload,
bench/gossip/plugin/load_plugin.cpp and gossip_peer.mjs's publish_many / bench_receive):
  * saturation: one publisher -> one receiver, --repeat times (median), --count signed messages of
    --size bytes published as fast as the publisher's API takes them (chorus: publish_raw from one
    thread; js: publish with up to 64 in flight). Figure: messages per second arriving at the
    receiver, from the earliest publish time among the received messages to the last arrival. A chorus
    publisher that outruns its receiver drops RPCs at its bounded per-peer send queue
    (peer_queue_bytes); they are counted (publisher_dropped_queue_full) and the receive then ends 3 s
    after the last arrival. Also: CPU time (user + system, every thread, from /proc/PID/stat) of the
    publisher and the receiver per 1000 messages received.
  * latency (run first, on the fresh pair): --repeat runs of --latency-count messages at --latency-rate
    per second; p50 / p99 of arrival (receiver's realtime clock) - publish time (publisher's realtime
    clock, in the payload); the run with the median p99 is reported.
  * fan-out: --mesh nodes (agent i dials agents i-1 and i/2, a connected graph with chords), all joined,
    node 0 publishes --fanout-count messages as fast as it can; every other node counts. Figures: the
    slowest receiver's messages per second, deliveries per second over all receivers, CPU of all nodes
    per 1000 published messages.
  * memory: --mem-nodes nodes, fully connected, each joins --topics topics; resident set size (VmRSS;
    js after a forced GC) of each node before and after, once every node sees every other as a
    subscriber of every topic. Figure: RSS delta / (topics x peers) per node, median over the nodes.
Targets (docs/benchmarks.md, Gossip): >= 15 000 msg/s into one receiver, >= 5x js, p99 < 5 ms at
1 000 msg/s.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/
from benchlib import cpu_model, find_one  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def setup_environment(build):
    """Points the test helpers at the build (they read the environment when imported)."""
    found = {n: find_one(build, n) for n in ("chorus-agent", "chorus-p2p.so", "chorus-gossip.so",
                                              "chorus-bench.gossip-load.so")}
    if found["chorus-agent"]:
        os.environ["CHORUS_AGENT_BIN"] = found["chorus-agent"]
    if found["chorus-p2p.so"]:
        os.environ["CHORUS_P2P_PLUGIN_DIR"] = os.path.dirname(found["chorus-p2p.so"])
    if found["chorus-gossip.so"]:
        os.environ["CHORUS_GOSSIP_PLUGIN_DIR"] = os.path.dirname(found["chorus-gossip.so"])
    os.environ.setdefault("GOSSIP_JS_DIR", os.path.join(SRC, "tests", "interop", "js"))
    for d in ("tests/integration", "tests/interop", "plugins/gossip/tests"):
        sys.path.insert(0, os.path.join(SRC, d))
    return found


# ---- measurements --------------------------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU time of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vmrss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Background:
    """Runs fn() in a thread; result() joins it and returns its value or raises its exception."""

    def __init__(self, fn):
        self.value = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.value = fn()
        except BaseException as e:  # handed to result()
            self.error = e

    def result(self, timeout=None):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("background call still running")
        if self.error:
            raise self.error
        return self.value


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---- the two kinds of nodes, behind one interface ------------------------------------------------

class ChorusNode:
    kind = "chorus"

    def __init__(self, ws, name, bootstrap=(), gossip=None):
        import gossiptest
        from harness import Agent, free_port
        state = os.path.join(ws, f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        plugin_dirs = [gossiptest.P2P_PLUGIN_DIR, gossiptest.GOSSIP_PLUGIN_DIR, LOAD_PLUGIN_DIR]
        p2p_cfg = {"listen": [f"/ip4/127.0.0.1/tcp/{port}"]}
        if bootstrap:
            p2p_cfg["bootstrap_peers"] = [b.addr for b in bootstrap]
        lines = [
            "agent:", f"  id: {json.dumps('bench-' + name)}",
            "host:", "  http:", "    listen: 127.0.0.1:0", "  log_level: info",
            f"  state_dir: {json.dumps(state)}", "  shutdown_timeout_ms: 8000",
            f"  plugin_dirs: {json.dumps(plugin_dirs)}",
            "plugins:",
            "  p2p: " + json.dumps({"enabled": True, "critical": True, "config": p2p_cfg}),
            "  gossip: " + json.dumps({"enabled": True, "critical": True, "config": dict(gossip or {})}),
            "  bench.gossip-load: " + json.dumps({"enabled": True, "critical": True}),
        ]
        path = os.path.join(ws, f"{name}.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.agent = Agent(path, label=f"bench-{name}")
        self.agent.wait_ready()
        self.ga = gossiptest.GossipAgent(self.agent, f"/ip4/127.0.0.1/tcp/{port}", f"bench-{name}")
        self.peer_id = self.ga.peer_id
        self.addr = self.ga.addr
        self.pid = self.agent.proc.pid

    def join(self, topic):
        self.ga.join(topic)

    def subscribers(self, topic):
        return self.ga.topic_peers(topic)

    def receive(self, topic, count, timeout_ms, idle_ms=0):
        """Starts a receive; returns a Background whose result is the answer. Returns once armed."""
        body = {"topic": topic, "count": count, "timeout_ms": timeout_ms, "idle_ms": idle_ms}
        call = Background(lambda: self.ga.post("/bench/gossip/receive", body,
                                               timeout=timeout_ms / 1000 + 60))
        from urllib.parse import quote

        def armed():
            status, ans = self.ga.get(f"/bench/gossip/armed?topic={quote(topic, safe='')}")
            return status == 200 and ans.get("armed")
        wait_until(armed, 30, f"{self.peer_id} to arm its receive on {topic}")
        return _Answer(call)

    def publish_many(self, topic, count, size, rate, timeout):
        status, ans = self.ga.post("/bench/gossip/publish", {"topic": topic, "count": count, "size": size, "rate": rate},
                                   timeout=timeout)
        if status != 200:
            raise RuntimeError(f"publish answered {status}: {ans}")
        return ans

    def rss(self):
        return vmrss(self.pid)

    def dropped(self):
        """RPCs this node dropped because a peer's send queue was full (chorus_gossip_rpcs_dropped_total)."""
        return int(self.ga.metric("chorus_gossip_rpcs_dropped_total", 'reason="queue_full"'))

    def close(self):
        return self.agent.finish()


class _Answer:
    def __init__(self, call):
        self.call = call

    def result(self, timeout):
        status, ans = self.call.result(timeout)
        if status != 200:
            raise RuntimeError(f"receive answered {status}: {ans}")
        return ans


class JsNode:
    kind = "js"

    def __init__(self, name, bootstrap=()):
        import gossiptest
        import p2ptest

        class Peer(gossiptest.GossipJsPeer):
            def __init__(self):  # node with --expose-gc, so `rss` measures after a full GC
                p2ptest.LinePeer.__init__(self, [gossiptest.NODE, "--expose-gc",
                                                 os.path.join(gossiptest.JS_DIR, "gossip_peer.mjs")],
                                          gossiptest.JS_DIR)
        self.peer = Peer()
        self.peer_id = self.peer.peer_id
        self.addr = self.peer.addr
        self.pid = self.peer.pid()
        for b in bootstrap:
            self.peer.ok("dial", target=b.addr)

    def join(self, topic):
        self.peer.ok("subscribe", topic=topic)

    def subscribers(self, topic):
        return self.peer.subscribers(topic)

    def receive(self, topic, count, timeout_ms, idle_ms=0):
        # gossip_peer.mjs's bench_receive has no idle cut-off; js publishes never outran its queues here.
        start = self.peer.mark()
        cid = self.peer.send("bench_receive", topic=topic, count=count, timeout_ms=timeout_ms)
        self.peer.wait_event(lambda e: e.get("event") == "bench_receive:armed" and e.get("id") == cid, start=start,
                             timeout=30, what="bench_receive:armed")
        return _JsAnswer(self.peer, cid)

    def publish_many(self, topic, count, size, rate, timeout):
        return self.peer.ok("publish_many", timeout=timeout, topic=topic, count=count, size=size, rate=rate)

    def rss(self):
        return self.peer.ok("rss")["rss_bytes"]

    def dropped(self):
        return None

    def close(self):
        self.peer.stop()
        return []


class _JsAnswer:
    def __init__(self, peer, cid):
        self.peer, self.cid = peer, cid

    def result(self, timeout):
        r = self.peer.result(self.cid, timeout=timeout)
        if not r.get("ok"):
            raise RuntimeError(f"bench_receive failed: {r.get('error')}")
        return r


# ---- scenarios -----------------------------------------------------------------------------------

def connect_all(nodes, topic, timeout=60):
    """Every node joins topic; waits until each sees all the nodes it is connected to as subscribers
    (connected: the graph the nodes were started with, known from who dialled whom)."""
    for n in nodes:
        n.join(topic)
    for n in nodes:
        wanted = {m.peer_id for m in n.neighbours}
        wait_until(lambda: wanted <= n.subscribers(topic), timeout, f"{n.kind} {n.peer_id} to see {len(wanted)} "
                   f"subscribers of {topic}")


def start_nodes(kind, count, ws, edges, gossip=None):
    """count nodes; node i dials the nodes edges(i) (indices < i)."""
    nodes = []
    for i in range(count):
        boot = [nodes[j] for j in edges(i)]
        n = ChorusNode(ws, f"{kind}{i}", bootstrap=boot, gossip=gossip) if kind == "chorus" else \
            JsNode(f"{kind}{i}", bootstrap=boot)
        n.neighbours = list(boot)
        for b in boot:
            b.neighbours.append(n)
        nodes.append(n)
    return nodes


def close_nodes(nodes):
    problems = []
    for n in nodes:
        try:
            problems += n.close()
        except Exception as e:
            problems.append(f"closing {n.kind} {n.peer_id}: {e!r}")
    return problems


# A chorus receive ends this long after the last message when fewer than `count` arrive: a publisher
# faster than its receiver loses RPCs to its bounded per-peer send queue (counted as dropped).
IDLE_MS = 3000


def per_1000(cpu_s, messages):
    return round(cpu_s * 1000 / messages * 1000, 3) if messages else None  # ms per 1000 messages


def run_pair(kind, args, ws, results):
    nodes = start_nodes(kind, 2, ws, lambda i: [0] if i == 1 else [])
    pub, rcv = nodes
    try:
        # Latency first, on the fresh pair: the seconds after a saturation burst are slower (the caches
        # of the burst are swept at the following heartbeats), and that is not the steady state asked for.
        topic = "bench/latency/v1"
        connect_all(nodes, topic)
        samples = []
        for _ in range(args.repeat):
            ans = rcv.receive(topic, args.latency_count, args.timeout * 1000)
            sent = pub.publish_many(topic, args.latency_count, args.size, args.latency_rate, timeout=args.timeout + 60)
            got = ans.result(args.timeout + 60)
            samples.append({
                "rate": args.latency_rate, "published": sent.get("sent"), "received": got["received"],
                "duplicates": got["duplicates"], "p50_ms": got["p50_ms"], "p99_ms": got["p99_ms"],
                "publish_elapsed_ms": round(sent["elapsed_ms"], 1),
            })
            print(f"  {kind} latency sample: {json.dumps(samples[-1])}", flush=True)
        median = sorted(samples, key=lambda x: x["p99_ms"])[len(samples) // 2]
        results["latency"] = dict(median, samples_p50=[x["p50_ms"] for x in samples],
                                  samples_p99=[x["p99_ms"] for x in samples])

        topic = "bench/pair/v1"
        connect_all(nodes, topic)
        # Warm-up: a short burst (connection buffers, the mesh, JIT on the js side).
        warm = rcv.receive(topic, 200, 30000)
        pub.publish_many(topic, 200, args.size, 0, timeout=60)
        warm.result(60)

        samples = []
        for i in range(args.repeat):
            if i:
                time.sleep(6)  # the previous burst leaves the message cache (5 heartbeats)
            cpu0 = [cpu_seconds(pub.pid), cpu_seconds(rcv.pid)]
            dropped0 = pub.dropped()
            ans = rcv.receive(topic, args.count, args.timeout * 1000, idle_ms=IDLE_MS)
            sent = pub.publish_many(topic, args.count, args.size, 0, timeout=args.timeout + 60)
            got = ans.result(args.timeout + 60)
            cpu1 = [cpu_seconds(pub.pid), cpu_seconds(rcv.pid)]
            dropped1 = pub.dropped()
            samples.append({
                "publisher_dropped_queue_full": None if dropped0 is None else dropped1 - dropped0,
                "published": sent.get("sent"), "publish_failed": sent.get("failed"),
                "publish_elapsed_ms": round(sent["elapsed_ms"], 1),
                "publish_msgs_per_s": round(sent["sent"] / (sent["elapsed_ms"] / 1000), 1) if sent["elapsed_ms"] else None,
                "received": got["received"], "duplicates": got["duplicates"],
                "msgs_per_s": round(got["msgs_per_s"], 1), "elapsed_ms": round(got["elapsed_ms"], 1),
                "p50_ms": got["p50_ms"], "p99_ms": got["p99_ms"],
                "cpu_ms_per_1000_publisher": per_1000(cpu1[0] - cpu0[0], got["received"]),
                "cpu_ms_per_1000_receiver": per_1000(cpu1[1] - cpu0[1], got["received"]),
            })
            print(f"  {kind} saturation sample: {json.dumps(samples[-1])}", flush=True)
        # The run with the median receiver rate stands for the scenario; every sample is kept.
        median = sorted(samples, key=lambda x: x["msgs_per_s"])[len(samples) // 2]
        results["saturation"] = dict(median, samples=[x["msgs_per_s"] for x in samples])

    finally:
        problems = close_nodes(nodes)
        if problems:
            results["problems"] = problems


def run_fanout(kind, args, ws, results):
    edges = lambda i: sorted({i - 1, i // 2} - {i}) if i > 0 else []
    nodes = start_nodes(kind, args.mesh, ws, edges)
    try:
        topic = "bench/fanout/v1"
        connect_all(nodes, topic)
        # The mesh forms at the heartbeats after the SUBSCRIBEs: give it two heartbeats and a warm-up.
        time.sleep(2.5)
        warm = [n.receive(topic, 100, 30000) for n in nodes[1:]]
        nodes[0].publish_many(topic, 100, args.size, 0, timeout=60)
        for w in warm:
            w.result(60)
        cpu0 = [cpu_seconds(n.pid) for n in nodes]
        dropped0 = [n.dropped() for n in nodes]
        answers = [n.receive(topic, args.fanout_count, args.timeout * 1000, idle_ms=IDLE_MS) for n in nodes[1:]]
        sent = nodes[0].publish_many(topic, args.fanout_count, args.size, 0, timeout=args.timeout + 60)
        got = [a.result(args.timeout + 60) for a in answers]
        cpu1 = [cpu_seconds(n.pid) for n in nodes]
        dropped1 = [n.dropped() for n in nodes]
        received = [g["received"] for g in got]
        slowest = min(g["msgs_per_s"] for g in got)
        longest_ms = max(g["elapsed_ms"] for g in got)
        results["fanout"] = {
            "nodes": args.mesh, "published": sent.get("sent"), "receivers": len(got),
            "dropped_queue_full": None if dropped0[0] is None else sum(b - a for a, b in zip(dropped0, dropped1)),
            "received_min": min(received), "received_total": sum(received),
            "duplicates": sum(g["duplicates"] for g in got),
            "slowest_receiver_msgs_per_s": round(slowest, 1),
            "deliveries_per_s": round(sum(received) / (longest_ms / 1000), 1) if longest_ms else None,
            "p50_ms_median": statistics.median(g["p50_ms"] for g in got if g["p50_ms"] is not None),
            "p99_ms_max": max(g["p99_ms"] for g in got if g["p99_ms"] is not None),
            "cpu_ms_per_1000_all_nodes": per_1000(sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1)), sent.get("sent")),
        }
        print(f"  {kind} fan-out: {json.dumps(results['fanout'])}", flush=True)
    finally:
        problems = close_nodes(nodes)
        if problems:
            results.setdefault("problems", []).extend(problems)


def run_memory(kind, args, ws, results):
    nodes = start_nodes(kind, args.mem_nodes, ws, lambda i: list(range(i)))
    try:
        connect_all(nodes, "bench/memory/warmup")
        time.sleep(1.5)
        before = [n.rss() for n in nodes]
        topics = [f"bench/memory/room-{i}" for i in range(args.topics)]
        for t in topics:
            for n in nodes:
                n.join(t)
        # Every node sees every other as a subscriber of the last topic joined (SUBSCRIBEs go out in order).
        for n in nodes:
            wanted = {m.peer_id for m in nodes if m is not n}
            wait_until(lambda: wanted <= n.subscribers(topics[-1]), 120, f"{n.kind} {n.peer_id} to see all subscribers")
        time.sleep(2.5)  # two heartbeats: meshes built
        after = [n.rss() for n in nodes]
        peers = args.mem_nodes - 1
        per = [(a - b) / (args.topics * peers) for a, b in zip(after, before)]
        results["memory"] = {
            "nodes": args.mem_nodes, "topics": args.topics, "peers_per_node": peers,
            "rss_before_mib": [round(b / 2**20, 1) for b in before],
            "rss_after_mib": [round(a / 2**20, 1) for a in after],
            "bytes_per_topic_per_peer_median": round(statistics.median(per)),
            "bytes_per_topic_median": round(statistics.median((a - b) / args.topics for a, b in zip(after, before))),
        }
        print(f"  {kind} memory: {json.dumps(results['memory'])}", flush=True)
    finally:
        problems = close_nodes(nodes)
        if problems:
            results.setdefault("problems", []).extend(problems)


# ---- report --------------------------------------------------------------------------------------

def fmt(v, digits=0):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report(res, args, command):
    c, j = res.get("chorus", {}), res.get("js", {})

    def get(side, scen, key):
        return side.get(scen, {}).get(key)

    lines = ["### Results", "",
             f"`{command}` on {res['machine']['cpu']} ({res['machine']['nproc']} CPUs), load average before the run "
             f"{res['machine']['loadavg']}, {res['machine']['date']}.", "",
             "| Measure | chorus-agent | js-libp2p gossipsub | ratio | target |", "|---|---:|---:|---:|---|"]

    def row(name, scen, key, digits=0, target="", ratio=False):
        a, b = get(c, scen, key), get(j, scen, key)
        r = f"{a / b:.1f}×" if ratio and a and b else ""
        lines.append(f"| {name} | {fmt(a, digits)} | {fmt(b, digits)} | {r} | {target} |")

    row(f"saturation, 1 → 1, signed {args.size} B: msg/s at the receiver", "saturation", "msgs_per_s",
        target="≥ 15 000; ≥ 5× js", ratio=True)
    row("  received (of the published)", "saturation", "received")
    row("  RPCs the publisher dropped (send queue full)", "saturation", "publisher_dropped_queue_full")
    row("  CPU ms per 1000 messages, publisher", "saturation", "cpu_ms_per_1000_publisher", 1)
    row("  CPU ms per 1000 messages, receiver", "saturation", "cpu_ms_per_1000_receiver", 1)
    row(f"latency at {args.latency_rate} msg/s: p50 ms", "latency", "p50_ms", 2)
    row(f"latency at {args.latency_rate} msg/s: p99 ms", "latency", "p99_ms", 2, target="< 5")
    row(f"fan-out, {args.mesh} nodes: slowest receiver msg/s", "fanout", "slowest_receiver_msgs_per_s", ratio=True)
    row("  deliveries per second, all receivers", "fanout", "deliveries_per_s")
    row("  fewest messages received by a node", "fanout", "received_min")
    row("  RPCs dropped by all nodes (send queue full)", "fanout", "dropped_queue_full")
    row("  CPU ms per 1000 published messages, all nodes", "fanout", "cpu_ms_per_1000_all_nodes", 1)
    row(f"memory per topic per peer, bytes ({args.topics} topics, {args.mem_nodes - 1} peers)", "memory",
        "bytes_per_topic_per_peer_median")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--only", choices=("chorus", "js"))
    ap.add_argument("--scenarios", default="pair,fanout,memory")
    ap.add_argument("--count", type=int, default=30000, help="saturation messages")
    ap.add_argument("--repeat", type=int, default=3, help="saturation runs (the median is reported)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--latency-rate", type=float, default=1000)
    ap.add_argument("--latency-count", type=int, default=5000)
    ap.add_argument("--mesh", type=int, default=10)
    ap.add_argument("--fanout-count", type=int, default=5000)
    ap.add_argument("--mem-nodes", type=int, default=4)
    ap.add_argument("--topics", type=int, default=500)
    ap.add_argument("--timeout", type=int, default=120, help="seconds per measurement")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()

    found = setup_environment(os.path.abspath(args.build))
    global LOAD_PLUGIN_DIR
    LOAD_PLUGIN_DIR = os.path.dirname(found["chorus-bench.gossip-load.so"] or "")
    import gossiptest

    sides = [args.only] if args.only else ["chorus", "js"]
    skipped = {}
    if "chorus" in sides:
        missing = [n for n, p in found.items() if not p]
        if missing:
            skipped["chorus"] = f"not built in {args.build}: {', '.join(missing)}"
    if "js" in sides:
        r = gossiptest.js_missing_reason()
        if r:
            skipped["js"] = str(r)
    res = {"machine": {"cpu": cpu_model(), "nproc": os.cpu_count(),
                       "loadavg": open("/proc/loadavg").read().split()[:3],
                       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
           "skipped": skipped}
    scenarios = args.scenarios.split(",")
    runners = {"pair": run_pair, "fanout": run_fanout, "memory": run_memory}
    for side in sides:
        if side in skipped:
            print(f"{side}: skipped ({skipped[side]})", flush=True)
            continue
        res[side] = {}
        for s in scenarios:
            ws = tempfile.mkdtemp(prefix=f"chorus-gossip-bench-{side}-")
            print(f"{side}: {s}", flush=True)
            try:
                runners[s](side, args, ws, res[side])
            except Exception as e:  # one failed scenario does not hide the others
                res[side].setdefault("errors", {})[s] = repr(e)
                print(f"  {side} {s} failed: {e!r}", flush=True)
    command = "python3 bench/gossip/run.py " + " ".join(sys.argv[1:])
    print()
    print(report(res, args, command.strip()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


LOAD_PLUGIN_DIR = ""

if __name__ == "__main__":
    sys.exit(main())
