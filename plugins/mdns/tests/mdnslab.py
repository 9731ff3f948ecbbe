"""Network-namespace lab for the mdns tests and benchmarks (Python stdlib + iproute2): the mdns layer on
tests/integration/netns_lab.py.

Lab() is a netns_lab.NetnsLab (one bridge, one namespace per agent: root ns brm<tag> 10.<n>.0.254/24,
ns i: eth0 10.<n>.0.<i+1>/24, default via 10.<n>.0.254) that starts agents with the p2p and mdns
plugins (NsAgent: harness.Agent inside a namespace, with the mdns/p2p routes). Everything created is
removed by Lab.close(), which the tests call from tearDown/addCleanup, so a failing test leaves no
namespace, link or process behind; close() also ends every agent through harness.Agent.finish (SIGTERM,
exit status, sanitizer reports) and fails the test on what that finds.
"""
import json
import os
import random
import urllib.error
import urllib.request

import harness
import netns_lab
from harness import SLOW, missing
from netns_lab import sh  # noqa: F401 - used by the suites as mdnslab.sh

MDNS_PLUGIN_DIR = os.environ.get("CHORUS_MDNS_PLUGIN_DIR", "")
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
# The test.discovery-probe plugin (logs chorus.discovery events); optional.
PROBE_DIR = os.environ.get("CHORUS_MDNS_PROBE_DIR", "")
HAVE_PROBE = bool(PROBE_DIR) and os.path.exists(os.path.join(PROBE_DIR, "chorus-test.discovery-probe.so"))


def lab_missing_reason():
    """Why the namespace lab cannot run here, or None (a reason marked as a missing prerequisite, so the
    suite is Skipped in ctest, and fails under CI for the netns kind)."""
    reason = netns_lab.netns_missing_reason()
    if reason:
        return reason
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, f in ((MDNS_PLUGIN_DIR, "chorus-mdns.so"), (P2P_PLUGIN_DIR, "chorus-p2p.so")):
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found (CHORUS_MDNS_PLUGIN_DIR / CHORUS_P2P_PLUGIN_DIR)")
    return None


class NsAgent(harness.Agent):
    """harness.Agent started inside a namespace; HTTP goes to the namespace's address."""

    def __init__(self, ns, ip, config_path):
        super().__init__(config_path, command=netns_lab.agent_command(ns))
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


class Lab(netns_lab.NetnsLab):
    def __init__(self, subnet=None):
        super().__init__("mdns", "m", subnet=subnet, tmp_prefix="chorus-mdns-")

    def config(self, name, ip, mdns_config, log_level="info", probe=False, p2p_port=9000, http_port=8081,
               extra_plugins=None, extra_dirs=()):
        state = self.state_dir(name)
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
        return self.write_config(name, "\n".join(lines) + "\n")

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


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred (an HTTP observation, not a sleep-and-hope) until true or the deadline."""
    return harness.wait_for(pred, timeout, what, interval)


def full_mesh(agents):
    ids = {a.peer_id for a in agents}
    return all(a.connected_peers() >= ids - {a.peer_id} for a in agents)


def unique_tag(prefix="chorus-it"):
    """A service tag no other test or agent on this machine uses."""
    return f"{prefix}-{os.getpid()}-{random.randint(0, 1 << 30)}"
