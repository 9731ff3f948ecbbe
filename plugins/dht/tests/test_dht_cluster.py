"""A 20-agent DHT on 127.0.0.1 (p2p + dht each, every agent bootstrapping from agents 0 and 1), driven
over HTTP:

  * every agent gets a value another agent put (every agent puts one; each value is got by 6 others
    chosen at random, 120 pairs);
  * when 5 agents announce the same key, a provider lookup from every agent lists all 5;
  * restarting the agents that store a record (the putter and the k closest to the key: SIGTERM, start
    again with the same state dir and port) keeps it: an agent that never held it gets it afterwards;
  * a value put while one of the key's closest agents is down is still put and found.

The cluster runs with k = 6 (instead of 20): with k = 20 every agent of a 20-agent cluster is among the
k closest to every key and stores every value, which would make lookups one hop and the restart test
meaningless. k = 6 spreads records over a quarter of the cluster and makes lookups iterate.

The agents are started once for the class; tests run in name order.
"""
import hashlib
import os
import random
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness
from dhttest import agent_missing_reason, start_dht_agent
from dhttest_js import b58decode, cid_v1_raw
from harness import Workspace, finish_agents

N = 20
K = 6
# The health probe is off: its temporary records would move the store gauges the tests read. The
# per-peer timeout stays at its default (10 s) so that a peer slowed by a loaded machine is not passed
# over for a farther one (which would store the record elsewhere); a stopped agent refuses connections
# at once on loopback, so no test waits on it.
DHT_CONFIG = {"k": K, "query_timeout_ms": 10000, "lookup_deadline_ms": 30000, "probe": {"enabled": False}}
GETTERS_PER_VALUE = 6


def wait_for(what, fn, timeout=60):
    return harness.wait_for(fn, timeout, what, interval=0.05)


def distance(key, peer_id):
    """The XOR distance of a key (bytes) and a peer id text in the DHT's key space (SHA-256 of each)."""
    a = hashlib.sha256(key).digest()
    b = hashlib.sha256(b58decode(peer_id)).digest()
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b)), "big")


class DhtCluster(unittest.TestCase):
    agents = []
    ws = None

    @classmethod
    def setUpClass(cls):
        reason = agent_missing_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.ws = Workspace()
        cls.agents, cls.nodes, cls.ports = [], [], []
        try:
            for i in range(N):
                cls.start(i)
            for i, n in enumerate(cls.nodes):
                wait_for(f"agent {i}'s routing table holds at least {K} peers",
                         lambda n=n: n.routing()["peers"] >= K)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, i):
        """Starts agent i (again, if it ran before: same state dir and port, so the others' routing
        tables still reach it). A first start bootstraps from agents 0 and 1; a restart from the first
        two agents running (agent 0 restarted must not be left waiting for others to dial it)."""
        restart = i < len(cls.nodes)
        if restart:
            running = [j for j in range(len(cls.nodes)) if j != i and cls.live[j].proc.poll() is None]
            bootstrap = [cls.nodes[j].addr for j in running[:2]]
        else:
            bootstrap = [cls.nodes[b].addr for b in (0, 1) if b < i]
        agent, node, port = start_dht_agent(cls.ws, f"n{i}" + ("-again" if restart else ""), bootstrap=bootstrap,
                                            dht=DHT_CONFIG, state=cls.ws.path(f"state-n{i}"),
                                            port=cls.ports[i] if restart else None)
        cls.agents.append(agent)  # every process is finished at the end, restarted ones too
        if restart:
            assert node.peer_id == cls.nodes[i].peer_id, "the identity lives in the state dir"
            cls.nodes[i], cls.live[i] = node, agent
        else:
            cls.nodes.append(node)
            cls.ports.append(port)
            cls.live = getattr(cls, "live", []) + [agent]
        return node

    @classmethod
    def tearDownClass(cls):
        problems = finish_agents(cls.agents) if cls.agents else []
        if cls.ws:
            cls.ws.cleanup()
        if problems:
            raise AssertionError("agent check at the end of the suite:\n" + "\n".join(problems))

    def stop(self, i):
        rc = self.live[i].stop()
        self.assertEqual(rc, 0, f"agent {i} did not exit cleanly on SIGTERM")

    def closest(self, key, exclude=()):
        """Indexes of the K agents closest to key, nearest first (leaving out `exclude`)."""
        order = sorted((i for i in range(N) if i not in exclude), key=lambda i: distance(key, self.nodes[i].peer_id))
        return order[:K]

    def records(self):
        """Every agent's chorus_dht_store_records gauge."""
        return [n.metric("chorus_dht_store_records") for n in self.nodes]

    # ---------------------------------------------------------------------------------------------

    def test_1_every_agent_gets_values_others_put(self):
        rng = random.Random(1616)
        values = {}
        for i, n in enumerate(self.nodes):
            key = f"/chorus/cluster/from-{i}"
            values[key] = f"value put by agent {i} ".encode() + os.urandom(8)
            self.assertEqual(n.put(key, values[key])["key"], key)
        pairs = [(key, j) for i, key in enumerate(values)
                 for j in rng.sample([j for j in range(N) if j != i], GETTERS_PER_VALUE)]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda kj: self.nodes[kj[1]].get(kj[0]), pairs))
        wrong = [(key, j, r) for (key, j), r in zip(pairs, got) if r != (200, values[key])]
        self.assertEqual(wrong, [], f"{len(wrong)} of {len(pairs)} gets did not answer the value put")

    def test_2_provider_lookups_list_every_announcer(self):
        cid = cid_v1_raw(b"cluster content " + os.urandom(8))
        text_key = "cluster-text-key"
        announcers = [3, 7, 11, 15, 19]
        for a in announcers:
            self.nodes[a].provide(cid)
            self.nodes[a].provide(text_key)
        want = {self.nodes[a].peer_id for a in announcers}
        for key in (cid, text_key):
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda n: n.providers(key), self.nodes))
            for j, ans in enumerate(answers):
                got = {p["peer_id"] for p in ans["providers"]}
                self.assertEqual(got, want, f"agent {j} lists {len(got)} of 5 providers of {key}: {ans}")
                for p in ans["providers"]:
                    self.assertTrue(p["addrs"], f"agent {j}: provider {p} without addresses")

    def test_3_restarting_the_storing_agents_keeps_their_records(self):
        key = "/chorus/cluster/durable"
        putter = 5
        holders = self.closest(key.encode(), exclude={putter})
        storing = [putter] + holders
        before = self.records()
        self.nodes[putter].put(key, b"kept across restarts")
        # The agents that stored it are the putter and the k closest to the key (each one's record
        # gauge went up by one), and nobody else.
        wait_for(f"the put stored on agents {sorted(storing)} only",
                 lambda: [i for i, (b, a) in enumerate(zip(before, self.records())) if a > b] == sorted(storing))
        for i in storing:
            self.stop(i)
        for i in storing:
            self.start(i)
        # An agent that never held the record (not the putter, not one of the k closest) asks the
        # network: only the restarted agents can answer.
        getter = next(i for i in range(N) if i not in storing)
        wait_for(f"agent {getter} gets the record from the restarted agents",
                 lambda: self.nodes[getter].get(key) == (200, b"kept across restarts"))
        for i in storing:
            self.assertEqual(self.nodes[i].get(key), (200, b"kept across restarts"), f"restarted agent {i}")

    def test_4_a_value_put_while_a_holder_is_down_is_found(self):
        key = "/chorus/cluster/holder-down"
        putter = 9
        holders = self.closest(key.encode(), exclude={putter})
        down = holders[0]
        self.stop(down)
        try:
            self.assertEqual(self.nodes[putter].put(key, b"put with a holder down")["key"], key)
            for j in [i for i in range(N) if i not in (putter, down)][:8]:
                self.assertEqual(self.nodes[j].get(key), (200, b"put with a holder down"), f"agent {j}")
        finally:
            self.start(down)
        # Back up (and bootstrapped again), the holder that missed the put finds the value too.
        wait_for(f"restarted agent {down} gets the value it missed",
                 lambda: self.nodes[down].get(key) == (200, b"put with a holder down"))


if __name__ == "__main__":
    unittest.main()
