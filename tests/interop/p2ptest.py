"""Helpers for the p2p interop tests (Python stdlib only), on top of tests/integration/harness.py.

What harness.py does not have and these tests need:
  * JsPeer - the js-libp2p reference peer (js/peer.mjs) as a child process driven by JSON lines;
  * p2p_config_yaml - an agent config with the p2p plugin and the probe plugin (harness.config_yaml adds a
    `record` key to every plugin config, which the p2p plugin rejects as unknown);
  * post_json - POST a JSON body to an agent route (harness.Agent.http only GETs);
  * P2PTestCase - two or more agents per test, each with its own config file and state dir.
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import SLOW, Agent, AgentTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
JS_DIR = os.path.join(HERE, "js")
NODE = os.environ.get("NODE_BIN") or shutil.which("node")
# Where chorus-p2p.so is (the build's plugin dir) and where chorus-test.p2p-probe.so is.
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
PROBE_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PROBE_DIR", "")

ECHO = "/chorus/echo/1.0.0"
# Fixed identities of the js peer (spec/libp2p.md section 1 gives the resulting peer ids).
JS_SEED_A = "11" * 32
JS_ID_A = "12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"
JS_SEED_B = "22" * 32
JS_ID_B = "12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns"


def js_missing_reason():
    """Why the js peer cannot run here, or None."""
    if not NODE:
        return "node is not installed"
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "libp2p")):
        return f"js peer dependencies missing: run `npm ci` in {JS_DIR}"
    return None


def agent_missing_reason():
    """Why a chorus-agent with the p2p and probe plugins cannot run here, or None."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return "CHORUS_AGENT_BIN is not set (run through ctest)"
    if not P2P_PLUGIN_DIR or not os.path.exists(os.path.join(P2P_PLUGIN_DIR, "chorus-p2p.so")):
        return f"chorus-p2p.so not found in CHORUS_P2P_PLUGIN_DIR={P2P_PLUGIN_DIR!r}"
    if not PROBE_PLUGIN_DIR or not os.path.exists(os.path.join(PROBE_PLUGIN_DIR, "chorus-test.p2p-probe.so")):
        return f"chorus-test.p2p-probe.so not found in CHORUS_P2P_PROBE_DIR={PROBE_PLUGIN_DIR!r}"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JsPeer:
    """js/peer.mjs as a child process. Events and command results are JSON lines on its stdout."""

    def __init__(self, *args, seed=None, listen=None, node_args=()):
        argv = [NODE, *node_args, os.path.join(JS_DIR, "peer.mjs")]
        if seed:
            argv += ["--seed", seed]
        for ma in listen or []:
            argv += ["--listen", ma]
        argv += list(args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=JS_DIR)
        self.events = []          # every line, in order
        self.cond = threading.Condition()
        self.closed = False
        self.stderr_lines = []
        self._next_id = 0
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        ready = self.wait_event(lambda e: e.get("event") == "ready", timeout=30, what="ready")
        self.peer_id = ready["peer_id"]
        self.addrs = ready["addrs"]

    def _read_stdout(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "garbage", "line": line}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self.cond:
                self.stderr_lines.append(line.rstrip("\n"))

    @property
    def addr(self):
        """The first listen address, with /p2p/."""
        return self.addrs[0]

    def mark(self):
        with self.cond:
            return len(self.events)

    def wait_event(self, pred, timeout=20, start=0, what="event"):
        """The first event (from index start) for which pred(event) is true."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            i = start
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    tail = "\n".join(json.dumps(e) for e in self.events[-20:])
                    err = "\n".join(self.stderr_lines[-20:])
                    raise AssertionError(f"js peer: no {what} within {timeout * SLOW}s (exited: {self.closed});\n"
                                         f"events:\n{tail}\nstderr:\n{err}")
                self.cond.wait(remaining)

    def events_of(self, kind):
        with self.cond:
            return [e for e in self.events if e.get("event") == kind]

    def send(self, cmd, **kw):
        """Sends a command; returns its id (pass it to result())."""
        with self.cond:
            self._next_id += 1
            cid = self._next_id
        self.proc.stdin.write(json.dumps({"cmd": cmd, "id": cid, **kw}) + "\n")
        self.proc.stdin.flush()
        return cid

    def result(self, cid, timeout=60):
        return self.wait_event(lambda e: e.get("event") == "result" and e.get("id") == cid, timeout=timeout,
                               what=f"result of command {cid}")

    def call(self, cmd, timeout=60, **kw):
        """Runs a command and returns its result line (check r["ok"])."""
        return self.result(self.send(cmd, **kw), timeout=timeout)

    def ok(self, cmd, timeout=60, **kw):
        """Runs a command that must succeed; returns its result line."""
        r = self.call(cmd, timeout=timeout, **kw)
        if not r.get("ok"):
            raise AssertionError(f"js peer {cmd} {kw} failed: {r.get('code')}: {r.get('error')}")
        return r

    def pid(self):
        return self.proc.pid

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            try:
                self.send("stop")
                self.proc.wait(timeout=timeout * SLOW)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                pass
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


def p2p_config_yaml(state_dir, *, listen, p2p_extra=None, probe=True, log_level="info", http_listen="127.0.0.1:0"):
    """A config running the p2p plugin (listening on `listen`, a list of multiaddrs) and the probe."""
    p2p_cfg = {"listen": listen}  # key_file left at its default, <state dir>/p2p/identity.key
    p2p_cfg.update(p2p_extra or {})
    host = {"log_level": log_level, "state_dir": state_dir, "shutdown_timeout_ms": 8000}
    lines = ["host:", "  http:", f"    listen: {http_listen}"]
    for k, v in host.items():
        lines.append(f"  {k}: {json.dumps(v)}")
    dirs = [d for d in (P2P_PLUGIN_DIR, PROBE_PLUGIN_DIR if probe else None) if d]
    lines.append(f"  plugin_dirs: {json.dumps(dirs)}")
    lines.append("plugins:")
    lines.append(f"  p2p: {json.dumps({'enabled': True, 'critical': True, 'config': p2p_cfg})}")
    if probe:
        lines.append("  test.p2p-probe: {\"enabled\": true, \"critical\": true}")
    return "\n".join(lines) + "\n"


def post_json(agent, path, body, timeout=60):
    """POSTs a JSON body; returns (status, parsed JSON answer or {"raw": text})."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{agent.port}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, {"raw": text}


class P2PAgent:
    """A running agent with the p2p and probe plugins, plus what its routes say about it."""

    def __init__(self, agent, p2p_port):
        self.agent = agent
        self.p2p_port = p2p_port
        status, info = agent.http_json("/p2p/id")
        if status != 200:
            raise AssertionError(f"GET /p2p/id answered {status}: {info}")
        self.peer_id = info["peer_id"]
        self.info = info
        # The dialable loopback address with /p2p/ (we listen on 127.0.0.1 only).
        self.addr = f"/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{self.peer_id}"

    @property
    def port(self):
        return self.agent.port

    def pid(self):
        return self.agent.proc.pid

    def get(self, path):
        return self.agent.http_json(path)

    def post(self, path, timeout=60, **body):
        return post_json(self.agent, path, body, timeout=timeout)

    def probe(self, call, timeout=60, **body):
        """POST /test/p2p/<call>; asserts 200 and returns the answer."""
        status, ans = self.post(f"/test/p2p/{call}", timeout=timeout, **body)
        if status != 200:
            raise AssertionError(f"/test/p2p/{call} {body} answered {status}: {ans}")
        return ans

    def events_answer(self):
        status, ans = self.post("/test/p2p/events")
        if status != 200:
            raise AssertionError(f"/test/p2p/events answered {status}: {ans}")
        return ans

    def events(self):
        """The CONNECTED/DISCONNECTED/IDENTIFIED events the probe has seen, oldest first."""
        return self.events_answer()["events"]

    def wait_for_event(self, pred, timeout=20, what="p2p event"):
        """Polls /test/p2p/events until one satisfies pred (the probe buffers events, so this is a wait on
        state, not a sleep: every poll is an HTTP round trip, and the loop ends on success or deadline)."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            ans = self.events_answer()
            for e in ans["events"]:
                if pred(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout * SLOW}s; events: {json.dumps(ans['events'])[-3000:]}")
            # Long-poll: the probe holds the request until a new event arrives or wait_ms passes.
            self.post("/test/p2p/events", since=ans["count"], wait_ms=1000)

    def wait_peer(self, peer_id, timeout=20):
        """Waits until GET /p2p/peers lists peer_id; returns its entry."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            status, peers = self.get("/p2p/peers")
            if status == 200:
                for p in peers:
                    if p.get("peer_id") == peer_id:
                        return p
            if time.monotonic() > deadline:
                raise AssertionError(f"{peer_id} not in /p2p/peers within {timeout * SLOW}s: {peers}")
            self.post("/test/p2p/events", since=self.events_answer()["count"], wait_ms=500)


class P2PTestCase(AgentTestCase):
    """Starts agents with the p2p + probe plugins (each with its own state dir) and js peers, and kills
    them all at the end."""

    need_js = False

    def setUp(self):
        reason = agent_missing_reason()
        if reason:
            self.skipTest(reason)
        if self.need_js:
            reason = js_missing_reason()
            if reason:
                self.skipTest(reason)
        super().setUp()
        self.js_peers = []
        self._n = 0

    def tearDown(self):
        for p in getattr(self, "js_peers", []):
            p.kill()
        super().tearDown()

    def p2p_agent(self, name=None, *, p2p_extra=None, probe=True, wait=True, port=None):
        """An agent listening on 127.0.0.1:<port> (a free one unless given); state in state-<name>/, so
        starting the same name again reuses its identity."""
        self._n += 1
        name = name or f"agent{self._n}"
        state = self.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = port or free_port()
        text = p2p_config_yaml(state, listen=[f"/ip4/127.0.0.1/tcp/{port}"], p2p_extra=p2p_extra, probe=probe)
        agent = Agent(self.ws.write(f"{name}.yaml", text))
        self.agents.append(agent)
        if not wait:
            return agent
        agent.wait_ready()
        return P2PAgent(agent, port)

    def js_peer(self, *args, seed=None, listen=None):
        p = JsPeer(*args, seed=seed, listen=listen)
        self.js_peers.append(p)
        return p


def skip_unless_js(cls):
    reason = js_missing_reason()
    return unittest.skip(reason)(cls) if reason else cls
