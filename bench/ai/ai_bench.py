#!/usr/bin/env python3
"""AI path benchmarks (issue 6): reasoning + provider overhead over the raw fake server, and p99
latency during provider hot swaps versus steady state.

Usage: bench/ai/ai_bench.py --agent build/bin/chorus-agent --plugins build/lib/chorus/plugins
                            [--requests 2000] [--rounds 5] [--clients 16] [--seconds 6]
Targets (issue 6): overhead < 1 ms per request; p99 during swaps within 1.5x steady state.
Python stdlib only; the fake servers are libs/ai-common/tests/fakes/fake_ai.py.
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "libs", "ai-common", "tests", "fakes"))
from fake_ai import FakeServer  # noqa: E402

BODY = json.dumps({"messages": [{"role": "user", "content": "Say hello"}]}).encode()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


class Poster:
    """One keep-alive connection; post() returns the latency in ms."""

    def __init__(self, host, port, path, body):
        self.conn = http.client.HTTPConnection(host, port, timeout=30)
        self.path, self.body = path, body

    def post(self):
        t0 = time.perf_counter()
        self.conn.request("POST", self.path, self.body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{self.path}: HTTP {r.status}")
        return (time.perf_counter() - t0) * 1000.0


def paired_overhead(raw, via, n):
    """Alternates raw and via requests so both see the same machine noise; returns the two latency
    lists and the per-pair differences (via - raw)."""
    r, v, d = [], [], []
    for _ in range(n):
        a = raw.post()
        b = via.post()
        r.append(a)
        v.append(b)
        d.append(b - a)
    return r, v, d


def write_config(d, o, a, bound):
    path = os.path.join(d, "chorus.yaml")
    with open(path, "w") as f:
        f.write(f"""host:
  log_level: info
  state_dir: {d}/state
  http:
    listen: 127.0.0.1:0
plugins:
  ai-ollama: {{config: {{endpoint: "{o.base}", default_model: "llama3.1:latest", max_concurrency: 64}}}}
  ai-openai: {{config: {{base_url: "{a.base}", api_key: "sk-bench", default_model: "gpt-4o-mini", max_concurrency: 64}}}}
  reasoning: {{config: {{}}}}
bindings:
  chorus.ai.provider: {bound}
""")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=5, help="overhead rounds; the median is reported")
    args = ap.parse_args()

    o = FakeServer("ollama", "bench-ollama")
    a = FakeServer("openai", "bench-openai", api_key="sk-bench")
    d = tempfile.mkdtemp(prefix="chorus-aibench-")
    cfg = write_config(d, o, a, "ai-ollama")
    env = dict(os.environ)
    env.pop("CHORUS_CONFIG", None)
    p = subprocess.Popen([args.agent, "run", "-c", cfg], stderr=subprocess.PIPE, text=True, env=env)
    port = None
    log_lines = []

    for line in p.stderr:
        log_lines.append(line)
        m = re.search(r"HTTP listening on [0-9.]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if re.search(r"\bready: \d+ plugins", line):
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    if port is None:
        print("".join(log_lines))
        return 1
    try:
        n = args.requests
        # Warm up both paths (connections, caches).
        raw_body = json.dumps({"model": "llama3.1:latest", "stream": False,
                               "messages": [{"role": "user", "content": "Say hello"}]}).encode()
        raw_c = Poster("127.0.0.1", o.port, "/api/chat", raw_body)
        via_c = Poster("127.0.0.1", port, "/api/v1/ai/chat", BODY)
        paired_overhead(raw_c, via_c, 100)  # warm-up
        rounds = []
        for i in range(args.rounds):
            raw, via, diff = paired_overhead(raw_c, via_c, n)
            rounds.append((pct(raw, 50), pct(raw, 99), pct(via, 50), pct(via, 99), pct(diff, 50), pct(diff, 99)))
        print(f"sequential, {args.rounds} rounds x {n} requests, non-streaming, keep-alive, raw/via alternating:")
        for i, (r50, r99, v50, v99, d50, d99) in enumerate(rounds):
            print(f"  round {i + 1}: raw p50 {r50:.3f} p99 {r99:.3f} | via p50 {v50:.3f} p99 {v99:.3f} | "
                  f"paired overhead p50 {d50:.3f} p99 {d99:.3f} | p99 difference {v99 - r99:.3f} ms")
        med = lambda k: sorted(x[k] for x in rounds)[len(rounds) // 2]  # noqa: E731
        print(f"  median of rounds: overhead p50 {med(4):.3f} ms, paired p99 {med(5):.3f} ms, "
              f"p99(via) - p99(raw) {sorted(x[3] - x[1] for x in rounds)[len(rounds) // 2]:.3f} ms")

        def load(seconds, swap):
            lat = []
            errors = [0]
            lock = threading.Lock()
            stop = threading.Event()

            def client():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        conn.request("POST", "/api/v1/ai/chat", BODY, {"Content-Type": "application/json"})
                        r = conn.getresponse()
                        r.read()
                        ok = r.status == 200
                    except Exception:
                        ok = False
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    ms = (time.perf_counter() - t0) * 1000.0
                    with lock:
                        if ok:
                            lat.append(ms)
                        else:
                            errors[0] += 1

            ts = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in ts:
                t.start()
            swaps = 0
            end = time.monotonic() + seconds
            bound = "ai-ollama"
            while time.monotonic() < end:
                time.sleep(0.3)
                if swap:
                    bound = "ai-openai" if bound == "ai-ollama" else "ai-ollama"
                    write_config(d, o, a, bound)
                    p.send_signal(signal.SIGHUP)
                    swaps += 1
            stop.set()
            for t in ts:
                t.join()
            if swap and bound != "ai-ollama":
                write_config(d, o, a, "ai-ollama")
                p.send_signal(signal.SIGHUP)
                time.sleep(0.3)
            return lat, errors[0], swaps

        steady, e1, _ = load(args.seconds, False)
        swapping, e2, swaps = load(args.seconds, True)
        print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each:")
        print(f"  steady state   {len(steady)} requests, {e1} failed, p50 {pct(steady, 50):.3f} ms, p99 {pct(steady, 99):.3f} ms")
        print(f"  during swaps   {len(swapping)} requests, {e2} failed, {swaps} swaps, p50 {pct(swapping, 50):.3f} ms, "
              f"p99 {pct(swapping, 99):.3f} ms")
        print(f"  p99 ratio      {pct(swapping, 99) / pct(steady, 99):.2f}x (target <= 1.5x)")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        o.close()
        a.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
