"""What tests/cluster/soak.py runs beside the faults, and what it records for the invariants and figures
(Python stdlib only). Every probe addresses an agent by its fixed address, so it keeps working across
restarts; a request to an agent that was killed while it ran is not held against the agent.

  * Resources - RSS, PSS, anonymous memory and CPU of every agent incarnation from /proc, once a second;
  * PubsubProbe - one publication a tick on a test topic from a rotating agent, and every agent's
    GET /api/v1/pubsub/stream of it (re-attached after each restart): deliveries and duplicates per
    stream;
  * AiLoad - clients on POST /api/v1/ai/chat (streaming and not), each result with the provider;
  * TaskLoad - POST /api/v1/agent/tasks with our task ids;
  * StoreLoad - UCXI puts (acknowledged ones are checked everywhere at the end) and DHT put + get on
    another agent (the get's latency is the DHT figure).
"""
import base64
import hashlib
import http.client
import json
import random
import socket
import threading
import time
from urllib.parse import quote

from ai_harness import parse_sse  # plugins/reasoning/tests
from clusterlab import ROLE, http_json

CLK_TCK = 100
try:
    import os
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError, AttributeError):
    pass


class Ticker(threading.Thread):
    """Calls fn() every `interval` seconds until stop(); exceptions are kept, not raised."""

    def __init__(self, interval, fn, name):
        super().__init__(daemon=True, name=name)
        self.interval, self.fn = interval, fn
        self.stopped = threading.Event()
        self.errors = []

    def run(self):
        while not self.stopped.is_set():
            try:
                self.fn()
            except Exception as e:  # noqa: BLE001 - recorded, reported at the end
                self.errors.append(repr(e))
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join(timeout=30)


def proc_sample(pid):
    """(rss bytes, cpu ticks, pss bytes, anonymous bytes) of a process, or None when it is gone. RSS
    counts every page of the shared libraries each agent maps, again in every agent; PSS divides a page
    shared by n processes by n (what an agent costs beside the others), Anonymous is its own heap,
    stacks and library data."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        rollup = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Anonymous"):
                    rollup[k] = int(v.split()[0]) * 1024
        return rss, int(fields[11]) + int(fields[12]), rollup.get("Pss"), rollup.get("Anonymous")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


class Resources:
    """Samples every running agent once a second: {(name, incarnation): [(t, rss, ticks, pss, anon)]}."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.samples = {}
        self.lock = threading.Lock()
        self.ticker = Ticker(1.0, self.sample, "resources")

    def sample(self):
        t = time.monotonic()
        for n in self.nodes:
            if n.alive():
                s = proc_sample(n.pid)
                if s:
                    with self.lock:
                        self.samples.setdefault((n.name, n.incarnation), []).append((t, *s))

    def cpu_percent(self, t0, t1):
        """{(name, inc): % of one core over [t0, t1]} for incarnations sampled at both ends."""
        out = {}
        with self.lock:
            for key, ss in self.samples.items():
                inside = [s for s in ss if t0 <= s[0] <= t1]
                if len(inside) >= 2 and inside[-1][0] - inside[0][0] >= 0.5 * (t1 - t0):
                    dt = inside[-1][0] - inside[0][0]
                    out[key] = 100.0 * (inside[-1][2] - inside[0][2]) / CLK_TCK / dt
        return out

    def lives(self):
        """{(name, inc): (time of its first sample, time of its last)}."""
        with self.lock:
            return {key: (ss[0][0], ss[-1][0]) for key, ss in self.samples.items() if ss}

    def rss_of(self, key, t):
        """RSS bytes of incarnation `key` at its last sample at or before t (its first if none)."""
        with self.lock:
            ss = self.samples[key]
            before = [s for s in ss if s[0] <= t]
            return (before[-1] if before else ss[0])[1]

    def rss_max(self, t0, t1, field=1):
        """{(name, inc): the largest RSS (field 1; 3 PSS, 4 anonymous) sampled in [t0, t1]}."""
        out = {}
        with self.lock:
            for key, ss in self.samples.items():
                inside = [s[field] for s in ss if t0 <= s[0] <= t1 and s[field] is not None]
                if inside:
                    out[key] = max(inside)
        return out


class SseStream:
    """GET /api/v1/pubsub/stream?topic=T of one agent incarnation; on_event(stream, event dict)."""

    def __init__(self, node, topic, on_event, timeout=30):
        self.node, self.name, self.incarnation = node, node.name, node.incarnation
        self.on_event = on_event
        self.subscribed_at = None
        self.closed_at = None
        self.error = None
        self.conn = http.client.HTTPConnection(node.ip, 8081, timeout=timeout)
        self.conn.request("GET", f"/api/v1/pubsub/stream?topic={quote(topic, safe='')}",
                          headers={"Accept": "text/event-stream"})
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise AssertionError(f"{node.name}: stream answered {resp.status}: {resp.read()[:300]!r}")
        self.conn.sock.settimeout(None)
        self.subscribed = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(resp,), daemon=True)
        self.thread.start()
        if not self.subscribed.wait(timeout):
            raise AssertionError(f"{node.name}: no ': subscribed' on the stream of {topic}")

    def _read(self, resp):
        data = []
        try:
            while True:
                raw = resp.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith(": subscribed"):
                    self.subscribed_at = time.monotonic()
                    self.subscribed.set()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line == "" and data:
                    try:
                        self.on_event(self, json.loads("\n".join(data)))
                    except ValueError:
                        pass
                    data = []
        except Exception as e:  # noqa: BLE001 - a killed agent, or close()
            self.error = repr(e)
        self.closed_at = time.monotonic()

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()


class PubsubProbe:
    """Publishes {"seq": n} (raw bytes) on TOPIC from the live agents in turn, every `interval` s, and
    records what every agent's stream delivers."""
    TOPIC = "CHORUS/soak/v1"

    def __init__(self, nodes, interval):
        self.nodes = nodes
        self.lock = threading.Lock()
        self.published = {}    # seq -> (t, publisher name)
        self.publish_failures = []
        self.streams = []      # every SseStream ever opened
        self.delivered = {}    # id(stream) -> {seq: count}
        self.delivered_at = {}  # seq -> [t of each delivery]
        self.seq = 0
        self.ticker = Ticker(interval, self.publish_one, "pubsub")

    def attach(self, node):
        s = SseStream(node, self.TOPIC, self._on_event)
        with self.lock:
            self.streams.append(s)
            self.delivered[id(s)] = {}
        return s

    def _on_event(self, stream, ev):
        raw = ev.get("raw_base64")
        if raw is None:
            return
        try:
            seq = json.loads(base64.b64decode(raw))["seq"]
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            d = self.delivered[id(stream)]
            d[seq] = d.get(seq, 0) + 1
            self.delivered_at.setdefault(seq, []).append(time.monotonic())

    def publish_one(self):
        live = [n for n in self.nodes if n.alive()]
        if not live:
            return
        with self.lock:
            self.seq += 1
            seq = self.seq
        node = live[seq % len(live)]
        body = {"topic": self.TOPIC, "raw_base64": base64.b64encode(json.dumps({"seq": seq}).encode()).decode()}
        t = time.monotonic()
        status, ans = node.post("/api/v1/pubsub/publish", body, timeout=5)
        with self.lock:
            if status == 200:
                self.published[seq] = (t, node.name)
            else:
                self.publish_failures.append((seq, node.name, status, str(ans)[:200]))

    def duplicates(self):
        with self.lock:
            return [(s.name, s.incarnation, seq, c) for s in self.streams
                    for seq, c in self.delivered[id(s)].items() if c > 1]

    def missing(self, connected, settle, deliver_bound):
        """Publications made while connected(t) that a stream open from `settle` s before until
        `deliver_bound` s after did not deliver: [(seq, publisher, stream name, incarnation)]. A
        publication whose publisher was killed (-9) within `deliver_bound` after it is not counted: the
        agent answered the publish and may have died before its gossip thread sent the message (seen
        with sanitized agents: the last publication of a burst, then kill -9 of its publisher)."""
        kills = {n.name: list(n.kills) for n in self.nodes}
        out = []
        with self.lock:
            for seq, (t, pub) in self.published.items():
                if not connected(t) or any(t <= k <= t + deliver_bound for k in kills.get(pub, [])):
                    continue
                for s in self.streams:
                    if s.subscribed_at is None or s.subscribed_at > t - settle:
                        continue
                    if s.closed_at is not None and s.closed_at < t + deliver_bound:
                        continue
                    if seq not in self.delivered[id(s)]:
                        out.append((seq, pub, s.name, s.incarnation))
        return out

    def checked(self, connected):
        with self.lock:
            return sum(1 for t, _ in self.published.values() if connected(t))

    def close(self):
        for s in self.streams:
            s.close()


class AiLoad:
    """`clients` threads, each sending POST /api/v1/ai/chat to a random live agent in a loop.
    results: (t0, t1, node name, incarnation at t0, incarnation at t1, status, provider, detail)."""

    def __init__(self, nodes, clients, pause=0.05):
        self.nodes = nodes
        self.clients, self.pause = clients, pause
        self.results = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def _one(self, node, stream):
        body = {"messages": [{"role": "user", "content": "Say hello"}], "stream": stream}
        status, ans = http_json(node.url("/api/v1/ai/chat"), "POST", body, timeout=60)
        if status != 200:
            err = ans.get("error") if isinstance(ans, dict) else None
            return status, (err.get("provider") if isinstance(err, dict) else None), str(ans)[:300]
        if not stream:
            return status, ans.get("provider"), ""
        events = parse_sse(ans.get("raw", ""))
        errors = [d for e, d in events if e == "error"]
        if errors:
            return 502, None, errors[0][:300]
        if not events or events[-1][1] != "[DONE]":
            return -2, None, "stream did not end with [DONE]"
        providers = {json.loads(d).get("provider") for e, d in events[:-1]}
        if len(providers) != 1:
            return -3, None, f"chunks from several providers {providers}"
        return 200, providers.pop(), ""

    def _client(self, i):
        rng = random.Random(i)
        while not self.stopped.is_set():
            live = [n for n in self.nodes if n.alive()]
            if not live:
                self.stopped.wait(0.2)
                continue
            node = rng.choice(live)
            inc0, t0 = node.incarnation, time.monotonic()
            try:
                status, provider, detail = self._one(node, i % 2 == 0)
            except Exception as e:  # noqa: BLE001 - a failed request
                status, provider, detail = -1, None, repr(e)
            with self.lock:
                self.results.append((t0, time.monotonic(), node.name, inc0, node.incarnation if node.alive() else -1,
                                     status, provider, detail))
            self.stopped.wait(self.pause)

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=90)


class TaskLoad:
    """Announces a task on a live agent (round robin) every `interval` s; accepted: {task_id: (t, node)}."""

    def __init__(self, nodes, interval, tag):
        self.nodes, self.tag = nodes, tag
        self.accepted = {}
        self.refused = []
        self.n = 0
        self.lock = threading.Lock()
        self.ticker = Ticker(interval, self.announce_one, "tasks")

    def announce_one(self):
        live = [n for n in self.nodes if n.alive()]
        if not live:
            return
        self.n += 1
        node = live[self.n % len(live)]
        tid = f"soak{self.tag}-{self.n}"
        status, ans = node.post("/api/v1/agent/tasks", {"title": f"soak task {self.n}", "task_id": tid,
                                                        "description": f"Task {self.n} of the soak: say hello."})
        with self.lock:
            if status == 202:
                self.accepted[tid] = (time.monotonic(), node.name)
            else:
                self.refused.append((tid, node.name, status, str(ans)[:200]))


class StoreLoad:
    """Every tick: a UCXI put on one live agent and a DHT put there followed by a get on another.
    ucxi_acked: [(t, node, address, sha256 hex)]; dht_gets: [(t, seconds, status)]."""

    def __init__(self, nodes, interval, tag):
        self.nodes, self.tag = nodes, tag
        self.ucxi_acked = []
        self.ucxi_failed = []
        self.dht_gets = []
        self.dht_failed = []
        self.n = 0
        self.lock = threading.Lock()
        self.ticker = Ticker(interval, self.one, "store")

    def one(self):
        live = [n for n in self.nodes if n.alive()]
        if len(live) < 2:
            return
        self.n += 1
        a = live[self.n % len(live)]
        content = f"soak {self.tag} item {self.n} put on {a.name} at {time.time():.3f}\n".encode()
        series = f"ucxl://soak:{ROLE}@cluster:soak{self.tag}/*^/items/i{self.n}.txt"
        t = time.monotonic()
        status, env = http_json(a.url("/ucxi/v1/put?address=" + quote(series, safe="")), "PUT", raw=content,
                                timeout=30, headers={"Content-Type": "text/plain; charset=utf-8"})
        with self.lock:
            if status == 201:
                self.ucxi_acked.append((t, a.name, env["response"]["data"]["address"],
                                        hashlib.sha256(content).hexdigest(), content.decode()))
            else:
                self.ucxi_failed.append((a.name, status, str(env)[:200]))
        key = f"/chorus/soak{self.tag}-k{self.n}"
        status, ans = http_json(a.url("/api/v1/dht/values?key=" + quote(key, safe="")), "PUT", raw=content, timeout=30,
                                headers={"Content-Type": "application/octet-stream"})
        if status != 200:
            with self.lock:
                self.dht_failed.append(("put", a.name, status, str(ans)[:200]))
            return
        b = random.choice([n for n in live if n is not a])
        t0 = time.monotonic()
        status, ans = http_json(b.url("/api/v1/dht/values?key=" + quote(key, safe="")), timeout=30)
        dt = time.monotonic() - t0
        with self.lock:
            self.dht_gets.append((t0, dt, status))
            if status != 200 or ans.get("raw", "").encode() != content:
                self.dht_failed.append(("get", b.name, status, str(ans)[:200]))
