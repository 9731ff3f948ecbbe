"""Drives a real chorus-agent process for the integration tests (Python stdlib only). Every Python suite
of the repository (interop, plugin suites, install) starts its agents through Agent here.

Synchronisation is by events the agent emits: log lines on its output (read by a thread), and its HTTP
answers. Every wait has a deadline (scale()) so a broken agent fails the test instead of hanging it.
At the end of a test every agent goes through Agent.finish: SIGTERM, a checked exit status, and a scan
of its output (kept in a log file) for sanitizer reports. Skips say whether a prerequisite is missing
(missing/require) or the test does not apply (not_applicable); tests/run_suite.py reports them to
ctest. tests/README.md has the rules.
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


def _time_scale():
    """How much slower than a quiet developer machine this run is: 4x for a sanitizer build, times
    CHORUS_TIME_SCALE (a float, for loaded CI machines). Deadlines scale, assertions do not."""
    try:
        extra = float(os.environ.get("CHORUS_TIME_SCALE") or 1)
    except ValueError:
        raise SystemExit(f"CHORUS_TIME_SCALE={os.environ['CHORUS_TIME_SCALE']!r} is not a number")
    return (4 if SANITIZED else 1) * max(extra, 0.1)


SLOW = _time_scale()


def scale(seconds):
    """A time limit for this machine and build: every deadline in the tests goes through here (or SLOW)."""
    return seconds * SLOW


def wait_for(pred, timeout, what, interval=0.01):
    """Polls pred() until it returns something true (returned) or scale(timeout) passes (AssertionError).
    For state that has no event to block on; the interval only bounds how late the change is seen."""
    deadline = time.monotonic() + scale(timeout)
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scale(timeout):.1f}s waiting for {what}")
        time.sleep(interval)


# ---- Skips -----------------------------------------------------------------------------------------
# tests/run_suite.py runs every Python suite for ctest. A skipped test makes the whole suite Skipped
# (exit 77, SKIP_RETURN_CODE), because something it covers did not run; with CI set, a skip for one of
# the prerequisites the CI machine must have (run_suite.CI_REQUIRED) fails the suite instead. The one
# exception is a test that does not apply here at all (e.g. a permission check when running as root):
# its reason is marked with not_applicable() and the suite can still pass.
NOT_APPLICABLE = "not applicable here: "


def missing(kind, reason):
    """The skip reason for a missing prerequisite of kind `kind` (js-libp2p, netns, nats, go, build...)."""
    return f"missing prerequisite [{kind}]: {reason}"


def not_applicable(reason):
    """The skip reason for a test that does not apply to this environment (keeps the suite Passed)."""
    return NOT_APPLICABLE + reason


def require(kind, reason):
    """Class or test decorator: skip for a missing prerequisite when reason (a string) is not None."""
    if reason:
        return unittest.skip(missing(kind, reason))
    return lambda obj: obj


# ---- Ports for listeners a test configures -----------------------------------------------------------
# A port found by binding to 0 comes from the kernel's ephemeral range, and the kernel may hand the same
# port to the next bind-to-0 anywhere on the machine, e.g. the agent's own HTTP server, before the agent
# listens on it (a CI run failed exactly so). Ports for configured listeners therefore come from below
# the ephemeral range, never twice from one test process, and are checked free when handed out.
_ports_given = set()
_ports_lock = threading.Lock()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host="127.0.0.1"):
    """A TCP port on `host` that nothing listens on, outside the ephemeral range."""
    import random
    import socket
    high = min(_ephemeral_low(), 65536) - 1
    low = max(1024, high - 12000)
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    with _ports_lock:
        for _ in range(2000):
            port = rng.randint(low, high)
            if port in _ports_given:
                continue
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _ports_given.add(port)
            return port
    raise AssertionError(f"no free TCP port in {low}-{high}")


# ---- Sanitizer reports and exit status ---------------------------------------------------------------
# AddressSanitizer, LeakSanitizer and UBSan write their reports to the process's stderr. Every agent a
# test starts has its output captured into a file; each report found there fails the test.
SANITIZER_REPORT = re.compile(r"(?:ERROR|WARNING): (?:AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                              r"ThreadSanitizer|MemorySanitizer)\b|SUMMARY: (?:AddressSanitizer|"
                              r"UndefinedBehaviorSanitizer|LeakSanitizer)\b|\bruntime error: ")
LOG_DIR = os.environ.get("CHORUS_TEST_LOG_DIR") or os.path.join(tempfile.gettempdir(), "chorus-test-logs")
_current_test = "agent"
_log_count = 0
_live_agents = []   # every Agent not yet finished (run_suite checks that none is left over)


def sanitizer_reports(lines):
    """The lines of `lines` that start a sanitizer report ([] when there is none)."""
    return [line for line in lines if SANITIZER_REPORT.search(line)]


def check_output(what, lines, log_path=None):
    """Raises AssertionError if `lines` (a process's output) hold a sanitizer report."""
    reports = sanitizer_reports(lines)
    if reports:
        where = f" (full output: {log_path})" if log_path else ""
        raise AssertionError(f"{what}: sanitizer report in its output{where}:\n" + "\n".join(reports[:20]) +
                             "\n--- output tail ---\n" + "\n".join(lines[-80:]))


def _new_log_path(label):
    global _log_count
    _log_count += 1
    os.makedirs(LOG_DIR, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{_current_test}-{_log_count:03d}-{label}")[-150:]
    return os.path.join(LOG_DIR, name + ".log")


def run_cli(*args, env=None, timeout=60):
    """Runs chorus-agent to completion; returns (exit code, stdout, stderr). A sanitizer report in its
    output fails the calling test."""
    full_env = dict(os.environ)
    full_env.pop("CHORUS_CONFIG", None)
    full_env.update(env or {})
    p = subprocess.run([AGENT, *args], capture_output=True, text=True, env=full_env, timeout=scale(timeout))
    check_output(f"chorus-agent {' '.join(args)}", (p.stdout + p.stderr).splitlines())
    if p.returncode < 0:
        raise AssertionError(f"chorus-agent {' '.join(args)} died from signal {-p.returncode}:\n{p.stderr[-4000:]}")
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
    """A running `chorus-agent run` with its output (stderr and stdout) captured line by line, in memory
    for the waits and in a log file (LOG_DIR) for the sanitizer check and for reading after a failure.

    Every agent ends through finish() (AgentTestCase.tearDown, mdnslab.Lab.close): SIGTERM if it is still
    running, a bounded wait, then its exit status and its output are checked."""

    def __init__(self, config_path, env=None, *, command=None, base_env=None, label=None):
        """command: what runs the agent binary (default [AGENT]; e.g. ["ip", "netns", "exec", ns, AGENT]).
        base_env: the environment to start from (default this process's)."""
        full_env = dict(os.environ if base_env is None else base_env)
        full_env.pop("CHORUS_CONFIG", None)
        full_env.update(env or {})
        label = label or os.path.splitext(os.path.basename(config_path))[0]
        self.log_path = _new_log_path(label)
        self.log_file = open(self.log_path, "w", buffering=1)
        self.proc = subprocess.Popen([*(command or [AGENT]), "run", "-c", config_path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
                                     errors="replace")
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.port = None
        self.expected_exit = 0     # the status finish() accepts (a test that expects another sets this)
        self.status_seen = False   # wait_exit/kill handed the status to the test, which checks it
        self.signals_sent = set()
        self.finished = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        _live_agents.append(self)

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.log_file.write(line + "\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_log(self, pattern, timeout=20, start=0):
        """Returns the regex match of the first log line (from index `start`) matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + scale(timeout)
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
                    raise AssertionError(f"no log line matching {pattern!r} ({self.log_path}); log:\n" +
                                         "\n".join(self.lines[-60:]))
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
            with urllib.request.urlopen(url, timeout=scale(timeout)) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def http_json(self, path, timeout=10):
        status, body, _ = self.http(path, timeout)
        return status, json.loads(body)

    def send(self, sig):
        self.signals_sent.add(sig)
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP and wait until the agent says the reload finished (or failed)."""
        start = self.mark()
        self.send(signal.SIGHUP)
        return self.wait_log(r"reload complete|reload failed|reload: configuration errors", start=start)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and returns the exit status. A stop is expected to be clean: finish() checks the
        status against expected_exit even when the caller ignores what this returns."""
        if self.proc.poll() is None:
            self.send(sig)
        rc = self.proc.wait(timeout=scale(timeout))
        self._drain()
        return rc

    def wait_exit(self, timeout=30):
        """Waits for the agent to exit on its own; returns the exit status, which the caller checks
        (typically a startup failure's non-zero status), so finish() does not check it again."""
        rc = self.proc.wait(timeout=scale(timeout))
        self.status_seen = True
        self._drain()
        return rc

    def kill(self):
        """SIGKILL, for a test that kills the agent on purpose (its status is not checked)."""
        if self.proc.poll() is None:
            self.send(signal.SIGKILL)
        self.proc.wait()
        self.status_seen = True
        self._drain()

    def _drain(self):
        """After exit: the rest of the output into lines and the log file."""
        self.reader.join(timeout=scale(10))
        if not self.proc.stdout.closed and not self.reader.is_alive():
            self.proc.stdout.close()
        if not self.reader.is_alive() and not self.log_file.closed:
            self.log_file.close()

    def finish(self, timeout=30):
        """Ends the agent at the end of a test; returns the problems found ([] if none):
        - still running: SIGTERM, and it must exit with expected_exit (0) within scale(timeout) seconds
          (otherwise SIGKILL, itself a problem);
        - exited without the test asking for its status: that status must be expected_exit;
        - exited from a signal the test did not send (a crash, a sanitizer abort);
        - any sanitizer report in its output."""
        if self.finished:
            return []
        self.finished = True
        if self in _live_agents:
            _live_agents.remove(self)
        problems = []
        name = f"agent pid {self.proc.pid} ({self.log_path})"
        check_status = not self.status_seen
        if self.proc.poll() is None:
            check_status = True
            self.send(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scale(timeout))
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.proc.wait()
                problems.append(f"{name} did not exit within {scale(timeout):.0f}s of SIGTERM; killed with SIGKILL")
                check_status = False
        self._drain()
        rc = self.proc.returncode
        if check_status and self.expected_exit is not None and rc != self.expected_exit:
            problems.append(f"{name} exited with status {rc}, expected {self.expected_exit}")
        if rc < 0 and -rc not in self.signals_sent:
            problems.append(f"{name} died from signal {-rc}, which the test did not send")
        with self.cond:
            lines = list(self.lines)
        reports = sanitizer_reports(lines)
        if reports:
            problems.append(f"{name}: sanitizer report in its output:\n" + "\n".join(reports[:20]))
        if problems:
            problems.append(f"--- last lines of {self.log_path} ---\n" + "\n".join(lines[-80:]))
        return problems


def finish_agents(agents, timeout=30):
    """finish() for every agent (all of them, even after a problem); returns the problems of all."""
    problems = []
    for a in agents:
        try:
            problems += a.finish(timeout)
        except Exception as e:  # a broken agent must not leave the others running
            problems.append(f"finishing agent {getattr(a, 'log_path', '?')}: {e!r}")
    return problems


def finish_leftover_agents():
    """Agents no test finished (e.g. one a test stopped itself and then dropped): finished now, so their
    output is still checked. Returns the problems: an agent still running is one (an agent must end inside
    the test that started it), plus what finish() finds."""
    leftovers = list(_live_agents)
    running = [f"agent pid {a.proc.pid} ({a.log_path}) was still running after its test"
               for a in leftovers if a.proc.poll() is None]
    return running + finish_agents(leftovers)


class AgentTestCase(unittest.TestCase):
    """Gives each test a workspace; at the end stops its agents (SIGTERM) and fails the test on a wrong
    exit status or a sanitizer report (see Agent.finish)."""

    def setUp(self):
        global _current_test
        _current_test = self.id()
        self.ws = Workspace()
        self.agents = []
        # Runs after tearDown (of this class and of subclasses), so every helper cleans up first.
        self.addCleanup(self._fail_on_agent_problems)
        self._agent_problems = []

    def tearDown(self):
        self._agent_problems = finish_agents(self.agents)
        self.ws.cleanup()

    def _fail_on_agent_problems(self):
        if self._agent_problems:
            self.fail("agent check at the end of the test:\n" + "\n".join(self._agent_problems))

    def start_agent(self, plugins, wait=True, env=None, **kw):
        path = self.ws.write("chorus.yaml", config_yaml(self.ws, plugins, **kw))
        agent = Agent(path, env=env)
        self.agents.append(agent)
        if wait:
            agent.wait_ready()
        return agent

    def rewrite_config(self, plugins, **kw):
        self.ws.write("chorus.yaml", config_yaml(self.ws, plugins, **kw))
