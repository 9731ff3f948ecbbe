"""Test helpers for the backbeat integration tests (Python stdlib only): a real nats-server on a free
loopback port, a minimal NATS client (SUB/PUB/HMSG, request/reply), a JetStream stream reader, the
agent configuration, and field-by-field validators of the BACKBEAT v1 schemas."""
import base64
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

from harness import SLOW, Agent, AgentTestCase, missing

NATS_SERVER = os.environ.get("NATS_SERVER_BIN", "")


def nats_missing_reason():
    """Why nats-server cannot run here (a missing prerequisite: Skipped, and a failure under CI), or None."""
    if not NATS_SERVER or not os.access(NATS_SERVER, os.X_OK):
        return missing("nats", f"nats-server not found (NATS_SERVER_BIN={NATS_SERVER!r}; apt install nats-server)")
    return None
PLUGIN_DIR = os.environ.get("CHORUS_BACKBEAT_PLUGIN_DIR", "")
DRIVER_DIR = os.environ.get("CHORUS_BACKBEAT_DRIVER_DIR", "")
VERIFY = os.environ.get("CHORUS_BACKBEAT_VERIFY_BIN", "")
CLUSTER = "bbtest"

HLC_RX = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
RFC3339_RX = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
STATES = {"idle", "planning", "executing", "reviewing", "completed", "failed", "blocked", "helping"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """nats-server on 127.0.0.1:port; start() waits for its 'Server is ready' line."""

    def __init__(self, port=None, jetstream_dir=None):
        self.port = port or free_port()
        self.js_dir = jetstream_dir
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout=20):
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.js_dir:
            args += ["-js", "-sd", self.js_dir]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout * SLOW
        lines = []
        for line in self.proc.stderr:  # blocks on the server's own log: an event, not a sleep
            lines.append(line)
            if "Server is ready" in line:
                threading.Thread(target=self._drain, daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise AssertionError("nats-server did not start:\n" + "".join(lines))

    def _drain(self):
        for _ in self.proc.stderr:
            pass

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            try:
                self.proc.stderr.close()
            except (OSError, ValueError):
                pass
        self.proc = None


class Msg:
    def __init__(self, subject, data, headers):
        self.subject = subject
        self.data = data
        self.headers = headers

    def json(self):
        return json.loads(self.data)


class NatsClient:
    """A minimal NATS core client: enough to subscribe, publish and make requests."""

    def __init__(self, url_or_port):
        port = url_or_port if isinstance(url_or_port, int) else int(url_or_port.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
        self.sock.settimeout(None)
        self.rfile = self.sock.makefile("rb")
        info = self.rfile.readline()
        assert info.startswith(b"INFO"), info
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.msgs = []
        self.pongs = 0
        self.sid = 0
        self.closed = False
        self._send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":false,"lang":"py","version":"0"}\r\n')
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.flush()

    def _send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def _read(self):
        try:
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                if line.startswith(b"MSG "):
                    parts = line.split()
                    n = int(parts[-1])
                    data = self.rfile.read(n + 2)[:-2]
                    self._add(Msg(parts[1].decode(), data, {}))
                elif line.startswith(b"HMSG "):
                    parts = line.split()
                    hlen, total = int(parts[-2]), int(parts[-1])
                    blob = self.rfile.read(total + 2)[:-2]
                    hdrs = {}
                    for h in blob[:hlen].decode().split("\r\n")[1:]:
                        if ":" in h:
                            k, v = h.split(":", 1)
                            hdrs[k.strip()] = v.strip()
                    self._add(Msg(parts[1].decode(), blob[hlen:], hdrs))
                elif line.startswith(b"PING"):
                    self._send(b"PONG\r\n")
                elif line.startswith(b"PONG"):
                    with self.cond:
                        self.pongs += 1
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _add(self, m):
        with self.cond:
            self.msgs.append(m)
            self.cond.notify_all()

    def flush(self, timeout=10):
        with self.cond:
            want = self.pongs + 1
        self._send(b"PING\r\n")
        self.wait(lambda: self.pongs >= want, timeout, "PONG")

    def sub(self, subject):
        self.sid += 1
        self._send(f"SUB {subject} {self.sid}\r\n".encode())
        self.flush()
        return self.sid

    def pub(self, subject, data, reply=None):
        if isinstance(data, str):
            data = data.encode()
        r = f" {reply}" if reply else ""
        self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def request(self, subject, data, timeout=10):
        inbox = f"_INBOX.t{self.sid + 1}"
        self.sub(inbox)
        self.pub(subject, data, inbox)
        return json.loads(self.wait_msg(lambda m: m.subject == inbox, timeout).data)

    def wait(self, pred, timeout=20, what="condition"):
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while not pred():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    raise AssertionError(f"timed out waiting for {what}")
                self.cond.wait(remaining)

    def wait_msg(self, pred, timeout=20, what="message"):
        found = []

        def check():
            for m in self.msgs:
                if pred(m):
                    found.append(m)
                    return True
            return False

        self.wait(check, timeout, what)
        return found[0]

    def select(self, pred):
        with self.cond:
            return [m for m in self.msgs if pred(m)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def js_create_stream(client, name, subjects):
    r = client.request(f"$JS.API.STREAM.CREATE.{name}",
                       json.dumps({"name": name, "subjects": subjects, "storage": "file"}))
    assert "error" not in r, r


def js_all_messages(client, name):
    info = client.request(f"$JS.API.STREAM.INFO.{name}", "")
    last = info["state"]["last_seq"]
    out = []
    for seq in range(info["state"]["first_seq"], last + 1):
        r = client.request(f"$JS.API.STREAM.MSG.GET.{name}", json.dumps({"seq": seq}))
        if "message" in r:
            out.append(json.loads(base64.b64decode(r["message"]["data"])))
    return out


def validate_claim(tc, c, agent_id=None):
    """StatusClaim v1, field by field (docs/protocols.md, StatusClaim v1)."""
    allowed = {"type", "agent_id", "task_id", "beat_index", "state", "beats_left", "progress", "notes", "hlc",
               "resources", "dependencies", "metadata"}
    tc.assertLessEqual(set(c), allowed, c)
    tc.assertEqual(c["type"], "backbeat.statusclaim.v1")
    tc.assertRegex(c["agent_id"], r"^[a-zA-Z0-9_:-]{1,128}$")
    if agent_id:
        tc.assertEqual(c["agent_id"], agent_id)
    if "task_id" in c:
        tc.assertRegex(c["task_id"], r"^[a-zA-Z0-9_:-]{1,128}$")
    tc.assertIsInstance(c["beat_index"], int)
    tc.assertGreaterEqual(c["beat_index"], 0)
    tc.assertIn(c["state"], STATES)
    if "beats_left" in c:
        tc.assertIsInstance(c["beats_left"], int)
        tc.assertTrue(0 <= c["beats_left"] <= 1000, c)
    if "progress" in c:
        tc.assertTrue(0.0 <= c["progress"] <= 1.0, c)
    if "notes" in c:
        tc.assertLessEqual(len(c["notes"]), 256)
    tc.assertRegex(c["hlc"], HLC_RX)


def validate_frame(tc, f, cluster=CLUSTER):
    """BeatFrame v1, field by field."""
    tc.assertLessEqual(set(f), {"type", "cluster_id", "beat_index", "downbeat", "phase", "hlc", "deadline_at",
                                "tempo_bpm", "window_id", "metadata"}, f)
    tc.assertEqual(f["type"], "backbeat.beatframe.v1")
    tc.assertEqual(f["cluster_id"], cluster)
    tc.assertIsInstance(f["beat_index"], int)
    tc.assertIsInstance(f["downbeat"], bool)
    tc.assertIn(f["phase"], {"plan", "execute", "review"})
    tc.assertRegex(f["hlc"], HLC_RX)
    tc.assertRegex(f["deadline_at"], RFC3339_RX)
    tc.assertTrue(0.1 <= f["tempo_bpm"] <= 1000)
    tc.assertAlmostEqual(round(f["tempo_bpm"] * 10), f["tempo_bpm"] * 10, places=6)
    tc.assertRegex(f["window_id"], r"^[0-9a-fA-F]{32}$")


def backbeat_yaml(ws, agents_cfg, *, driver=True, host_extra=None, extra_plugins=()):
    host = {"log_level": "debug", "state_dir": ws.state, "shutdown_timeout_ms": 8000}
    host.update(host_extra or {})
    lines = ["host:", "  http:", "    listen: 127.0.0.1:0"]
    for k, v in host.items():
        lines.append(f"  {k}: {json.dumps(v)}")
    dirs = [PLUGIN_DIR] + ([DRIVER_DIR] if driver or extra_plugins else [])
    lines.append(f"  plugin_dirs: {json.dumps(dirs)}")
    lines.append("plugins:")
    lines.append(f"  backbeat: {json.dumps({'config': agents_cfg})}")
    if driver:
        lines.append("  test.backbeat-driver: {}")
    for plugin_id in extra_plugins:
        lines.append(f"  {plugin_id}: {{}}")
    return "\n".join(lines) + "\n"


class BackbeatTestCase(AgentTestCase):
    """An AgentTestCase that also cleans up nats-servers and clients."""

    def setUp(self):
        reason = nats_missing_reason()
        if reason:
            self.skipTest(reason)
        super().setUp()
        self.servers = []
        self.clients = []
        os.environ.pop("CHORUS_BACKBEAT_ENABLED", None)

    def tearDown(self):
        for c in self.clients:
            c.close()
        try:
            super().tearDown()  # agents first (SIGTERM, checked by AgentTestCase), then their servers
        finally:
            for s in self.servers:
                s.kill()

    def nats(self, **kw):
        s = NatsServer(**kw).start()
        self.servers.append(s)
        return s

    def client(self, server_or_port):
        c = NatsClient(server_or_port.port if isinstance(server_or_port, NatsServer) else server_or_port)
        self.clients.append(c)
        return c

    def backbeat_agent(self, name, url, *, driver=True, env=None, wait=True, extra_plugins=(), **cfg):
        config = {"cluster_id": CLUSTER, "agent_id": name, "nats_url": url, "tempo_bpm": 600, "bar_length": 8,
                  "reconnect_wait_ms": 100, "reconnect_wait_max_ms": 500}
        config.update(cfg)
        path = self.ws.write(f"{name}.yaml", backbeat_yaml(self.ws, config, driver=driver, extra_plugins=extra_plugins,
                                                            host_extra={"state_dir": self.ws.path(f"state-{name}")}))
        agent = Agent(path, env=env)
        self.agents.append(agent)
        if wait:
            agent.wait_ready()
        return agent

    @staticmethod
    def drive(agent, call, **params):
        q = "&".join(f"{k}={v}" for k, v in params.items())
        status, body, _ = agent.http(f"/bbdriver/{call}?{q}", timeout=60)
        assert status == 200, (status, body)
        return json.loads(body)

    @staticmethod
    def bb_health(agent):
        status, h = agent.http_json("/backbeat/health")
        assert status == 200
        return h

    def claims_for(self, client, agent_id, task=None):
        subj = f"backbeat.status.{CLUSTER}.{agent_id}"
        out = []
        for m in client.select(lambda m: m.subject == subj):
            c = m.json()
            if task is None or c.get("task_id") == task:
                out.append(c)
        return out
