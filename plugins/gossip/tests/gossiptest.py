"""Helpers for the gossip plugin's Python suites (stdlib only), on top of tests/integration/harness.py and
tests/interop/p2ptest.py.

  * gossip_config_yaml - an agent config with the p2p and gossip plugins;
  * GossipAgent - a running agent plus its peer id and the /api/v1/pubsub routes (publish, join, leave,
    topics, peers), its metrics, and SSE streams (SseStream) of the messages it delivers;
  * GossipJsPeer - tests/interop/js/gossip_peer.mjs (js-libp2p 2.10 + @chainsafe/libp2p-gossipsub) as a
    child process driven by JSON lines;
  * GossipTestCase - agents and js peers per test, all ended at the end of the test (agents by SIGTERM
    with their exit status checked, harness.Agent.finish).

Everything waits on events (an SSE event, a js event line, an HTTP answer polled with a deadline), never
on sleeps.
"""
import base64
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import netns_lab
import nodecheck
import p2ptest
from harness import SLOW, Agent, AgentTestCase, free_port, missing, scale, wait_for

GOSSIP_PLUGIN_DIR = os.environ.get("CHORUS_GOSSIP_PLUGIN_DIR", "")
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
JS_DIR = os.environ.get("GOSSIP_JS_DIR") or p2ptest.JS_DIR
NODE = p2ptest.NODE
GOSSIPSUB_PACKAGE = "@chainsafe/libp2p-gossipsub"

# The topics every agent joins at start (the plugin's default `topics`).
STATIC_TOPICS = ("CHORUS/coordination/v1", "hmmm/meta-discussion/v1", "CHORUS/context-feedback/v1")


# ---- Prerequisites (reasons marked with harness.missing, so a skip makes the suite Skipped) ----------

def agent_missing_reason():
    """Why an agent with the p2p and gossip plugins cannot run here, or None."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, f, var in ((P2P_PLUGIN_DIR, "chorus-p2p.so", "CHORUS_P2P_PLUGIN_DIR"),
                      (GOSSIP_PLUGIN_DIR, "chorus-gossip.so", "CHORUS_GOSSIP_PLUGIN_DIR")):
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found in {var}={d!r}")
    return None


_js_reason = ()


def js_missing_reason():
    """Why gossip_peer.mjs cannot run here (node too old or missing, `npm ci` not run), or None."""
    global _js_reason
    if _js_reason == ():
        r = nodecheck.missing_reason(NODE, GOSSIPSUB_PACKAGE)
        _js_reason = missing("js-libp2p", r) if r else None
    return _js_reason


# ---- Agent config -----------------------------------------------------------------------------------

def gossip_config_yaml(state_dir, *, agent_id, p2p_listen, bootstrap=(), gossip=None, http_listen="127.0.0.1:0",
                       log_level="info", p2p_extra=None):
    """A config running the p2p plugin (listening on p2p_listen, a list of multiaddrs, dialling `bootstrap`
    at start) and the gossip plugin with the config dict `gossip` (plugin defaults for what it leaves out)."""
    return p2ptest.p2p_stack_config_yaml(state_dir, agent_id=agent_id, p2p_listen=p2p_listen, bootstrap=bootstrap,
                                         plugins={"gossip": gossip}, plugin_dirs=[GOSSIP_PLUGIN_DIR],
                                         http_listen=http_listen, log_level=log_level, p2p_extra=p2p_extra)


# ---- Server-sent events -----------------------------------------------------------------------------

class SseStream:
    """GET /api/v1/pubsub/stream?topic=T held open by a thread; every `data:` line is parsed (JSON) into
    `events`. Opening it implies joining the topic (the agent's ": subscribed" comment says when that is
    done: wait_subscribed); close() drops the connection."""

    def __init__(self, host, port, topic):
        self.topic = topic
        self.events = []
        self.cond = threading.Condition()
        self.closed = False
        self.subscribed = False
        self.error = None
        self.conn = http.client.HTTPConnection(host, port, timeout=scale(30))
        self.conn.request("GET", f"/api/v1/pubsub/stream?topic={quote(topic, safe='')}",
                          headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            body = self.resp.read().decode(errors="replace")
            self.conn.close()
            raise AssertionError(f"GET stream?topic={topic} answered {self.resp.status}: {body}")
        ctype = self.resp.getheader("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            self.conn.close()
            raise AssertionError(f"stream?topic={topic}: Content-Type {ctype!r}, expected text/event-stream")
        # Events may be minutes apart (a quiet topic): no read timeout once the stream is open.
        self.conn.sock.settimeout(None)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        data_lines = []
        try:
            while True:
                raw = self.resp.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data_lines.append(line[5:].lstrip(" "))
                elif line == "" and data_lines:
                    text = "\n".join(data_lines)
                    data_lines = []
                    try:
                        ev = json.loads(text)
                    except ValueError:
                        ev = {"garbage": text}
                    with self.cond:
                        self.events.append(ev)
                        self.cond.notify_all()
                elif line.startswith(": subscribed"):
                    with self.cond:
                        self.subscribed = True
                        self.cond.notify_all()
                # Other comments (":...", keep-alives), event:/id:/retry: lines carry nothing we check.
        except Exception as e:  # noqa: BLE001 - close() from another thread breaks http.client in odd ways
            if not self.closed:
                self.error = e
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def wait(self, pred, timeout=20, what="SSE event"):
        """Blocks until pred(list of events so far) is true; returns the events."""
        deadline = time.monotonic() + scale(timeout)
        with self.cond:
            while True:
                if pred(self.events):
                    return list(self.events)
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    raise AssertionError(f"SSE {self.topic}: no {what} within {scale(timeout):.0f}s "
                                         f"(stream closed: {self.closed}, error: {self.error!r}); "
                                         f"{len(self.events)} events, last: {json.dumps(self.events[-3:])[:2000]}")
                self.cond.wait(remaining)

    def wait_event(self, pred, timeout=20, what="SSE event"):
        """Blocks until an event e with pred(e) arrived; returns the first such event."""
        evs = self.wait(lambda evs: any(pred(e) for e in evs), timeout, what)
        return next(e for e in evs if pred(e))

    def wait_subscribed(self, timeout=10):
        self.wait(lambda _: self.subscribed, timeout, "the stream's \": subscribed\" comment")

    def wait_count(self, n, timeout=20, what=None):
        return self.wait(lambda evs: len(evs) >= n, timeout, what or f"{n} events")

    def close(self):
        self.closed = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()


def event_bytes(ev):
    """The message bytes an SSE event stands for when it carried raw bytes (raw_base64), else None."""
    return base64.b64decode(ev["raw_base64"]) if "raw_base64" in ev else None


# ---- Agents -----------------------------------------------------------------------------------------

class GossipAgent:
    """A running agent with p2p + gossip: its peer id, dialable address and the pubsub routes."""

    def __init__(self, agent, p2p_addr_prefix, agent_id, host_ip="127.0.0.1"):
        self.agent = agent
        self.agent_id = agent_id
        self.host_ip = host_ip
        self.streams = []
        status, info = self.get("/p2p/id")
        if status != 200:
            raise AssertionError(f"GET /p2p/id answered {status}: {info}")
        self.peer_id = info["peer_id"]
        self.addr = f"{p2p_addr_prefix}/p2p/{self.peer_id}"

    @property
    def port(self):
        return self.agent.port

    def _url(self, path):
        return f"http://{self.host_ip}:{self.agent.port}{path}"

    def request(self, method, path, body=None, raw=None, timeout=30):
        """(status, parsed JSON answer or {"raw": text}); the body is the JSON of `body` or the bytes `raw`."""
        return p2ptest.http_request(self._url(path), method, body, raw, timeout)

    def get(self, path, timeout=10):
        return self.request("GET", path, timeout=timeout)

    def get_text(self, path, timeout=10):
        try:
            with urllib.request.urlopen(self._url(path), timeout=scale(timeout)) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path, body, timeout=30):
        return self.request("POST", path, body, timeout=timeout)

    # -- pubsub routes

    def publish(self, topic, type=None, data=None, hop_count=None):
        """Envelope publish; asserts 200 and returns the answer ({"message_id","topic"})."""
        body = {"topic": topic, "type": type, "data": data}
        if hop_count is not None:
            body["hop_count"] = hop_count
        status, ans = self.post("/api/v1/pubsub/publish", body)
        if status != 200:
            raise AssertionError(f"publish {body} answered {status}: {ans}")
        return ans

    def publish_raw(self, topic, raw):
        """Raw publish of bytes; asserts 200 and returns the answer."""
        status, ans = self.post("/api/v1/pubsub/publish",
                                {"topic": topic, "raw_base64": base64.b64encode(raw).decode()})
        if status != 200:
            raise AssertionError(f"raw publish on {topic} answered {status}: {ans}")
        return ans

    def join(self, topic):
        status, ans = self.post("/api/v1/pubsub/join", {"topic": topic})
        if status != 200:
            raise AssertionError(f"join {topic} answered {status}: {ans}")
        return ans

    def leave(self, topic):
        status, ans = self.post("/api/v1/pubsub/leave", {"topic": topic})
        if status != 200:
            raise AssertionError(f"leave {topic} answered {status}: {ans}")
        return ans

    def topics(self):
        status, ans = self.get("/api/v1/pubsub/topics")
        if status != 200:
            raise AssertionError(f"GET /api/v1/pubsub/topics answered {status}: {ans}")
        return {t["topic"]: t for t in ans}

    def pubsub_peers(self):
        """{peer id: entry} of GET /api/v1/pubsub/peers."""
        status, ans = self.get("/api/v1/pubsub/peers")
        if status != 200:
            raise AssertionError(f"GET /api/v1/pubsub/peers answered {status}: {ans}")
        return {p["peer_id"]: p for p in ans}

    def topic_peers(self, topic):
        """Peer ids that told us they subscribe to topic."""
        return {pid for pid, p in self.pubsub_peers().items() if topic in p.get("topics", [])}

    def mesh_peers(self, topic):
        return {pid for pid, p in self.pubsub_peers().items() if topic in p.get("mesh", [])}

    def stream(self, topic):
        """An SSE stream of topic (closed at the end of the test by GossipTestCase)."""
        s = SseStream(self.host_ip, self.agent.port, topic)
        self.streams.append(s)
        return s

    # -- metrics

    def metric_samples(self, name):
        """{label text: value} of the samples of metric `name` ("" for no labels)."""
        status, text = self.get_text("/metrics")
        if status != 200:
            raise AssertionError(f"GET /metrics answered {status}")
        return p2ptest.parse_metric_samples(text, name)

    def metric(self, name, *labels):
        """The sum of the samples of `name` whose label text contains every string of `labels`."""
        return sum(v for k, v in self.metric_samples(name).items() if all(l in k for l in labels))

    def wait_metric(self, name, at_least, *labels, timeout=10):
        """Polls /metrics until metric(name, *labels) >= at_least (metrics have no event to block on);
        returns the value. The failure names every sample of the metric."""
        try:
            wait_for(lambda: self.metric(name, *labels) >= at_least, timeout,
                     f"{self.agent_id}: {name}{{{','.join(labels)}}} >= {at_least}", interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; samples: {self.metric_samples(name)}")
        return self.metric(name, *labels)

    def close_streams(self):
        for s in self.streams:
            s.close()
        self.streams = []


def label(key, value):
    return f'{key}="{value}"'


# ---- The js gossipsub peer --------------------------------------------------------------------------

class GossipJsPeer(p2ptest.LinePeer):
    """tests/interop/js/gossip_peer.mjs: js-libp2p 2.10 + @chainsafe/libp2p-gossipsub 14.1.2."""

    label = "js gossip peer"

    def __init__(self, *args, seed=None, topics=(), sign_policy=None, msg_id=None, score=False, listen=None):
        argv = [NODE, os.path.join(JS_DIR, "gossip_peer.mjs")]
        if seed:
            argv += ["--seed", seed]
        for ma in listen or []:
            argv += ["--listen", ma]
        for t in topics:
            argv += ["--topic", t]
        if sign_policy:
            argv += ["--sign-policy", sign_policy]
        if msg_id:
            argv += ["--msg-id", msg_id]
        if score:
            argv.append("--score")
        super().__init__(argv + list(args), JS_DIR)

    def publish(self, topic, data):
        """Publishes bytes; returns the recipients' peer ids."""
        return self.ok("publish", topic=topic, data_b64=base64.b64encode(data).decode())["recipients"]

    def messages(self, topic):
        return self.ok("messages", topic=topic)["messages"]

    def mesh(self, topic):
        return set(self.ok("mesh", topic=topic)["peers"])

    def subscribers(self, topic):
        return set(self.ok("subscribers", topic=topic)["peers"])

    def score(self, peer):
        return self.ok("score", peer=peer)["score"]

    def wait_messages(self, topic, pred, timeout=20, what="messages"):
        """Waits (on message events) until pred(list of messages of topic) holds; returns the list."""
        deadline = time.monotonic() + scale(timeout)
        while True:
            start = self.mark()
            msgs = self.messages(topic)
            if pred(msgs):
                return msgs
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.label} {self.peer_id}: no {what} on {topic} within {scale(timeout):.0f}s; "
                                     f"{len(msgs)} messages: {json.dumps(msgs[-3:])[:2000]}")
            try:
                self.wait_event(lambda e: e.get("event") == "message" and e.get("topic") == topic, start=start,
                                timeout=remaining / SLOW, what="message event")
            except AssertionError:
                pass  # the loop's own deadline check reports it with the messages seen


# ---- Test case --------------------------------------------------------------------------------------

class GossipTestCase(AgentTestCase):
    """Agents with p2p + gossip on loopback and js gossip peers; all ended at the end of the test."""

    need_js = False

    def setUp(self):
        p2ptest.skip_if_missing(self, agent_missing_reason, js_missing_reason if self.need_js else None)
        super().setUp()
        self.gossip_agents = []
        self.js_peers = []
        self._n = 0

    def tearDown(self):
        for a in self.gossip_agents:
            a.close_streams()
        for p in self.js_peers:
            p.stop()
        super().tearDown()  # harness: SIGTERM, exit status, sanitizer reports of every agent

    def gossip_agent(self, *, bootstrap=(), gossip=None, name=None, log_level="info"):
        """An agent listening for p2p on 127.0.0.1:<free port>, dialling `bootstrap` (GossipAgents or
        multiaddrs) at start."""
        self._n += 1
        name = name or f"agent{self._n}"
        state = self.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        boot = [b.addr if isinstance(b, GossipAgent) else b for b in bootstrap]
        text = gossip_config_yaml(state, agent_id=f"it-{name}", p2p_listen=[f"/ip4/127.0.0.1/tcp/{port}"],
                                  bootstrap=boot, gossip=gossip, log_level=log_level)
        agent = Agent(self.ws.write(f"{name}.yaml", text), label=name)
        self.agents.append(agent)
        agent.wait_ready()
        ga = GossipAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", f"it-{name}")
        self.gossip_agents.append(ga)
        return ga

    def js_peer(self, *args, **kw):
        p = GossipJsPeer(*args, **kw)
        self.js_peers.append(p)
        return p


def wait_topic_peers(node, topic, expected, timeout=30):
    """Waits until node (GossipAgent or GossipJsPeer) knows every peer id in `expected` as a subscriber of
    topic (polled: neither side has an event for "the remote's SUBSCRIBE arrived")."""
    expected = set(expected)
    if isinstance(node, GossipAgent):
        get, who = (lambda: node.topic_peers(topic)), f"agent {node.agent_id}"
    else:
        get, who = (lambda: node.subscribers(topic)), f"js {node.peer_id}"
    last = set()

    def done():
        nonlocal last
        last = get()
        return expected <= last
    try:
        wait_for(done, timeout, f"{who} to see {len(expected)} subscribers of {topic}", interval=0.05)
    except AssertionError as e:
        raise AssertionError(f"{e}; missing: {sorted(expected - last)}, has: {sorted(last)}")


# ---- Network-namespace lab (test_gossip_mesh.py) ----------------------------------------------------
# tests/integration/netns_lab.py: one Linux bridge in the root namespace (with an address, so this
# process reaches the agents' HTTP listeners) and per agent a namespace joined to it by a veth pair:
#   root ns: brg<tag> 10.<n>.0.254/24;  ns i: lo up, eth0 10.<n>.0.<i+1>/24 (namespaces gsp<tag>-<i>)

netns_missing_reason = netns_lab.netns_missing_reason


class NetnsLab(netns_lab.NetnsLab):
    """Agents with p2p + gossip, each in its own network namespace on one bridge. close() closes their SSE
    streams, ends the agents (harness.Agent.finish: SIGTERM, exit status, sanitizer reports), removes
    everything, and raises AssertionError with what finish found."""

    P2P_PORT = 9000
    HTTP_PORT = 8081

    def __init__(self):
        self.gossip_agents = []  # GossipAgent
        super().__init__("gsp", "g", tmp_prefix="chorus-gossip-lab-")

    def start_agent(self, *, bootstrap=(), gossip=None, log_level="info"):
        """An agent in a new namespace, dialling the GossipAgents in `bootstrap` at start."""
        ns, ip = self.add_ns()
        name = ns
        text = gossip_config_yaml(self.state_dir(name), agent_id=f"it-{name}",
                                  p2p_listen=[f"/ip4/{ip}/tcp/{self.P2P_PORT}"],
                                  bootstrap=[b.addr for b in bootstrap], gossip=gossip,
                                  http_listen=f"{ip}:{self.HTTP_PORT}", log_level=log_level)
        agent = Agent(self.write_config(name, text), command=netns_lab.agent_command(ns), label=name)
        self.agents.append(agent)
        agent.wait_ready()
        ga = GossipAgent(agent, f"/ip4/{ip}/tcp/{self.P2P_PORT}", f"it-{name}", host_ip=ip)
        ga.ns = ns
        self.gossip_agents.append(ga)
        return ga

    def close(self):
        for ga in self.gossip_agents:
            ga.close_streams()
        super().close()
