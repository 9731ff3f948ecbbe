"""Five chorus-agents (p2p + dht) on 127.0.0.1, every one dialling the first (the bootstrap agent),
driven over HTTP: the routing tables fill through the bootstrap lookups, a value put on one agent is
got on every other, provider lookups list every announcer, find-peer answers addresses, and a record
survives a restart of the agent storing it (SIGTERM, start again on the same state dir, get it back
from the store alone).

The agents are started once for the class; the restart test runs last (unittest orders by name).
"""
import os
import unittest

import harness
from dhttest import agent_missing_reason, start_dht_agent
from harness import Workspace, finish_agents

N = 5
# Fast periodic work so a test never waits long; short per-peer timeouts keep failed dials cheap.
DHT_CONFIG = {"query_timeout_ms": 3000, "lookup_deadline_ms": 15000, "probe": {"interval_ms": 1000, "timeout_ms": 800}}


def wait_for(what, fn, timeout=30):
    """Polls fn (an HTTP query of state) until it returns something truthy (harness.wait_for)."""
    return harness.wait_for(fn, timeout, what, interval=0.05)


class DhtLoopbackTest(unittest.TestCase):
    agents = []
    ws = None

    @classmethod
    def setUpClass(cls):
        reason = agent_missing_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.ws = Workspace()
        cls.agents = []
        cls.nodes = []
        try:
            for i in range(N):
                bootstrap = [cls.nodes[0].addr] if i > 0 else []
                agent, node, port = start_dht_agent(cls.ws, f"n{i}", bootstrap=bootstrap, dht=DHT_CONFIG)
                cls.agents.append(agent)
                cls.nodes.append(node)
            cls.ids = [n.peer_id for n in cls.nodes]
            # Every routing table holds the four other agents (the bootstrap lookups introduce them).
            for i, n in enumerate(cls.nodes):
                others = set(cls.ids) - {n.peer_id}
                wait_for(f"routing table of agent {i} holds the other {N - 1}",
                         lambda n=n, others=others: others <= set(n.routing()["peer_ids"]))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = finish_agents(cls.agents) if cls.agents else []
        if cls.ws:
            cls.ws.cleanup()
        if problems:
            raise AssertionError("agent check at the end of the suite:\n" + "\n".join(problems))

    def test_1_routing_table_fills(self):
        for n in self.nodes:
            r = n.routing()
            self.assertEqual(r["mode"], "server", r)
            self.assertEqual(r["peers"], N - 1, r)
            self.assertEqual(sum(b["peers"] for b in r["buckets"]), N - 1, r)
            self.assertNotIn(n.peer_id, r["peer_ids"])
        # The tables filled through FIND_NODE lookups: every node took part in one, asking or answering
        # (the last to join may be in every table from its own lookups without having been asked yet).
        def find_node_exchanged(n):
            return (n.metric("chorus_dht_requests_total", 'type="FIND_NODE"') +
                    n.metric("chorus_dht_outbound_requests_total", 'type="FIND_NODE"')) >= 1
        for i, n in enumerate(self.nodes):
            wait_for(f"agent {i} to have sent or answered a FIND_NODE", lambda n=n: find_node_exchanged(n))
        self.assertGreaterEqual(sum(n.metric("chorus_dht_requests_total", 'type="FIND_NODE"') for n in self.nodes), N - 1)

    def test_1b_health_probe(self):
        for i, n in enumerate(self.nodes):
            def probed(n=n):
                status, health = n.json("GET", "/health")
                d = health.get("plugins", {}).get("dht", {}) if status == 200 else {}
                m = d.get("message", "")
                return d if d.get("healthy") and "probe ok" in m and f"{N - 1} peer(s)" in m else None
            try:
                d = wait_for(f"agent {i}: a successful put/get probe in /health", probed, timeout=15)
            except AssertionError as e:
                raise AssertionError(f"{e}: {n.json('GET', '/health')}; probes: "
                                     f"{n.metric('chorus_dht_probe_latency_seconds_count')}, "
                                     f"ops: {n.metric('chorus_dht_operations_total')}")
            self.assertIn("last success (unix ms):", d["message"])
            self.assertNotIn("never", d["message"])
            self.assertIn(f"{N - 1} peer(s) in the routing table", d["message"])
            self.assertEqual(n.metric("chorus_dht_probe_failures_total"), 0)
            self.assertGreaterEqual(n.metric("chorus_dht_probe_latency_seconds_count"), 1)

    def test_2_value_put_on_one_is_got_on_every_other(self):
        for i, putter in enumerate(self.nodes):
            key = f"/chorus/loopback/value-from-{i}"
            value = f"value {i} \x00\xff".encode("latin-1")
            ans = putter.put(key, value)
            self.assertEqual(ans["key"], key)
            self.assertIsInstance(ans["stored_at"], int)
            for j, getter in enumerate(self.nodes):
                status, body = getter.get(key)
                self.assertEqual(status, 200, f"agent {j} getting {key}: {body!r}")
                self.assertEqual(body, value, f"agent {j} getting {key}")
        # A newer put wins everywhere.
        self.nodes[3].put("/chorus/loopback/value-from-0", b"replaced")
        for j, getter in enumerate(self.nodes):
            wait_for(f"agent {j} sees the replaced value",
                     lambda g=getter: g.get("/chorus/loopback/value-from-0") == (200, b"replaced"))
        status, body = self.nodes[1].get("/chorus/loopback/never-put")
        self.assertEqual(status, 404, body)
        status, body = self.nodes[1].get("/elsewhere/x")
        self.assertEqual(status, 400, body)

    def test_3_providers_list_every_announcer(self):
        key = "loopback-content"
        announcers = [self.nodes[1], self.nodes[2], self.nodes[4]]
        for a in announcers:
            ans = a.provide(key)
            self.assertEqual(ans["key"], key)
            self.assertEqual([p["peer_id"] for p in ans["providers"]], [a.peer_id])
        want = {a.peer_id for a in announcers}
        for j, n in enumerate(self.nodes):
            ans = n.providers(key)
            self.assertEqual(ans["key"], key)
            got = {p["peer_id"] for p in ans["providers"]}
            self.assertEqual(got, want, f"agent {j} lists {ans}")
            for p in ans["providers"]:
                self.assertTrue(p["addrs"], f"agent {j}: no addresses for provider {p}")
        # A CID stands for its multihash: announce by CIDv1, find by the same text.
        cid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        self.nodes[3].provide(cid)
        ans = self.nodes[0].providers(cid)
        self.assertEqual({p["peer_id"] for p in ans["providers"]}, {self.nodes[3].peer_id})
        self.assertEqual(self.nodes[0].providers("nobody-has-this")["providers"], [])

    def test_4_find_peer(self):
        target = self.nodes[4]
        for j, n in enumerate(self.nodes[:4]):
            status, ans = n.find_peer(target.peer_id)
            self.assertEqual(status, 200, ans)
            self.assertEqual(ans["peer_id"], target.peer_id)
            port = target.addr.split("/tcp/")[1].split("/")[0]
            self.assertTrue(any(f"/tcp/{port}" in a for a in ans["addrs"]), f"agent {j}: {ans}")
        # A well-formed id nobody has: 404 once the lookup ran out of peers.
        status, ans = self.nodes[0].find_peer("12D3KooWGRUVh7kTRn6DNXnSWBmERHG9CxsXtB7HSGiFeFPkeeM6")
        self.assertEqual(status, 404, ans)
        status, ans = self.nodes[0].find_peer("garbage")
        self.assertEqual(status, 400, ans)

    def test_5_records_survive_a_restart(self):
        key = "/chorus/loopback/durable"
        storer = 2
        self.nodes[storer].put(key, b"still here")
        agent = self.agents[storer]
        rc = agent.stop()
        self.assertEqual(rc, 0, "the storing agent did not exit cleanly on SIGTERM")
        # Same state dir, another port and no bootstrap: nobody can reach it, so the value comes from
        # its own store.
        again, node, _ = start_dht_agent(self.ws, f"n{storer}-again", state=self.ws.path(f"state-n{storer}"),
                                         dht=DHT_CONFIG)
        self.agents.append(again)
        self.assertEqual(node.peer_id, self.nodes[storer].peer_id, "the identity lives in the state dir")
        self.assertEqual(node.routing()["peers"], 0)
        self.assertEqual(node.get(key), (200, b"still here"))
        # A replica it received from another agent before the restart survives too.
        self.assertEqual(node.get("/chorus/loopback/value-from-1"), (200, f"value 1 \x00\xff".encode("latin-1")))


class DhtRepublishTest(unittest.TestCase):
    """A record put and a key provided while the agent had no peers reach a peer that arrives later,
    through the periodic republish and re-provide (intervals of 1 s here; 1 h and 22 h by default)."""

    def setUp(self):
        reason = agent_missing_reason()
        if reason:
            self.skipTest(reason)
        self.ws = Workspace()
        self.agents = []
        self.addCleanup(self.ws.cleanup)

    def tearDown(self):
        problems = finish_agents(self.agents)
        if problems:
            self.fail("agent check at the end of the test:\n" + "\n".join(problems))

    def test_republish_and_reprovide_reach_a_later_peer(self):
        quiet = {"probe": {"enabled": False}, "query_timeout_ms": 3000, "lookup_deadline_ms": 15000}
        a_agent, a, _ = start_dht_agent(self.ws, "early", dht={**quiet, "republish_interval_ms": 1000,
                                                                "reprovide_interval_ms": 1000})
        self.agents.append(a_agent)
        self.assertEqual(a.put("/chorus/republish/early", b"from before you came")["key"], "/chorus/republish/early")
        a.provide("republish-provided-key")
        b_agent, b, _ = start_dht_agent(self.ws, "late", bootstrap=[a.addr], dht=quiet)
        self.agents.append(b_agent)
        # Neither agent runs the probe, so B's store holds only what A's timers sent it.
        wait_for("B storing the record A republished", lambda: b.metric("chorus_dht_store_records") >= 1)
        wait_for("B storing the provider record A re-provided", lambda: b.metric("chorus_dht_store_providers") >= 1)
        # With A gone, B answers from its own copy.
        self.assertEqual(a_agent.stop(), 0)
        self.assertEqual(b.get("/chorus/republish/early"), (200, b"from before you came"))
        self.assertIn(a.peer_id, {p["peer_id"] for p in b.providers("republish-provided-key")["providers"]})


if __name__ == "__main__":
    unittest.main()
