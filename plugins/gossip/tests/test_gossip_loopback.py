"""Three chorus-agents (p2p + gossip) on 127.0.0.1, connected to each other, driven over HTTP:
publish on one and every other receives it once on its event stream; join/leave/topics; raw publish;
unknown message types delivered; size and input errors; the HMMM hop limit; metrics; /health with the
loopback probe.

The agents are started once for the class (each test uses its own topic or its own messages) and
connected through p2p bootstrap_peers: A first, B dials A, C dials A and B.
"""
import base64
import os
import unittest

import harness
from gossiptest import GossipAgent, SseStream, agent_missing_reason, gossip_config_yaml
from harness import Agent, Workspace, finish_agents, free_port

COORD = "CHORUS/coordination/v1"
MAX_MESSAGE = 16384


def wait_for(what, fn, timeout=20):
    """Polls fn (an HTTP query of state) until it returns something truthy (harness.wait_for)."""
    return harness.wait_for(fn, timeout, what, interval=0.05)


def metric(agent, name, **labels):
    """The value of the sample of `name` with exactly these labels in the GossipAgent's /metrics (None
    when absent)."""
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for key, value in agent.metric_samples(name).items():
        if sorted(filter(None, key.split(","))) == want:
            return value
    return None


class GossipLoopbackTest(unittest.TestCase):
    agents = []
    ws = None

    @classmethod
    def setUpClass(cls):
        reason = agent_missing_reason()
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
            cls.ids = [x.peer_id for x in cls.all]
            # Every agent has a pubsub stream to the two others and knows they joined the static topic.
            for i, x in enumerate(cls.all):
                others = {p for j, p in enumerate(cls.ids) if j != i}
                wait_for(f"gossip peers of agent {i}", lambda x=x, others=others: cls._knows(x, others, COORD), timeout=30)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls, name, bootstrap=(), gossip=None):
        """A GossipAgent on 127.0.0.1 with a small message limit, a fast heartbeat and probe."""
        state = cls.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        g = {"max_message_bytes": MAX_MESSAGE, "router": {"heartbeat_ms": 300},
             "probe": {"interval_ms": 1000, "timeout_ms": 500}}
        g.update(gossip or {})
        text = gossip_config_yaml(state, agent_id=f"it-{name}", p2p_listen=[f"/ip4/127.0.0.1/tcp/{port}"],
                                  bootstrap=bootstrap, gossip=g)
        agent = Agent(cls.ws.write(f"{name}.yaml", text))
        cls.agents.append(agent)
        agent.wait_ready()
        ga = GossipAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", f"it-{name}")
        cls.addrs.append(ga.addr)
        return ga

    @staticmethod
    def _knows(agent, peer_ids, topic):
        status, peers = agent.request("GET", "/api/v1/pubsub/peers")
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
            status, ans = x.request("POST", "/api/v1/pubsub/join", {"topic": topic})
            self.assertEqual(status, 200, ans)
            self.assertEqual(ans, {"topic": topic, "subscribed": True})
        for i, x in enumerate(self.all):
            others = {p for j, p in enumerate(self.ids) if j != i}
            wait_for(f"{topic} subscriptions seen by agent {i}", lambda x=x, o=others: self._knows(x, o, topic))

    def streams(self, topic, agents):
        # SseStream asserts the 200 answer and the text/event-stream Content-Type.
        out = [SseStream(x.host_ip, x.port, topic) for x in agents]
        for s in out:
            self.addCleanup(s.close)
            s.wait_subscribed()
        return out

    # ---- tests ----

    def test_publish_reaches_every_other_agent_exactly_once(self):
        topic = COORD
        sa, sb, sc = self.streams(topic, self.all)
        ids = []
        for i in range(5):
            status, ans = self.a.request("POST", "/api/v1/pubsub/publish",
                                  {"topic": topic, "type": "task_announcement", "data": {"task": i}})
            self.assertEqual(status, 200, ans)
            self.assertEqual(ans["topic"], topic)
            self.assertRegex(ans["message_id"], r"^[0-9a-f]+$")
            ids.append(ans["message_id"])
        a_id = self.ids[0]
        for s in (sa, sb, sc):
            for i, mid in enumerate(ids):
                ev = s.wait_event(lambda e, mid=mid: e["message_id"] == mid, what=f"message {i}")
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
        status, marker = self.a.request("POST", "/api/v1/pubsub/publish", {"topic": topic, "type": "task_progress"})
        self.assertEqual(status, 200, marker)
        for s in (sb, sc):
            s.wait_event(lambda e: e["message_id"] == marker["message_id"], what="marker")
            got = [e["message_id"] for e in s.snapshot() if e["message_id"] in ids]
            self.assertEqual(sorted(got), sorted(ids), "each message exactly once")
        # Seqnos of one publisher increase.
        seqnos = [int(next(e for e in sb.snapshot() if e["message_id"] == mid)["seqno"]) for mid in ids]
        self.assertEqual(seqnos, sorted(seqnos))

    def test_join_leave_topics(self):
        topic = "CHORUS/task/loopback-join"
        self.join_everywhere(topic)
        status, again = self.b.request("POST", "/api/v1/pubsub/join", {"topic": topic})
        self.assertEqual((status, again), (200, {"topic": topic, "subscribed": True}), "join is idempotent")
        status, topics = self.a.request("GET", "/api/v1/pubsub/topics")
        self.assertEqual(status, 200)
        entry = next(t for t in topics if t["topic"] == topic)
        self.assertEqual(entry["subscribed"], True)
        self.assertEqual(entry["peers"], 2)
        self.assertTrue(all(set(t) == {"topic", "subscribed", "peers", "mesh_peers"} for t in topics), topics)
        self.assertTrue({COORD, "hmmm/meta-discussion/v1", "CHORUS/context-feedback/v1"} <=
                        {t["topic"] for t in topics if t["subscribed"]}, "static topics joined at start")
        wait_for("a mesh on the new topic", lambda: next(
            t for t in self.a.request("GET", "/api/v1/pubsub/topics")[1] if t["topic"] == topic)["mesh_peers"] == 2)

        sb, = self.streams(topic, [self.b])
        status, ans = self.b.request("POST", "/api/v1/pubsub/leave", {"topic": topic})
        self.assertEqual((status, ans), (200, {"topic": topic, "subscribed": True}),
                         "an open event stream keeps the topic joined")
        sb.close()
        wait_for("the stream's subscription to end",
                 lambda: self.b.request("POST", "/api/v1/pubsub/leave", {"topic": topic})[1] ==
                 {"topic": topic, "subscribed": False}, timeout=30)
        status, ans = self.b.request("POST", "/api/v1/pubsub/leave", {"topic": topic})
        self.assertEqual((status, ans), (200, {"topic": topic, "subscribed": False}), "leave is idempotent")
        wait_for("A to see B leave", lambda: not self._knows(self.a, {self.ids[1]}, topic))
        for x in (self.a, self.c):
            x.request("POST", "/api/v1/pubsub/leave", {"topic": topic})

    def test_raw_and_unknown_types_are_delivered(self):
        topic = "hmmm/issue-42/loopback"
        self.join_everywhere(topic)
        sb, sc = self.streams(topic, [self.b, self.c])
        payload = bytes(range(256)) + b"not json"
        status, raw = self.c.request("POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "raw_base64": base64.b64encode(payload).decode()})
        self.assertEqual(status, 200, raw)
        ev = sb.wait_event(lambda e: e["message_id"] == raw["message_id"], what="raw message")
        self.assertNotIn("data", ev)
        self.assertEqual(base64.b64decode(ev["raw_base64"]), payload)
        self.assertEqual(ev["from"], self.ids[2])
        # The publisher's own stream gets its own message too.
        sc.wait_event(lambda e: e["message_id"] == raw["message_id"], what="own raw message")

        status, unk = self.a.request("POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "type": "future_type_v9", "data": [1, "two", None]})
        self.assertEqual(status, 200, unk)
        ev = sb.wait_event(lambda e: e["message_id"] == unk["message_id"], what="unknown-type message")
        self.assertEqual(ev["data"]["type"], "future_type_v9")
        self.assertEqual(ev["data"]["data"], [1, "two", None])

    def test_bad_input(self):
        pub = "/api/v1/pubsub/publish"
        status, ans = self.a.request("POST", pub, raw=b"{not json")
        self.assertEqual(status, 400, ans)
        self.assertEqual(set(ans["error"]), {"code", "message"})
        for body in ({"type": "task_claim"}, {"topic": "", "type": "task_claim"}, {"topic": COORD},
                     {"topic": COORD, "raw_base64": "***"}, {"topic": "x" * 1025, "type": "task_claim"},
                     {"topic": COORD, "type": "task_claim", "hop_count": -1}, [1, 2]):
            status, ans = self.a.request("POST", pub, body)
            self.assertEqual(status, 400, (body, ans))
            self.assertIn("message", ans["error"])
        status, ans = self.a.request("POST", pub, {"topic": COORD, "type": "task_claim", "data": "x" * (MAX_MESSAGE + 1)})
        self.assertEqual(status, 413, ans)
        status, ans = self.a.request("POST", pub, {"topic": COORD, "raw_base64": base64.b64encode(b"y" * (MAX_MESSAGE + 1)).decode()})
        self.assertEqual(status, 413, ans)
        status, ans = self.a.request("POST", "/api/v1/pubsub/join", raw=b"[]")
        self.assertEqual(status, 400, ans)
        status, _ = self.a.get_text("/api/v1/pubsub/stream")
        self.assertEqual(status, 400)

    def test_hop_limit(self):
        topic = "hmmm/meta-discussion/v1"
        sb, = self.streams(topic, [self.b])
        before = metric(self.b, "chorus_gossip_messages_ignored_total", topic=topic, reason="hop_limit") or 0
        # A (hop_limit 10) relays a message at hop 7: B (hop_limit 5) must drop it; hop 5 passes.
        status, far = self.a.request("POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "type": "meta_discussion", "data": {}, "hop_count": 7})
        self.assertEqual(status, 200, far)
        status, near = self.a.request("POST", "/api/v1/pubsub/publish",
                               {"topic": topic, "type": "meta_discussion", "data": {}, "hop_count": 5})
        self.assertEqual(status, 200, near)
        ev = sb.wait_event(lambda e: e["message_id"] == near["message_id"], what="the hop-5 message")
        self.assertEqual(ev["data"]["hop_count"], 5)
        wait_for("the hop-limit drop to be counted", lambda: (metric(
            self.b, "chorus_gossip_messages_ignored_total", topic=topic, reason="hop_limit") or 0) >= before + 1)
        self.assertNotIn(far["message_id"], [e["message_id"] for e in sb.snapshot()])
        # Over our own limit: refused at the door.
        status, ans = self.b.request("POST", "/api/v1/pubsub/publish",
                              {"topic": topic, "type": "meta_discussion", "hop_count": 6})
        self.assertEqual(status, 400, ans)

    def test_metrics_and_health(self):
        status, ans = self.a.request("POST", "/api/v1/pubsub/publish", {"topic": COORD, "type": "capability_broadcast"})
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
            status, health = x.get("/health")
            self.assertEqual(status, 200, health)
            g = health["plugins"]["gossip"]
            self.assertTrue(g["healthy"], g)
            self.assertIn("loopback probe delivered", g["message"])
            self.assertIn("2 gossip peer(s)", g["message"])


if __name__ == "__main__":
    unittest.main()
