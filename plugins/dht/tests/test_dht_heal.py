"""Three chorus-agents (p2p + dht) on 127.0.0.1; one is frozen (SIGSTOP) long enough for every request
to it to time out, then thawed (SIGCONT): a partition that heals without new connections, so no
identify runs again. The routing tables drop the frozen agent (and it drops the others when its own
requests time out on waking), then refill through the rechecks alone; a value put while it was cut
off (reaching one peer only) and one put right after are readable from every agent.
"""
import os
import signal
import unittest

import harness
from dhttest import agent_missing_reason, start_dht_agent
from harness import Workspace, finish_agents

# Short per-peer timeouts so the frozen agent is dropped quickly; rechecks every second, at most 4 s apart.
DHT_CONFIG = {"query_timeout_ms": 1000, "lookup_deadline_ms": 5000, "replication": 2,
              "recheck_interval_ms": 1000, "recheck_max_interval_ms": 4000, "probe": {"enabled": False}}


def wait_for(what, fn, timeout=30):
    return harness.wait_for(fn, timeout, what, interval=0.1)


class DhtHealTest(unittest.TestCase):
    def setUp(self):
        reason = agent_missing_reason()
        if reason:
            self.skipTest(reason)
        self.ws = Workspace()
        self.agents, self.nodes = [], []
        self.addCleanup(self.cleanup)
        for i in range(3):
            bootstrap = [self.nodes[0].addr] if i > 0 else []
            agent, node, _ = start_dht_agent(self.ws, f"h{i}", bootstrap=bootstrap, dht=DHT_CONFIG)
            self.agents.append(agent)
            self.nodes.append(node)
        self.ids = [n.peer_id for n in self.nodes]
        self.wait_tables_full("at start")

    def cleanup(self):
        for a in self.agents:  # a test that failed while one was frozen must not leave it stopped
            try:
                a.proc.send_signal(signal.SIGCONT)
            except Exception:
                pass
        problems = finish_agents(self.agents)
        self.ws.cleanup()
        if problems:
            raise AssertionError("agent check at the end:\n" + "\n".join(problems))

    def wait_tables_full(self, when, timeout=30):
        for i, n in enumerate(self.nodes):
            others = set(self.ids) - {n.peer_id}
            wait_for(f"routing table of agent {i} holds the other two {when}",
                     lambda n=n, others=others: others <= set(n.routing()["peer_ids"]), timeout)

    def test_tables_refill_after_a_heal_without_new_connections(self):
        a0, a1, a2 = self.nodes
        self.agents[2].proc.send_signal(signal.SIGSTOP)
        try:
            # Requests to the frozen agent time out: both others drop it.
            during = a0.put("/chorus/heal-during", b"put while a2 was cut off")
            self.assertGreaterEqual(during.get("replicas", 0), 1, during)
            for n in (a0, a1):
                wait_for(f"{n.agent_id} drops the frozen agent", lambda n=n: self.ids[2] not in n.routing()["peer_ids"]
                         or (n.get("/chorus/heal-probe-" + n.agent_id, timeout=10) and False))
        finally:
            self.agents[2].proc.send_signal(signal.SIGCONT)
        # No new connection, no identify: the rechecks alone bring every table back.
        self.wait_tables_full("after the heal", timeout=40)
        self.assertGreaterEqual(a0.metric("chorus_dht_rechecks_total", 'result="readded"') +
                                a1.metric("chorus_dht_rechecks_total", 'result="readded"'), 1)
        after = a2.put("/chorus/heal-after", b"put after the heal")
        self.assertEqual(after.get("replicas"), 2, after)
        for key, value in (("/chorus/heal-during", b"put while a2 was cut off"), ("/chorus/heal-after", b"put after the heal")):
            for n in self.nodes:
                wait_for(f"{key} readable on {n.agent_id}", lambda n=n, key=key, value=value: n.get(key, timeout=10) == (200, value))


if __name__ == "__main__":
    unittest.main()
