#!/usr/bin/env python3
"""election benchmarks: real chorus-agents (p2p + gossip + election) on loopback, with the plugin's default
timing (a heartbeat every 5 s, an election after 15 s without one). Standard library only, on
tests/integration/harness.py and plugins/election/tests/electionlab.py.

  python3 bench/election/run.py [--build BUILD_DIR] [--kills 30] [--agents 5] [--idle-agents 10]
                                [--idle-seconds 60] [--json FILE] [--skip failover|idle]

BUILD_DIR (default: build) must hold chorus-agent, chorus-p2p.so, chorus-gossip.so and chorus-election.so
(`ninja -C BUILD_DIR chorus-agent chorus_plugin_p2p chorus_plugin_gossip chorus_plugin_election`).
A full run takes about 12 minutes; run it with `nice` on a shared machine.

Scenarios:
  * failover: --agents agents (cluster_size = --agents, full mesh of static peers). --kills times: wait
    until every agent follows one admin, kill -9 the admin, and measure the time until a survivor
    answers GET /api/v1/election with state "admin" in a higher term (failover), and until every
    survivor follows it (agreement). The killed agent is restarted on its state dir before the next
    round, so the cluster keeps its size. Target (issue 17): p99 <= 15 s + 2 s.
  * idle: --idle-agents agents (cluster_size = --idle-agents), once one admin is agreed on: for
    --idle-seconds, the election messages each agent sends and receives
    (chorus_election_messages_total{direction}) per heartbeat interval, and the CPU time of each
    agent process (user + system, every thread, /proc/PID/stat) as a share of one core.
Every agent polled by the checker of the system tests, which also asserts that no term had two admins.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/
from benchlib import cpu_model, find_one  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
HEARTBEAT_INTERVAL_S = 5.0
HEARTBEAT_TIMEOUT_S = 15.0
TARGET_P99_S = HEARTBEAT_TIMEOUT_S + 2.0


def setup_environment(build):
    """Points the test helpers at the build (they read the environment when imported)."""
    wanted = {"chorus-agent": "CHORUS_AGENT_BIN", "chorus-p2p.so": "CHORUS_P2P_PLUGIN_DIR",
              "chorus-gossip.so": "CHORUS_GOSSIP_PLUGIN_DIR", "chorus-election.so": "CHORUS_PLUGIN_DIR"}
    for name, var in wanted.items():
        path = find_one(build, name)
        if not path:
            raise SystemExit(f"run.py: {name} not found under {build} (build it first, see --help)")
        os.environ[var] = path if var == "CHORUS_AGENT_BIN" else os.path.dirname(path)
    os.environ.setdefault("CHORUS_TEST_LOG_DIR", os.path.join(tempfile.gettempdir(), "chorus-bench-election-logs"))
    for d in ("tests/integration", "tests/interop", "plugins/election/tests"):
        sys.path.insert(0, os.path.join(SRC, d))


def cpu_seconds(pid):
    """User + system CPU time of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


class Cluster:
    """n agents on loopback with fixed p2p ports; agent i dials every agent started before it, and an
    agent restarted later dials every live agent."""

    def __init__(self, n, election_cfg, root, poll_interval):
        import electionlab
        import harness
        self.el, self.harness = electionlab, harness
        self.n, self.cfg, self.root = n, election_cfg, root
        self.ports = [harness.free_port() for _ in range(n)]
        self.agents = [None] * n       # ElectionAgent
        self.procs = []                # every harness.Agent ever started (finished at the end)
        self.checker = None
        self.poll_interval = poll_interval

    def start(self, i):
        name = f"a{i}"
        state = os.path.join(self.root, f"state-{name}")
        os.makedirs(state, exist_ok=True)
        boot = [a.addr for a in self.agents if a is not None and a.alive()]
        text = self.el.election_config_yaml(state, agent_id=f"bench-{name}",
                                            p2p_listen=[f"/ip4/127.0.0.1/tcp/{self.ports[i]}"],
                                            bootstrap=boot, election=self.cfg, log_level="info")
        path = os.path.join(self.root, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(text)
        agent = self.harness.Agent(path, label=name)
        self.procs.append(agent)
        agent.wait_ready()
        ea = self.el.ElectionAgent(agent, name, f"/ip4/127.0.0.1/tcp/{self.ports[i]}")
        self.agents[i] = ea
        if self.checker is not None:
            self.checker.add(ea)
        return ea

    def start_all(self):
        for i in range(self.n):
            self.start(i)
        self.checker = self.el.Checker([a for a in self.agents], interval=self.poll_interval)

    def names(self):
        return {a.name for a in self.agents if a is not None and a.alive()}

    def by_name(self, name):
        return next(a for a in self.agents if a is not None and a.name == name)

    def close(self):
        if self.checker:
            self.checker.stop()
        problems = self.harness.finish_agents(self.procs)
        if problems:
            print("\n".join(problems), file=sys.stderr)
        return problems


def safety(checker):
    two = checker.terms_with_two_admins()
    at_once = checker.two_admins_at_once()
    return {"terms_with_two_admins": {str(k): v for k, v in two.items()}, "two_admins_at_once": at_once,
            "observations": len(checker.observations)}


def run_failover(args, root):
    # Polled every 50 ms: the resolution of the failover times.
    cluster = Cluster(args.agents, {"cluster_size": args.agents}, os.path.join(root, "failover"), 0.05)
    os.makedirs(cluster.root)
    rounds = []
    try:
        cluster.start_all()
        first_bound = 10 + HEARTBEAT_TIMEOUT_S + 30
        admin, term = cluster.checker.wait_agreement(cluster.names(), first_bound)
        print(f"failover: {args.agents} agents, first admin {admin} in term {term}", flush=True)
        for k in range(args.kills):
            victim = cluster.by_name(admin)
            survivors = cluster.names() - {admin}
            idx = cluster.agents.index(victim)
            cluster.checker.remove(admin)
            t_kill = time.monotonic()
            victim.agent.kill()
            cluster.checker.wait(lambda latest: any(o.state == "admin" and o.term > term and o.agent in survivors
                                                    for o in latest.values()),
                                 HEARTBEAT_TIMEOUT_S + 60, "a new admin")
            t_admin = time.monotonic()
            new_admin, new_term = cluster.checker.wait_agreement(survivors, 60, min_term=term + 1)
            t_agreed = time.monotonic()
            rounds.append({"round": k + 1, "killed": admin, "term": term, "new_admin": new_admin,
                           "new_term": new_term, "failover_s": round(t_admin - t_kill, 3),
                           "agreement_s": round(t_agreed - t_kill, 3)})
            print(f"  kill {k + 1:2d}/{args.kills}: {admin} (term {term}) -> {new_admin} (term {new_term}) "
                  f"failover {t_admin - t_kill:6.2f}s, all follow {t_agreed - t_kill:6.2f}s", flush=True)
            # Back to full size: the killed agent restarts on its state dir and follows the new admin.
            cluster.start(idx)
            admin, term = cluster.checker.wait_agreement(cluster.names(), 60, min_term=new_term)
        failover = [r["failover_s"] for r in rounds]
        agreement = [r["agreement_s"] for r in rounds]
        out = {"agents": args.agents, "kills": len(rounds), "rounds": rounds,
               "failover_s": {"p50": percentile(failover, 50), "p99": percentile(failover, 99),
                              "min": min(failover), "max": max(failover),
                              "mean": round(statistics.mean(failover), 3)},
               "agreement_s": {"p50": percentile(agreement, 50), "p99": percentile(agreement, 99),
                               "max": max(agreement)},
               "target_p99_s": TARGET_P99_S,
               "safety": safety(cluster.checker)}
        out["target_met"] = out["failover_s"]["p99"] <= TARGET_P99_S
        return out
    finally:
        cluster.close()


def run_idle(args, root):
    n = args.idle_agents
    # Polled once a second only: the polling is HTTP work the agents would not do when idle.
    cluster = Cluster(n, {"cluster_size": n}, os.path.join(root, "idle"), 1.0)
    os.makedirs(cluster.root)
    try:
        cluster.start_all()
        admin, term = cluster.checker.wait_agreement(cluster.names(), 10 + HEARTBEAT_TIMEOUT_S + 60)
        # One more interval so every presence timer runs, then measure.
        settle = time.monotonic() + HEARTBEAT_INTERVAL_S
        cluster.checker.wait(lambda latest: time.monotonic() >= settle, HEARTBEAT_INTERVAL_S + 5, "settling")

        def snapshot():
            snap = {}
            for a in cluster.agents:
                snap[a.name] = {"cpu": cpu_seconds(a.pid),
                                "out": a.metric("chorus_election_messages_total", 'direction="out"'),
                                "in": a.metric("chorus_election_messages_total", 'direction="in"')}
            return time.monotonic(), snap

        t0, s0 = snapshot()
        end = t0 + args.idle_seconds
        cluster.checker.wait(lambda latest: time.monotonic() >= end, args.idle_seconds + 10, "the idle window")
        t1, s1 = snapshot()
        wall = t1 - t0
        intervals = wall / HEARTBEAT_INTERVAL_S
        per_agent = {}
        for name in s0:
            per_agent[name] = {
                "role": "admin" if name == admin else "follower",
                "out_per_interval": round((s1[name]["out"] - s0[name]["out"]) / intervals, 3),
                "in_per_interval": round((s1[name]["in"] - s0[name]["in"]) / intervals, 3),
                "cpu_percent": round(100 * (s1[name]["cpu"] - s0[name]["cpu"]) / wall, 3),
            }
        cpu = [v["cpu_percent"] for v in per_agent.values()]
        outs = [v["out_per_interval"] for v in per_agent.values()]
        ins = [v["in_per_interval"] for v in per_agent.values()]
        agreed = cluster.checker.wait_agreement(cluster.names(), 5)
        return {"agents": n, "seconds": round(wall, 1), "admin": admin, "term": term,
                "admin_unchanged": agreed == (admin, term), "per_agent": per_agent,
                "out_per_interval_mean": round(statistics.mean(outs), 3),
                "in_per_interval_mean": round(statistics.mean(ins), 3),
                "cpu_percent_per_agent_mean": round(statistics.mean(cpu), 3),
                "cpu_percent_per_agent_max": max(cpu),
                "cpu_percent_cluster": round(sum(cpu), 3),
                "safety": safety(cluster.checker)}
    finally:
        cluster.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--idle-agents", type=int, default=10)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--skip", choices=["failover", "idle"], action="append", default=[])
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    setup_environment(os.path.abspath(args.build))

    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "kernel": platform.release(),
                           "loadavg_start": os.getloadavg()},
               "command": " ".join([os.path.relpath(sys.argv[0], SRC)] + sys.argv[1:]),
               "timing": {"heartbeat_interval_s": HEARTBEAT_INTERVAL_S, "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S}}
    try:
        results["agent_build_type"] = subprocess.run(
            ["grep", "-m1", "^CMAKE_BUILD_TYPE", os.path.join(os.path.abspath(args.build), "CMakeCache.txt")],
            capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    with tempfile.TemporaryDirectory(prefix="chorus-bench-election-") as root:
        if "idle" not in args.skip:
            results["idle"] = run_idle(args, root)
            i = results["idle"]
            print(f"idle: {i['agents']} agents for {i['seconds']}s: {i['out_per_interval_mean']} messages sent and "
                  f"{i['in_per_interval_mean']} received per heartbeat interval per agent; CPU per agent mean "
                  f"{i['cpu_percent_per_agent_mean']}% max {i['cpu_percent_per_agent_max']}% of a core, "
                  f"cluster {i['cpu_percent_cluster']}%", flush=True)
        if "failover" not in args.skip:
            results["failover"] = run_failover(args, root)
            f = results["failover"]
            print(f"failover over {f['kills']} kills: p50 {f['failover_s']['p50']}s p99 {f['failover_s']['p99']}s "
                  f"(max {f['failover_s']['max']}s; target p99 <= {TARGET_P99_S}s: "
                  f"{'met' if f['target_met'] else 'NOT met'}); all survivors follow: p50 {f['agreement_s']['p50']}s "
                  f"p99 {f['agreement_s']['p99']}s", flush=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    unsafe = [k for k in ("idle", "failover") if k in results and
              (results[k]["safety"]["terms_with_two_admins"] or results[k]["safety"]["two_admins_at_once"])]
    if unsafe:
        print(f"SAFETY VIOLATION in {unsafe}: " + json.dumps({k: results[k]["safety"] for k in unsafe}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k not in ("idle", "failover")}, indent=2))
    return 1 if unsafe else 0


if __name__ == "__main__":
    sys.exit(main())
