"""Network-namespace lab for the mdns tests and benchmarks (Python stdlib + iproute2).

Lab() builds one Linux bridge in the root namespace (with an address, so this process can reach the
agents' HTTP listeners) and, per agent, a network namespace joined to the bridge by a veth pair:

    root ns:  br-<tag> 10.<n>.0.254/24
    ns i:     lo up, eth0 10.<n>.0.<i+1>/24, default via 10.<n>.0.254 (veth peer in the root ns,
              enslaved to the bridge)

Agents run with `ip netns exec <ns> chorus-agent run -c <cfg>` and are driven with tests/integration/
harness.Agent (log lines + HTTP). Everything created is removed by Lab.close(), which the tests call
from tearDown/addCleanup, so a failing test leaves no namespace, link or process behind; close() also
ends every agent through harness.Agent.finish (SIGTERM, exit status, sanitizer reports) and fails the
test on what that finds.
"""
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import harness
from harness import SLOW, missing

MDNS_PLUGIN_DIR = os.environ.get("CHORUS_MDNS_PLUGIN_DIR", "")
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
# The test.discovery-probe plugin (logs chorus.discovery events); optional.
PROBE_DIR = os.environ.get("CHORUS_MDNS_PROBE_DIR", "")
HAVE_PROBE = bool(PROBE_DIR) and os.path.exists(os.path.join(PROBE_DIR, "chorus-test.discovery-probe.so"))


def lab_missing_reason():
    """Why the namespace lab cannot run here, or None (a reason marked as a missing prerequisite, so the
    suite is Skipped in ctest, and fails under CI for the netns kind)."""
    if os.geteuid() != 0:
        return missing("netns", "needs root (network namespaces, veth, bridge)")
    if shutil.which("ip") is None:
        return missing("netns", "iproute2 `ip` is not installed")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return missing("netns", "`ip netns` is not available")
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, f in ((MDNS_PLUGIN_DIR, "chorus-mdns.so"), (P2P_PLUGIN_DIR, "chorus-p2p.so")):
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found (CHORUS_MDNS_PLUGIN_DIR / CHORUS_P2P_PLUGIN_DIR)")
    return None


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {p.stderr.strip()}")
    return p


class NsAgent(harness.Agent):
    """harness.Agent started inside a namespace; HTTP goes to the namespace's address."""

    def __init__(self, ns, ip, config_path):
        # `ip netns exec` execs the agent, so the process (and the signals it gets) is the agent's.
        super().__init__(config_path, command=["ip", "netns", "exec", ns, harness.AGENT])
        self.ns, self.ip = ns, ip
        self.peer_id = None

    def http(self, path, timeout=10):
        url = f"http://{self.ip}:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout * SLOW) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def connected_peers(self):
        status, body, _ = self.http("/p2p/peers")
        return {p["peer_id"] for p in json.loads(body)} if status == 200 else set()

    def discovered(self):
        status, body, _ = self.http("/mdns/peers")
        return {p["peer_id"]: p for p in json.loads(body)} if status == 200 else {}

    def metric(self, name, labels=""):
        """Sum of a metric's samples whose label text contains `labels`."""
        _, body, _ = self.http("/metrics")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name) and (line[len(name)] in " {") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale():
    """Removes namespaces and bridges left by lab processes that were killed (e.g. a ctest timeout)."""
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        m = re.match(r"^(mdns(\d+)x\d+-\d+)\b", line)
        if m and not _pid_alive(int(m.group(2))):
            sh("ip", "netns", "del", m.group(1), check=False)
    for line in sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        m = re.match(r"^\d+: (brm(\d+)x\d+):", line)
        if m and not _pid_alive(int(m.group(2))):
            sh("ip", "link", "del", m.group(1), check=False)


_lab_count = 0


class Lab:
    def __init__(self, subnet=None):
        global _lab_count
        _lab_count += 1
        sweep_stale()
        # Names carry our pid (so sweep_stale can tell stale from live) and fit IFNAMSIZ (15).
        self.tag = f"{os.getpid()}x{_lab_count % 100}"
        self.subnet = subnet if subnet is not None else self._free_subnet()
        self.bridge = f"brm{self.tag}"
        self.nss = []
        self.agents = []
        self.root = tempfile.mkdtemp(prefix="chorus-mdns-")
        os.chmod(self.root, 0o755)
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "link", "set", self.bridge, "type", "bridge", "mcast_snooping", "0", check=False)
            sh("ip", "addr", "add", f"10.{self.subnet}.0.254/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
        except Exception:
            self.close()
            raise

    @staticmethod
    def _free_subnet():
        """A 10.N.0.0/24 no route on this machine uses yet (concurrent labs must not collide)."""
        for _ in range(200):
            n = random.randint(100, 250)
            if not sh("ip", "route", "show", f"10.{n}.0.0/24", check=False).stdout.strip():
                return n
        raise RuntimeError("no free 10.N.0.0/24 subnet for the lab")

    def add_ns(self, up=True, veth=True):
        """A namespace with lo up and (veth) an eth0 on the bridge, configured now (up) or by bring_up."""
        i = len(self.nss)
        ns = f"mdns{self.tag}-{i}"
        ip = f"10.{self.subnet}.0.{i + 1}"
        sh("ip", "netns", "add", ns)
        self.nss.append(ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        if not veth:
            return ns, "127.0.0.1"
        host_end = f"vm{self.tag}y{i}"
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", host_end, "master", self.bridge)
        sh("ip", "link", "set", host_end, "up")
        if up:
            self.bring_up(ns, ip)
        return ns, ip

    def bring_up(self, ns, ip):
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
        # A default route, as on any LAN host: software that multicasts through the routing table
        # (js multicast-dns uses IP_MULTICAST_IF 0.0.0.0) needs one to reach 224.0.0.251.
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"10.{self.subnet}.0.254")
        return ns, ip

    def config(self, name, ip, mdns_config, log_level="info", probe=False, p2p_port=9000, http_port=8081,
               extra_plugins=None, extra_dirs=()):
        state = os.path.join(self.root, name)
        os.makedirs(state, exist_ok=True)
        lines = [
            "host:",
            f"  log_level: {log_level}",
            f"  state_dir: {json.dumps(state)}",
            "  shutdown_timeout_ms: 5000",
            "  http:",
            f"    listen: {ip}:{http_port}",
            f"  plugin_dirs: {json.dumps([MDNS_PLUGIN_DIR, P2P_PLUGIN_DIR] + ([PROBE_DIR] if probe else []) + list(extra_dirs))}",
            "plugins:",
            "  p2p: " + json.dumps({"enabled": True, "critical": True,
                                     "config": {"listen": [f"/ip4/0.0.0.0/tcp/{p2p_port}"]}}),
            "  mdns: " + json.dumps({"enabled": True, "critical": True, "config": mdns_config}),
        ]
        if probe:
            lines.append("  test.discovery-probe: " + json.dumps({"enabled": True, "critical": True}))
        for pid, spec in (extra_plugins or {}).items():
            lines.append(f"  {pid}: " + json.dumps(spec))
        path = os.path.join(self.root, f"{name}.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start_agent(self, mdns_config, wait=True, log_level="info", probe=False, ns_ip=None, p2p_port=9000,
                    http_port=8081, extra_plugins=None, extra_dirs=()):
        ns, ip = ns_ip or self.add_ns()
        name = f"{ns}-{len(self.agents)}"
        agent = NsAgent(ns, ip, self.config(name, ip, mdns_config, log_level, probe, p2p_port, http_port,
                                            extra_plugins, extra_dirs))
        self.agents.append(agent)
        if wait:
            self.wait_agent(agent)
        return agent

    @staticmethod
    def wait_agent(agent):
        m = agent.wait_log(r"HTTP listening on [0-9.]+:(\d+)")
        agent.port = int(m.group(1))
        agent.wait_log(r"\bready: \d+ plugins running")
        m = agent.wait_log(r"libp2p host (\S+) listening")
        agent.peer_id = m.group(1)
        return agent

    def close(self):
        """Ends the agents (harness.Agent.finish), removes the namespaces and the bridge, then fails the
        test if an agent exited wrongly or reported a sanitizer error."""
        problems = harness.finish_agents(self.agents)
        self.agents = []
        for ns in self.nss:
            sh("ip", "netns", "del", ns, check=False)
        self.nss = []
        sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        if problems:
            raise AssertionError("agent check at the end of the test:\n" + "\n".join(problems))


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred (an HTTP observation, not a sleep-and-hope) until true or the deadline."""
    return harness.wait_for(pred, timeout, what, interval)


def full_mesh(agents):
    ids = {a.peer_id for a in agents}
    return all(a.connected_peers() >= ids - {a.peer_id} for a in agents)


def unique_tag(prefix="chorus-it"):
    """A service tag no other test or agent on this machine uses."""
    return f"{prefix}-{os.getpid()}-{random.randint(0, 1 << 30)}"
