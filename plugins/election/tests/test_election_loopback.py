"""Three chorus-agents (p2p + gossip + election) on 127.0.0.1 with short election timings
(heartbeat 200 ms, timeout 800 ms, cluster_size 3), driven over HTTP:

  * one admin, which every agent's GET /api/v1/election names, with the documented JSON;
  * the manual trigger (POST /api/v1/election/trigger) starts a higher term that elects an admin again;
  * a forged heartbeat (signed by one agent, claiming another is admin) is rejected and counted - by
    the forger's own validator, and by every agent when it comes from a gossip-only intruder whose
    pubsub forwards it - and changes no agent's term or admin;
  * stopping the admin elects a new one among the two others; the stopped agent, restarted on the same
    state dir, comes back with at least its old term and follows the new admin.

Every state seen during the waits goes through a checker: no term may ever have two admins.
Waits poll the routes with a deadline (the election has no event stream).
"""
import base64
import json
import os
import sys
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(_HERE, "..", "..", "..", "tests", "interop")))
# Every plugin of the build lands in one directory: the p2p and gossip plugins are found next to election's.
PLUGIN_DIR = os.environ.get("CHORUS_PLUGIN_DIR", "")
os.environ.setdefault("CHORUS_P2P_PLUGIN_DIR", PLUGIN_DIR)
os.environ.setdefault("CHORUS_GOSSIP_PLUGIN_DIR", PLUGIN_DIR)

import harness  # noqa: E402
import p2ptest  # noqa: E402
from gossiptest import GossipAgent, agent_missing_reason, gossip_config_yaml, label, wait_topic_peers  # noqa: E402
from harness import Agent, AgentTestCase, free_port  # noqa: E402

HEARTBEAT_TOPIC = "CHORUS/admin/heartbeat/v1"
ELECTION = {"heartbeat_interval_ms": 200, "heartbeat_timeout_ms": 800, "discovery_timeout_ms": 800,
            "vote_window_ms": 50, "candidacy_timeout_ms": 400, "max_jitter_ms": 200, "min_term_ms": 0,
            "cluster_size": 3}
GOSSIP = {"router": {"heartbeat_ms": 200}}
STATE_KEYS = {"state", "admin", "term", "since", "score", "members", "quorum", "cluster_size", "score_components"}
MEMBER_KEYS = {"id", "self", "term", "admin", "score", "last_heard_ms"}


def election_missing_reason():
    reason = agent_missing_reason()
    if reason:
        return reason
    if not PLUGIN_DIR or not os.path.exists(os.path.join(PLUGIN_DIR, "chorus-election.so")):
        return harness.missing("build", f"chorus-election.so not found in CHORUS_PLUGIN_DIR={PLUGIN_DIR!r}")
    return None


class ElectionLoopbackTest(AgentTestCase):
    def setUp(self):
        reason = election_missing_reason()
        if reason:
            self.skipTest(reason)
        super().setUp()
        self.nodes = []       # GossipAgent, in start order
        self.specs = {}       # name -> (config path, p2p port, state dir)
        self.admin_of_term = {}

    # ---- agents

    def _config(self, name, port, bootstrap, election=None):
        state = self.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        text = p2ptest.p2p_stack_config_yaml(
            state, agent_id=f"it-{name}", p2p_listen=[f"/ip4/127.0.0.1/tcp/{port}"], bootstrap=bootstrap,
            plugins={"gossip": GOSSIP, "election": election or ELECTION}, plugin_dirs=[PLUGIN_DIR])
        return self.ws.write(f"{name}.yaml", text), state

    def start(self, name, bootstrap=(), port=None):
        port = port or free_port()
        path, state = self._config(name, port, [b.addr for b in bootstrap])
        agent = Agent(path, label=name)
        self.agents.append(agent)
        agent.wait_ready()
        node = GossipAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", f"it-{name}")
        node.name = name
        self.specs[name] = (port, state)
        self.nodes.append(node)
        return node

    def start_three(self):
        a = self.start("a")
        b = self.start("b", [a])
        c = self.start("c", [a, b])
        return [a, b, c]

    # ---- state and the checker

    def state(self, node):
        status, st = node.get("/api/v1/election")
        self.assertEqual(status, 200, st)
        self.check(node, st)
        return st

    def check(self, node, st):
        """No term ever has two admins, whoever reports it."""
        if st.get("admin"):
            seen = self.admin_of_term.setdefault(st["term"], (st["admin"], node.name))
            self.assertEqual(seen[0], st["admin"],
                             f"term {st['term']}: {seen[1]} saw admin {seen[0]}, {node.name} saw {st['admin']}")

    def wait_agreement(self, nodes, timeout=30, newer_than=0, not_admin=None):
        """Waits until every node names the same admin in the same term (> newer_than), exactly one of them
        is that admin, and it is not `not_admin`; returns (admin id, term, states)."""
        result = {}

        def agreed():
            sts = [self.state(n) for n in nodes]
            admins = {s["admin"] for s in sts}
            terms = {s["term"] for s in sts}
            if len(admins) != 1 or "" in admins or len(terms) != 1:
                return False
            admin, term = admins.pop(), terms.pop()
            if term <= newer_than or admin == not_admin:
                return False
            if [s["state"] for s in sts].count("admin") != 1:
                return False
            result.update(admin=admin, term=term, states=sts)
            return True
        try:
            harness.wait_for(agreed, timeout, "one admin that every agent names", interval=0.05)
        except AssertionError as e:
            raise AssertionError(f"{e}; states: {json.dumps([self.state(n) for n in nodes])[:3000]}")
        return result["admin"], result["term"], result["states"]

    # ---- tests

    def test_one_admin_routes_trigger_and_a_forged_heartbeat(self):
        nodes = self.start_three()
        ids = {n.peer_id for n in nodes}
        admin, term, states = self.wait_agreement(nodes)
        self.assertIn(admin, ids)
        for node, st in zip(nodes, states):
            self.assertLessEqual(STATE_KEYS, set(st), st)
            self.assertEqual(st["cluster_size"], 3)
            self.assertEqual(st["quorum"], 2)
            self.assertEqual(st["state"], "admin" if node.peer_id == admin else "follower")
            self.assertTrue(st["since"].endswith("Z"), st["since"])
            self.assertTrue(0 <= st["score"] <= 1, st)
            self.assertEqual({m["id"] for m in st["members"] if m["self"]}, {node.peer_id}, st["members"])
            for m in st["members"]:
                self.assertLessEqual(MEMBER_KEYS, set(m), m)
        harness.wait_for(lambda: all({m["id"] for m in self.state(n)["members"]} == ids for n in nodes), 20,
                         "every agent to list the three members")
        for name in ("chorus_election_triggers_total", "chorus_election_term", "chorus_election_is_admin",
                     "chorus_election_admin_seconds_total", "chorus_election_admin_changes_total",
                     "chorus_election_split_brain_total", "chorus_election_messages_total",
                     "chorus_election_rejected_total"):
            self.assertTrue(nodes[0].metric_samples(name), f"{name} missing from /metrics")
        for n in nodes:
            n.wait_metric("chorus_election_messages_total", 1, label("direction", "in"))
        admin_node = next(n for n in nodes if n.peer_id == admin)
        self.assertEqual(admin_node.metric("chorus_election_is_admin"), 1)
        self.assertGreaterEqual(admin_node.metric("chorus_election_term"), term)
        self.assertGreaterEqual(sum(n.metric("chorus_election_triggers_total") for n in nodes), 1)

        # A follower signs a heartbeat that names the other follower as admin, in a much higher term.
        forger, victim = [n for n in nodes if n.peer_id != admin]
        forged = json.dumps({"type": "election.heartbeat", "term": term + 100, "admin": victim.peer_id,
                             "since_unix_ms": 1765000000000, "seq": 1, "score": 1.0}).encode()
        status, ans = forger.post("/api/v1/pubsub/publish",
                                  {"topic": HEARTBEAT_TOPIC, "raw_base64": base64.b64encode(forged).decode()})
        self.assertNotEqual(status, 500, ans)  # refused by the local validator, or published and refused by peers
        forger.wait_metric("chorus_election_rejected_total", 1, label("reason", "forged"))
        for st in (self.state(n) for n in nodes):
            self.assertLess(st["term"], term + 100, st)
            self.assertNotEqual(st["admin"], victim.peer_id, st)

        # The same from an intruder without the election plugin: its pubsub publishes the message, and
        # every election agent's validator refuses it.
        port = free_port()
        state = self.ws.path("state-intruder")
        os.makedirs(state, exist_ok=True)
        text = gossip_config_yaml(state, agent_id="it-intruder", p2p_listen=[f"/ip4/127.0.0.1/tcp/{port}"],
                                  bootstrap=[n.addr for n in nodes], gossip=GOSSIP)
        agent = Agent(self.ws.write("intruder.yaml", text), label="intruder")
        self.agents.append(agent)
        agent.wait_ready()
        intruder = GossipAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", "it-intruder")
        intruder.join(HEARTBEAT_TOPIC)
        wait_topic_peers(intruder, HEARTBEAT_TOPIC, ids)
        before = {n.name: n.metric("chorus_election_rejected_total", label("reason", "forged")) for n in nodes}
        intruder.publish_raw(HEARTBEAT_TOPIC, forged)
        for n in nodes:
            n.wait_metric("chorus_election_rejected_total", before[n.name] + 1, label("reason", "forged"))
        for st in (self.state(n) for n in nodes):
            self.assertLess(st["term"], term + 100, st)
            self.assertNotEqual(st["admin"], victim.peer_id, st)

        # The manual trigger: a new term, and again one admin.
        status, ans = forger.post("/api/v1/election/trigger", None)
        self.assertEqual(status, 202, ans)
        self.assertGreater(ans["term"], term)
        _, term2, _ = self.wait_agreement(nodes, newer_than=term)
        self.assertGreaterEqual(term2, ans["term"])
        harness.wait_for(lambda: forger.metric("chorus_election_triggers_total", label("trigger", "manual")) >= 1, 10,
                         "the manual trigger counted")
        status, text = forger.get_text("/health")
        self.assertEqual(status, 200, text)

    def test_stopping_the_admin_elects_another_and_a_restart_keeps_the_term(self):
        nodes = self.start_three()
        admin, term, _ = self.wait_agreement(nodes)
        old = next(n for n in nodes if n.peer_id == admin)
        rest = [n for n in nodes if n is not old]
        self.assertEqual(old.agent.stop(), 0)
        new_admin, new_term, _ = self.wait_agreement(rest, newer_than=term, not_admin=admin)
        self.assertIn(new_admin, {n.peer_id for n in rest})
        for n in rest:
            n.wait_metric("chorus_election_admin_changes_total", 2)

        # Back on the same state dir (same identity and term file), dialling the two others.
        port, _ = self.specs[old.name]
        path, _ = self._config(old.name, port, [n.addr for n in rest])
        agent = Agent(path, label=old.name + "-again")
        self.agents.append(agent)
        agent.wait_ready()
        back = GossipAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", old.agent_id)
        back.name = old.name + "-again"
        self.assertEqual(back.peer_id, old.peer_id)
        self.assertGreaterEqual(self.state(back)["term"], term, "the term survived the restart")
        final_admin, final_term, _ = self.wait_agreement(rest + [back], newer_than=term)
        self.assertGreaterEqual(final_term, new_term)


if __name__ == "__main__":
    unittest.main()
