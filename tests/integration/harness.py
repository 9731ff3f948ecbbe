"""Drives a real chorus-agent process for the integration tests (Python stdlib only).

Synchronisation is by events the agent emits: log lines on stderr (read by a thread), and its HTTP
answers. Every wait has a deadline so a broken agent fails the test instead of hanging it.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

AGENT = os.environ.get("CHORUS_AGENT_BIN", "chorus-agent")
PLUGINS = os.environ.get("CHORUS_TEST_PLUGIN_DIR", "")
PLUGINS_V2 = os.environ.get("CHORUS_TEST_PLUGIN_V2_DIR", "")
BAD_PLUGINS = os.environ.get("CHORUS_TEST_BAD_PLUGIN_DIR", "")
SANITIZED = os.environ.get("CHORUS_SANITIZE", "0") == "1"
# Sanitizer builds run several times slower; deadlines scale, assertions do not.
SLOW = 4 if SANITIZED else 1


def run_cli(*args, env=None, timeout=60):
    """Runs chorus-agent to completion; returns (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("CHORUS_CONFIG", None)
    full_env.update(env or {})
    p = subprocess.run([AGENT, *args], capture_output=True, text=True, env=full_env, timeout=timeout * SLOW)
    return p.returncode, p.stdout, p.stderr


class Workspace:
    """A temporary directory with a private plugin dir, state dir and record file."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="chorus-it-")
        os.chmod(self.root, 0o755)
        self.state = os.path.join(self.root, "state")
        self.record_path = os.path.join(self.root, "record.txt")

    def path(self, name):
        return os.path.join(self.root, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def plugin_dir(self, name="plugins", ids=(), source=None):
        """A directory holding copies of the named test plugins (so tests can replace files)."""
        d = self.path(name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        for pid in ids:
            shutil.copy2(os.path.join(source or PLUGINS, f"chorus-{pid}.so"), os.path.join(d, f"chorus-{pid}.so"))
        return d

    def records(self):
        if not os.path.exists(self.record_path):
            return []
        with open(self.record_path) as f:
            return [line.split() for line in f.read().splitlines()]

    def events(self, kind):
        """Plugin ids, in order, of record lines of one kind (create/start/stop/destroy/...)."""
        return [r[1] for r in self.records() if r[0] == kind]

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def config_yaml(ws, plugins, *, plugin_dirs=None, bindings=None, host_extra=None):
    """Builds a config. plugins: {id: dict(enabled, critical, path, sha256, config)}."""
    host = {"log_level": "debug", "state_dir": ws.state, "shutdown_timeout_ms": 4000, "swap_drain_timeout_ms": 10000}
    host.update(host_extra or {})
    lines = ["host:", "  http:", "    listen: 127.0.0.1:0"]
    for k, v in host.items():
        lines.append(f"  {k}: {json.dumps(v)}")
    dirs = plugin_dirs if plugin_dirs is not None else [PLUGINS]
    lines.append(f"  plugin_dirs: {json.dumps(dirs)}")
    lines.append("plugins:" if plugins else "plugins: {}")
    for pid, spec in plugins.items():
        spec = dict(spec)
        cfg = spec.pop("config", {})
        cfg.setdefault("record", ws.record_path)
        spec["config"] = cfg
        lines.append(f"  {pid}: {json.dumps(spec)}")
    if bindings:
        lines.append("bindings:")
        for svc, pid in bindings.items():
            lines.append(f"  {svc}: {pid}")
    return "\n".join(lines) + "\n"


class Agent:
    """A running `chorus-agent run` with its stderr captured line by line."""

    def __init__(self, config_path, env=None):
        full_env = dict(os.environ)
        full_env.pop("CHORUS_CONFIG", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen([AGENT, "run", "-c", config_path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=full_env)
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = None

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_log(self, pattern, timeout=20, start=0):
        """Returns the regex match of the first log line (from index `start`) matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    raise AssertionError(f"no log line matching {pattern!r}; log:\n" + "\n".join(self.lines[-60:]))
                self.cond.wait(remaining)

    def mark(self):
        """Index to pass as `start` so later waits only see newer lines."""
        with self.cond:
            return len(self.lines)

    def log_text(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_ready(self):
        m = self.wait_log(r"HTTP listening on [0-9.]+:(\d+)")
        self.port = int(m.group(1))
        self.wait_log(r"\bready: \d+ plugins running")
        return self

    def http(self, path, timeout=10):
        """GET path; returns (status, body text, headers)."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout * SLOW) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def http_json(self, path, timeout=10):
        status, body, _ = self.http(path, timeout)
        return status, json.loads(body)

    def send(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP and wait until the agent says the reload finished (or failed)."""
        start = self.mark()
        self.send(signal.SIGHUP)
        return self.wait_log(r"reload complete|reload failed|reload: configuration errors", start=start)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=30):
        rc = self.proc.wait(timeout=timeout * SLOW)
        self.reader.join(timeout=5)
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        if not self.proc.stderr.closed:
            self.proc.stderr.close()


class AgentTestCase(unittest.TestCase):
    """Gives each test a workspace and makes sure no agent outlives it."""

    def setUp(self):
        self.ws = Workspace()
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            a.kill()
        self.ws.cleanup()

    def start_agent(self, plugins, wait=True, env=None, **kw):
        path = self.ws.write("chorus.yaml", config_yaml(self.ws, plugins, **kw))
        agent = Agent(path, env=env)
        self.agents.append(agent)
        if wait:
            agent.wait_ready()
        return agent

    def rewrite_config(self, plugins, **kw):
        self.ws.write("chorus.yaml", config_yaml(self.ws, plugins, **kw))
