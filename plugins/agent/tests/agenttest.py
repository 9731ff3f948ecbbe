"""Helpers for the agent plugin's Python suites (stdlib only, plus `age-keygen` for the ucxi role key), on
top of tests/integration/harness.py, tests/integration/netns_lab.py, tests/interop/p2ptest.py,
plugins/ucxi/tests/ucxitest.py and the fake LLM of libs/ai-common/tests/fakes/fake_ai.py:

  * agent_missing_reason - the plugins (and tools) a full agent needs, as a harness.missing() reason;
  * agent_stack_config_yaml - p2p + gossip + agent + reasoning + ai-ollama (+ dht + ucxi with a role key);
  * AgentNode - a running agent: peer id, /api/v1/agent routes, metrics;
  * CoordinationLog - the messages on CHORUS/coordination/v1 as the agents deliver them, read from
    GET /api/v1/pubsub/stream on several agents at once and merged by message id (a message seen by
    two agents counts once; two publications of the same content count twice);
  * NetnsAgentLab - agents in network namespaces (netns_lab.NetnsLab), the fake LLM on the bridge.

Everything waits on events (an SSE message, an HTTP answer polled with a deadline), never on sleeps.
"""
import http.client
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import netns_lab
import p2ptest
from harness import Agent, missing, scale

AGENT_PLUGIN_DIR = os.environ.get("CHORUS_PLUGIN_DIR", "")
PLUGIN_DIRS = {
    "p2p": os.environ.get("CHORUS_P2P_PLUGIN_DIR", ""),
    "gossip": os.environ.get("CHORUS_GOSSIP_PLUGIN_DIR", ""),
    "agent": AGENT_PLUGIN_DIR,
    "reasoning": os.environ.get("CHORUS_REASONING_PLUGIN_DIR", ""),
    "ai-ollama": os.environ.get("CHORUS_AI_OLLAMA_PLUGIN_DIR", ""),
    "dht": os.environ.get("CHORUS_DHT_PLUGIN_DIR", ""),
    "ucxi": os.environ.get("CHORUS_UCXI_PLUGIN_DIR", ""),
}
COORDINATION = "CHORUS/coordination/v1"

# The agent's coordination at the tests' pace (docs: plugins/agent/README.md, Config).
FAST_AGENT = {
    "max_tasks": 3,
    "availability_interval_ms": 500,
    "status_log_interval_ms": 5000,
    "directory_ttl_ms": 5000,
    "claim_window_ms": 300,
    "progress_interval_ms": 300,
    "owner_timeout_ms": 1500,
    "unclaimed_retry_ms": 1000,
    "llm_timeout_ms": 30000,
}
FAST_GOSSIP = {"router": {"heartbeat_ms": 200}}
ROLE = "developer"


def agent_missing_reason(ucxi=True):
    """Why an agent with the whole stack cannot run here, or None (a harness.missing() reason)."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for pid, d in PLUGIN_DIRS.items():
        if pid in ("dht", "ucxi") and not ucxi:
            continue
        f = f"chorus-{pid}.so"
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found (plugin dir {d!r})")
    if ucxi and not shutil.which("age-keygen"):
        return missing("age", "age-keygen (Debian package `age`) is needed to make the role key")
    return None


def agent_stack_config_yaml(state_dir, *, agent_id, p2p_listen, http_listen, llm_endpoint, bootstrap=(),
                            agent=None, recipient=None, log_level="info"):
    """p2p + gossip + agent (config dict `agent` over FAST_AGENT) + reasoning + ai-ollama (asking
    llm_endpoint), and dht + ucxi when `recipient` (the age recipient of ROLE) is given; agent.role = ROLE."""
    plugins = {
        "gossip": FAST_GOSSIP,
        "agent": dict(FAST_AGENT, **(agent or {})),
        "reasoning": {},
        "ai-ollama": {"endpoint": llm_endpoint, "default_model": "phi3:latest", "health_interval_ms": 0},
    }
    if recipient is not None:
        plugins["dht"] = {"roles": {ROLE: {"recipient": recipient, "authority": "coordination"}}}
        plugins["ucxi"] = {}
    dirs = []
    for pid in plugins:
        d = PLUGIN_DIRS[pid]
        if d not in dirs and d != PLUGIN_DIRS["p2p"]:
            dirs.append(d)
    text = p2ptest.p2p_stack_config_yaml(state_dir, agent_id=agent_id, p2p_listen=p2p_listen, bootstrap=bootstrap,
                                         plugins=plugins, plugin_dirs=dirs, http_listen=http_listen,
                                         log_level=log_level)
    head = f"agent:\n  id: {json.dumps(agent_id)}\n"
    assert head in text, text
    return text.replace(head, head + f"  role: {json.dumps(ROLE)}\n", 1)


def http_json(url, method="GET", body=None, timeout=10):
    """(status, parsed JSON or {"raw": text}); (None, {"error": ...}) when the agent does not answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=scale(timeout)) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    except (OSError, ValueError) as e:
        return None, {"error": repr(e)}
    try:
        return status, json.loads(text)
    except ValueError:
        return status, {"raw": text}


class AgentNode:
    """A running agent with the agent plugin: its names, /api/v1/agent routes and metrics."""

    def __init__(self, agent, name, agent_id, host_ip, p2p_addr_prefix):
        self.agent, self.name, self.agent_id, self.host_ip = agent, name, agent_id, host_ip
        status, info = http_json(self.url("/p2p/id"))
        if status != 200:
            raise AssertionError(f"{name}: GET /p2p/id answered {status}: {info}")
        self.peer_id = info["peer_id"]
        self.addr = f"{p2p_addr_prefix}/p2p/{self.peer_id}"

    def url(self, path):
        return f"http://{self.host_ip}:{self.agent.port}{path}"

    def alive(self):
        return self.agent.proc.poll() is None

    def get(self, path):
        status, body = http_json(self.url(path))
        if status != 200:
            raise AssertionError(f"{self.name}: GET {path} answered {status}: {body}")
        return body

    def announce(self, title, **fields):
        """POST /api/v1/agent/tasks; returns (status, body)."""
        return http_json(self.url("/api/v1/agent/tasks"), "POST", dict(fields, title=title))

    def tasks(self):
        return {t["task_id"]: t for t in self.get("/api/v1/agent/tasks")}

    def peers(self):
        return self.get("/api/v1/agent/peers")

    def metric(self, name, labels=""):
        """The value of one sample of /metrics (name{labels} exactly as rendered, labels "" for none), or None."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=scale(10)) as r:
            text = r.read().decode()
        key = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return None


class CoordinationLog:
    """Every message delivered on CHORUS/coordination/v1 by the agents attached, merged by message id.
    Each record: {"message_id", "from", "type", "data", "seen_by": {names}}."""

    def __init__(self):
        self.cond = threading.Condition()
        self.records = {}  # message_id -> record
        self.order = []
        self.streams = []
        self.errors = []

    def attach(self, node):
        """Opens node's SSE stream of the topic and returns once the agent said it is subscribed."""
        conn = http.client.HTTPConnection(node.host_ip, node.agent.port, timeout=scale(30))
        conn.request("GET", f"/api/v1/pubsub/stream?topic={quote(COORDINATION, safe='')}",
                     headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise AssertionError(f"{node.name}: stream answered {resp.status}: {resp.read()[:500]!r}")
        conn.sock.settimeout(None)
        subscribed = threading.Event()
        entry = {"node": node, "conn": conn, "closed": False}
        t = threading.Thread(target=self._read, args=(entry, resp, subscribed), daemon=True)
        entry["thread"] = t
        self.streams.append(entry)
        t.start()
        if not subscribed.wait(scale(10)):
            raise AssertionError(f"{node.name}: no ': subscribed' on the coordination stream")

    def _read(self, entry, resp, subscribed):
        name = entry["node"].name
        data = []
        try:
            while True:
                raw = resp.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith(": subscribed"):
                    subscribed.set()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line == "" and data:
                    self._add(name, "\n".join(data))
                    data = []
        except Exception as e:  # noqa: BLE001 - the agent was killed, or close() cut the socket
            if not entry["closed"]:
                with self.cond:
                    self.errors.append(f"{name}: {e!r}")
        with self.cond:
            entry["closed"] = True
            self.cond.notify_all()

    def _add(self, name, text):
        try:
            ev = json.loads(text)
        except ValueError:
            return
        env = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        mid = ev.get("message_id") or f"{ev.get('from')}:{ev.get('seqno')}"
        with self.cond:
            rec = self.records.get(mid)
            if rec is None:
                rec = {"message_id": mid, "from": ev.get("from"), "type": env.get("type"),
                       "data": env.get("data") if isinstance(env.get("data"), dict) else {}, "seen_by": set(),
                       "t": time.time()}
                self.records[mid] = rec
                self.order.append(rec)
            rec["seen_by"].add(name)
            self.cond.notify_all()

    def messages(self, kind=None, seen_by=None):
        """Records in arrival order, of one type, seen by at least one agent of `seen_by` (names)."""
        with self.cond:
            return [r for r in self.order if (kind is None or r["type"] == kind) and
                    (seen_by is None or r["seen_by"] & set(seen_by))]

    def completions(self, seen_by=None):
        """{task_id: [task_complete data with status completed, one per distinct outcome]}.

        An outcome is (task, attempt, owner node): the owner's task_complete and the copies told again
        to agents that missed it (relayed_by, plugins/agent/README.md "Committing a result") are one."""
        out, seen = {}, set()
        for r in self.messages("task_complete", seen_by):
            d = r["data"]
            key = (d.get("task_id"), d.get("attempt"), d.get("node_id"))
            if d.get("status") == "completed" and key not in seen:
                seen.add(key)
                out.setdefault(d.get("task_id"), []).append(d)
        return out

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + scale(timeout)
        with self.cond:
            while True:
                value = pred()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {scale(timeout):.0f}s waiting for {what}; "
                                         f"{len(self.order)} messages, last: "
                                         f"{json.dumps([(r['type'], r['data']) for r in self.order[-5:]])[:2000]}")
                self.cond.wait(min(remaining, 1.0))

    def close(self):
        for s in self.streams:
            s["closed"] = True
            try:
                s["conn"].sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
            s["conn"].close()
        self.streams = []


class NetnsAgentLab(netns_lab.NetnsLab):
    """Agents in network namespaces on one bridge; p2p on <ip>:9000, HTTP on <ip>:8081. The fake LLM
    listens on the bridge's address in the root namespace, reachable from every namespace."""
    P2P_PORT = 9000
    HTTP_PORT = 8081

    def __init__(self):
        super().__init__("agx", "a", tmp_prefix="chorus-agent-lab-")
        self.nodes = []
        self.bridge_ip = f"10.{self.subnet}.0.254"

    def start_agent(self, *, llm_endpoint, bootstrap=(), agent=None, role_key=None, recipient=None,
                    log_level="info"):
        """An agent in a new namespace dialling the AgentNodes in `bootstrap`; holds role_key (the key file
        text of ROLE) when given. Returns its AgentNode once it is ready."""
        ns, ip = self.add_ns()
        state = self.state_dir(ns)
        if role_key is not None:
            roles = os.path.join(state, "dht", "roles")
            os.makedirs(roles, mode=0o700, exist_ok=True)
            os.chmod(os.path.join(state, "dht"), 0o700)
            os.chmod(roles, 0o700)
            fd = os.open(os.path.join(roles, f"{ROLE}.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(role_key)
        agent_id = f"ag{len(self.nodes)}-{self.tag}"
        text = agent_stack_config_yaml(state, agent_id=agent_id, p2p_listen=[f"/ip4/{ip}/tcp/{self.P2P_PORT}"],
                                       http_listen=f"{ip}:{self.HTTP_PORT}", llm_endpoint=llm_endpoint,
                                       bootstrap=[b.addr for b in bootstrap], agent=agent, recipient=recipient,
                                       log_level=log_level)
        agent_proc = Agent(self.write_config(ns, text), command=netns_lab.agent_command(ns), label=ns)
        self.agents.append(agent_proc)
        agent_proc.wait_ready()
        node = AgentNode(agent_proc, f"a{len(self.nodes)}", agent_id, ip, f"/ip4/{ip}/tcp/{self.P2P_PORT}")
        node.ns = ns
        self.nodes.append(node)
        return node

