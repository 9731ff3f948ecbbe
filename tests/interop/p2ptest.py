"""Helpers for the p2p interop tests (Python stdlib only), on top of tests/integration/harness.py.

What harness.py does not have and these tests need:
  * JsPeer - the js-libp2p reference peer (js/peer.mjs) as a child process driven by JSON lines;
  * GoPeer - the same command protocol from go/peer.go (flynn/noise + hashicorp/yamux, the libraries
    go-libp2p is built on), built by CMake into GO_PEER_BIN;
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

import nodecheck
from harness import SLOW, Agent, AgentTestCase, free_port, missing

HERE = os.path.dirname(os.path.abspath(__file__))
JS_DIR = os.path.join(HERE, "js")
NODE = os.environ.get("NODE_BIN") or shutil.which("node")
GO_PEER = os.environ.get("GO_PEER_BIN", "")
# Where chorus-p2p.so is (the build's plugin dir) and where chorus-test.p2p-probe.so is.
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
PROBE_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PROBE_DIR", "")

ECHO = "/chorus/echo/1.0.0"
# Fixed identities of the js peer (docs/protocols.md, Keys and peer ids, lists the resulting peer ids).
JS_SEED_A = "11" * 32
JS_ID_A = "12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"
JS_SEED_B = "22" * 32
JS_ID_B = "12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns"


# The *_missing_reason functions answer with a skip reason already marked as a missing prerequisite
# (harness.missing), so a skip they cause makes the suite Skipped in ctest (and fails it under CI for
# the js peer, see tests/run_suite.py).

_js_reason = ()


def js_missing_reason():
    """Why the js peer cannot run here (node missing or older than the pinned packages need, or `npm ci`
    not run), or None. Asked once per process."""
    global _js_reason
    if _js_reason == ():
        r = nodecheck.missing_reason(NODE, "libp2p")
        _js_reason = missing("js-libp2p", r) if r else None
    return _js_reason


def go_missing_reason():
    """Why the Go peer cannot run here, or None."""
    if not GO_PEER:
        return missing("go", "GO_PEER_BIN is not set: CMake builds go/peer.go when `go` and the Debian packages "
                             "golang-github-flynn-noise-dev and golang-github-hashicorp-yamux-dev are installed")
    if not os.access(GO_PEER, os.X_OK):
        return missing("go", f"the Go peer {GO_PEER} is not built (cmake --build BUILD --target chorus_go_peer)")
    return None


def agent_missing_reason():
    """Why a chorus-agent with the p2p and probe plugins cannot run here, or None."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    if not P2P_PLUGIN_DIR or not os.path.exists(os.path.join(P2P_PLUGIN_DIR, "chorus-p2p.so")):
        return missing("build", f"chorus-p2p.so not found in CHORUS_P2P_PLUGIN_DIR={P2P_PLUGIN_DIR!r}")
    if not PROBE_PLUGIN_DIR or not os.path.exists(os.path.join(PROBE_PLUGIN_DIR, "chorus-test.p2p-probe.so")):
        return missing("build", f"chorus-test.p2p-probe.so not found in CHORUS_P2P_PROBE_DIR={PROBE_PLUGIN_DIR!r}")
    return None


class LinePeer:
    """A reference peer as a child process. Commands are JSON lines on its stdin; events and command
    results are JSON lines on its stdout. Its first event is {"event": "ready", "peer_id", "addrs"}."""

    label = "peer"

    def __init__(self, argv, cwd):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=cwd)
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
                    raise AssertionError(f"{self.label}: no {what} within {timeout * SLOW}s (exited: {self.closed});\n"
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
            raise AssertionError(f"{self.label} {cmd} {kw} failed: {r.get('code')}: {r.get('error')}")
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


class JsPeer(LinePeer):
    """js/peer.mjs: a js-libp2p 2.10 node."""

    label = "js peer"

    def __init__(self, *args, seed=None, listen=None, node_args=()):
        argv = [NODE, *node_args, os.path.join(JS_DIR, "peer.mjs")]
        if seed:
            argv += ["--seed", seed]
        for ma in listen or []:
            argv += ["--listen", ma]
        super().__init__(argv + list(args), JS_DIR)


class GoPeer(LinePeer):
    """go/peer.go: Noise from flynn/noise and yamux from hashicorp/yamux; listens on 127.0.0.1."""

    label = "Go peer"

    def __init__(self, seed=None):
        super().__init__([GO_PEER] + (["--seed", seed] if seed else []), HERE)


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


def p2p_stack_config_yaml(state_dir, *, agent_id, p2p_listen, bootstrap=(), plugins, plugin_dirs,
                          http_listen="127.0.0.1:0", log_level="info", p2p_extra=None):
    """A config running the p2p plugin (listening on p2p_listen, a list of multiaddrs, dialling `bootstrap`
    at start) and the plugins on top of it: plugins = {id: config dict} (plugin defaults for what a dict
    leaves out), every one enabled and critical, found in plugin_dirs besides the p2p plugin's."""
    p2p_cfg = {"listen": list(p2p_listen)}
    if bootstrap:
        p2p_cfg["bootstrap_peers"] = list(bootstrap)
    p2p_cfg.update(p2p_extra or {})
    lines = [
        "agent:",
        f"  id: {json.dumps(agent_id)}",
        "host:",
        "  http:",
        f"    listen: {http_listen}",
        f"  log_level: {log_level}",
        f"  state_dir: {json.dumps(state_dir)}",
        "  shutdown_timeout_ms: 8000",
        f"  plugin_dirs: {json.dumps([P2P_PLUGIN_DIR, *plugin_dirs])}",
        "plugins:",
        "  p2p: " + json.dumps({"enabled": True, "critical": True, "config": p2p_cfg}),
    ]
    for pid, cfg in plugins.items():
        lines.append(f"  {pid}: " + json.dumps({"enabled": True, "critical": True, "config": dict(cfg or {})}))
    return "\n".join(lines) + "\n"


def is_event(kind, peer, direction=None):
    """A predicate for the probe's p2p events (wait_for_event): this type, this peer, this direction."""
    return lambda e: e.get("type") == kind and e.get("peer") == peer and (direction is None or
                                                                        e.get("direction") == direction)


def strip_p2p(addr):
    """A multiaddr without its /p2p/<id> suffix."""
    return addr.split("/p2p/")[0]


def post_json(agent, path, body, timeout=60):
    """POSTs a JSON body; returns (status, parsed JSON answer or {"raw": text})."""
    return http_request(f"http://127.0.0.1:{agent.port}{path}", "POST", body, timeout=timeout)


def http_request(url, method="GET", body=None, raw=None, timeout=60):
    """(status, parsed JSON answer or {"raw": text}) of one HTTP request; its body is the JSON of `body`,
    or the bytes `raw`, or none."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
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


def skip_if_missing(test, *reason_fns):
    """Skips `test` (a TestCase in setUp) with the first reason one of reason_fns (functions answering a
    missing-prerequisite reason or None; None entries are passed over) gives."""
    for fn in reason_fns:
        reason = fn() if fn is not None else None
        if reason:
            test.skipTest(reason)


class P2PTestCase(AgentTestCase):
    """Starts agents with the p2p + probe plugins (each with its own state dir) and js peers, and kills
    them all at the end."""

    need_js = False

    def setUp(self):
        skip_if_missing(self, agent_missing_reason, js_missing_reason if self.need_js else None)
        super().setUp()
        self.js_peers = []
        self._n = 0

    def tearDown(self):
        for p in getattr(self, "js_peers", []):
            p.kill()
        super().tearDown()  # the agents: SIGTERM, exit status and sanitizer check (harness.AgentTestCase)

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

    def go_peer(self, seed=None):
        p = GoPeer(seed=seed)
        self.js_peers.append(p)  # stopped with the js peers
        return p


def skip_unless_js(cls):
    reason = js_missing_reason()
    return unittest.skip(reason)(cls) if reason else cls


# ---- Raw-socket adversary helpers (test_p2p_adversarial.py) ----------------------------------------
# A misbehaving peer needs byte-level control, so these speak the wire protocols directly: multistream
# lines, Noise XX (initiator side; X25519/ChaCha20-Poly1305/Ed25519 from libsodium through ctypes,
# SHA-256/HMAC from hashlib) and yamux frames. They favour clarity over speed: tests send a few frames.
import ctypes
import ctypes.util
import hashlib
import hmac
import struct

MULTISTREAM_ID = b"/multistream/1.0.0"
YAMUX_DATA, YAMUX_WINDOW_UPDATE, YAMUX_PING, YAMUX_GO_AWAY = 0, 1, 2, 3
YAMUX_SYN, YAMUX_ACK, YAMUX_FIN, YAMUX_RST = 1, 2, 4, 8


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ms_line(text):
    """One multistream-select message: uvarint(len) || text || '\\n'."""
    if isinstance(text, str):
        text = text.encode()
    return uvarint(len(text) + 1) + text + b"\n"


def raw_connect(port, timeout=10):
    """A plain TCP connection to 127.0.0.1:port with a receive deadline."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    s.settimeout(timeout * SLOW)
    return s


def wait_closed(sock, timeout):
    """Reads (and keeps) whatever the peer sends until it closes the connection: returns (seconds from
    the call until EOF or reset, bytes received). Raises AssertionError if it is still open at the
    deadline. This blocks on the socket, so it returns the moment the agent closes."""
    start = time.monotonic()
    deadline = start + timeout
    got = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connection still open after {timeout:.1f}s (received {bytes(got[:200])!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start, bytes(got)
        if not chunk:
            return time.monotonic() - start, bytes(got)
        got += chunk


def recv_exact(sock, n):
    """Exactly n bytes (the socket's timeout applies per read); raises EOFError if the peer closes."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_ms_line(read):
    """One multistream message read with `read(n) -> bytes`; returns its text without the newline."""
    n, shift = 0, 0
    while True:
        b = read(1)[0]
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
        if shift > 14:
            raise AssertionError("multistream length prefix longer than 2 bytes")
    body = read(n)
    if not body.endswith(b"\n"):
        raise AssertionError(f"multistream message without newline: {body!r}")
    return body[:-1]


def metric_samples(agent, name):
    """{label text: value} of every sample of metric `name` in the agent's /metrics (label text is what is
    between the braces, "" for none)."""
    status, text, _ = agent.http("/metrics")
    if status != 200:
        raise AssertionError(f"GET /metrics answered {status}")
    return parse_metric_samples(text, name)


def parse_metric_samples(text, name):
    """{label text: value} of every sample of metric `name` in a /metrics text."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            labels = key[len(name):].strip("{}")
            out[labels] = float(value)
    return out


def metric_value(agent, name, label=""):
    """The sum of the samples of `name` whose labels contain `label` (e.g. 'reason="noise"')."""
    return sum(v for k, v in metric_samples(agent, name).items() if label in k)


def wait_metric(p2p_agent, name, at_least, label="", timeout=10):
    """Polls /metrics until metric_value(name, label) >= at_least (the p2p plugin exports its counters
    from a 1 s timer, so there is no event to wait on). Between scrapes it waits on the probe's event
    long-poll, as P2PAgent.wait_peer does, instead of sleeping. Returns the value."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = metric_value(p2p_agent.agent, name, label)
        if v >= at_least:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{{{label}}} is {v}, expected >= {at_least} within {timeout * SLOW}s; "
                                 f"samples: {metric_samples(p2p_agent.agent, name)}")
        p2p_agent.post("/test/p2p/events", since=p2p_agent.events_answer()["count"], wait_ms=250)


class _Sodium:
    """The few libsodium calls a Noise XX initiator needs, through ctypes."""

    def __init__(self):
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        self.lib = ctypes.CDLL(name)
        if self.lib.sodium_init() < 0:
            raise RuntimeError("sodium_init failed")

    def x25519_base(self, sk):
        pk = ctypes.create_string_buffer(32)
        self.lib.crypto_scalarmult_curve25519_base(pk, sk)
        return pk.raw

    def x25519(self, sk, pk):
        out = ctypes.create_string_buffer(32)
        if self.lib.crypto_scalarmult_curve25519(out, sk, pk) != 0:
            raise AssertionError("low-order X25519 key from the agent")
        return out.raw

    @staticmethod
    def _nonce(n):
        return b"\0\0\0\0" + struct.pack("<Q", n)

    def seal(self, key, n, ad, plain):
        out = ctypes.create_string_buffer(len(plain) + 16)
        out_len = ctypes.c_ulonglong(0)
        self.lib.crypto_aead_chacha20poly1305_ietf_encrypt(out, ctypes.byref(out_len), plain,
                                                           ctypes.c_ulonglong(len(plain)), ad,
                                                           ctypes.c_ulonglong(len(ad)), None, self._nonce(n), key)
        return out.raw[:out_len.value]

    def open(self, key, n, ad, sealed):
        out = ctypes.create_string_buffer(max(1, len(sealed)))
        out_len = ctypes.c_ulonglong(0)
        rc = self.lib.crypto_aead_chacha20poly1305_ietf_decrypt(out, ctypes.byref(out_len), None, sealed,
                                                                ctypes.c_ulonglong(len(sealed)), ad,
                                                                ctypes.c_ulonglong(len(ad)), self._nonce(n), key)
        if rc != 0:
            raise AssertionError("a Noise message from the agent failed authentication")
        return out.raw[:out_len.value]

    def ed25519_sign(self, seed, msg):
        pk = ctypes.create_string_buffer(32)
        sk = ctypes.create_string_buffer(64)
        self.lib.crypto_sign_seed_keypair(pk, sk, seed)
        sig = ctypes.create_string_buffer(64)
        self.lib.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk)
        return pk.raw, sig.raw


_sodium = None


def sodium():
    global _sodium
    if _sodium is None:
        _sodium = _Sodium()
    return _sodium


def sodium_missing_reason():
    try:
        sodium()
    except (OSError, RuntimeError, AttributeError) as e:
        return missing("libsodium", f"libsodium cannot be loaded through ctypes: {e}")
    return None


def _hkdf2(ck, ikm):
    tk = hmac.new(ck, ikm, hashlib.sha256).digest()
    o1 = hmac.new(tk, b"\x01", hashlib.sha256).digest()
    o2 = hmac.new(tk, o1 + b"\x02", hashlib.sha256).digest()
    return o1, o2


def _pb_bytes(field, data):
    return uvarint(field << 3 | 2) + uvarint(len(data)) + data


class NoiseInitiator:
    """The dialer's side of the libp2p Noise XX handshake over a socket on which `/noise` was already
    agreed. handshake() leaves send()/recv() usable for Noise transport frames."""

    PROTOCOL = b"Noise_XX_25519_ChaChaPoly_SHA256"

    def __init__(self, sock, identity_seed=None):
        self.sock = sock
        self.na = sodium()
        self.h = self.PROTOCOL
        self.ck = self.PROTOCOL
        self.k = None
        self.n = 0
        self._mix_hash(b"")  # empty prologue
        self.identity_seed = identity_seed or os.urandom(32)
        self.send_key = self.recv_key = None
        self.send_n = self.recv_n = 0
        self.remote_identity_key = None

    # Symmetric state (Noise spec section 5.2).
    def _mix_hash(self, data):
        self.h = hashlib.sha256(self.h + data).digest()

    def _mix_key(self, ikm):
        self.ck, self.k = _hkdf2(self.ck, ikm)
        self.n = 0

    def _encrypt_and_hash(self, plain):
        if self.k is None:
            out = plain
        else:
            out = self.na.seal(self.k, self.n, self.h, plain)
            self.n += 1
        self._mix_hash(out)
        return out

    def _decrypt_and_hash(self, sealed):
        if self.k is None:
            out = sealed
        else:
            out = self.na.open(self.k, self.n, self.h, sealed)
            self.n += 1
        self._mix_hash(sealed)
        return out

    def send_frame(self, msg):
        self.sock.sendall(struct.pack(">H", len(msg)) + msg)

    def recv_frame(self):
        n = struct.unpack(">H", recv_exact(self.sock, 2))[0]
        return recv_exact(self.sock, n)

    def handshake(self):
        e_sk = os.urandom(32)
        e_pk = self.na.x25519_base(e_sk)
        self._mix_hash(e_pk)
        self._encrypt_and_hash(b"")
        self.send_frame(e_pk)                                          # -> e

        msg2 = self.recv_frame()                                       # <- e, ee, s, es
        if len(msg2) < 96:
            raise AssertionError(f"noise message 2 of {len(msg2)} bytes")
        re = msg2[:32]
        self._mix_hash(re)
        self._mix_key(self.na.x25519(e_sk, re))
        rs = self._decrypt_and_hash(msg2[32:80])
        self._mix_key(self.na.x25519(e_sk, rs))
        self.remote_payload = self._decrypt_and_hash(msg2[80:])

        s_sk = os.urandom(32)                                          # -> s, se
        s_pk = self.na.x25519_base(s_sk)
        id_pk, sig = self.na.ed25519_sign(self.identity_seed, b"noise-libp2p-static-key:" + s_pk)
        payload = _pb_bytes(1, b"\x08\x01\x12\x20" + id_pk) + _pb_bytes(2, sig)
        c1 = self._encrypt_and_hash(s_pk)
        self._mix_key(self.na.x25519(s_sk, re))
        c2 = self._encrypt_and_hash(payload)
        self.send_frame(c1 + c2)
        self.send_key, self.recv_key = _hkdf2(self.ck, b"")
        return self

    def send(self, plain):
        """Encrypts plain into as many transport frames as needed (65519 plaintext bytes each)."""
        out = bytearray()
        for i in range(0, max(1, len(plain)), 65519):
            sealed = self.na.seal(self.send_key, self.send_n, b"", plain[i:i + 65519])
            self.send_n += 1
            out += struct.pack(">H", len(sealed)) + sealed
        self.sock.sendall(bytes(out))

    def recv(self):
        """One transport frame's plaintext; EOFError when the agent closes."""
        plain = self.na.open(self.recv_key, self.recv_n, b"", self.recv_frame())
        self.recv_n += 1
        return plain


def noise_dial(port, identity_seed=None, timeout=10):
    """TCP + multistream /noise + Noise XX to an agent; returns the NoiseInitiator (transport mode)."""
    s = raw_connect(port, timeout)
    s.sendall(ms_line(MULTISTREAM_ID) + ms_line("/noise"))
    read = lambda n: recv_exact(s, n)  # noqa: E731
    if read_ms_line(read) != MULTISTREAM_ID or read_ms_line(read) != b"/noise":
        raise AssertionError("the agent did not accept /noise")
    return NoiseInitiator(s, identity_seed).handshake()


class YamuxClient:
    """A yamux client session over a NoiseInitiator, after multistream /yamux/1.0.0. Only what the tests
    need: open streams, send raw frames, read frames per stream. Pings from the agent are answered and
    streams the agent opens (identify) are reset, so they never block the test."""

    def __init__(self, noise):
        self.noise = noise
        self.buf = bytearray()
        self.streams = {}     # stream id -> bytearray of received data
        self.flags = {}       # stream id -> OR of flags seen
        self.go_away = None   # the agent's GoAway code, once seen
        self.send_window = {}  # stream id -> bytes we may still send (256 KiB + the agent's updates)
        self.next_id = 1
        noise.send(ms_line(MULTISTREAM_ID) + ms_line("/yamux/1.0.0"))
        if self._read_line() != MULTISTREAM_ID or self._read_line() != b"/yamux/1.0.0":
            raise AssertionError("the agent did not accept /yamux/1.0.0")

    def _fill(self, n):
        while len(self.buf) < n:
            self.buf += self.noise.recv()

    def _take(self, n):
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _read_line(self):
        return read_ms_line(self._take)

    @staticmethod
    def frame(ftype, flags, sid, length, data=b"", version=0):
        return struct.pack(">BBHII", version, ftype, flags, sid, length) + data

    def send_frame(self, ftype, flags, sid, length, data=b"", version=0):
        self.noise.send(self.frame(ftype, flags, sid, length, data, version))

    def open_stream(self, first_data=b""):
        """Opens a stream (SYN on a data frame carrying first_data); returns its id."""
        sid = self.next_id
        self.next_id += 2
        self.streams[sid] = bytearray()
        self.flags[sid] = 0
        self.send_window[sid] = 256 * 1024 - len(first_data)
        self.send_frame(YAMUX_DATA, YAMUX_SYN, sid, len(first_data), first_data)
        return sid

    def write(self, sid, data, flags=0):
        """One data frame, regardless of the window (tests overstep it on purpose)."""
        self.send_window[sid] = self.send_window.get(sid, 0) - len(data)
        self.send_frame(YAMUX_DATA, flags, sid, len(data), data)

    def read_frame(self):
        """Reads and dispatches one frame; returns (type, flags, stream id, length)."""
        ver, ftype, flags, sid, length = struct.unpack(">BBHII", self._take(12))
        if ver != 0:
            raise AssertionError(f"agent sent yamux version {ver}")
        if ftype == YAMUX_DATA:
            data = self._take(length)
            if sid in self.streams:
                self.streams[sid] += data
        if ftype == YAMUX_PING and flags & YAMUX_SYN:
            self.send_frame(YAMUX_PING, YAMUX_ACK, 0, length)
        if ftype == YAMUX_GO_AWAY:
            self.go_away = length
        if ftype == YAMUX_WINDOW_UPDATE and sid in self.send_window:
            self.send_window[sid] += length
        if sid != 0:
            if sid not in self.streams and flags & YAMUX_SYN:
                self.send_frame(YAMUX_WINDOW_UPDATE, YAMUX_RST, sid, 0)  # we serve nothing
            if sid in self.flags:
                self.flags[sid] |= flags
        return ftype, flags, sid, length

    def wait_stream(self, sid, pred, what="stream state"):
        """Reads frames until pred(data bytes, flags) holds for stream sid."""
        while not pred(bytes(self.streams[sid]), self.flags[sid]):
            try:
                self.read_frame()
            except (EOFError, ConnectionResetError) as e:
                raise AssertionError(f"connection closed while waiting for {what} on stream {sid}: {e}")
        return bytes(self.streams[sid])

    def stream_lines(self, sid, count):
        """The first `count` multistream messages received on stream sid, and the bytes after them."""
        def parse(data):
            lines, pos = [], 0
            for _ in range(count):
                n, shift, start = 0, 0, pos
                while pos < len(data):
                    b = data[pos]
                    pos += 1
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                else:
                    return None
                if pos + n > len(data) or pos == start:
                    return None
                lines.append(data[pos:pos + n - 1])
                pos += n
            return lines, data[pos:]
        self.wait_stream(sid, lambda d, f: parse(d) is not None or f & YAMUX_RST, "multistream replies")
        return parse(bytes(self.streams[sid]))

    def ping(self, payload=None):
        """/ipfs/ping/1.0.0 on a new stream (lazy multistream); asserts the echo; returns the stream id."""
        payload = payload or os.urandom(32)
        sid = self.open_stream(ms_line(MULTISTREAM_ID) + ms_line("/ipfs/ping/1.0.0") + payload)
        header = ms_line(MULTISTREAM_ID) + ms_line("/ipfs/ping/1.0.0")
        data = self.wait_stream(sid, lambda d, f: len(d) >= len(header) + 32 or f & YAMUX_RST, "ping echo")
        if data != header + payload:
            raise AssertionError(f"ping answer {data!r} (flags {self.flags[sid]:#x}), expected the echo")
        return sid
