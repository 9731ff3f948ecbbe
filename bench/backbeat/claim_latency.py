#!/usr/bin/env python3
"""Claim latency through a real nats-server and beat drift of a pulsing chorus-agent.

Starts nats-server on a free loopback port and one chorus-agent with backbeat in pulse mode (plus the
test driver plugin to create operations), subscribes to backbeat.> and records receive times.

The pulse schedules beat k at unix time k * period (its beat index follows the wall clock), so for
every beat:
  frame latency  = receive(frame k) - k*period   (timer wake-up + publish + nats-server + receive)
  claim latency  = receive(claim of beat k) - k*period, for the first and the last claim of the beat
                   (the last one includes building and publishing all N claims of that beat)
  drift          = slope of receive(frame k) against k, compared with the nominal period; the
                   BACKBEAT requirement is |drift| <= 1 %.

usage: claim_latency.py --build BUILD_DIR [--seconds 60] [--tempo 600] [--ops 1000]
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "plugins", "backbeat", "tests"))


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--agent", default=None)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--tempo", type=float, default=600)
    ap.add_argument("--ops", type=int, default=1000)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.environ.setdefault("CHORUS_AGENT_BIN", a.agent or os.path.join(build, "bin", "chorus-agent"))
    os.environ["CHORUS_BACKBEAT_PLUGIN_DIR"] = os.path.join(build, "lib", "chorus", "plugins")
    os.environ["CHORUS_BACKBEAT_DRIVER_DIR"] = os.path.join(build, "backbeat-test-plugins")
    import harness  # noqa: E402
    import natsutil  # noqa: E402
    harness.AGENT = os.environ["CHORUS_AGENT_BIN"]

    ws = harness.Workspace()
    srv = natsutil.NatsServer().start()
    agent = None
    try:
        sub = natsutil.NatsClient(srv.port)
        sub.sub("backbeat.>")
        recv = []  # (t_unix_s, subject, payload)
        orig_add = sub._add

        def add(m):
            recv.append((time.time(), m.subject, m.data))
            orig_add(m)

        sub._add = add
        cfg = {"cluster_id": natsutil.CLUSTER, "agent_id": "bench", "nats_url": srv.url, "tempo_bpm": a.tempo,
               "bar_length": 100000, "pulse": True, "buffer_limit": max(20000, 4 * a.ops)}
        path = ws.write("bench.yaml", natsutil.backbeat_yaml(ws, cfg))
        agent = harness.Agent(path).wait_ready()
        agent.wait_log(r"connected to NATS")
        if a.ops:
            q = f"/bbdriver/bulk_start?prefix=op-&n={a.ops}&beats=1000"
            st, body, _ = agent.http(q, timeout=120)
            assert st == 200 and json.loads(body)["ok"] == a.ops, body
        t_end = time.time() + a.seconds
        while time.time() < t_end:
            time.sleep(0.5)  # measurement window (not synchronisation)
        rows = list(recv)
    finally:
        if agent:
            agent.stop()
        srv.kill()
        ws.cleanup()

    period = 60.0 / a.tempo
    frames, first_claim, last_claim = {}, {}, {}
    for t, subj, data in rows:
        d = json.loads(data)
        if subj.startswith("backbeat.beat."):
            frames[d["beat_index"]] = t
        elif d.get("task_id", "").startswith("op-") and "beats_passed" in d.get("metadata", {}):
            b = d["beat_index"]
            first_claim.setdefault(b, t)
            last_claim[b] = t
    beats = sorted(frames)[2:]  # skip the start-up beats
    if len(beats) < 10:
        print("too few beats received", file=sys.stderr)
        return 1
    fl = [(frames[b] - b * period) * 1000 for b in beats]
    cf = [(first_claim[b] - b * period) * 1000 for b in beats if b in first_claim]
    cl = [(last_claim[b] - b * period) * 1000 for b in beats if b in last_claim]
    n = len(beats)
    mx = statistics.mean(beats)
    my = statistics.mean(frames[b] for b in beats)
    slope = sum((b - mx) * (frames[b] - my) for b in beats) / sum((b - mx) ** 2 for b in beats)
    drift = (slope - period) / period * 100
    span_err = ((frames[beats[-1]] - frames[beats[0]]) / ((beats[-1] - beats[0]) * period) - 1) * 100
    print(f"tempo {a.tempo} BPM (period {period * 1000:.1f} ms), {a.ops} operations, {n} beats over {a.seconds:.0f} s")
    print(f"frame latency from nominal beat time: p50 {pct(fl, 50):.2f} ms  p99 {pct(fl, 99):.2f} ms  max {max(fl):.2f} ms")
    if cf:
        print(f"first claim of beat:                  p50 {pct(cf, 50):.2f} ms  p99 {pct(cf, 99):.2f} ms")
        print(f"last claim of beat ({a.ops} claims):   p50 {pct(cl, 50):.2f} ms  p99 {pct(cl, 99):.2f} ms")
    print(f"beat drift: regression {drift:+.4f} %  first-to-last {span_err:+.4f} %  (requirement |drift| <= 1 %)")
    print(f"missing beats: {beats[-1] - beats[0] + 1 - n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
