"""Helpers for the ucxi plugin's Python suite and benchmark (stdlib only, plus the `age-keygen` tool for
role keys), on top of tests/integration/harness.py, tests/interop/p2ptest.py and plugins/dht/tests:

  * make_role_key - a fresh age X25519 identity (age-keygen), as (key file text, recipient);
  * ucxi_config_yaml - an agent config with p2p + gossip + dht + ucxi, an agent role, and the dht's
    `roles` recipients;
  * start_ucxi_agent - writes the role key files this agent holds into <state>/dht/roles/ (0600 in a
    0700 directory, as the dht's keyring requires), starts the agent and waits until it is ready;
  * UcxiAgent - the running agent, its peer id and dialable address, and /ucxi/v1/<op> requests
    answered as (status, parsed envelope, headers).

Everything waits on an HTTP answer polled with a deadline (harness.wait_for) or on a log line, never on
sleeps.
"""
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from urllib.parse import quote

import p2ptest
from harness import Agent, free_port, missing, scale

UCXI_PLUGIN_DIR = os.environ.get("CHORUS_PLUGIN_DIR", "")
DHT_PLUGIN_DIR = os.environ.get("CHORUS_DHT_PLUGIN_DIR", "")
GOSSIP_PLUGIN_DIR = os.environ.get("CHORUS_GOSSIP_PLUGIN_DIR", "")
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
BASE = "/ucxi/v1"


def agent_missing_reason():
    """Why an agent with p2p + gossip + dht + ucxi (and role keys) cannot run here, or None."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, f, var in ((P2P_PLUGIN_DIR, "chorus-p2p.so", "CHORUS_P2P_PLUGIN_DIR"),
                      (GOSSIP_PLUGIN_DIR, "chorus-gossip.so", "CHORUS_GOSSIP_PLUGIN_DIR"),
                      (DHT_PLUGIN_DIR, "chorus-dht.so", "CHORUS_DHT_PLUGIN_DIR"),
                      (UCXI_PLUGIN_DIR, "chorus-ucxi.so", "CHORUS_PLUGIN_DIR")):
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found in {var}={d!r}")
    if not shutil.which("age-keygen"):
        return missing("age", "age-keygen (Debian package `age`) is needed to make role keys")
    return None


def make_role_key(authority="coordination"):
    """A fresh age identity: (key file text for <state>/dht/roles/<role>.key, its age1... recipient)."""
    out = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
    recipient = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("# public key:"))
    identity = next(l.strip() for l in out.splitlines() if l.startswith("AGE-SECRET-KEY-"))
    text = f"# authority: {authority}\n# recipient: {recipient}\n{identity}\n"
    return text, recipient


def ucxi_config_yaml(state_dir, *, agent_id, role, p2p_listen, bootstrap=(), recipients=None, dht=None,
                     gossip=None, ucxi=None, log_level="info"):
    """p2p + gossip + dht + ucxi; agent.role = role; the dht knows `recipients` ({role: age1...})."""
    dht_cfg = dict(dht or {})
    if recipients:
        dht_cfg["roles"] = {r: {"recipient": rcpt, "authority": "coordination"} for r, rcpt in recipients.items()}
    text = p2ptest.p2p_stack_config_yaml(state_dir, agent_id=agent_id, p2p_listen=p2p_listen, bootstrap=bootstrap,
                                         plugins={"gossip": gossip or {}, "dht": dht_cfg, "ucxi": ucxi or {}},
                                         plugin_dirs=[GOSSIP_PLUGIN_DIR, DHT_PLUGIN_DIR, UCXI_PLUGIN_DIR],
                                         log_level=log_level)
    head = f"agent:\n  id: {json.dumps(agent_id)}\n"
    assert head in text, text
    return text.replace(head, head + f"  role: {json.dumps(role)}\n", 1)


class UcxiAgent:
    """A running agent with the ucxi plugin: peer id, dialable address, /ucxi/v1/ requests, metrics."""

    def __init__(self, agent, p2p_addr_prefix, name):
        self.agent = agent
        self.name = name
        status, info = agent.http_json("/p2p/id")
        if status != 200:
            raise AssertionError(f"GET /p2p/id answered {status}: {info}")
        self.peer_id = info["peer_id"]
        self.addr = f"{p2p_addr_prefix}/p2p/{self.peer_id}"

    def raw(self, method, path, data=None, headers=None, timeout=60):
        """(status, body bytes, headers dict) of one request."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.agent.port}{path}", data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=scale(timeout)) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def op(self, method, op, address=None, data=None, content_type=None, params=None, timeout=60):
        """(status, parsed envelope or {"raw": text} or None for an empty body, headers) of /ucxi/v1/<op>."""
        query = []
        if address is not None:
            query.append("address=" + quote(address, safe=""))
        for k, v in (params or {}).items():
            query.append(f"{k}={quote(str(v), safe='')}")
        path = f"{BASE}/{op}" + ("?" + "&".join(query) if query else "")
        headers = {"Content-Type": content_type} if content_type else {}
        status, body, hdrs = self.raw(method, path, data, headers, timeout)
        if not body:
            return status, None, hdrs
        try:
            return status, json.loads(body), hdrs
        except ValueError:
            return status, {"raw": body.decode(errors="replace")}, hdrs

    def put(self, address, body, content_type="text/plain; charset=utf-8"):
        """PUT content; asserts 201 and returns the data."""
        status, env, _ = self.op("PUT", "put", address, body, content_type)
        if status != 201:
            raise AssertionError(f"{self.name}: put {address} answered {status}: {env}")
        return env["response"]["data"]

    def get(self, address, **params):
        return self.op("GET", "get", address, params=params)

    def metric(self, name, *labels):
        status, text, _ = self.agent.http("/metrics")
        if status != 200:
            raise AssertionError(f"GET /metrics answered {status}")
        samples = p2ptest.parse_metric_samples(text, name)
        return sum(v for k, v in samples.items() if all(l in k for l in labels))


def start_ucxi_agent(ws, name, *, role, keys=None, recipients=None, bootstrap=(), dht=None, gossip=None,
                     ucxi=None):
    """Starts an agent (state dir <ws>/state-<name>, p2p on a free 127.0.0.1 port) holding the role keys
    `keys` ({role: key file text}) and knowing `recipients`; returns (Agent, UcxiAgent)."""
    state = ws.path(f"state-{name}")
    roles = os.path.join(state, "dht", "roles")
    os.makedirs(roles, mode=0o700, exist_ok=True)
    os.chmod(os.path.join(state, "dht"), 0o700)
    os.chmod(roles, 0o700)
    for r, text in (keys or {}).items():
        path = os.path.join(roles, f"{r}.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    port = free_port()
    text = ucxi_config_yaml(state, agent_id=f"ucxi-{name}", role=role, p2p_listen=[f"/ip4/127.0.0.1/tcp/{port}"],
                            bootstrap=bootstrap, recipients=recipients, dht=dht, gossip=gossip, ucxi=ucxi)
    agent = Agent(ws.write(f"{name}.yaml", text), label=f"ucxi-{name}")
    try:
        agent.wait_ready()
        return agent, UcxiAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", name)
    except BaseException:
        agent.finish()
        raise
