"""Three chorus-agents (p2p + dht) and two js-libp2p nodes running @libp2p/kad-dht 15.1.11 in server mode
(tests/interop/js/dht_peer.mjs) in one DHT on 127.0.0.1, protocol /ipfs/kad/1.0.0:

  * values both ways: a /pk/ record and a /chorus/ record signed by a js node are got by every agent; a
    /chorus/ record an agent signs over HTTP is got, validated and decoded by both js nodes;
  * a /chorus/ record with a forged signature from js is refused by every agent (no echo, 404 after);
  * providers both ways: a CID a js node provides is listed by every agent, one an agent announces is
    found by both js nodes, and a CID announced on both sides lists every announcer everywhere;
  * find-peer both ways, with the listen addresses;
  * the js nodes keep our agents in their routing tables (and ours keep them) after all the traffic;
  * with protocol_prefix /chorus an agent and a js node on /chorus/kad/1.0.0 work together, and a js
    node on the default prefix stays out of both tables.

Needs node >= the pinned packages' minimum and `npm ci` in tests/interop/js (Skipped otherwise; failed
under CI). The cluster is started once; tests run in name order.
"""
import os
import unittest

import harness
from dhttest import agent_missing_reason, start_dht_agent
from dhttest_js import DhtJsPeer, b64, cid_v1_raw, js_missing_reason, pk_key, unb64
from harness import Workspace, finish_agents

N_AGENTS = 3
N_JS = 2
# Per-peer timeouts stay at their default (10 s): a js node slowed down by a loaded machine must not
# be dropped from an agent's table for a slow answer. The health probe runs every second, so its
# /chorus/_probe/ records also travel to the js nodes and back.
DHT_CONFIG = {"probe": {"interval_ms": 1000, "timeout_ms": 800}}


def wait_for(what, fn, timeout=30):
    return harness.wait_for(fn, timeout, what, interval=0.05)


def port_of(addr):
    return addr.split("/tcp/")[1].split("/")[0]


class DhtJsInterop(unittest.TestCase):
    agents = []
    js = []
    ws = None

    @classmethod
    def setUpClass(cls):
        for fn in (agent_missing_reason, js_missing_reason):
            reason = fn()
            if reason:
                raise unittest.SkipTest(reason)
        cls.ws = Workspace()
        cls.agents, cls.nodes, cls.js = [], [], []
        try:
            for i in range(N_AGENTS):
                bootstrap = [cls.nodes[0].addr] if i > 0 else []
                agent, node, _ = start_dht_agent(cls.ws, f"a{i}", bootstrap=bootstrap, dht=DHT_CONFIG)
                cls.agents.append(agent)
                cls.nodes.append(node)
            for _ in range(N_JS):
                p = DhtJsPeer()
                cls.js.append(p)
                for other in cls.nodes + cls.js[:-1]:
                    p.ok("dial", target=other.addr)
            cls.agent_ids = {n.peer_id for n in cls.nodes}
            cls.js_ids = {p.peer_id for p in cls.js}
            everyone = cls.agent_ids | cls.js_ids
            for p in cls.js:
                wait_for(f"js {p.peer_id} has every other node in its routing table",
                         lambda p=p: everyone - {p.peer_id} <= p.routing_peers())
            for i, n in enumerate(cls.nodes):
                wait_for(f"agent {i} has every other node in its routing table",
                         lambda n=n: everyone - {n.peer_id} <= set(n.routing()["peer_ids"]))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.js:
            p.stop()
        problems = finish_agents(cls.agents) if cls.agents else []
        if cls.ws:
            cls.ws.cleanup()
        if problems:
            raise AssertionError("agent check at the end of the suite:\n" + "\n".join(problems))

    # ---- values ------------------------------------------------------------------------------------

    def test_1_pk_record_put_on_js_is_got_on_every_agent(self):
        j0 = self.js[0]
        rec = j0.ok("pk_record")
        key, value = unb64(rec["key_b64"]), unb64(rec["value_b64"])
        self.assertEqual(key, pk_key(j0.peer_id))
        put = j0.put(key, value)
        self.assertTrue(self.agent_ids <= set(put["stored_on"]), f"not every agent echoed the /pk/ put: {put}")
        for i, n in enumerate(self.nodes):
            self.assertEqual(n.get(key), (200, value), f"agent {i} getting /pk/<js id>")

    def test_2_chorus_record_signed_by_js_is_got_on_every_agent(self):
        key = "/chorus/interop/from-js"
        payload = b"signed by js \x00\xff" + os.urandom(16)
        put = self.js[1].put_chorus(key, payload)
        self.assertTrue(self.agent_ids <= set(put["stored_on"]), f"not every agent echoed the /chorus/ put: {put}")
        for i, n in enumerate(self.nodes):
            self.assertEqual(n.get(key), (200, payload), f"agent {i} getting {key}")
        # A higher seq from js replaces it everywhere; the other js node agrees.
        newer = b"newer from js"
        self.js[1].put_chorus(key, newer, seq=int(put["seq"]) + 1)
        for i, n in enumerate(self.nodes):
            wait_for(f"agent {i} sees the newer js record", lambda n=n: n.get(key) == (200, newer))
        got = self.js[0].get(key)
        self.assertTrue(got["ok"], got)
        self.assertEqual(unb64(got["chorus"]["payload_b64"]), newer)

    def test_3_chorus_record_put_on_an_agent_is_got_on_js(self):
        key = "/chorus/interop/from-agent"
        payload = bytes(range(256)) + b" from an agent"
        author = self.nodes[1]
        self.assertEqual(author.put(key, payload)["key"], key)
        for p in self.js:
            got = p.get(key)
            self.assertTrue(got["ok"], f"js {p.peer_id} get {key}: {got}")
            self.assertEqual(got["chorus"]["author"], author.peer_id)
            self.assertEqual(unb64(got["chorus"]["payload_b64"]), payload)
        # A second put from the agent has a higher seq; js selects it too.
        author.put(key, b"second version")
        def js_payload(p):
            got = p.get(key)
            return unb64(got["chorus"]["payload_b64"]) if got["ok"] else None

        for p in self.js:
            wait_for(f"js {p.peer_id} gets the second version", lambda p=p: js_payload(p) == b"second version")

    def test_4_forged_chorus_record_from_js_is_refused(self):
        key = "/chorus/interop/forged"
        value = bytearray(unb64(self.js[0].ok("chorus_record", key=key, payload_b64=b64(b"forged"), seq=7)["value_b64"]))
        value[-1] ^= 0x01  # the last signature byte
        put = self.js[0].put(key, bytes(value))
        self.assertFalse(self.agent_ids & set(put["stored_on"]), f"an agent echoed a forged record: {put}")
        for i, n in enumerate(self.nodes):
            status, body = n.get(key)
            self.assertEqual(status, 404, f"agent {i} answered a forged record: {body!r}")
        # Not a chorus namespace: refused as well.
        put = self.js[0].put("/elsewhere/x", b"v")
        self.assertFalse(self.agent_ids & set(put["stored_on"]), put)

    # ---- providers ---------------------------------------------------------------------------------

    def test_5_providers_both_ways(self):
        from_js = cid_v1_raw(os.urandom(32))
        self.js[0].provide(from_js)
        for i, n in enumerate(self.nodes):
            wait_for(f"agent {i} lists the js provider",
                     lambda n=n: self.js[0].peer_id in {p["peer_id"] for p in n.providers(from_js)["providers"]})
            ans = n.providers(from_js)
            entry = next(p for p in ans["providers"] if p["peer_id"] == self.js[0].peer_id)
            self.assertTrue(any(f"/tcp/{port_of(self.js[0].addr)}" in a for a in entry["addrs"]),
                            f"agent {i}: no listen address of the js provider: {ans}")

        from_agent = cid_v1_raw(os.urandom(32))
        self.nodes[2].provide(from_agent)
        for p in self.js:
            self.assertIn(self.nodes[2].peer_id, p.providers(from_agent), f"js {p.peer_id}")

        # Several announcers on both sides: everyone lists all of them.
        shared = cid_v1_raw(b"shared content " + os.urandom(8))
        announcers = [self.nodes[0], self.nodes[1], self.js[1]]
        for a in announcers:
            a.provide(shared)  # the js peer's command and the agent's POST
        want = {a.peer_id for a in announcers}
        for i, n in enumerate(self.nodes):
            got = {p["peer_id"] for p in n.providers(shared)["providers"]}
            self.assertEqual(got, want, f"agent {i}")
        for p in self.js:
            self.assertEqual(p.providers(shared), want, f"js {p.peer_id}")

    # ---- find-peer ---------------------------------------------------------------------------------

    def test_6_find_peer_both_ways(self):
        for i, n in enumerate(self.nodes):
            for p in self.js:
                status, ans = n.find_peer(p.peer_id)
                self.assertEqual(status, 200, f"agent {i} find {p.peer_id}: {ans}")
                self.assertEqual(ans["peer_id"], p.peer_id)
                self.assertTrue(any(f"/tcp/{port_of(p.addr)}" in a for a in ans["addrs"]), f"agent {i}: {ans}")
        for p in self.js:
            for n in self.nodes:
                r = p.find_peer(n.peer_id)
                self.assertTrue(r["ok"], f"js {p.peer_id} find {n.peer_id}: {r}")
                self.assertTrue(any(f"/tcp/{port_of(n.addr)}" in a for a in r["addrs"]), r)

    # ---- routing tables ----------------------------------------------------------------------------

    def test_9_js_keeps_our_agents_in_its_routing_table(self):
        for p in self.js:
            self.assertLessEqual(self.agent_ids, p.routing_peers(), f"js {p.peer_id}")
        for i, n in enumerate(self.nodes):
            r = n.routing()
            self.assertLessEqual(self.js_ids, set(r["peer_ids"]), f"agent {i}: {r}")
            self.assertEqual(r["mode"], "server")


class DhtJsProtocolPrefix(unittest.TestCase):
    """protocol_prefix /chorus on an agent and --prefix /chorus on a js node: they speak
    /chorus/kad/1.0.0 to each other, and a js node on the default /ipfs/kad/1.0.0 is not in the agent's
    table (nor the agent in its)."""

    def setUp(self):
        for fn in (agent_missing_reason, js_missing_reason):
            reason = fn()
            if reason:
                self.skipTest(reason)
        self.ws = Workspace()
        self.agents, self.js = [], []

    def tearDown(self):
        for p in self.js:
            p.stop()
        problems = finish_agents(self.agents)
        self.ws.cleanup()
        self.assertEqual(problems, [])

    def test_a_custom_prefix_is_spoken_and_kept_apart(self):
        agent, node, _ = start_dht_agent(self.ws, "prefixed", dht={**DHT_CONFIG, "protocol_prefix": "/chorus"})
        self.agents.append(agent)
        same = DhtJsPeer(prefix="/chorus")
        other = DhtJsPeer()
        self.js += [same, other]
        for p in self.js:
            p.ok("dial", target=node.addr)
        wait_for("the /chorus js node in the agent's routing table", lambda: same.peer_id in node.routing()["peer_ids"])
        wait_for("the agent in the /chorus js node's routing table", lambda: node.peer_id in same.routing_peers())
        # The agent has identified the /ipfs node (its identify lists /ipfs/kad/1.0.0).
        wait_for("the agent identified the /ipfs js node", lambda: any(
            p["peer_id"] == other.peer_id and "/ipfs/kad/1.0.0" in p["protocols"] for p in node.agent.http_json("/p2p/peers")[1]))

        key = "/chorus/interop/prefixed"
        node.put(key, b"over /chorus/kad/1.0.0")
        got = same.get(key)
        self.assertTrue(got["ok"], got)
        self.assertEqual(unb64(got["chorus"]["payload_b64"]), b"over /chorus/kad/1.0.0")
        self.assertFalse(other.get(key)["ok"], "a node on /ipfs/kad/1.0.0 found a value only /chorus nodes hold")
        # Long after both identified each other: only the /chorus node is in the agent's table and the
        # agent only in its.
        self.assertEqual(node.routing()["peer_ids"], [same.peer_id])
        self.assertEqual(same.routing_peers(), {node.peer_id})
        self.assertEqual(other.routing_peers(), set())


if __name__ == "__main__":
    unittest.main()
