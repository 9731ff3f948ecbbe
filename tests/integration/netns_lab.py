"""Network-namespace lab for tests that need agents on separate hosts (Python stdlib + iproute2); the
mdns (plugins/mdns/tests/mdnslab.py) and gossip (plugins/gossip/tests/gossiptest.py) suites build on it.

NetnsLab builds one Linux bridge in the root namespace (with an address, so this process can reach the
agents' HTTP listeners) and, per agent, a network namespace joined to the bridge by a veth pair:

    root ns:  br<letter><tag> 10.<n>.0.254/24
    ns i:     lo up, eth0 10.<n>.0.<i+1>/24, default via 10.<n>.0.254 (veth peer v<letter><tag>y<i> in
              the root ns, enslaved to the bridge)

Agents run with `ip netns exec <ns> chorus-agent run -c <cfg>` (agent_command) and are harness.Agent
objects kept in `agents`. close() ends every agent through harness.finish_agents (SIGTERM, exit status,
sanitizer reports), removes the namespaces, the bridge and the state dir, then fails the test on what
finish found; the tests call it from tearDown/addCleanup, so a failing test leaves nothing behind. Names
carry our pid, so a lab left by a killed run (e.g. a ctest timeout) is recognised and removed by the next.
"""
import os
import random
import re
import shutil
import subprocess
import tempfile

import harness
from harness import missing


def netns_missing_reason():
    """Why the namespace lab cannot run here, or None (a reason marked as a missing prerequisite, so the
    suite is Skipped in ctest, and fails under CI for the netns kind)."""
    if os.geteuid() != 0:
        return missing("netns", "needs root (network namespaces, veth, bridge)")
    if shutil.which("ip") is None:
        return missing("netns", "iproute2 `ip` is not installed")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return missing("netns", "`ip netns` is not available")
    return None


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {p.stderr.strip()}")
    return p


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale(ns_prefix, letter):
    """Removes the namespaces and bridges of labs (with these name prefixes) whose process is gone."""
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        m = re.match(rf"^({re.escape(ns_prefix)}(\d+)x\d+-\d+)\b", line)
        if m and not _pid_alive(int(m.group(2))):
            sh("ip", "netns", "del", m.group(1), check=False)
    for line in sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        m = re.match(rf"^\d+: (br{re.escape(letter)}(\d+)x\d+):", line)
        if m and not _pid_alive(int(m.group(2))):
            sh("ip", "link", "del", m.group(1), check=False)


def agent_command(ns):
    """The command running chorus-agent in namespace ns. `ip netns exec` execs the agent, so the process
    (and the signals it gets) is the agent's."""
    return ["ip", "netns", "exec", ns, harness.AGENT]


_lab_count = 0


class NetnsLab:
    """The bridge and namespaces; ns_prefix names the namespaces (<ns_prefix><tag>-<i>), letter the links
    (br<letter><tag>, v<letter><tag>y<i>): prefixes that tell one suite's labs from another's."""

    def __init__(self, ns_prefix, letter, subnet=None, tmp_prefix="chorus-lab-"):
        global _lab_count
        _lab_count += 1
        self.ns_prefix, self.letter = ns_prefix, letter
        sweep_stale(ns_prefix, letter)
        # Names carry our pid (so sweep_stale can tell stale from live) and fit IFNAMSIZ (15).
        self.tag = f"{os.getpid()}x{_lab_count % 100}"
        self.subnet = subnet if subnet is not None else self._free_subnet()
        self.bridge = f"br{letter}{self.tag}"
        self.nss = []
        self.agents = []  # harness.Agent, ended by close()
        self.root = tempfile.mkdtemp(prefix=tmp_prefix)
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
        """A namespace with lo up and (veth) an eth0 on the bridge, configured now (up) or by bring_up.
        Returns (ns, ip); ip is 127.0.0.1 without veth."""
        i = len(self.nss)
        ns = f"{self.ns_prefix}{self.tag}-{i}"
        ip = f"10.{self.subnet}.0.{i + 1}"
        sh("ip", "netns", "add", ns)
        self.nss.append(ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        if not veth:
            return ns, "127.0.0.1"
        host_end = f"v{self.letter}{self.tag}y{i}"
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

    def write_config(self, name, text):
        """Writes <root>/<name>.yaml; returns its path."""
        path = os.path.join(self.root, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def state_dir(self, name):
        state = os.path.join(self.root, name)
        os.makedirs(state, exist_ok=True)
        return state

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
