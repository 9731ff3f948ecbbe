#!/usr/bin/env python3
"""dht cluster benchmark: a cluster of chorus-agents (p2p + dht) and a cluster of js-libp2p nodes running
@libp2p/kad-dht (tests/interop/js/dht_peer.mjs) of the same size, in the same topology, in the same run,
over loopback. Standard library only.

  python3 bench/dht/run.py [--build BUILD_DIR] [--only chorus|js] [--json FILE] [options]

BUILD_DIR (default: build) must hold chorus-agent, chorus-p2p.so and chorus-dht.so
(`cmake --build BUILD_DIR --target chorus-agent chorus_plugin_p2p chorus_plugin_dht`); the js side
needs `npm ci` in tests/interop/js. A missing side is skipped with the reason.

Topology: --nodes nodes (default 20); node 0 starts alone, node i >= 1 bootstraps from nodes 0 and 1
(agents: p2p bootstrap_peers; js: a dial), and each node's routing table is waited on (up to 60 s) to
hold --k peers or everyone. Both sides run with the same k (--k), alpha 3 and /chorus/ records (signed
on put, validated on store and get). k defaults to 6, not the protocol's 20: with k = 20 in a 20-node
cluster every node is among the k closest to every key and holds every value, so no get would need a
lookup. With k = 6 a value lives on 7 of 20 nodes and a get from one of the other 13 is a real
iterative lookup.

Workload (the same on both sides; every node runs --per-node operations at a time):
  * puts: --puts keys /chorus/bench/<n>, key n put by node n mod nodes, a --size byte payload. chorus:
    PUT /api/v1/dht/values from one HTTP client thread per in-flight operation (the agent stores the
    record, looks up the k closest and answers after `replication` (3) of them acknowledged); js:
    dht.put (stores it, looks up the k closest, sends PUT_VALUE to all of them, ends when all
    answered).
  * gets: --gets lookups; each goes to a node that holds no copy of its key (not the putter, not one of
    the k closest by XOR distance, and never the same node twice for one key), so every get is a
    network lookup on both sides. chorus: GET /api/v1/dht/values (a lookup that ends when replication
    (3) values are in or the closest answered); js: dht.get (a full query; the best value).
  Figures: operations per second (all operations / the wall time from the first to the last), latency
  p50 / p95 / p99 per operation (chorus: measured by the HTTP client, so it includes the HTTP round
  trip; js: measured in the node around dht.put / dht.get), and kad requests sent per operation
  (chorus: the increase of chorus_dht_outbound_requests_total over all agents; js: SEND_QUERY events).
  For chorus, the GET_VALUE lookups' duration histogram (chorus_dht_lookup_duration_seconds, timed
  inside the node, without the HTTP round trip and the Python client) gives their mean and the share
  finished within 25, 50 and 100 ms (its bucket bounds).
  Neither implementation reports hop counts (the depth of the iterative lookup): the requests per
  lookup are the figure of a lookup's cost that both expose.

Targets (docs/benchmarks.md, dht cluster): get p95 < 50 ms, and >= 3x js lookups per second.
"""
import argparse
import datetime
import hashlib
import importlib.util
import json
import math
import os
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def _load_gossip_bench():
    """bench/gossip/run.py as a module: its machine, build-lookup and formatting helpers are reused."""
    spec = importlib.util.spec_from_file_location("gossip_bench_run", os.path.join(SRC, "bench", "gossip", "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gbench = _load_gossip_bench()


def setup_environment(build):
    """Points the test helpers at the build (they read the environment when imported)."""
    found = {n: gbench.find_one(build, n) for n in ("chorus-agent", "chorus-p2p.so", "chorus-dht.so")}
    if found["chorus-agent"]:
        os.environ["CHORUS_AGENT_BIN"] = found["chorus-agent"]
    if found["chorus-p2p.so"]:
        os.environ["CHORUS_P2P_PLUGIN_DIR"] = os.path.dirname(found["chorus-p2p.so"])
    if found["chorus-dht.so"]:
        os.environ["CHORUS_DHT_PLUGIN_DIR"] = os.path.dirname(found["chorus-dht.so"])
    for d in ("tests/integration", "tests/interop", "plugins/dht/tests"):
        sys.path.insert(0, os.path.join(SRC, d))
    return found


def percentiles(latencies):
    s = sorted(latencies)
    if not s:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    at = lambda p: s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]  # nearest rank
    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def distance(key, peer_id, b58decode):
    a = hashlib.sha256(key).digest()
    b = hashlib.sha256(b58decode(peer_id)).digest()
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b)), "big")


def plan_gets(keys, putters, ids, k, count, b58decode):
    """[(key, getter index)]: count gets, round-robin over keys; each getter holds no copy of its key
    (neither its putter nor one of the k closest others) and gets it once."""
    n = len(ids)
    candidates = []
    for key, putter in zip(keys, putters):
        order = sorted((i for i in range(n) if i != putter), key=lambda i: distance(key.encode(), ids[i], b58decode))
        holders = {putter, *order[:k]}
        candidates.append([i for i in order[k:] if i not in holders][::-1])  # farthest first
    plan = []
    used = [0] * len(keys)
    while len(plan) < count:
        progressed = False
        for ki, key in enumerate(keys):
            if len(plan) >= count:
                break
            if used[ki] < len(candidates[ki]):
                plan.append((key, candidates[ki][used[ki]]))
                used[ki] += 1
                progressed = True
        if not progressed:
            break  # every (key, non-holder) pair is used
    return plan


# ---- chorus ---------------------------------------------------------------------------------------

def chorus_cluster(args):
    from dhttest import start_dht_agent
    from harness import Workspace
    w = Workspace()
    agents, nodes = [], []
    cfg = {"k": args.k, "alpha": 3, "mode": "server", "probe": {"enabled": False},
           "query_timeout_ms": 5000, "lookup_deadline_ms": 30000}
    for i in range(args.nodes):
        bootstrap = [nodes[b].addr for b in (0, 1) if b < i]
        agent, node, _ = start_dht_agent(w, f"b{i}", bootstrap=bootstrap, dht=cfg)
        agents.append(agent)
        nodes.append(node)
    return w, agents, nodes


def chorus_http(node, method, key, body=None, timeout=60):
    url = f"http://127.0.0.1:{node.agent.port}/api/v1/dht/values?key={quote(key, safe='')}"
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def chorus_outbound(nodes):
    return sum(n.metric("chorus_dht_outbound_requests_total") for n in nodes)


LOOKUP_HISTOGRAM = "chorus_dht_lookup_duration_seconds"
LOOKUP_BOUNDS = ("0.025", "0.05", "0.1")


def chorus_lookups(nodes):
    """Over all agents: (count, sum in s, {bound: count <= bound}) of the GET_VALUE lookups'
    duration histogram (timed inside the node, without the HTTP round trip)."""
    count = total = 0.0
    within = dict.fromkeys(LOOKUP_BOUNDS, 0.0)
    for n in nodes:
        status, text, _ = n.agent.http("/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}")
        for line in text.splitlines():
            if not line.startswith(LOOKUP_HISTOGRAM) or 'kind="GET_VALUE"' not in line:
                continue
            key, _, value = line.rpartition(" ")
            if key.startswith(LOOKUP_HISTOGRAM + "_count"):
                count += float(value)
            elif key.startswith(LOOKUP_HISTOGRAM + "_sum"):
                total += float(value)
            else:
                for b in LOOKUP_BOUNDS:
                    if f'le="{b}"' in key:
                        within[b] += float(value)
    return count, total, within


def chorus_hops(nodes):
    """Over all agents: (count, sum) of the GET_VALUE lookups' hop histogram."""
    count = total = 0.0
    for n in nodes:
        status, text, _ = n.agent.http("/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}")
        for line in text.splitlines():
            if not line.startswith("chorus_dht_lookup_hops") or 'kind="GET_VALUE"' not in line:
                continue
            key, _, value = line.rpartition(" ")
            if key.startswith("chorus_dht_lookup_hops_count"):
                count += float(value)
            elif key.startswith("chorus_dht_lookup_hops_sum"):
                total += float(value)
    return count, total


def chorus_run(nodes, work, per_node, op, value=None):
    """Runs work (a list of (key, node index)) with per_node client threads per node; returns the
    figures."""
    by_node = {}
    for key, i in work:
        by_node.setdefault(i, []).append(key)
    lat, failures = [], []
    lock = threading.Lock()

    def client(i, keys):
        for key in keys:
            t = time.perf_counter()
            if op == "put":
                status, body = chorus_http(nodes[i], "PUT", key, value)
            else:
                status, body = chorus_http(nodes[i], "GET", key)
            ms = (time.perf_counter() - t) * 1000
            with lock:
                if status == 200 and (op == "put" or body == value):
                    lat.append(ms)
                else:
                    failures.append(f"{op} {key} on node {i}: {status} {body[:200]!r}")

    threads = []
    for i, keys in by_node.items():
        for c in range(per_node):
            threads.append(threading.Thread(target=client, args=(i, keys[c::per_node]), daemon=True))
    before = chorus_outbound(nodes)
    lookups_before = chorus_lookups(nodes)
    hops_before = chorus_hops(nodes)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    requests = chorus_outbound(nodes) - before
    res = {"done": len(lat), "failed": len(failures), "first_error": failures[0] if failures else None,
           "elapsed_s": elapsed, "ops_per_s": len(lat) / elapsed if elapsed > 0 else 0,
           "requests_per_op": requests / len(lat) if lat else None, **percentiles(lat)}
    if op == "get":
        (c0, s0, w0), (c1, s1, w1) = lookups_before, chorus_lookups(nodes)
        n = c1 - c0
        res["node_lookups"] = n
        if n > 0:
            res["node_lookup_mean_ms"] = (s1 - s0) / n * 1000
        (hc0, hs0), (hc1, hs1) = hops_before, chorus_hops(nodes)
        if hc1 > hc0:
            res["node_lookup_mean_hops"] = (hs1 - hs0) / (hc1 - hc0)
            for b in LOOKUP_BOUNDS:
                res[f"node_lookups_within_{int(float(b) * 1000)}ms"] = (w1[b] - w0[b]) / n
    return res


# ---- js -------------------------------------------------------------------------------------------

def js_cluster(args):
    from dhttest_js import DhtJsPeer
    peers = []
    for i in range(args.nodes):
        p = DhtJsPeer("--k", str(args.k), "--alpha", "3")
        peers.append(p)
        for b in (0, 1):
            if b < i:
                p.ok("dial", target=peers[b].addr)
    return peers


def js_run(peers, work, per_node, op, value=None, timeout=600):
    by_node = {}
    for key, i in work:
        by_node.setdefault(i, []).append(key)
    import base64
    extra = {"value_b64": base64.b64encode(value).decode()} if op == "put" else {}
    t0 = time.perf_counter()
    ids = {i: peers[i].send("bench", op=op, keys=keys, concurrency=per_node, latencies=True, **extra)
           for i, keys in by_node.items()}
    results = {i: peers[i].result(cid, timeout=timeout) for i, cid in ids.items()}
    elapsed = time.perf_counter() - t0
    lat, failed, first, queries = [], 0, None, 0.0
    for i, r in results.items():
        if not r.get("ok"):
            raise RuntimeError(f"js node {i} bench failed: {r.get('error')}")
        lat += r["latencies_ms"]
        failed += r["failed"]
        first = first or r["first_error"]
        queries += (r["queries_mean"] or 0) * r["done"]
    return {"done": len(lat), "failed": failed, "first_error": first, "elapsed_s": elapsed,
            "ops_per_s": len(lat) / elapsed if elapsed > 0 else 0,
            "requests_per_op": queries / len(lat) if lat else None, **percentiles(lat)}


# ---- one side -------------------------------------------------------------------------------------

def run_side(side, args, results):
    from dhttest_js import b58decode
    want = min(args.k, args.nodes - 1)
    t_start = time.perf_counter()
    if side == "chorus":
        w, agents, nodes = chorus_cluster(args)
        ids = [n.peer_id for n in nodes]
        table = lambda i: nodes[i].routing()["peers"]
    else:
        nodes = js_cluster(args)
        ids = [p.peer_id for p in nodes]
        table = lambda i: nodes[i].ok("routing")["size"]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(table(i) < want for i in range(args.nodes)):
            time.sleep(0.2)
        sizes = [table(i) for i in range(args.nodes)]
        results["startup_s"] = time.perf_counter() - t_start
        results["routing_table_min"] = min(sizes)
        results["routing_table_mean"] = statistics.mean(sizes)
        keys = [f"/chorus/bench/{side}/{n}" for n in range(args.puts)]
        putters = [n % args.nodes for n in range(args.puts)]
        value = (b"dht bench payload " * (args.size // 18 + 1))[:args.size]
        puts = list(zip(keys, putters))
        gets = plan_gets(keys, putters, ids, args.k, args.gets, b58decode)
        if len(gets) < args.gets:
            results["gets_planned"] = len(gets)  # fewer (key, non-holder) pairs than --gets
        runner = chorus_run if side == "chorus" else js_run
        print(f"  {side}: {len(puts)} puts", flush=True)
        results["put"] = runner(nodes, puts, args.per_node, "put", value)
        print(f"  {side}: {len(gets)} gets", flush=True)
        results["get"] = runner(nodes, gets, args.per_node, "get", value)
    finally:
        if side == "chorus":
            from harness import finish_agents
            problems = finish_agents(agents)
            w.cleanup()
            if problems:
                results["problems"] = problems
        else:
            for p in nodes:
                p.stop()


# ---- report ---------------------------------------------------------------------------------------

def report(res, args, command):
    c, j = res.get("chorus", {}), res.get("js", {})
    m = res["machine"]
    lines = ["### Results", "",
             f"`{command}` on {m['cpu']} ({m['nproc']} CPUs), load average before the run {m['loadavg']}, "
             f"{m['date']}.", "",
             f"| Measure ({args.nodes} nodes, k {args.k}, {args.per_node} op(s) in flight per node) | chorus-agent "
             f"| js-libp2p kad-dht | ratio | target |", "|---|---:|---:|---:|---|"]

    def row(name, op, key, digits=0, target="", ratio=None):
        a, b = c.get(op, {}).get(key), j.get(op, {}).get(key)
        r = ""
        if ratio == "higher" and a and b:
            r = f"{a / b:.1f}×"
        elif ratio == "lower" and a and b:
            r = f"{b / a:.1f}× faster"
        lines.append(f"| {name} | {gbench.fmt(a, digits)} | {gbench.fmt(b, digits)} | {r} | {target} |")

    row("gets (lookups) per second", "get", "ops_per_s", 0, "≥ 3× js", "higher")
    row("  get latency p50, ms", "get", "p50_ms", 1, "", "lower")
    row("  get latency p95, ms", "get", "p95_ms", 1, "< 50", "lower")
    row("  get latency p99, ms", "get", "p99_ms", 1)
    row("  kad requests per get", "get", "requests_per_op", 1)
    row("  chorus GET_VALUE lookups in the node: mean ms", "get", "node_lookup_mean_ms", 1)
    row("  chorus GET_VALUE lookups in the node: mean hops", "get", "node_lookup_mean_hops", 2)
    for b in (25, 50, 100):
        row(f"  chorus GET_VALUE lookups in the node: share within {b} ms", "get", f"node_lookups_within_{b}ms", 3,
            "p95 < 50 ms: ≥ 0.95" if b == 50 else "")
    row("  gets done", "get", "done")
    row("  gets failed", "get", "failed")
    row(f"puts per second ({args.size} B /chorus/ records)", "put", "ops_per_s", 0, "", "higher")
    row("  put latency p50, ms", "put", "p50_ms", 1, "", "lower")
    row("  put latency p95, ms", "put", "p95_ms", 1, "", "lower")
    row("  kad requests per put", "put", "requests_per_op", 1)
    row("  puts done", "put", "done")
    row("  puts failed", "put", "failed")
    lines.append("")
    for side, r in (("chorus", c), ("js", j)):
        if r:
            lines.append(f"{side}: cluster up in {gbench.fmt(r.get('startup_s'), 1)} s, routing tables "
                         f"min {r.get('routing_table_min')} / mean {gbench.fmt(r.get('routing_table_mean'), 1)} peers")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--only", choices=("chorus", "js"))
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--puts", type=int, default=400)
    ap.add_argument("--gets", type=int, default=1000)
    ap.add_argument("--per-node", type=int, default=1, help="operations in flight per node")
    ap.add_argument("--size", type=int, default=256, help="payload bytes per put")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()

    found = setup_environment(os.path.abspath(args.build))
    import dhttest_js

    sides = [args.only] if args.only else ["chorus", "js"]
    skipped = {}
    if "chorus" in sides:
        missing = [n for n, p in found.items() if not p]
        if missing:
            skipped["chorus"] = f"not built in {args.build}: {', '.join(missing)}"
    if "js" in sides:
        r = dhttest_js.js_missing_reason()
        if r:
            skipped["js"] = str(r)
    res = {"machine": {"cpu": gbench.cpu_model(), "nproc": os.cpu_count(),
                       "loadavg": open("/proc/loadavg").read().split()[:3],
                       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
           "skipped": skipped}
    for side in sides:
        if side in skipped:
            print(f"{side}: skipped ({skipped[side]})", flush=True)
            continue
        res[side] = {}
        print(f"{side}: {args.nodes} nodes", flush=True)
        try:
            run_side(side, args, res[side])
        except Exception as e:  # one failed side does not hide the other
            res[side]["error"] = repr(e)
            print(f"  {side} failed: {e!r}", flush=True)
    command = ("python3 bench/dht/run.py " + " ".join(sys.argv[1:])).strip()
    print()
    print(report(res, args, command))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
