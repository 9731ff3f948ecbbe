#!/usr/bin/env python3
"""ucxi plugin benchmark: UCXI get latency through real chorus-agents (p2p + gossip + dht + ucxi) on
loopback. Standard library only, plus `age-keygen` for the role key.

  python3 bench/ucxi/run.py [--build BUILD_DIR] [--json FILE] [options]

BUILD_DIR (default: build) must hold chorus-agent and chorus-{p2p,gossip,dht,ucxi}.so
(`ninja -C BUILD_DIR chorus-agent chorus_plugin_p2p chorus_plugin_gossip chorus_plugin_dht chorus_plugin_ucxi`).

Scenarios (every agent runs as role `dev` and holds its key, so every get decrypts):
  * local: one agent; one address put once (--size bytes of text), then --local-gets sequential
    GET /ucxi/v1/get of its latest version on one kept-alive HTTP connection. A get resolves the
    version list (a DHT get_value, answered from the agent's own store and cache since it is alone)
    and reads the version's content (the plugin's cache after the first get). Figures: p50 / p99.
  * cluster: --nodes agents (node 0 alone, node i >= 1 bootstraps from nodes 0 and 1; every routing
    table is waited on to hold every other node, or k
    of them). --rounds rounds; round r puts a fresh address
    ucxl://bench:dev@bench:cross/*^/r<r>-<run id> on node r mod nodes, then every other node gets its
    latest once, in turn. No node gets an address twice, so no get is a cache hit of the plugin: each
    fetches the version list and the role-encrypted content through the DHT and decrypts it. Figures:
    p50 / p95 / p99 of the gets (at the HTTP client), and the failures.

Latencies are measured by this process around one HTTP request (so they include the HTTP round trip and
this client), on the same machine as the agents. The results go to stdout as the markdown of the
docs/benchmarks.md section, and to --json.
"""
import argparse
import datetime
import http.client
import json
import math
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))  # bench/
from benchlib import cpu_model, find_one  # noqa: E402

NEEDED = ("chorus-agent", "chorus-p2p.so", "chorus-gossip.so", "chorus-dht.so", "chorus-ucxi.so")


def setup_environment(build):
    """Points the test helpers at the build (they read the environment when imported)."""
    found = {n: find_one(build, n) for n in NEEDED}
    env = {"chorus-agent": "CHORUS_AGENT_BIN", "chorus-p2p.so": "CHORUS_P2P_PLUGIN_DIR",
           "chorus-gossip.so": "CHORUS_GOSSIP_PLUGIN_DIR", "chorus-dht.so": "CHORUS_DHT_PLUGIN_DIR",
           "chorus-ucxi.so": "CHORUS_PLUGIN_DIR"}
    for name, path in found.items():
        if path:
            os.environ[env[name]] = path if name == "chorus-agent" else os.path.dirname(path)
    for d in ("tests/integration", "tests/interop", "plugins/dht/tests", "plugins/ucxi/tests"):
        sys.path.insert(0, os.path.join(SRC, d))
    return found


def percentiles(latencies):
    s = sorted(latencies)
    if not s:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    at = lambda p: s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]  # nearest rank
    return {"p50_ms": round(at(0.50), 3), "p95_ms": round(at(0.95), 3), "p99_ms": round(at(0.99), 3)}


class Client:
    """One kept-alive HTTP/1.1 connection to an agent."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise

    def timed_get(self, address):
        t0 = time.perf_counter()
        status, body = self.request("GET", "/ucxi/v1/get?address=" + quote(address, safe=""))
        return (time.perf_counter() - t0) * 1000.0, status, body

    def put(self, address, data):
        status, body = self.request("PUT", "/ucxi/v1/put?address=" + quote(address, safe=""), data,
                                    {"Content-Type": "text/plain"})
        if status != 201:
            raise RuntimeError(f"put {address} answered {status}: {body[:300]!r}")
        return json.loads(body)["response"]["data"]


def start_agents(ws, count, key, rcpt, label, k=20):
    from ucxitest import start_ucxi_agent
    dht = {"probe": {"enabled": False}, "query_timeout_ms": 5000, "lookup_deadline_ms": 30000, "mode": "server",
           "k": k, "replication": min(3, k)}
    agents, nodes = [], []
    try:
        for i in range(count):
            bootstrap = [nodes[b].addr for b in (0, 1) if b < i]
            agent, node = start_ucxi_agent(ws, f"{label}{i}", role="dev", keys={"dev": key},
                                           recipients={"dev": rcpt}, bootstrap=bootstrap, dht=dht)
            agents.append(agent)
            nodes.append(node)
        ids = {n.peer_id for n in nodes}
        deadline = time.monotonic() + 60
        for n in nodes:
            while True:
                status, r = n.agent.http_json("/api/v1/dht/routing")
                # A bucket holds at most k peers: with a small k, k peers is as full as it gets.
                if status == 200 and (ids - {n.peer_id} <= set(r["peer_ids"]) or r["peers"] >= min(k, count - 1)):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"routing table of {n.name} never filled: {r}")
                time.sleep(0.05)  # polling HTTP state that has no event to wait on
    except BaseException:
        from harness import finish_agents
        finish_agents(agents)
        raise
    return agents, nodes


def run_local(args, ws, key, rcpt, run_id):
    from harness import finish_agents
    agents, nodes = start_agents(ws, 1, key, rcpt, "local")
    try:
        c = Client(nodes[0].agent.port)
        address = f"ucxl://bench:dev@bench:local/*^/doc-{run_id}.txt"
        c.put(address, b"x" * args.size)
        lat, failures = [], 0
        for _ in range(args.warmup):
            c.timed_get(address)
        t0 = time.perf_counter()
        for _ in range(args.local_gets):
            ms, status, _ = c.timed_get(address)
            if status == 200:
                lat.append(ms)
            else:
                failures += 1
        wall = time.perf_counter() - t0
        return {"gets": args.local_gets, "failures": failures, "gets_per_s": round(len(lat) / wall, 1),
                **percentiles(lat)}
    finally:
        problems = finish_agents(agents)
        if problems:
            print("\n".join(problems), file=sys.stderr)


def run_cluster(args, ws, key, rcpt, run_id):
    from harness import finish_agents
    agents, nodes = start_agents(ws, args.nodes, key, rcpt, "n", k=args.k)
    outbound = lambda: sum(n.metric("chorus_dht_outbound_requests_total") for n in nodes)
    try:
        clients = [Client(n.agent.port) for n in nodes]
        get_requests = 0
        lat, failures, errors = [], 0, {}
        put_lat = []
        for r in range(args.rounds):
            putter = r % args.nodes
            address = f"ucxl://bench:dev@bench:cross/*^/r{r}-{run_id}.txt"
            t0 = time.perf_counter()
            clients[putter].put(address, f"round {r} ".encode() * (args.size // 8 + 1))
            put_lat.append((time.perf_counter() - t0) * 1000.0)
            before = outbound()
            for g in range(args.nodes):
                if g == putter:
                    continue
                ms, status, body = clients[g].timed_get(address)
                if status == 200:
                    lat.append(ms)
                else:
                    failures += 1
                    errors[str(status)] = body[:200].decode(errors="replace")
            get_requests += outbound() - before
        return {"nodes": args.nodes, "k": args.k,
                "dht_requests_per_get": round(get_requests / max(1, len(lat) + failures), 1), "rounds": args.rounds, "gets": len(lat) + failures, "failures": failures,
                "errors": errors, **percentiles(lat), "put": percentiles(put_lat)}
    finally:
        problems = finish_agents(agents)
        if problems:
            print("\n".join(problems), file=sys.stderr)


def fmt(v):
    if v is None:
        return "—"
    return (f"{v:.2f}" if v < 10 else f"{v:.1f}") if isinstance(v, float) else str(v)


def report(res, command):
    m = res["machine"]
    lines = [f"`{command}` on {m['cpu']} ({m['nproc']} CPUs), load average before the run {' '.join(m['loadavg'])}, "
             f"{m['date']}, commit {m['commit']}{' (build type ' + m['build_type'] + ')' if m['build_type'] else ''}.",
             "", "| Measure | p50 ms | p95 ms | p99 ms | failed | target |", "|---|---:|---:|---:|---:|---|"]
    lo, cl = res.get("local"), res.get("cluster")
    if lo:
        lines.append(f"| local get, 1 agent, {lo['gets']} gets of one address ({res['size']} B) | "
                     f"{fmt(lo['p50_ms'])} | {fmt(lo['p95_ms'])} | {fmt(lo['p99_ms'])} | {lo['failures']} | p50 / p99 |")
    if cl:
        lines.append(f"| cross-agent get, {cl['nodes']} agents (dht k {cl['k']}), {cl['gets']} gets of {cl['rounds']} "
                     f"fresh addresses, {cl['dht_requests_per_get']} kad requests per get | "
                     f"{fmt(cl['p50_ms'])} | {fmt(cl['p95_ms'])} | {fmt(cl['p99_ms'])} | {cl['failures']} | p95 |")
        p = cl["put"]
        lines.append(f"| put (for reference), {cl['nodes']} agents | {fmt(p['p50_ms'])} | {fmt(p['p95_ms'])} | "
                     f"{fmt(p['p99_ms'])} | | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--scenarios", default="local,cluster")
    ap.add_argument("--local-gets", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--k", type=int, default=3,
                    help="the dht's k in the cluster: with 3 a record lives on about 4 of 10 agents, so most gets "
                         "look it up over the network (with k >= nodes every agent holds every record)")
    ap.add_argument("--rounds", type=int, default=100, help="fresh addresses in the cluster (nodes - 1 gets each)")
    ap.add_argument("--size", type=int, default=1024, help="content bytes")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    found = setup_environment(build)
    missing = [n for n, p in found.items() if not p]
    if missing:
        raise SystemExit(f"not built in {build}: {', '.join(missing)}")
    import ucxitest
    reason = ucxitest.agent_missing_reason()
    if reason:
        raise SystemExit(reason)
    from harness import Workspace

    build_type = ""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            build_type = next((l.split("=", 1)[1].strip() for l in f if l.startswith("CMAKE_BUILD_TYPE:")), "")
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    res = {"machine": {"cpu": cpu_model(), "nproc": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3],
                       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "commit": commit, "build_type": build_type},
           "size": args.size}
    key, rcpt = ucxitest.make_role_key()
    run_id = uuid.uuid4().hex[:8]
    ws = Workspace()
    try:
        scen = args.scenarios.split(",")
        if "local" in scen:
            res["local"] = run_local(args, ws, key, rcpt, run_id)
        if "cluster" in scen:
            res["cluster"] = run_cluster(args, ws, key, rcpt, run_id)
    finally:
        ws.cleanup()
    command = "python3 bench/ucxi/run.py " + " ".join(sys.argv[1:])
    print(report(res, command.strip()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
