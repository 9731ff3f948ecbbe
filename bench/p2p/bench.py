"""p2p benchmarks (run through bench/p2p/run.sh, which sets the environment).

chorus side: two chorus-agents with the p2p + probe plugins (tests/plugins/p2p_probe) drive each other
through the probe's HTTP routes. js side: two js-libp2p 2.10 reference peers (tests/interop/js/peer.mjs).
Both sides run the same workload:
  * echo throughput: /chorus/echo/1.0.0, the client sends TOTAL bytes of deterministic data (over 1 stream,
    then over 64 streams of TOTAL/64), reads the echo back and checks sha256; MB/s = TOTAL / elapsed
    (payload in one direction; the same bytes also flow back);
  * handshakes: sequential new connection (TCP + multistream + Noise XX + yamux) + close, N times;
  * memory per idle connection: a js peer opens N connections to a fresh target (forced new connections,
    one peer); (target VmRSS after - before) / connections actually open.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from harness import Agent
from p2ptest import JsPeer, P2PAgent, agent_missing_reason, free_port, js_missing_reason, p2p_config_yaml

MiB = 1024 * 1024


def vmrss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Run:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="chorus-p2p-bench-")
        self.agents = []
        self.js = []

    def agent(self, name):
        state = os.path.join(self.root, f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        path = os.path.join(self.root, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(p2p_config_yaml(state, listen=[f"/ip4/127.0.0.1/tcp/{port}"], log_level="info"))  # wait_ready needs the info-level "HTTP listening" line
        a = Agent(path)
        self.agents.append(a)
        a.wait_ready()
        return P2PAgent(a, port)

    def js_peer(self, *args, gc=False):
        p = JsPeer(*args, node_args=("--expose-gc",) if gc else ())
        self.js.append(p)
        return p

    def close(self):
        for p in self.js:
            p.stop()
        for a in self.agents:
            try:
                a.stop(timeout=20)
            except Exception:  # a stuck agent must not keep the benchmark alive
                a.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until(fn, timeout, what):
    """Polls fn() (cheap state queries of our own processes) until it returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def chorus_connections(agent):
    status, peers = agent.get("/p2p/peers")
    return sum(p.get("connections", 1) for p in peers) if status == 200 else 0


def js_connections(peer):
    return sum(p["connections"] for p in peer.ok("peers")["peers"])


def bench_chorus(run, args, out):
    a, b = run.agent("a"), run.agent("b")
    a.probe("connect", target=b.addr)
    a.probe("echo", peer=b.peer_id, streams=4, bytes_per_stream=MiB)  # warm-up
    total = args.total_mib * MiB
    for streams in (1, 64):
        log(f"chorus echo: {streams} stream(s), {args.total_mib} MiB")
        r = a.probe("echo", peer=b.peer_id, streams=streams, bytes_per_stream=total // streams, timeout=3600)
        out[f"echo_{streams}"] = r
    log(f"chorus handshakes: {args.handshakes}")
    out["handshakes"] = a.probe("handshakes", target=b.addr, count=args.handshakes, timeout=3600)
    # Memory: a fresh target, dialed by one js peer with forced new connections.
    c = run.agent("c")
    dialer = run.js_peer()
    before = vmrss(c.pid())
    log(f"chorus idle connections: {args.idle}")
    r = dialer.ok("connect_many", target=c.addr, count=args.idle, timeout=600)
    opened = wait_until(lambda: chorus_connections(c) >= r["opened"] and chorus_connections(c), 60,
                        "the target to list the connections")
    after = vmrss(c.pid())
    out["idle"] = {"requested": args.idle, "opened": r["opened"], "errors": r["errors"], "first_error": r["first_error"],
                   "target_connections": opened, "rss_before": before, "rss_after": after,
                   "per_connection": (after - before) / max(1, opened)}


def bench_js(run, args, out):
    a, b = run.js_peer(), run.js_peer()
    a.ok("dial", target=b.addr)
    a.ok("echo", target=b.peer_id, streams=4, bytes_per_stream=MiB)  # warm-up
    total = args.total_mib * MiB
    for streams in (1, 64):
        log(f"js echo: {streams} stream(s), {args.total_mib} MiB")
        out[f"echo_{streams}"] = a.ok("echo", target=b.peer_id, streams=streams, bytes_per_stream=total // streams,
                                      timeout=3600)
    log(f"js handshakes: {args.handshakes}")
    out["handshakes"] = a.ok("handshakes", target=b.addr, count=args.handshakes, timeout=3600)
    c = run.js_peer(gc=True)
    dialer = run.js_peer()
    c.ok("rss")
    before = c.ok("rss")["rss_bytes"]  # after a full GC (--expose-gc)
    log(f"js idle connections: {args.idle}")
    r = dialer.ok("connect_many", target=c.addr, count=args.idle, timeout=600)
    opened = wait_until(lambda: js_connections(c) >= r["opened"] and js_connections(c), 60,
                        "the target to list the connections")
    after = c.ok("rss")["rss_bytes"]
    out["idle"] = {"requested": args.idle, "opened": r["opened"], "errors": r["errors"], "first_error": r["first_error"],
                   "target_connections": opened, "rss_before": before, "rss_after": after,
                   "per_connection": (after - before) / max(1, opened)}


def fmt_mbps(r):
    return f"{r['mbps']:.1f} MB/s" if r else "n/a"


def fmt(res, key):
    if res is None:
        return "not run"
    if "error" in res:
        return "failed (see below)"
    if key in ("echo_1", "echo_64"):
        return fmt_mbps(res.get(key))
    if key == "handshakes":
        return f"{res['handshakes']['per_second']:.0f} /s"
    if key == "idle":
        i = res["idle"]
        note = "" if i["target_connections"] >= i["requested"] else f" ({i['target_connections']} of {i['requested']} open)"
        return f"{i['per_connection'] / 1024:.1f} KiB{note}"
    return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", default="bench/p2p/run.sh")
    ap.add_argument("--total-mib", type=int, default=256)
    ap.add_argument("--handshakes", type=int, default=200)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--only", choices=("chorus", "js"))
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()

    reason = js_missing_reason()
    if reason:
        sys.exit(f"bench: {reason} (the js peer also dials the idle connections)")
    results = {"chorus": None, "js": None}
    for side, fn, missing in (("chorus", bench_chorus, agent_missing_reason()), ("js", bench_js, None)):
        if args.only and args.only != side:
            continue
        if missing:
            log(f"{side}: skipped: {missing}")
            continue
        run = Run()
        out = {}
        try:
            fn(run, args, out)
        except Exception as e:  # report what was measured, then the failure
            out["error"] = f"{type(e).__name__}: {e}"
            log(f"{side}: failed: {out['error']}")
        finally:
            run.close()
        results[side] = out

    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    c, j = results["chorus"], results["js"]
    lines = [
        "### p2p: chorus-agent vs js-libp2p",
        "",
        f"Machine: {os.cpu_count()} CPUs (`nproc`: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}),"
        f" {cpu_model()}; {datetime.date.today().isoformat()}; command: `{args.command}`.",
        f"Loopback 127.0.0.1, TCP + Noise + yamux; js-libp2p 2.10.0 on Node {node_version}. Echo MB/s = payload bytes"
        f" (10^6) per second in one direction, sha256-checked; the same bytes flow back.",
        "",
        "| measure | chorus-agent ↔ chorus-agent | js-libp2p ↔ js-libp2p |",
        "|---|---|---|",
        f"| echo throughput, 1 stream, {args.total_mib} MiB | {fmt(c, 'echo_1')} | {fmt(j, 'echo_1')} |",
        f"| echo throughput, 64 streams, {args.total_mib} MiB total | {fmt(c, 'echo_64')} | {fmt(j, 'echo_64')} |",
        f"| Noise handshakes (new connection + close, sequential, {args.handshakes}) | {fmt(c, 'handshakes')} |"
        f" {fmt(j, 'handshakes')} |",
        f"| memory per idle connection ({args.idle} connections, target RSS delta / N) | {fmt(c, 'idle')} |"
        f" {fmt(j, 'idle')} |",
    ]
    for side, res in results.items():
        if res and "error" in res:
            lines += ["", f"{side} run failed: {res['error']}"]
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    sys.exit(1 if any(r and "error" in r for r in results.values()) else 0)


if __name__ == "__main__":
    main()
