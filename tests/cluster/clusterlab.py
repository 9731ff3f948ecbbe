"""The cluster of tests/cluster/soak.py (Python stdlib only): N chorus-agents with every plugin, each in its
own network namespace on one bridge (tests/integration/netns_lab.py), a real nats-server and the fake LLMs
(libs/ai-common/tests/fakes/fake_ai.py) on the bridge's address in the root namespace.

  * ClusterLab - the bridge, the namespaces, nats-server, the two fake LLMs (ollama and openai kinds),
    the agents' configs; start, kill -9 and restart of one agent (same namespace, state dir and peer id);
    a partition made of blackhole routes between namespaces (the bridge, NATS and the LLMs stay
    reachable from every side), its heal; the AI provider binding and its SIGHUP; the replacement of a
    provider's .so on disk;
  * Node - one agent slot: its address (fixed: <ip>:8081 for HTTP, <ip>:9000 for p2p), the running
    harness.Agent of its current incarnation, GET /api/v1/election for electionlab.Checker;
  * Nats - nats-server listening on the bridge address, restartable on the same port.

Each agent holds its own copies of the two AI provider files (<state>/ai/chorus-ai-*.so, loaded by an
explicit `path`), so the test can replace one on disk as dpkg does (a rename over it) and SIGHUP.
"""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import netns_lab
from harness import Agent, scale, wait_for

ROLE = "developer"
P2P_PORT = 9000
HTTP_PORT = 8081
PLUGINS = ("p2p", "mdns", "gossip", "dht", "election", "backbeat", "ai-ollama", "ai-openai", "reasoning", "ucxi",
           "agent")
AI_PROVIDERS = ("ai-ollama", "ai-openai")
# A failing start of one of these stops the agent; the others only degrade /health.
CRITICAL = {"p2p", "gossip", "dht", "election", "ucxi", "agent", "reasoning"}
MODEL = "phi3:latest"

# Timings at the test's pace (the plugins' own tests use the same): gossip heartbeat 200 ms, election
# heartbeat 300 ms and timeout 1.2 s, agent coordination as in plugins/agent/tests/agenttest.py.
GOSSIP = {"router": {"heartbeat_ms": 200}}
ELECTION = {"heartbeat_interval_ms": 300, "heartbeat_timeout_ms": 1200, "discovery_timeout_ms": 1200,
            "min_term_ms": 3000, "vote_window_ms": 150, "candidacy_timeout_ms": 1000, "max_jitter_ms": 300}
AGENT = {"max_tasks": 3, "availability_interval_ms": 500, "status_log_interval_ms": 5000, "directory_ttl_ms": 5000,
         "claim_window_ms": 300, "progress_interval_ms": 300, "owner_timeout_ms": 1500, "unclaimed_retry_ms": 1000,
         "llm_timeout_ms": 30000}
MDNS = {"query_interval_ms": 2000, "interface_scan_ms": 2000, "ipv6": False}
DHT = {"query_timeout_ms": 3000, "lookup_deadline_ms": 15000, "probe": {"enabled": False}}
UCXI = {"timeout_ms": 15000}
# What a user gets (--default-timings): only what the cluster needs to work at all (addresses, endpoints,
# cluster_size, IPv4-only mDNS inside a namespace, no reachability probe); every period and timeout is
# the plugin's own default (election heartbeat 5 s, gossip heartbeat 1 s, availability every 30 s,
# status line every 30 s, mDNS query every 10 s, backbeat's default tempo).
DEFAULT_MDNS = {"ipv6": False}
DEFAULT_DHT = {"probe": {"enabled": False}}


def http_json(url, method="GET", body=None, timeout=5.0, raw=None, headers=None):
    """(status, parsed JSON or {"raw": text}); (None, {"error": ...}) when nothing answers."""
    import urllib.error
    import urllib.request
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    except (OSError, ValueError) as e:  # refused, reset, timed out: a dead or cut-off agent
        return None, {"error": repr(e)}
    try:
        return status, json.loads(text)
    except ValueError:
        return status, {"raw": text}


def plugin_dir_missing(plugin_dir, needed=PLUGINS):
    """The plugin files missing from plugin_dir (a list of ids)."""
    return [p for p in needed if not os.path.exists(os.path.join(plugin_dir, f"chorus-{p}.so"))]


class Nats:
    """nats-server on <host>:<port>, started and killed (SIGKILL) on demand, always on the same port."""

    def __init__(self, binary, host, port):
        self.binary, self.host, self.port = binary, host, port
        self.proc = None

    @property
    def url(self):
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout=20):
        self.proc = subprocess.Popen([self.binary, "-a", self.host, "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + scale(timeout)
        lines = []
        for line in self.proc.stderr:  # the server's own log line: an event, not a sleep
            lines.append(line)
            if "Server is ready" in line:
                threading.Thread(target=lambda p=self.proc: [None for _ in p.stderr], daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise AssertionError("nats-server did not start:\n" + "".join(lines))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Node:
    """One agent slot of the cluster: namespace, addresses, state dir, and the current incarnation."""

    def __init__(self, lab, index, ns, ip):
        self.lab, self.index, self.ns, self.ip = lab, index, ns, ip
        self.name = f"a{index}"
        self.agent_id = f"soak{index}-{lab.tag}"
        self.state = lab.state_dir(ns)
        self.ai_dir = os.path.join(self.state, "ai")
        self.agent = None          # harness.Agent of the running incarnation
        self.peer_id = None
        self.incarnation = 0
        self.down_since = None     # monotonic time of the last kill, None while it runs
        self.kills = []            # monotonic times of every kill -9
        self.boot = []             # the p2p bootstrap peers of the current incarnation
        self.ready = False         # the current incarnation said ready and answered /p2p/id

    @property
    def host_ip(self):  # agenttest.CoordinationLog's name for it
        return self.ip

    @property
    def addr(self):
        return f"/ip4/{self.ip}/tcp/{P2P_PORT}/p2p/{self.peer_id}"

    def url(self, path):
        return f"http://{self.ip}:{HTTP_PORT}{path}"

    def alive(self):
        """Running and ready: what the load picks its agents among."""
        return self.ready and self.agent is not None and self.agent.proc.poll() is None

    @property
    def pid(self):
        return self.agent.proc.pid if self.agent else None

    def get(self, path, timeout=5.0):
        return http_json(self.url(path), timeout=timeout)

    def post(self, path, body, timeout=10.0):
        return http_json(self.url(path), "POST", body, timeout=timeout)

    def election(self, timeout=2):
        """(status, body) of GET /api/v1/election (electionlab.Checker polls this)."""
        return http_json(self.url("/api/v1/election"), timeout=timeout)


class ClusterLab(netns_lab.NetnsLab):
    """The bridge, N namespaces, nats-server, the fake LLMs and the agents."""

    def __init__(self, plugin_dir, nats_binary, role_key, recipient, *, log_level="info", default_timings=False):
        super().__init__("csx", "c", tmp_prefix="chorus-cluster-")
        self.plugin_dir = plugin_dir
        self.role_key, self.recipient = role_key, recipient
        self.log_level = log_level
        self.bridge_ip = f"10.{self.subnet}.0.254"
        self.nodes = []
        self.blackholes = []
        self.binding = "ai-ollama"
        self.nats = None
        self.llms = {}
        self.nats_binary = nats_binary
        self.default_timings = default_timings
        self.agent_env = {}  # extra environment of every agent (tests/cluster/footprint.py --env)
        self.agent_config = {} if default_timings else dict(AGENT)
        # Plugins left out (a development run against a partial build, --allow-missing-plugins).
        self.enabled = [p for p in PLUGINS if os.path.exists(os.path.join(plugin_dir, f"chorus-{p}.so"))]

    def wait_directories(self, timeout, what="", interval=0.01):
        """Waits until every node's agent directory (GET /api/v1/agent/peers) lists every other node."""
        for n in self.nodes:
            others = {m.agent_id for m in self.nodes if m is not n}
            wait_for(lambda n=n, o=others: o <= {p["agent_id"] for p in (n.get("/api/v1/agent/peers")[1] or [])
                                                  if isinstance(p, dict)}, timeout,
                     f"{n.name}'s directory to list all{what}", interval=interval)

    # -- services in the root namespace

    def start_services(self, fake_server_cls, nats_port):
        self.nats = Nats(self.nats_binary, self.bridge_ip, nats_port).start()
        ollama = fake_server_cls("ollama", "ollama", host=self.bridge_ip)
        openai = fake_server_cls("openai", "openai", api_key="sk-soak-SECRET", host=self.bridge_ip)
        for f in (ollama, openai):
            f.models = [MODEL, "gpt-4o-mini", "llama3.1:latest"]
        self.llms = {"ai-ollama": ollama, "ai-openai": openai}

    def close_services(self):
        for f in self.llms.values():
            f.close()
        if self.nats:
            self.nats.kill()

    # -- agents

    def add_node(self):
        ns, ip = self.add_ns()
        node = Node(self, len(self.nodes), ns, ip)
        roles = os.path.join(node.state, "dht", "roles")
        os.makedirs(roles, mode=0o700, exist_ok=True)
        os.chmod(os.path.join(node.state, "dht"), 0o700)
        os.chmod(roles, 0o700)
        fd = os.open(os.path.join(roles, f"{ROLE}.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.role_key)
        os.makedirs(node.ai_dir, exist_ok=True)
        for pid in AI_PROVIDERS:
            if pid in self.enabled:
                shutil.copy2(os.path.join(self.plugin_dir, f"chorus-{pid}.so"),
                             os.path.join(node.ai_dir, f"chorus-{pid}.so"))
        self.nodes.append(node)
        return node

    def config_yaml(self, node):
        """Every plugin; p2p dials node.boot (fixed per incarnation, so a SIGHUP changes no p2p config)."""
        boot = node.boot
        ollama, openai = self.llms["ai-ollama"], self.llms["ai-openai"]
        fast = not self.default_timings
        backbeat = {"cluster_id": f"soak{self.tag}", "nats_url": self.nats.url if self.nats else "", "pulse": True}
        if fast:
            backbeat.update(tempo_bpm=120, bar_length=8, reconnect_wait_ms=100, reconnect_wait_max_ms=500)
        cfgs = {
            "p2p": {"listen": [f"/ip4/{node.ip}/tcp/{P2P_PORT}"], **({"bootstrap_peers": boot} if boot else {})},
            "mdns": MDNS if fast else DEFAULT_MDNS,
            "gossip": GOSSIP if fast else {},
            "dht": dict(DHT if fast else DEFAULT_DHT, roles={ROLE: {"recipient": self.recipient,
                                                                   "authority": "coordination"}}),
            "election": dict(ELECTION if fast else {}, cluster_size=len(self.nodes)),
            "backbeat": backbeat,
            "ai-ollama": {"endpoint": ollama.base, "default_model": MODEL, "health_interval_ms": 0,
                          "max_concurrency": 64},
            "ai-openai": {"base_url": openai.base, "api_key": "sk-soak-SECRET", "default_model": MODEL,
                          "max_concurrency": 64},
            "reasoning": {},
            "ucxi": UCXI if fast else {},
            "agent": self.agent_config,
        }
        lines = ["agent:", f"  id: {json.dumps(node.agent_id)}", f"  role: {json.dumps(ROLE)}",
                 "host:", "  http:", f"    listen: {node.ip}:{HTTP_PORT}", f"  log_level: {self.log_level}",
                 f"  state_dir: {json.dumps(node.state)}", "  shutdown_timeout_ms: 10000",
                 "  swap_drain_timeout_ms: 30000", f"  plugin_dirs: {json.dumps([self.plugin_dir])}", "plugins:"]
        for pid in self.enabled:
            spec = {"enabled": True, "critical": pid in CRITICAL, "config": cfgs[pid]}
            if pid in AI_PROVIDERS:
                spec["path"] = os.path.join(node.ai_dir, f"chorus-{pid}.so")
            lines.append(f"  {pid}: {json.dumps(spec)}")
        lines += ["bindings:", f"  chorus.ai.provider: {self.binding}"]
        return "\n".join(lines) + "\n"

    def write_node_config(self, node):
        return self.write_config(node.ns, self.config_yaml(node))

    def start(self, node):
        """Starts node's next incarnation and waits until it is ready and answers /p2p/id."""
        node.boot = [n.addr for n in self.nodes if n is not node and n.peer_id]
        path = self.write_node_config(node)
        node.incarnation += 1
        agent = Agent(path, self.agent_env, command=netns_lab.agent_command(node.ns), label=f"{node.ns}-i{node.incarnation}")
        self.agents.append(agent)
        node.agent = agent
        agent.wait_ready()
        status, info = node.get("/p2p/id", timeout=scale(10))
        if status != 200:
            raise AssertionError(f"{node.name}: GET /p2p/id answered {status}: {info}")
        if node.peer_id and node.peer_id != info["peer_id"]:
            raise AssertionError(f"{node.name}: peer id changed across a restart: {node.peer_id} -> {info['peer_id']}")
        node.peer_id = info["peer_id"]
        node.down_since = None
        node.ready = True
        return node

    def kill(self, node):
        """kill -9 of node's current incarnation."""
        node.down_since = time.monotonic()
        node.kills.append(node.down_since)
        node.ready = False
        node.agent.kill()

    # -- faults

    def partition(self, side_a, side_b):
        """Blackhole routes between the two sides (Nodes), in both directions."""
        for mine, theirs in ((side_a, side_b), (side_b, side_a)):
            for a in mine:
                for b in theirs:
                    netns_lab.sh("ip", "netns", "exec", a.ns, "ip", "route", "add", "blackhole", f"{b.ip}/32")
                    self.blackholes.append((a.ns, b.ip))

    def heal(self):
        for ns, ip in self.blackholes:
            netns_lab.sh("ip", "netns", "exec", ns, "ip", "route", "del", "blackhole", f"{ip}/32", check=False)
        self.blackholes = []

    def rebind(self, provider):
        """Binds chorus.ai.provider to `provider` in every config and SIGHUPs every running agent; returns
        {node name: the reload's log line}."""
        self.binding = provider
        out = {}
        for n in self.nodes:
            self.write_node_config(n)
        for n in self.nodes:
            if n.alive():
                out[n.name] = n.agent.reload().group(0)
        return out

    def replace_provider_file(self, node, provider, source=None):
        """Renames a fresh copy of the provider's file over node's (what dpkg does), then SIGHUP; returns
        the hot-swap log line."""
        src = source or os.path.join(self.plugin_dir, f"chorus-{provider}.so")
        tmp = os.path.join(node.ai_dir, ".incoming.so")
        shutil.copy2(src, tmp)
        os.chmod(tmp, 0o755)
        os.utime(tmp)  # a new mtime as well as a new inode: the fingerprint changes
        mark = node.agent.mark()
        os.replace(tmp, os.path.join(node.ai_dir, f"chorus-{provider}.so"))
        node.agent.send(signal.SIGHUP)
        return node.agent.wait_log(rf"hot-swapped plugin '{provider}'.*|plugin '{provider}': the replaced file cannot "
                                   rf"be used.*|hot swap of plugin '{provider}' failed.*", timeout=60, start=mark).group(0)

    def close(self):
        try:
            super().close()
        finally:
            self.close_services()
