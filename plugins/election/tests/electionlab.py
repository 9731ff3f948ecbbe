"""Helpers for the election plugin's system tests and its benchmark (Python stdlib only), on top of
tests/integration/harness.py, tests/interop/p2ptest.py and tests/integration/netns_lab.py.

  * election_config_yaml - an agent config with p2p + gossip + election (+ mdns, + backbeat);
  * ElectionAgent - a running agent plus its peer id, GET /api/v1/election, POST .../trigger, metrics;
  * Checker - one thread per agent polling GET /api/v1/election; it records every observation
    (agent, time, state, term, admin) and finds the two safety violations the issue names: a term
    with two admins, and two admins at once on one side of a partition (or of the whole cluster when
    it is not partitioned);
  * NetnsElectionLab - agents in network namespaces (netns_lab.NetnsLab) and a 3|2 partition made of
    blackhole routes between the namespaces (the bridge and this process still reach every agent).

Waits are on the checker's sweeps (a condition notified after every observation) with deadlines
(harness.scale), never on sleeps.
"""
import json
import os
import threading
import time
import urllib.error
import urllib.request

import netns_lab
import p2ptest
from harness import SLOW, Agent, missing, scale

ELECTION_PLUGIN_DIR = os.environ.get("CHORUS_PLUGIN_DIR", "")
P2P_PLUGIN_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")
GOSSIP_PLUGIN_DIR = os.environ.get("CHORUS_GOSSIP_PLUGIN_DIR", "")
MDNS_PLUGIN_DIR = os.environ.get("CHORUS_MDNS_PLUGIN_DIR", "")
BACKBEAT_PLUGIN_DIR = os.environ.get("CHORUS_BACKBEAT_PLUGIN_DIR", "")

# Short timings for the tests (the defaults are 5 s / 15 s): a heartbeat every 300 ms, an election
# after 1.2 s without one. min_term_ms (the stability window for the manual trigger) stays long
# enough that a test can see the 409 right after an election.
FAST_TIMING = {
    "heartbeat_interval_ms": 300,
    "heartbeat_timeout_ms": 1200,
    "discovery_timeout_ms": 1200,
    "min_term_ms": 3000,
    "vote_window_ms": 150,
    "candidacy_timeout_ms": 1000,
    "max_jitter_ms": 300,
}

# gossip's mesh maintenance at the tests' pace (its default heartbeat is 1 s).
FAST_GOSSIP = {"router": {"heartbeat_ms": 200}}

STATES = {"follower", "candidate", "admin"}


def agent_missing_reason(*, mdns=False, backbeat=False):
    """Why an agent with p2p + gossip + election (+ mdns, + backbeat) cannot run here, or None."""
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    need = [(P2P_PLUGIN_DIR, "chorus-p2p.so", "CHORUS_P2P_PLUGIN_DIR"),
            (GOSSIP_PLUGIN_DIR, "chorus-gossip.so", "CHORUS_GOSSIP_PLUGIN_DIR"),
            (ELECTION_PLUGIN_DIR, "chorus-election.so", "CHORUS_PLUGIN_DIR")]
    if mdns:
        need.append((MDNS_PLUGIN_DIR, "chorus-mdns.so", "CHORUS_MDNS_PLUGIN_DIR"))
    if backbeat:
        need.append((BACKBEAT_PLUGIN_DIR, "chorus-backbeat.so", "CHORUS_BACKBEAT_PLUGIN_DIR"))
    for d, f, var in need:
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found in {var}={d!r}")
    return None


def election_config_yaml(state_dir, *, agent_id, p2p_listen, bootstrap=(), election=None, gossip=None, mdns=None,
                         backbeat=None, http_listen="127.0.0.1:0", log_level="info"):
    """p2p (listening on p2p_listen, dialling `bootstrap`) + gossip (config dict `gossip`) + election
    (config dict `election`), and mdns / backbeat when their config dict is given (None leaves the
    plugin out)."""
    plugins = {"gossip": dict(gossip or {}), "election": dict(election or {})}
    dirs = [GOSSIP_PLUGIN_DIR, ELECTION_PLUGIN_DIR]
    if mdns is not None:
        plugins["mdns"] = dict(mdns)
        dirs.append(MDNS_PLUGIN_DIR)
    if backbeat is not None:
        plugins["backbeat"] = dict(backbeat)
        dirs.append(BACKBEAT_PLUGIN_DIR)
    unique_dirs = []
    for d in dirs:
        if d not in unique_dirs and d != P2P_PLUGIN_DIR:
            unique_dirs.append(d)
    return p2ptest.p2p_stack_config_yaml(state_dir, agent_id=agent_id, p2p_listen=p2p_listen, bootstrap=bootstrap,
                                         plugins=plugins, plugin_dirs=unique_dirs, http_listen=http_listen,
                                         log_level=log_level)


def http_json(url, method="GET", body=None, timeout=5):
    """(status, parsed JSON or {"raw": text}); (None, {"error": ...}) when the agent does not answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    except (OSError, ValueError) as e:  # refused, reset, timed out: a dead or partitioned agent
        return None, {"error": repr(e)}
    try:
        return status, json.loads(text)
    except ValueError:
        return status, {"raw": text}


class ElectionAgent:
    """A running agent with p2p + gossip + election: its peer id, dialable address and the routes."""

    def __init__(self, agent, name, p2p_addr_prefix, host_ip="127.0.0.1"):
        self.agent = agent
        self.name = name
        self.host_ip = host_ip
        status, info = http_json(self.url("/p2p/id"), timeout=10 * SLOW)
        if status != 200:
            raise AssertionError(f"{name}: GET /p2p/id answered {status}: {info}")
        self.peer_id = info["peer_id"]
        self.addr = f"{p2p_addr_prefix}/p2p/{self.peer_id}"

    @property
    def pid(self):
        return self.agent.proc.pid

    def alive(self):
        return self.agent.proc.poll() is None

    def url(self, path):
        return f"http://{self.host_ip}:{self.agent.port}{path}"

    def election(self, timeout=5):
        """(status, body) of GET /api/v1/election."""
        return http_json(self.url("/api/v1/election"), timeout=timeout)

    def state(self):
        """GET /api/v1/election, asserted 200."""
        status, body = self.election(timeout=10 * SLOW)
        if status != 200:
            raise AssertionError(f"{self.name}: GET /api/v1/election answered {status}: {body}")
        return body

    def trigger(self):
        """(status, body) of POST /api/v1/election/trigger."""
        return http_json(self.url("/api/v1/election/trigger"), "POST", {}, timeout=10 * SLOW)

    def metric(self, name, *labels):
        """The sum of the samples of `name` whose label text contains every string of `labels`."""
        try:
            with urllib.request.urlopen(self.url("/metrics"), timeout=10 * SLOW) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{self.name}: GET /metrics answered {e.code}")
        samples = p2ptest.parse_metric_samples(text, name)
        return sum(v for k, v in samples.items() if all(lb in k for lb in labels))


# ---- The checker ------------------------------------------------------------------------------------

class Observation:
    __slots__ = ("agent", "t", "state", "term", "admin")

    def __init__(self, agent, t, state, term, admin):
        self.agent, self.t, self.state, self.term, self.admin = agent, t, state, term, admin

    def __repr__(self):
        return f"({self.agent} t={self.t:.3f} {self.state} term={self.term} admin={self.admin[:12] or '-'})"


class Checker:
    """Polls GET /api/v1/election of every agent (a thread each, every `interval` s) and records what it
    answers. An agent that does not answer (killed, restarting) is simply not recorded.

    partition(sides) / heal() mark when the cluster is split; the at-once check treats agents on
    different sides of a partition as allowed to have an admin each (Raft allows an old admin on the
    minority side until it notices the loss of its quorum), and everything else as one side."""

    def __init__(self, agents, interval=0.05):
        self.t0 = time.monotonic()
        self.interval = interval
        self.cond = threading.Condition()
        self.observations = []
        self.latest = {}            # agent name -> its newest Observation
        self.errors = []            # malformed answers (a wrong state name, a missing field)
        self.epochs = []            # (start, end or None, [set of names, ...]) of each partition
        self.stopped = False
        self.threads = {}
        self.peer_names = {}        # peer id -> agent name, for readable reports
        for a in agents:
            self.add(a)

    def now(self):
        return time.monotonic() - self.t0

    def add(self, agent):
        """Starts polling `agent` (an ElectionAgent); a restarted agent is added again under its name."""
        self.peer_names[agent.peer_id] = agent.name
        stop = threading.Event()
        old = self.threads.get(agent.name)
        if old:
            old[1].set()
        th = threading.Thread(target=self._poll, args=(agent, stop), daemon=True)
        self.threads[agent.name] = (th, stop)
        th.start()

    def remove(self, name):
        """Stops polling an agent (killed on purpose); its last observation no longer counts as current."""
        entry = self.threads.pop(name, None)
        if entry:
            entry[1].set()
        with self.cond:
            self.latest.pop(name, None)
            self.cond.notify_all()

    def _poll(self, agent, stop):
        while not stop.is_set() and not self.stopped:
            status, body = agent.election(timeout=2)
            t = self.now()
            if status == 200:
                try:
                    obs = Observation(agent.name, t, body["state"], int(body["term"]), body["admin"] or "")
                    if obs.state not in STATES:
                        raise ValueError(f"state {obs.state!r}")
                except (KeyError, TypeError, ValueError) as e:
                    with self.cond:
                        self.errors.append(f"{agent.name}: malformed GET /api/v1/election ({e!r}): {body}")
                else:
                    with self.cond:
                        if not stop.is_set():
                            self.observations.append(obs)
                            self.latest[agent.name] = obs
                        self.cond.notify_all()
            elif status is not None and not stop.is_set():  # 503 while a stopped agent shuts down
                with self.cond:
                    self.errors.append(f"{agent.name}: GET /api/v1/election answered {status}: {body}")
            stop.wait(self.interval)

    def stop(self):
        self.stopped = True
        for th, stop in list(self.threads.values()):
            stop.set()
        for th, _ in list(self.threads.values()):
            th.join(timeout=5)

    # -- partitions

    def partition(self, sides):
        with self.cond:
            self.epochs.append([self.now(), None, [set(s) for s in sides]])

    def heal(self):
        with self.cond:
            if self.epochs and self.epochs[-1][1] is None:
                self.epochs[-1][1] = self.now()

    # -- waiting

    def wait(self, pred, timeout, what):
        """Blocks until pred(latest) (latest: {name: Observation}) returns something true, which is
        returned; re-checked after every observation."""
        deadline = time.monotonic() + scale(timeout)
        with self.cond:
            while True:
                value = pred(dict(self.latest))
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {scale(timeout):.1f}s waiting for {what}; "
                                         f"latest: {sorted(self.latest.values(), key=lambda o: o.agent)}")
                self.cond.wait(min(remaining, 0.5))

    def wait_agreement(self, names, timeout, what="one admin all agree on", min_term=0, exclude_admin=None):
        """Waits until every agent in `names` answers the same term (>= min_term) and the same admin, the
        admin being one of `names` reporting state "admin" (not exclude_admin). Returns (admin name, term)."""
        names = set(names)

        def agreed(latest):
            if not names <= set(latest):
                return None
            obs = [latest[n] for n in names]
            terms = {o.term for o in obs}
            admins = {o.admin for o in obs}
            if len(terms) != 1 or len(admins) != 1 or "" in admins:
                return None
            term, admin_id = terms.pop(), admins.pop()
            admin = self.peer_names.get(admin_id)
            if term < min_term or admin not in names or admin == exclude_admin or latest[admin].state != "admin":
                return None
            if any(o.state != "follower" for o in obs if o.agent != admin):
                return None
            return admin, term

        return self.wait(agreed, timeout, f"{what} among {sorted(names)} (term >= {min_term})")

    # -- the safety checks

    def admin_intervals(self):
        """Per agent, [(term, first t, last t)]: consecutive observations of state admin in one term."""
        out = {}
        with self.cond:
            obs = list(self.observations)
        current = {}
        for o in obs:
            run = current.get(o.agent)
            if o.state == "admin":
                if run and run[0] == o.term:
                    run[2] = o.t
                else:
                    run = [o.term, o.t, o.t]
                    current[o.agent] = run
                    out.setdefault(o.agent, []).append(run)
            else:
                current.pop(o.agent, None)
        return {a: [tuple(r) for r in runs] for a, runs in out.items()}

    def terms_with_two_admins(self):
        """{term: sorted agent names} for every term in which more than one agent said it was admin."""
        by_term = {}
        with self.cond:
            for o in self.observations:
                if o.state == "admin":
                    by_term.setdefault(o.term, set()).add(o.agent)
        return {t: sorted(a) for t, a in by_term.items() if len(a) > 1}

    def _separated(self, a, b, lo, hi):
        """The parts of [lo, hi] in which a and b were on different sides of a partition."""
        parts = []
        for start, end, sides in self.epochs:
            end = float("inf") if end is None else end
            side_a = next((i for i, s in enumerate(sides) if a in s), None)
            side_b = next((i for i, s in enumerate(sides) if b in s), None)
            if side_a is not None and side_b is not None and side_a != side_b:
                s, e = max(lo, start), min(hi, end)
                if s <= e:
                    parts.append((s, e))
        return parts

    def two_admins_at_once(self):
        """Pairs of admin intervals of two agents that overlap in time while the two were on one side.
        An agent that answered "admin" at t1 and t2 in one term was admin in between (it leaves a term's
        reign only by stepping down, and never becomes admin of that term again)."""
        intervals = self.admin_intervals()
        found = []
        names = sorted(intervals)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for ta, sa, ea in intervals[a]:
                    for tb, sb, eb in intervals[b]:
                        lo, hi = max(sa, sb), min(ea, eb)
                        if lo > hi:
                            continue
                        covered = sorted(self._separated(a, b, lo, hi))
                        # Is any part of [lo, hi] not covered by the separated parts?
                        t = lo
                        for s, e in covered:
                            if s > t:
                                break
                            t = max(t, e)
                        if t < hi or not covered:
                            found.append(f"{a} (term {ta}, {sa:.3f}-{ea:.3f}s) and {b} (term {tb}, "
                                         f"{sb:.3f}-{eb:.3f}s) were admin at once on one side")
        return found

    def report(self, tc):
        """Asserts the safety properties on everything recorded so far (tc: the TestCase)."""
        with self.cond:
            errors = list(self.errors)
            n = len(self.observations)
        tc.assertEqual(errors, [], "malformed answers of GET /api/v1/election")
        tc.assertGreater(n, 0, "the checker recorded nothing")
        tc.assertEqual(self.terms_with_two_admins(), {}, "a term had two admins")
        tc.assertEqual(self.two_admins_at_once(), [], "two admins at once on one side")

    def observations_of(self, names, since=0.0):
        with self.cond:
            return [o for o in self.observations if o.agent in names and o.t >= since]


# ---- Network-namespace lab --------------------------------------------------------------------------
# tests/integration/netns_lab.py: root ns bre<tag> 10.<n>.0.254/24; ns i (elx<tag>-<i>): eth0
# 10.<n>.0.<i+1>/24. Every agent listens for p2p on <ip>:9000 and HTTP on <ip>:8081.

netns_missing_reason = netns_lab.netns_missing_reason


class NetnsElectionLab(netns_lab.NetnsLab):
    P2P_PORT = 9000
    HTTP_PORT = 8081

    def __init__(self):
        self.election_agents = []
        super().__init__("elx", "e", tmp_prefix="chorus-election-lab-")
        self.blackholes = []   # (ns, ip) routes that make the partition

    def start_agent(self, *, bootstrap=(), election=None, gossip=None, mdns=None, log_level="info"):
        """An agent in a new namespace, dialling the ElectionAgents in `bootstrap` at start."""
        ns, ip = self.add_ns()
        text = election_config_yaml(self.state_dir(ns), agent_id=f"it-{ns}",
                                    p2p_listen=[f"/ip4/{ip}/tcp/{self.P2P_PORT}"],
                                    bootstrap=[b.addr for b in bootstrap], election=election, gossip=gossip, mdns=mdns,
                                    http_listen=f"{ip}:{self.HTTP_PORT}", log_level=log_level)
        agent = Agent(self.write_config(ns, text), command=netns_lab.agent_command(ns), label=ns)
        self.agents.append(agent)
        agent.wait_ready()
        ea = ElectionAgent(agent, f"a{len(self.election_agents)}", f"/ip4/{ip}/tcp/{self.P2P_PORT}", host_ip=ip)
        ea.ns, ea.ip = ns, ip
        self.election_agents.append(ea)
        return ea

    def partition(self, side_a, side_b):
        """Cuts every path between the agents of side_a and those of side_b: a blackhole route in each
        namespace for each address on the other side. The bridge stays up, so this process still
        reaches every agent's HTTP listener."""
        for mine, theirs in ((side_a, side_b), (side_b, side_a)):
            for a in mine:
                for b in theirs:
                    netns_lab.sh("ip", "netns", "exec", a.ns, "ip", "route", "add", "blackhole", f"{b.ip}/32")
                    self.blackholes.append((a.ns, b.ip))

    def heal(self):
        for ns, ip in self.blackholes:
            netns_lab.sh("ip", "netns", "exec", ns, "ip", "route", "del", "blackhole", f"{ip}/32", check=False)
        self.blackholes = []
