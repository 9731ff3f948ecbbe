"""Helpers for the dht plugin's Python suites (stdlib only), on top of tests/integration/harness.py and
tests/interop/p2ptest.py.

  * dht_config_yaml - an agent config with the p2p and dht plugins;
  * DhtAgent - a running agent plus its peer id, its dialable address and the /api/v1/dht routes
    (values, providers, find-peer, routing table).

Everything waits on an HTTP answer polled with a deadline (harness.wait_for), never on sleeps.
"""
import json
import os
import urllib.error
import urllib.request
from urllib.parse import quote

import p2ptest
from harness import Agent, missing, scale

DHT_PLUGIN_DIR = os.environ.get("CHORUS_DHT_PLUGIN_DIR", "")
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")


def agent_missing_reason():
    """Why an agent with the p2p and dht plugins cannot run here, or None."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, f, var in ((P2P_PLUGIN_DIR, "chorus-p2p.so", "CHORUS_P2P_PLUGIN_DIR"),
                      (DHT_PLUGIN_DIR, "chorus-dht.so", "CHORUS_DHT_PLUGIN_DIR")):
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found in {var}={d!r}")
    return None


def dht_config_yaml(state_dir, *, agent_id, p2p_listen, bootstrap=(), dht=None, http_listen="127.0.0.1:0",
                    log_level="info"):
    """A config running the p2p plugin (listening on p2p_listen, dialling `bootstrap` at start) and the
    dht plugin with the config dict `dht` (plugin defaults for what it leaves out)."""
    return p2ptest.p2p_stack_config_yaml(state_dir, agent_id=agent_id, p2p_listen=p2p_listen, bootstrap=bootstrap,
                                         plugins={"dht": dht}, plugin_dirs=[DHT_PLUGIN_DIR], http_listen=http_listen,
                                         log_level=log_level)


class DhtAgent:
    """A running agent with p2p + dht: its peer id, dialable address and the dht routes."""

    def __init__(self, agent, p2p_addr_prefix, agent_id):
        self.agent = agent
        self.agent_id = agent_id
        status, info = agent.http_json("/p2p/id")
        if status != 200:
            raise AssertionError(f"GET /p2p/id answered {status}: {info}")
        self.peer_id = info["peer_id"]
        self.addr = f"{p2p_addr_prefix}/p2p/{self.peer_id}"

    def _url(self, path):
        return f"http://127.0.0.1:{self.agent.port}{path}"

    def raw(self, method, path, data=None, timeout=60):
        """(status, body bytes, content type) of one request."""
        req = urllib.request.Request(self._url(path), data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=scale(timeout)) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def json(self, method, path, data=None, timeout=60):
        status, body, _ = self.raw(method, path, data, timeout)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"raw": body.decode(errors="replace")}

    # -- dht routes

    def routing(self):
        status, ans = self.json("GET", "/api/v1/dht/routing")
        if status != 200:
            raise AssertionError(f"{self.agent_id}: GET /api/v1/dht/routing answered {status}: {ans}")
        return ans

    def put(self, key, value):
        """PUT a value; asserts 200 and returns the answer ({"key","stored_at"})."""
        status, ans = self.json("PUT", f"/api/v1/dht/values?key={quote(key, safe='')}", value)
        if status != 200:
            raise AssertionError(f"{self.agent_id}: PUT value {key!r} answered {status}: {ans}")
        return ans

    def get(self, key, timeout=60):
        """(status, value bytes) of GET /api/v1/dht/values."""
        status, body, _ = self.raw("GET", f"/api/v1/dht/values?key={quote(key, safe='')}", timeout=timeout)
        return status, body

    def provide(self, key):
        status, ans = self.json("POST", f"/api/v1/dht/providers?key={quote(key, safe='')}")
        if status != 200:
            raise AssertionError(f"{self.agent_id}: POST providers {key!r} answered {status}: {ans}")
        return ans

    def providers(self, key):
        """The set of provider peer ids GET /api/v1/dht/providers lists (asserts 200)."""
        status, ans = self.json("GET", f"/api/v1/dht/providers?key={quote(key, safe='')}")
        if status != 200:
            raise AssertionError(f"{self.agent_id}: GET providers {key!r} answered {status}: {ans}")
        return ans

    def find_peer(self, peer_id):
        return self.json("GET", f"/api/v1/dht/peers/{peer_id}")

    def metric(self, name, *labels):
        status, text, _ = self.agent.http("/metrics")
        if status != 200:
            raise AssertionError(f"GET /metrics answered {status}")
        samples = p2ptest.parse_metric_samples(text, name)
        return sum(v for k, v in samples.items() if all(l in k for l in labels))


def start_dht_agent(ws, name, *, bootstrap=(), dht=None, state=None, port=None):
    """Starts an agent (state dir <ws>/state-<name> unless given, p2p on 127.0.0.1:<port or a free one>)
    and returns (Agent, DhtAgent, port)."""
    from harness import free_port
    state = state or ws.path(f"state-{name}")
    os.makedirs(state, exist_ok=True)
    port = port or free_port()
    text = dht_config_yaml(state, agent_id=f"dht-{name}", p2p_listen=[f"/ip4/127.0.0.1/tcp/{port}"],
                           bootstrap=bootstrap, dht=dht)
    agent = Agent(ws.write(f"{name}.yaml", text), label=f"dht-{name}")
    agent.wait_ready()
    return agent, DhtAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", f"dht-{name}"), port
