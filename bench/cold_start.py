#!/usr/bin/env python3
"""Cold-start benchmark of chorus-agent with N no-op plugins (driven by bench/cold_start.sh).

For each N: writes a config enabling bench.noop-01 ... bench.noop-N (listed in reverse, so the start
order comes from the resolver, not from the file), with the bench plugin directory, an HTTP listener on
127.0.0.1:0 and a state_dir in a temporary directory. Each run starts `chorus-agent run -c CONFIG`,
reads the port from the stderr line "HTTP listening on 127.0.0.1:PORT", polls GET /health/ready in a
tight loop and records the wall time from just before exec to the first 200; then it sends SIGTERM and
records the time until the process exits (exit code must be 0). Runs of different N are interleaved
so that background noise spreads evenly over them. Standard library only.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PORT_RE = re.compile(rb"HTTP listening on 127\.0\.0\.1:(\d+)")
READY_RE = re.compile(rb"\] ready: (\d+) plugins running")
STARTED_RE = re.compile(rb"started plugin '[^']+' \S+ in ([0-9.]+) ms")


def write_config(root, plugin_dir, n):
    state_dir = os.path.join(root, f"state-{n}")
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(root, f"chorus-{n}.yaml")
    lines = [
        "agent:",
        "  id: bench-agent",
        "host:",
        "  log_level: info",
        f"  plugin_dirs: [{json.dumps(plugin_dir)}]",
        f"  state_dir: {json.dumps(state_dir)}",
        "  http:",
        "    listen: 127.0.0.1:0",
        "plugins:",
    ]
    for k in range(n, 0, -1):
        lines.append(f"  bench.noop-{k:02d}: {{ enabled: true, critical: true }}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def ready(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health/ready")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def one_run(agent, config, poll=True, timeout_s=30.0):
    """Starts the agent once and stops it with SIGTERM. Returns (ready_ms, stop_ms, start_ms_list).

    poll=True:  ready_ms = exec -> first 200 on GET /health/ready (tight polling loop).
    poll=False: ready_ms = exec -> the "ready: N plugins running" line on stderr, no HTTP traffic at
                all (the host logs that line right after it flips /health/ready to 200), to show how
                much the polling itself, competing for the same 2 cores, adds.
    stop_ms = SIGTERM -> process exit, with a blocking waitpid (no polling).
    start_ms_list = the host's own "started plugin '<id>' <version> in <ms> ms" figures (create + start
    of each plugin, as the host timed them).
    """
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([agent, "run", "-c", config], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # A watchdog instead of wait(timeout=...): Popen.wait with a timeout polls with sleeps of up to
    # 50 ms, which would quantise the stop figure.
    watchdog = threading.Timer(timeout_s, proc.kill)
    watchdog.start()
    tail = []
    lines = []
    try:
        port = None
        want = PORT_RE if poll else READY_RE
        while True:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("chorus-agent exited early:\n" + b"".join(tail).decode(errors="replace"))
            tail = (tail + [line])[-20:]
            lines.append(line)
            m = want.search(line)
            if m:
                break
        if poll:
            port = int(m.group(1))
        else:
            t_ready = time.perf_counter_ns()
        # Keep draining stderr so the agent never blocks on a full pipe.
        drain = threading.Thread(target=lambda: lines.extend(proc.stderr.readlines()), daemon=True)
        drain.start()
        if poll:
            while not ready(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"chorus-agent exited with {proc.returncode} before ready")
            t_ready = time.perf_counter_ns()
        t_term = time.perf_counter_ns()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait()
        t_exit = time.perf_counter_ns()
        drain.join(timeout=5)
        if rc != 0:
            raise RuntimeError(f"chorus-agent exited with {rc} after SIGTERM (killed by the watchdog?)")
        starts = [float(m.group(1)) for m in map(STARTED_RE.search, lines) if m]
        return (t_ready - t0) / 1e6, (t_exit - t_term) / 1e6, starts
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def report(title, samples, counts, repeat, per_plugin_target=2.0):
    out = {}
    print(f"{title} ({repeat} runs each, ms)")
    print(f"{'plugins':>8} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}")
    for n in counts:
        s = samples[n]
        out[n] = {"median_ms": statistics.median(s), "p90_ms": percentile(s, 90), "min_ms": min(s), "max_ms": max(s)}
        r = out[n]
        print(f"{n:>8} {r['median_ms']:9.2f} {r['p90_ms']:9.2f} {r['min_ms']:9.2f} {r['max_ms']:9.2f}")
    lo, hi = min(counts), max(counts)
    if hi > lo:
        per = (out[hi]["median_ms"] - out[lo]["median_ms"]) / (hi - lo)
        per_p90 = (out[hi]["p90_ms"] - out[lo]["p90_ms"]) / (hi - lo)
        verdict = "" if per_plugin_target is None else \
            f"; target < {per_plugin_target:g} ms: {'met' if per < per_plugin_target else 'NOT met'}"
        print(f"added per plugin: (median{hi} - median{lo})/{hi - lo} = {per:.3f} ms"
              f" (same from p90: {per_p90:.3f} ms){verdict}")
        out["per_plugin_ms"] = per
        out["per_plugin_p90_ms"] = per_p90
    print()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--counts", default="1,10,50")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-log-mode", dest="log_mode", action="store_false",
                    help="skip the second series (time to the 'ready:' log line without HTTP polling)")
    ap.add_argument("--json", help="also write the raw samples and summary here")
    ap.add_argument("--config-dir", help="write the configs (and state dirs) here and keep them, "
                    "instead of a temporary directory that is removed")
    ap.add_argument("--configs-only", action="store_true", help="write the configs, run nothing")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    root = args.config_dir or tempfile.mkdtemp(prefix="chorus-cold-start-")
    os.makedirs(root, exist_ok=True)
    try:
        configs = {n: write_config(root, os.path.abspath(args.plugin_dir), n) for n in counts}
        if args.configs_only:
            return 0
        for n in counts:  # warm-up: page cache, state dir
            one_run(args.agent, configs[n])
        modes = ("poll", "log") if args.log_mode else ("poll",)
        samples = {m: {n: [] for n in counts} for m in modes}
        stops = {n: [] for n in counts}
        starts = []  # the host's create+start time of every plugin in every run
        for _ in range(args.repeat):
            for n in counts:
                for m in modes:
                    t_ready, t_stop, plugin_starts = one_run(args.agent, configs[n], poll=(m == "poll"))
                    samples[m][n].append(t_ready)
                    starts.extend(plugin_starts)
                    if m == "poll":
                        stops[n].append(t_stop)

        summary = {}
        titles = {"poll": "exec -> first 200 on GET /health/ready",
                  "log": "exec -> 'ready:' line on stderr, no HTTP polling"}
        for m in modes:
            summary[m] = report(titles[m], samples[m], counts, args.repeat)
        if starts:
            summary["plugin_start"] = {"count": len(starts), "median_ms": statistics.median(starts),
                                       "p90_ms": percentile(starts, 90), "p99_ms": percentile(starts, 99),
                                       "max_ms": max(starts), "over_2ms": sum(1 for x in starts if x > 2.0)}
            r = summary["plugin_start"]
            print(f"host-timed create+start per plugin ('started plugin ... in X ms', all runs, {r['count']} starts):"
                  f" median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f}, p99 {r['p99_ms']:.3f},"
                  f" max {r['max_ms']:.3f}; {r['over_2ms']} over 2 ms\n")
        summary["stop"] = report("SIGTERM -> exit (after the /health/ready runs)", stops, counts, args.repeat,
                                 per_plugin_target=None)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"summary": summary, "ready_ms": samples, "stop_ms": stops, "plugin_start_ms": starts}, f,
                          indent=2)
    finally:
        if not args.config_dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
