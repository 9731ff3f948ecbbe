"""Three chorus-agents (p2p + gossip) on 127.0.0.1, connected to each other, driven over HTTP:
publish on one and every other receives it once on its event stream; join/leave/topics; raw publish;
unknown message types delivered; size and input errors; the HMMM hop limit; metrics; /health with the
loopback probe.

The agents are started once for the class (each test uses its own topic or its own messages) and
connected through p2p bootstrap_peers: A first, B dials A, C dials A and B.
"""
import base64
import http.client
import json
import os
import socket
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import SLOW, Agent, Workspace, finish_agents, free_port, missing, scale

P2P_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
GOSSIP_DIR = os.environ.get("CHORUS_GOSSIP_PLUGIN_DIR", "")
COORD = "CHORUS/coordination/v1"
MAX_MESSAGE = 16384


def missing_reason():
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, so in ((P2P_DIR, "chorus-p2p.so"), (GOSSIP_DIR, "chorus-gossip.so")):
        if not d or not os.path.exists(os.path.join(d, so)):
            return missing("build", f"{so} not found in {d!r}")
    return None


def gossip_config(state_dir, port, *, bootstrap=(), gossip=None):
    p2p = {"listen": [f"/ip4/127.0.0.1/tcp/{port}"], "bootstrap_peers": list(bootstrap)}
    g = {"max_message_bytes": MAX_MESSAGE, "router": {"heartbeat_ms": 300},
         "probe": {"interval_ms": 1000, "timeout_ms": 500}}
    g.update(gossip or {})
    dirs = sorted({P2P_DIR, GOSSIP_DIR})
    return "\n".join([
        "host:",
        "  http:",
        "    listen: 127.0.0.1:0",
        f"  state_dir: {json.dumps(state_dir)}",
        "  log_level: info",
        "  shutdown_timeout_ms: 8000",
        f"  plugin_dirs: {json.dumps(dirs)}",
        "plugins:",
        f"  p2p: {json.dumps({'enabled': True, 'critical': True, 'config': p2p})}",
        f"  gossip: {json.dumps({'enabled': True, 'critical': True, 'config': g})}",
    ]) + "\n"


def request(agent, method, path, body=None, raw=None, timeout=30):
    """(status, parsed JSON or text) of one HTTP request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{agent.port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=scale(timeout)) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_for(what, fn, timeout=20, interval=0.05):
    """Polls fn (an HTTP query of state) until it returns something truthy; the loop ends on success or
    at the deadline."""
    deadline = time.monotonic() + scale(timeout)
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def metric(agent, name, **labels):
    """The value of one sample of /metrics (None when absent)."""
    _, text, _ = agent.http("/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        if "{" in key:
            n, rest = key.split("{", 1)
            got = ",".join(sorted(rest.rstrip("}").split(",")))
        else:
            n, got = key, ""
        if n == name and got == want:
            return float(value)
    return None


class EventStream:
    """GET /api/v1/pubsub/stream?topic=T read on a thread; events collected as parsed JSON."""

    def __init__(self, agent, topic):
        self.conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=scale(60))
        self.conn.request("GET", "/api/v1/pubsub/stream?topic=" + urllib.parse.quote(topic, safe=""))
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type", "")
        self.events = []
        self.subscribed = False
        self.ended = False
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                with self.cond:
                    if line.startswith(": subscribed"):
                        self.subscribed = True
                    elif line.startswith("data: "):
                        self.events.append(json.loads(line[len("data: "):]))
                    self.cond.notify_all()
        except Exception:  # noqa: BLE001 - the socket closed under us (close()) or the agent ended
            pass
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def wait(self, pred, timeout=20, what="event"):
        deadline = time.monotonic() + scale(timeout)
        with self.cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    raise AssertionError(f"no {what} within {scale(timeout)}s; events: {self.events!r}")
                self.cond.wait(remaining)

    def wait_subscribed(self, timeout=10):
        deadline = time.monotonic() + scale(timeout)
        with self.cond:
            while not self.subscribed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    raise AssertionError("the event stream never said it was subscribed")
                self.cond.wait(remaining)

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()


class GossipLoopbackTest(unittest.TestCase):
    agents = []
    ws = None

    @classmethod
    def setUpClass(cls):
        reason = missing_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.ws = Workspace()
        cls.agents = []
        cls.addrs = []
        try:
            # A allows more hops than B and C, so it can send what they must drop.
            cls.a = cls._start("a", gossip={"hop_limit": 10})
            cls.b = cls._start("b", bootstrap=cls.addrs[:1])
            cls.c = cls._start("c", bootstrap=cls.addrs[:2])
            cls.all = [cls.a, cls.b, cls.c]
            cls.ids = [cls.peer_id(x) for x in cls.all]
            # Every agent has a pubsub stream to the two others and knows they joined the static topic.
            for i, x in enumerate(cls.all):
                others = {p for j, p in enumerate(cls.ids) if j != i}
                wait_for(f"gossip peers of agent {i}", lambda x=x, others=others: cls._knows(x, others, COORD), timeout=30)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls, name, bootstrap=(), gossip=None):
        state = cls.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        agent = Agent(cls.ws.write(f"{name}.yaml", gossip_config(state, port, bootstrap=bootstrap, gossip=gossip)))
        cls.agents.append(agent)
        agent.wait_ready()
        status, info = agent.http_json("/p2p/id")
        assert status == 200, info
        cls.addrs.append(f"/ip4/127.0.0.1/tcp/{port}/p2p/{info['peer_id']}")
        return agent

    @staticmethod
    def peer_id(agent):
        return agent.http_json("/p2p/id")[1]["peer_id"]

    @staticmethod
    def _knows(agent, peer_ids, topic):
        status, peers = request(agent, "GET", "/api/v1/pubsub/peers")
        if status != 200:
            return False
        subscribed = {p["peer_id"] for p in peers if topic in p["topics"]}
        return peer_ids <= subscribed

    @classmethod
    def tearDownClass(cls):
        problems = finish_agents(cls.agents) if cls.agents else []
        if cls.ws:
            cls.ws.cleanup()
        if problems:
            raise AssertionError("agent check at the end of the suite:\n" + "\n".join(problems))

    def join_everywhere(self, topic):
        for x in self.all:
            status, ans = request(x, "POST", "/api/v1/pubsub/join", {"topic": topic})
            self.assertEqual(status, 200, ans)
            self.assertEqual(ans, {"topic": topic, "subscribed": True})
        for i, x in enumerate(self.all):
            others = {p for j, p in enumerate(self.ids) if j != i}
            wait_for(f"{topic} subscriptions seen by agent {i}", lambda x=x, o=others: self._knows(x, o, topic))

    def streams(self, topic, agents):
        out = [EventStream(x, topic) for x in agents]
        for s in out:
            self.addCleanup(s.close)
            self.assertEqual(s.status, 200)
            self.assertTrue(s.content_type.startswith("text/event-stream"), s.content_type)
            s.wait_subscribed()
        return out

    # ---- tests ----

    def test_publish_reaches_every_other_agent_exactly_once(self):
        topic = COORD
        sa, sb, sc = self.streams(topic, self.all)
        ids = []
        for i in range(5):
            status, ans = request(self.a, "POST", "/api/v1/pubsub/publish",
                                  {"topic": topic, "type": "task_announcement", "data": {"task": i}})
            self.assertEqual(status, 200, ans)
            self.assertEqual(ans["topic"], topic)
            self.assertRegex(ans["message_id"], r"^[0-9a-f]+$")
            ids.append(ans["message_id"])
        a_id = self.ids[0]
        for s in (sa, sb, sc):
            for i, mid in enumerate(ids):
                ev = s.wait(lambda e, mid=mid: e["message_id"] == mid, what=f"message {i}")
                self.assertEqual(ev["topic"], topic)
                self.assertEqual(ev["from"], a_id)
                self.assertRegex(ev["seqno"], r"^[0-9]+$")
                env = ev["data"]
                self.assertEqual(env["type"], "task_announcement")
                self.assertEqual(env["data"], {"task": i})
                self.assertRegex(env["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                self.assertTrue(env["from"])
                self.assertNotIn("hop_count", env)
        # A marker after the burst: once it arrived, any duplicate of the burst would have arrived too
        # (same links, in order), and each stream holds each message exactly once.
        status, marker = request(self.a, "POST", "/api/v1/pubsub/publish", {"topic": topic, "type": "task_progress"})
        self.assertEqual(status, 200, marker)
        for s in (sb, sc):
            s.wait(lambda e: e["message_id"] == marker["message_id"], what="marker")
            got = [e["message_id"] for e in s.snapshot() if e["message_id"] in ids]
            self.assertEqual(sorted(got), sorted(ids), "each message exactly once")
        # Seqnos of one publisher increase.
        seqnos = [int(next(e for e in sb.snapshot() if e["message_id"] == mid)["seqno"]) for mid in ids]
        self.assertEqual(seqnos, sorted(seqnos))

    def test_join_leave_topics(self):
        topic = "CHORUS/task/loopback-join"
        self.join_everywhere(topic)
        status, again = request(self.b, "POST", "/api/v1/pubsub/join", {"topic": topic})
        self.assertEqual((status, again), (200, {"topic": topic, "subscribed": True}), "join is idempotent")
        status, topics = request(self.a, "GET", "/api/v1/pubsub/topics")
        self.assertEqual(status, 200)
        entry = next(t for t in topics if t["topic"] == topic)
        self.assertEqual(entry["subscribed"], True)
        self.assertEqual(entry["peers"], 2)
        self.assertTrue(all(set(t) == {"topic", "subscribed", "peers", "mesh_peers"} for t in topics), topics)
        self.assertTrue({COORD, "hmmm/meta-discussion/v1", "CHORUS/context-feedback/v1"} <=
                        {t["topic"] for t in topics if t["subscribed"]}, "static topics joined at start")
        wait_for("a mesh on the new topic", lambda: next(
            t for t in request(self.a, "GET", "/api/v1/pubsub/topics")[1] if t["topic"] == topic)["mesh_peers"] == 2)

        sb, = self.streams(topic, [self.b])
        status, ans = request(self.b, "POST", "/api/v1/pubsub/leave", {"topic": topic})
        self.assertEqual((status, ans), (200, {"topic": topic, "subscribed": True}),
                         "an open event stream keeps the topic joined")
        sb.close()
        wait_for("the stream's subscription to end",
                 lambda: request(self.b, "POST", "/api/v1/pubsub/leave", {"topic": topic})[1] ==
                 {"topic": topic, "subscribed": False}, timeout=30)
        status, ans = request(self.b, "POST", "/api/v1/pubsub/leave", {"topic": topic})
        self.assertEqual((status, ans), (200, {"topic": topic, "subscribed": False}), "leave is idempotent")
        wait_for("A to see B leave", lambda: not self._knows(self.a, {self.ids[1]}, topic))
        for x in (self.a, self.c):
            request(x, "POST", "/api/v1/pubsub/leave", {"topic": topic})

    def test_raw_and_unknown_types_are_delivered(self):
        topic = "hmmm/issue-42/loopback"
        self.join_everywhere(topic)
        sb, sc = self.streams(topic, [self.b, self.c])
        payload = bytes(range(256)) + b"not json"
        status, raw = request(self.c, "POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "raw_base64": base64.b64encode(payload).decode()})
        self.assertEqual(status, 200, raw)
        ev = sb.wait(lambda e: e["message_id"] == raw["message_id"], what="raw message")
        self.assertNotIn("data", ev)
        self.assertEqual(base64.b64decode(ev["raw_base64"]), payload)
        self.assertEqual(ev["from"], self.ids[2])
        # The publisher's own stream gets its own message too.
        sc.wait(lambda e: e["message_id"] == raw["message_id"], what="own raw message")

        status, unk = request(self.a, "POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "type": "future_type_v9", "data": [1, "two", None]})
        self.assertEqual(status, 200, unk)
        ev = sb.wait(lambda e: e["message_id"] == unk["message_id"], what="unknown-type message")
        self.assertEqual(ev["data"]["type"], "future_type_v9")
        self.assertEqual(ev["data"]["data"], [1, "two", None])

    def test_bad_input(self):
        pub = "/api/v1/pubsub/publish"
        status, ans = request(self.a, "POST", pub, raw=b"{not json")
        self.assertEqual(status, 400, ans)
        self.assertEqual(set(ans["error"]), {"code", "message"})
        for body in ({"type": "task_claim"}, {"topic": "", "type": "task_claim"}, {"topic": COORD},
                     {"topic": COORD, "raw_base64": "***"}, {"topic": "x" * 1025, "type": "task_claim"},
                     {"topic": COORD, "type": "task_claim", "hop_count": -1}, [1, 2]):
            status, ans = request(self.a, "POST", pub, body)
            self.assertEqual(status, 400, (body, ans))
            self.assertIn("message", ans["error"])
        status, ans = request(self.a, "POST", pub, {"topic": COORD, "type": "task_claim", "data": "x" * (MAX_MESSAGE + 1)})
        self.assertEqual(status, 413, ans)
        status, ans = request(self.a, "POST", pub, {"topic": COORD, "raw_base64": base64.b64encode(b"y" * (MAX_MESSAGE + 1)).decode()})
        self.assertEqual(status, 413, ans)
        status, ans = request(self.a, "POST", "/api/v1/pubsub/join", raw=b"[]")
        self.assertEqual(status, 400, ans)
        status, _, _ = self.a.http("/api/v1/pubsub/stream")
        self.assertEqual(status, 400)

    def test_hop_limit(self):
        topic = "hmmm/meta-discussion/v1"
        sb, = self.streams(topic, [self.b])
        before = metric(self.b, "chorus_gossip_messages_ignored_total", topic=topic, reason="hop_limit") or 0
        # A (hop_limit 10) relays a message at hop 7: B (hop_limit 5) must drop it; hop 5 passes.
        status, far = request(self.a, "POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "type": "meta_discussion", "data": {}, "hop_count": 7})
        self.assertEqual(status, 200, far)
        status, near = request(self.a, "POST", "/api/v1/pubsub/publish",
                               {"topic": topic, "type": "meta_discussion", "data": {}, "hop_count": 5})
        self.assertEqual(status, 200, near)
        ev = sb.wait(lambda e: e["message_id"] == near["message_id"], what="the hop-5 message")
        self.assertEqual(ev["data"]["hop_count"], 5)
        wait_for("the hop-limit drop to be counted", lambda: (metric(
            self.b, "chorus_gossip_messages_ignored_total", topic=topic, reason="hop_limit") or 0) >= before + 1)
        self.assertNotIn(far["message_id"], [e["message_id"] for e in sb.snapshot()])
        # Over our own limit: refused at the door.
        status, ans = request(self.b, "POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "type": "meta_discussion", "hop_count": 6})
        self.assertEqual(status, 400, ans)

    def test_metrics_and_health(self):
        status, ans = request(self.a, "POST", "/api/v1/pubsub/publish", {"topic": COORD, "type": "capability_broadcast"})
        self.assertEqual(status, 200, ans)
        wait_for("delivery counted on B", lambda: (metric(
            self.b, "chorus_gossip_messages_delivered_total", topic=COORD) or 0) >= 1)
        self.assertGreaterEqual(metric(self.a, "chorus_gossip_messages_published_total", topic=COORD) or 0, 1)
        self.assertEqual(metric(self.a, "chorus_gossip_peers"), 2)
        wait_for("mesh gauge", lambda: metric(self.a, "chorus_gossip_mesh_peers", topic=COORD) == 2)
        self.assertEqual(metric(self.a, "chorus_gossip_topic_peers", topic=COORD), 2)
        wait_for("probe latency observed", lambda: (metric(self.a, "chorus_gossip_probe_latency_seconds_count") or 0) >= 1)
        self.assertEqual(metric(self.a, "chorus_gossip_probe_failures_total") or 0, 0)
        wait_for("peer scores observed", lambda: (metric(self.a, "chorus_gossip_peer_score_count") or 0) >= 2)
        for x in self.all:
            status, health = x.http_json("/health")
            self.assertEqual(status, 200, health)
            g = health["plugins"]["gossip"]
            self.assertTrue(g["healthy"], g)
            self.assertIn("loopback probe delivered", g["message"])
            self.assertIn("2 gossip peer(s)", g["message"])


if __name__ == "__main__":
    unittest.main()
