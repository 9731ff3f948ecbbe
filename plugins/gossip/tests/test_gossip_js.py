"""chorus-agents and js-libp2p gossipsub nodes (@chainsafe/libp2p-gossipsub 14.1.2, tests/interop/js/
gossip_peer.mjs) in one mesh on loopback.

  * messages published on either side reach every subscriber exactly once, raw bytes byte-exact, the
    envelope intact, with the right from/seqno/message id;
  * js nodes keep our agents in their mesh and score them >= 0 (with the gossip plugin's own scoring
    parameters switched on in js) through heartbeats and traffic;
  * a chain alternating agents and js nodes carries messages hop by hop, each side forwarding what the
    other signed;
  * a js node running StrictNoSign is rejected by our StrictSign default: counted by reason, never
    delivered, scored down, pruned from the mesh, then graylisted;
  * js nodes limited to /meshsub/1.0.0 or /floodsub/1.0.0 get their protocol and exchange messages
    through an agent;
  * an envelope from js over the hop limit is ignored without penalty;
  * with message_id key_seqno our message ids are js's.

Needs node >= the pinned packages' minimum and `npm ci` in tests/interop/js (Skipped otherwise; failed
under CI).
"""
import base64
import json
import os
import re
import unittest

from gossiptest import GossipJsPeer, GossipTestCase, event_bytes, label, wait_topic_peers
from harness import wait_for

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def b58decode(text):
    n = 0
    for ch in text:
        n = n * 58 + B58.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def go_message_id(peer_id, seqno):
    """go-libp2p-pubsub's default id (the plugin's message_id from_seqno): from bytes || seqno (8 bytes BE)."""
    return (b58decode(peer_id) + int(seqno).to_bytes(8, "big")).hex()


def js_message_id(peer_id, seqno):
    """js-libp2p gossipsub's default id (message_id key_seqno): the PublicKey protobuf (the identity
    multihash of an Ed25519 id without its 2-byte prefix) || seqno."""
    mh = b58decode(peer_id)
    assert mh[:2] == b"\x00\x24", f"{peer_id} is not an identity-multihash (Ed25519) peer id"
    return (mh[2:] + int(seqno).to_bytes(8, "big")).hex()


class MixedMesh(GossipTestCase):
    need_js = True

    def mixed_mesh(self, topic, n_agents=3, n_js=3, gossip=None, msg_id="go", js_args=()):
        """n_agents agents (each dials every earlier one) that join topic and stream it, and n_js js nodes
        subscribed to topic that dial every agent and every earlier js node. Returns (agents, js, streams)
        once every node knows every other as a subscriber of topic."""
        agents = []
        for _ in range(n_agents):
            agents.append(self.gossip_agent(bootstrap=list(agents), gossip=gossip))
        streams = {}
        for a in agents:
            a.join(topic)
            streams[a.peer_id] = a.stream(topic)
        js = []
        for _ in range(n_js):
            p = self.js_peer(*js_args, topics=[topic], msg_id=msg_id, score=True)
            for other in agents + js:
                p.ok("dial", target=other.addr)
            js.append(p)
        ids = {n.peer_id for n in agents + js}
        for node in agents + js:
            wait_topic_peers(node, topic, ids - {node.peer_id})
        return agents, js, streams

    # ---------------------------------------------------------------------------------------------

    def test_messages_from_either_side_reach_every_subscriber_exactly_once(self):
        topic = "it/mixed/v1"
        agents, js, streams = self.mixed_mesh(topic)
        a0, a1, a2 = agents
        j0, j1, j2 = js

        raw_from_agent = bytes(range(256)) + b"\x00\xff raw from an agent"
        raw_from_js = os.urandom(48) + b"\x00\xfe raw from js"
        js_envelope = {"type": "capability_broadcast", "from": "js-node-1", "timestamp": "2026-12-06T18:00:00.123Z",
                       "data": {"capabilities": ["code", "review"], "n": 1}}
        js_unknown = {"type": "js_custom_type", "from": "js-node-2", "timestamp": "2026-12-06T18:00:01.000Z",
                      "data": {"x": [1, 2, 3]}}

        published = {}  # key -> (origin node, message id our agents report or None)
        published["a0-raw"] = (a0, a0.publish_raw(topic, raw_from_agent)["message_id"])
        published["a1-env"] = (a1, a1.publish(topic, "task_announcement", {"task": "t-1", "who": a1.agent_id})["message_id"])
        published["a2-env-hop"] = (a2, a2.publish(topic, "meta_discussion", {"thread": 7}, hop_count=2)["message_id"])
        for p, payload in ((j0, raw_from_js), (j1, json.dumps(js_envelope).encode()),
                           (j2, json.dumps(js_unknown).encode())):
            recipients = set(p.publish(topic, payload))
            self.assertTrue({a.peer_id for a in agents} <= recipients,
                            f"js {p.peer_id} published to {recipients}, not to every agent")
        # A last message from one agent: once it arrived everywhere, everything before it arrived too or
        # never will (each node's events are in arrival order, and later messages would show up before it).
        marker = b"marker: the end of the burst"
        a0.publish_raw(topic, marker)

        # Every agent delivers all 7 (its own publishes too), each once.
        for a in agents:
            evs = streams[a.peer_id].wait(lambda evs: any(event_is_raw(e, marker) for e in evs), 30,
                                          f"the marker at {a.agent_id}")
            evs = streams[a.peer_id].wait_count(7, 30, f"7 messages at {a.agent_id}")
            self.assertEqual(len(evs), 7, f"{a.agent_id} delivered {len(evs)} messages: {json.dumps(evs)[:3000]}")
            ids = [e["message_id"] for e in evs]
            self.assertEqual(len(set(ids)), 7, f"{a.agent_id} delivered a message twice: {ids}")
            by_from = {}
            for e in evs:
                self.assertEqual(e["topic"], topic)
                by_from.setdefault(e["from"], []).append(e)
            self.assertEqual(sorted(len(v) for v in by_from.values()), [1, 1, 1, 1, 1, 2],
                             f"{a.agent_id}: messages per origin: {({k: len(v) for k, v in by_from.items()})}")

            # Agent-origin messages: the message ids the publish route answered, our envelope.
            a0_msgs = by_from[a0.peer_id]
            self.assertEqual([event_bytes(e) for e in a0_msgs], [raw_from_agent, marker])
            self.assertEqual(a0_msgs[0]["message_id"], published["a0-raw"][1])
            (e1,) = by_from[a1.peer_id]
            self.assertEqual(e1["message_id"], published["a1-env"][1])
            self.assertEqual(e1["data"]["type"], "task_announcement")
            self.assertEqual(e1["data"]["from"], a1.agent_id)
            self.assertEqual(e1["data"]["data"], {"task": "t-1", "who": a1.agent_id})
            self.assertRegex(e1["data"]["timestamp"], RFC3339_UTC)
            (e2,) = by_from[a2.peer_id]
            self.assertEqual(e2["data"]["type"], "meta_discussion")
            self.assertEqual(e2["data"].get("hop_count"), 2, e2)
            for e in (a0_msgs[0], e1, e2):
                origin = published_origin(e, agents)
                self.assertEqual(e["message_id"], go_message_id(origin.peer_id, e["seqno"]),
                                 f"message id of {e} is not from || seqno")

            # js-origin messages: from = the js peer id, seqno and id as js reports them.
            (ej0,) = by_from[j0.peer_id]
            self.assertEqual(event_bytes(ej0), raw_from_js)
            (ej1,) = by_from[j1.peer_id]
            self.assertEqual(ej1["data"]["type"], "capability_broadcast")
            self.assertEqual(ej1["data"]["from"], "js-node-1")
            self.assertEqual(ej1["data"]["data"], js_envelope["data"])
            (ej2,) = by_from[j2.peer_id]
            self.assertEqual(ej2["data"]["type"], "js_custom_type", "an unknown type is delivered with its string")
            self.assertEqual(ej2["data"]["data"], js_unknown["data"])
            for e in (ej0, ej1, ej2):
                self.assertRegex(e["seqno"], r"^\d+$")
                self.assertEqual(e["message_id"], go_message_id(e["from"], e["seqno"]))

        # Every js node gets the 6 it did not publish, each once; agent bytes are byte-exact and the same
        # at every js node; from/seqno/id agree with what our agents reported.
        sse_by_id = {e["message_id"]: e for e in streams[a0.peer_id].snapshot()}
        envelope_bytes = {}
        for p in js:
            msgs = p.wait_messages(topic, lambda m: any(base64.b64decode(x["data_b64"]) == marker for x in m), 30,
                                   "the marker")
            self.assertEqual(len(msgs), 6, f"js {p.peer_id} got {len(msgs)} messages: {json.dumps(msgs)[:3000]}")
            self.assertEqual(len({m["msg_id"] for m in msgs}), 6, f"js {p.peer_id} got a message twice")
            self.assertNotIn(p.peer_id, {m["from"] for m in msgs}, "js got its own message back (emitSelf is off)")
            for m in msgs:
                self.assertEqual(m["type"], "signed")
                ev = sse_by_id.get(m["msg_id"])
                self.assertIsNotNone(ev, f"js {p.peer_id} message {m} has an id our agent never delivered")
                self.assertEqual((m["from"], m["seqno"]), (ev["from"], ev["seqno"]))
                data = base64.b64decode(m["data_b64"])
                if m["from"] == a0.peer_id:
                    self.assertIn(data, (raw_from_agent, marker), "raw publish not byte-exact at js")
                elif m["from"] in (a1.peer_id, a2.peer_id):
                    envelope_bytes.setdefault(m["msg_id"], set()).add(data)
                    env = json.loads(data)
                    self.assertEqual(env, ev["data"], "js and our agent see different envelopes")
                    self.assertEqual(set(env) - {"hop_count"}, {"type", "from", "timestamp", "data"}, env)
        for mid, variants in envelope_bytes.items():
            self.assertEqual(len(variants), 1, f"message {mid} arrived with different bytes at different js nodes")
        raw_by_js = [base64.b64decode(m["data_b64"]) for m in j1.messages(topic) if m["from"] == a0.peer_id]
        self.assertEqual(raw_by_js, [raw_from_agent, marker])

        # Nothing was rejected on our side for this topic, and the counters add up: delivered_total counts
        # the messages that came from the network (the SSE stream also shows our own publishes).
        for a in agents:
            remote = sum(1 for e in streams[a.peer_id].snapshot() if e["from"] != a.peer_id)
            a.wait_metric("chorus_gossip_messages_delivered_total", remote, label("topic", topic))
            self.assertEqual(a.metric("chorus_gossip_messages_delivered_total", label("topic", topic)), remote)
            self.assertEqual(a.metric("chorus_gossip_messages_published_total", label("topic", topic)), 7 - remote)
            self.assertEqual(a.metric("chorus_gossip_messages_rejected_total", label("topic", topic)), 0,
                             f"{a.agent_id} rejected messages: {a.metric_samples('chorus_gossip_messages_rejected_total')}")

    def test_js_keeps_agents_in_its_mesh_with_a_non_negative_score(self):
        topic = "it/mesh-score/v1"
        # js with D 8 (D_lo 5): each js node has 5 candidates, so its heartbeat grafts until all 5 are in
        # its mesh; an agent missing from it was refused or pruned.
        agents, js, streams = self.mixed_mesh(topic, js_args=("--d", "8"))
        agent_ids = {a.peer_id for a in agents}

        for p in js:
            wait_for(lambda p=p: agent_ids <= p.mesh(topic), 20, f"js {p.peer_id} to graft every agent")
        # Three quanta of time in mesh (P1 0.01 per second, nothing else yet): three heartbeats in which no
        # agent was pruned, and nothing in their behaviour cost them score.
        for p in js:
            for a in agents:
                wait_for(lambda p=p, a=a: p.score(a.peer_id) >= 0.03, 20,
                         f"js {p.peer_id} scoring {a.agent_id} >= 0.03 (3 s in its mesh)")

        # Traffic both ways: 20 messages from every node.
        n = 20
        for i in range(n):
            for a in agents:
                a.publish(topic, "task_progress", {"i": i, "agent": a.agent_id})
            for p in js:
                p.publish(topic, f"js {p.peer_id} #{i}".encode())
        for a in agents:
            evs = streams[a.peer_id].wait_count(6 * n, 60, f"{6 * n} messages at {a.agent_id}")
            self.assertEqual(len({e["message_id"] for e in evs}), 6 * n)
        for p in js:
            p.wait_messages(topic, lambda m: len(m) >= 5 * n, 60, f"{5 * n} messages")

        # Our side first (a js node we penalised or graylisted is what pushes us out of its mesh): nothing
        # from js was rejected, js peers keep a score >= 0 with us.
        for a in agents:
            self.assertEqual(a.metric("chorus_gossip_messages_rejected_total", label("topic", topic)), 0,
                             f"{a.agent_id} rejected messages: {a.metric_samples('chorus_gossip_messages_rejected_total')}")
            peers = a.pubsub_peers()
            for p in js:
                self.assertGreaterEqual(peers[p.peer_id]["score"], 0, f"{a.agent_id} scores js {p.peer_id}: {peers[p.peer_id]}")

        # After the traffic: still in every js mesh, score not below zero (P2 adds to it, nothing subtracts),
        # and still rising with time in mesh.
        for p in js:
            self.assertTrue(agent_ids <= p.mesh(topic), f"js {p.peer_id} mesh {p.mesh(topic)} lost an agent")
            for a in agents:
                before = p.score(a.peer_id)
                self.assertGreaterEqual(before, 0, f"js {p.peer_id} scores {a.agent_id} {before}")
                wait_for(lambda p=p, a=a, before=before: p.score(a.peer_id) > before or p.score(a.peer_id) >= 0.05, 20,
                         f"js {p.peer_id} score of {a.agent_id} to keep growing")
                self.assertIn(a.peer_id, p.mesh(topic))
        # Our side: js peers speak /meshsub/1.1.0 to us (js offers 1.2, we take 1.1) and score >= 0.
        for a in agents:
            peers = a.pubsub_peers()
            for p in js:
                self.assertIn(p.peer_id, peers, f"{a.agent_id} has no pubsub stream to js {p.peer_id}")
                self.assertEqual(peers[p.peer_id]["protocol"], "/meshsub/1.1.0", peers[p.peer_id])
                self.assertGreaterEqual(peers[p.peer_id]["score"], 0, peers[p.peer_id])
                self.assertIn(topic, peers[p.peer_id]["topics"])
            self.assertGreaterEqual(len(a.mesh_peers(topic)), 4, f"{a.agent_id} mesh: {a.mesh_peers(topic)}")
            self.assertEqual(a.metric("chorus_gossip_messages_rejected_total", label("topic", topic)), 0,
                             f"{a.agent_id} rejected messages: {a.metric_samples('chorus_gossip_messages_rejected_total')}")

    def test_strict_no_sign_messages_are_rejected_counted_and_not_delivered(self):
        topic = "it/nosign/v1"
        agent = self.gossip_agent()  # StrictSign, the default
        agent.join(topic)
        sse = agent.stream(topic)
        unsigned = self.js_peer(topics=[topic], sign_policy="StrictNoSign")
        control = self.js_peer(topics=[topic], msg_id="go")
        unsigned.ok("dial", target=agent.addr)
        control.ok("dial", target=agent.addr)
        wait_topic_peers(agent, topic, {unsigned.peer_id, control.peer_id})
        wait_topic_peers(unsigned, topic, {agent.peer_id})
        # Both js nodes are in the agent's mesh (2 candidates, below D_lo: the heartbeat grafts both).
        wait_for(lambda: {unsigned.peer_id, control.peer_id} <= agent.mesh_peers(topic), 20,
                 "the agent to graft both js nodes")
        rejected_before = agent.metric("chorus_gossip_messages_rejected_total")

        # The first unsigned message is rejected (counted by reason, and P4 against the sender: -100, below
        # the graylist threshold -80); the sender's later RPCs are then ignored as graylisted. Every message
        # is counted under one of the two.
        count = 3
        for i in range(count):
            recipients = unsigned.publish(topic, f"unsigned #{i}".encode())
            self.assertIn(agent.peer_id, recipients, "the StrictNoSign js node did not even send to the agent")
        agent.wait_metric("chorus_gossip_messages_rejected_total", rejected_before + 1, label("topic", topic),
                          timeout=20)
        samples = {k: v for k, v in agent.metric_samples("chorus_gossip_messages_rejected_total").items() if v > 0}
        for labels in samples:
            self.assertRegex(labels, r'reason="[a-z_]+"', f"rejected_total without a reason: {samples}")
        wait_for(lambda: agent.metric("chorus_gossip_messages_rejected_total", label("topic", topic)) +
                 agent.metric("chorus_gossip_messages_ignored_total", label("topic", topic), label("reason", "graylisted"))
                 >= count, 20, f"all {count} unsigned messages counted as rejected or ignored (graylisted)")

        # Not delivered: a signed message sent after them is the first and only thing on the stream.
        control.publish(topic, b"signed control message")
        evs = sse.wait_count(1, 20, "the control message")
        self.assertEqual(len(evs), 1, evs)
        self.assertEqual(evs[0]["from"], control.peer_id)
        self.assertEqual(event_bytes(evs[0]), b"signed control message")
        self.assertEqual(agent.metric("chorus_gossip_messages_delivered_total", label("topic", topic)), 1)
        # Rejections count against the sender (P4, weight -100): below 0 it is pruned from the mesh, below
        # the graylist threshold its RPCs are ignored (the later unsigned messages were counted so).
        wait_for(lambda: agent.pubsub_peers().get(unsigned.peer_id, {}).get("score", 0) < -80, 20,
                 "the agent's score of the StrictNoSign js node to fall below the graylist threshold")
        wait_for(lambda: unsigned.peer_id not in agent.mesh_peers(topic), 20,
                 "the agent to prune the StrictNoSign js node from its mesh")
        self.assertGreaterEqual(agent.metric("chorus_gossip_messages_ignored_total", label("topic", topic),
                                             label("reason", "graylisted")), 1,
                                agent.metric_samples("chorus_gossip_messages_ignored_total"))
        self.assertIn(control.peer_id, agent.mesh_peers(topic))
        self.assertGreaterEqual(agent.pubsub_peers()[control.peer_id]["score"], 0)

    def test_messages_cross_implementations_hop_by_hop(self):
        # A chain a0 - j0 - a1 - j1 - a2 - j2: every message travels 5 hops, each one from one
        # implementation to the other, so each side forwards (and verifies) messages the other signed and
        # forwarded.
        topic = "it/chain/v1"
        agents = [self.gossip_agent() for _ in range(3)]
        for a in agents:
            a.join(topic)
        streams = {a.peer_id: a.stream(topic) for a in agents}
        js = [self.js_peer(topics=[topic], msg_id="go") for _ in range(3)]
        chain = [agents[0], js[0], agents[1], js[1], agents[2], js[2]]
        for left, right in zip(chain, chain[1:]):
            p = left if isinstance(left, GossipJsPeer) else right
            other = right if p is left else left
            p.ok("dial", target=other.addr)
        for i, node in enumerate(chain):
            near = {n.peer_id for n in chain[max(0, i - 1):i + 2] if n is not node}
            wait_topic_peers(node, topic, near)
            get_mesh = node.mesh if isinstance(node, GossipJsPeer) else node.mesh_peers
            wait_for(lambda get_mesh=get_mesh, near=near: near <= set(get_mesh(topic)), 20,
                     f"chain node {i} to graft its neighbours {near}")

        head = agents[0].publish(topic, "task_help_request", {"need": "review"})["message_id"]
        js[2].publish(topic, b"from the far end")
        for a in agents:
            evs = streams[a.peer_id].wait_count(2, 30, f"both messages at {a.agent_id}")
            self.assertEqual(len({e["message_id"] for e in evs}), 2, evs)
            by_from = {e["from"]: e for e in evs}
            self.assertEqual(by_from[agents[0].peer_id]["message_id"], head)
            self.assertEqual(by_from[agents[0].peer_id]["data"]["data"], {"need": "review"})
            self.assertEqual(event_bytes(by_from[js[2].peer_id]), b"from the far end")
        for i, p in enumerate(js):
            want = 1 if p is js[2] else 2
            msgs = p.wait_messages(topic, lambda m, want=want: len(m) >= want, 30, f"{want} messages")
            self.assertEqual(len(msgs), want, msgs)
            head_msg = [m for m in msgs if m["from"] == agents[0].peer_id]
            self.assertEqual(len(head_msg), 1, msgs)
            self.assertEqual(head_msg[0]["msg_id"], head)
            # The copy came from the chain neighbour on the agents' side, not from a0 itself (except j0).
            self.assertEqual(head_msg[0]["propagation_source"], chain[2 * i].peer_id)
        for a in agents:
            self.assertEqual(a.metric("chorus_gossip_messages_rejected_total", label("topic", topic)), 0,
                             f"{a.agent_id} rejected messages: {a.metric_samples('chorus_gossip_messages_rejected_total')}")

    def test_meshsub_1_0_and_floodsub_peers(self):
        # One agent between a js node that speaks only /meshsub/1.0.0 and one that speaks only
        # /floodsub/1.0.0 (the two are not connected): the agent negotiates each one's protocol, grafts
        # the meshsub peer (a floodsub peer has no mesh), and carries messages between them.
        topic = "it/old-protocols/v1"
        agent = self.gossip_agent()
        agent.join(topic)
        sse = agent.stream(topic)
        mesh10 = self.js_peer("--protocols", "/meshsub/1.0.0", topics=[topic], msg_id="go")
        flood = self.js_peer("--protocols", "/floodsub/1.0.0", topics=[topic], msg_id="go")
        for p in (mesh10, flood):
            p.ok("dial", target=agent.addr)
            wait_topic_peers(p, topic, {agent.peer_id})
        wait_topic_peers(agent, topic, {mesh10.peer_id, flood.peer_id})
        peers = agent.pubsub_peers()
        self.assertEqual(peers[mesh10.peer_id]["protocol"], "/meshsub/1.0.0", peers[mesh10.peer_id])
        self.assertEqual(peers[flood.peer_id]["protocol"], "/floodsub/1.0.0", peers[flood.peer_id])
        wait_for(lambda: mesh10.peer_id in agent.mesh_peers(topic) and agent.peer_id in mesh10.mesh(topic), 20,
                 "the agent and the /meshsub/1.0.0 js node to graft each other")
        self.assertNotIn(flood.peer_id, agent.mesh_peers(topic), "a floodsub peer in the mesh")

        agent.publish_raw(topic, b"from the agent")
        mesh10.publish(topic, b"from meshsub 1.0")
        flood.publish(topic, b"from floodsub")
        evs = sse.wait_count(3, 20, "three messages")
        self.assertEqual(sorted(event_bytes(e) for e in evs), [b"from floodsub", b"from meshsub 1.0", b"from the agent"])
        for p, other in ((mesh10, b"from floodsub"), (flood, b"from meshsub 1.0")):
            msgs = p.wait_messages(topic, lambda m: len(m) >= 2, 20, "two messages")
            self.assertEqual(sorted(base64.b64decode(m["data_b64"]) for m in msgs), sorted([b"from the agent", other]),
                             f"js {p.peer_id} ({'floodsub' if p is flood else 'meshsub 1.0'}) got {msgs}")
            for m in msgs:
                self.assertEqual(m["propagation_source"], agent.peer_id)
        self.assertEqual(agent.metric("chorus_gossip_messages_rejected_total", label("topic", topic)), 0,
                         agent.metric_samples("chorus_gossip_messages_rejected_total"))

    def test_envelopes_over_the_hop_limit_from_js_are_ignored(self):
        # HMMM loop guard (hop_limit 5 by default): a relayed envelope whose hop_count is above the limit
        # is dropped without penalty; at the limit it is delivered.
        topic = "it/hops/v1"
        agent = self.gossip_agent()
        agent.join(topic)
        sse = agent.stream(topic)
        p = self.js_peer(topics=[topic], msg_id="go")
        p.ok("dial", target=agent.addr)
        wait_topic_peers(p, topic, {agent.peer_id})
        wait_topic_peers(agent, topic, {p.peer_id})

        def envelope(hops, note):
            return json.dumps({"type": "meta_discussion", "from": "js-relay", "timestamp": "2026-12-06T18:00:00Z",
                               "data": {"note": note}, "hop_count": hops}).encode()
        p.publish(topic, envelope(6, "over the limit"))
        p.publish(topic, envelope(5, "at the limit"))
        p.publish(topic, b"marker")
        evs = sse.wait(lambda evs: any(event_bytes(e) == b"marker" for e in evs), 20, "the marker")
        notes = [e["data"]["data"]["note"] for e in evs if "raw_base64" not in e]
        self.assertEqual(notes, ["at the limit"], evs)
        self.assertEqual(evs[0]["data"].get("hop_count"), 5, evs[0])
        agent.wait_metric("chorus_gossip_messages_ignored_total", 1, label("topic", topic))
        self.assertEqual(agent.metric("chorus_gossip_messages_rejected_total", label("topic", topic)), 0)
        self.assertGreaterEqual(agent.pubsub_peers()[p.peer_id]["score"], 0, "an ignored message cost the relay score")

    def test_key_seqno_message_ids_are_the_js_ids(self):
        topic = "it/msgid/v1"
        agents, js, streams = self.mixed_mesh(topic, n_agents=1, n_js=2, gossip={"message_id": "key_seqno"},
                                              msg_id="js")
        (a,) = agents
        ans = a.publish_raw(topic, b"from the agent")
        js[0].publish(topic, b"from js")
        evs = streams[a.peer_id].wait_count(2, 20, "both messages")
        by_from = {e["from"]: e for e in evs}
        self.assertEqual(ans["message_id"], js_message_id(a.peer_id, by_from[a.peer_id]["seqno"]))
        self.assertEqual(by_from[js[0].peer_id]["message_id"], js_message_id(js[0].peer_id, by_from[js[0].peer_id]["seqno"]))
        msgs = js[1].wait_messages(topic, lambda m: len(m) >= 2, 20, "both messages")
        self.assertEqual({m["msg_id"] for m in msgs}, {e["message_id"] for e in evs})


def event_is_raw(ev, data):
    return event_bytes(ev) == data


def published_origin(ev, agents):
    for a in agents:
        if a.peer_id == ev["from"]:
            return a
    raise AssertionError(f"event from {ev['from']}, not from an agent")


if __name__ == "__main__":
    unittest.main()
