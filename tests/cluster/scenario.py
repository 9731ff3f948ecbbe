"""The soak's schedule, invariants and figures (tests/cluster/soak.py runs it; README.md explains it).

Every wait is on an event (a log line, an HTTP answer polled with a deadline, electionlab.Checker's
observations); the only fixed durations are the schedule's own (how long an agent stays down, how long
the partition holds, how long a load phase is measured).
"""
import json
import os
import time
import traceback

import clusterlab
import monitors
from agenttest import CoordinationLog
from checks import ELECTION_BOUND_S, Checks
from clusterlab import ClusterLab
from electionlab import Checker
from fake_ai import FakeServer
from harness import free_port, scale, wait_for

# Durations of the schedule, in seconds.
SHORT = {"idle": 15, "load": 15, "burst": 5, "down": 3, "partition": 8, "nats_down": 3, "after_swap": 5,
         "settle": 5, "rounds": 1, "ai_clients": 4, "pubsub_every": 0.2, "task_every": 1.0, "store_every": 1.0}
LONG = {"idle": 120, "load": 120, "burst": 10, "down": 5, "partition": 20, "nats_down": 10, "after_swap": 20,
        "settle": 5, "rounds": None, "ai_clients": 6, "pubsub_every": 0.1, "task_every": 1.0, "store_every": 0.5}
HEALTH_BOUND_S = 30       # every /health healthy again this long after the last fault
LLM_DELAY_S = 0.05


class Soak(Checks):
    def __init__(self, args):
        self.args = args
        self.long = args.long
        self.plan = dict(LONG if args.long else SHORT)
        self.minutes = args.minutes or (30 if args.long else 5)
        self.n = args.agents
        self.t0 = time.monotonic()
        self.invariants = {}   # name -> {"held": bool or None (not checked), "detail": str}
        self.figures = {}
        self.events = []
        self.disturbed = []    # [start, end or None]: the mesh was not whole (kills, partitions)
        self.swaps = []        # [start, end] of SIGHUP swaps
        self.crashes = []
        self.lab = None
        self.checker = None
        self.coord = None
        self.probe = None
        self.resources = None
        self.loads = []
        self.round = 0

    # -- bookkeeping

    def log(self, msg):
        line = f"[{time.monotonic() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        self.events.append(line)

    def verdict(self, name, held, detail=""):
        self.invariants[name] = {"held": held, "detail": detail}
        self.log(f"invariant {name}: {'HELD' if held else 'not checked' if held is None else 'VIOLATED'}"
                 + (f" - {detail}" if detail else ""))

    def has(self, plugin):
        return plugin in self.lab.enabled

    def disturb(self):
        self.disturbed.append([time.monotonic(), None])

    def settled(self):
        self.disturbed[-1][1] = time.monotonic() + self.plan["settle"]

    def connected(self, t):
        return all(not (s <= t <= (e if e is not None else float("inf"))) for s, e in self.disturbed)

    # -- setup

    def setup(self):
        import ucxitest
        role_key, recipient = ucxitest.make_role_key()
        self.lab = ClusterLab(os.environ["CHORUS_CLUSTER_PLUGIN_DIR"], os.environ["NATS_SERVER_BIN"], role_key,
                              recipient)
        if self.args.agent_status_log_ms is not None:
            self.lab.agent_config["status_log_interval_ms"] = self.args.agent_status_log_ms
        self.lab.start_services(FakeServer, free_port(self.lab.bridge_ip))
        for f in self.lab.llms.values():
            f.delay = LLM_DELAY_S
        missing = [p for p in clusterlab.PLUGINS if p not in self.lab.enabled]
        if missing:
            self.log(f"DEVELOPMENT RUN without {', '.join(missing)}: their checks are skipped")
        for _ in range(self.n):
            self.lab.add_node()
        self.resources = monitors.Resources(self.lab.nodes)
        self.resources.ticker.start()
        if not self.args.skip_default_timings:
            self.default_timings_idle()
        t = time.monotonic()
        for node in self.lab.nodes:
            self.lab.start(node)
        self.figures["start_all_s"] = round(time.monotonic() - t, 2)
        self.log(f"{self.n} agents ready in {self.figures['start_all_s']} s "
                 f"(plugins: {', '.join(self.lab.enabled)}; lab {self.lab.root})")
        self.crash_watch = monitors.Ticker(0.5, self.watch_crashes, "crashes")
        self.crash_watch.start()
        nodes = self.lab.nodes
        self.lab.wait_directories(60)
        self.log("every agent's directory lists every other agent")
        if self.has("election"):
            self.checker = Checker(nodes)
            admin, term = self.checker.wait_agreement({n.name for n in nodes}, 60)
            self.log(f"admin {admin} in term {term}, agreed by all")
        self.probe = monitors.PubsubProbe(nodes, self.plan["pubsub_every"])
        self.coord = CoordinationLog()
        for n in nodes:
            self.attach(n)

    def attach(self, node):
        self.probe.attach(node)
        self.coord.attach(node)

    def watch_crashes(self):
        for n in self.lab.nodes:
            if n.agent and n.agent.proc.poll() is not None and n.down_since is None and n not in [c[0] for c in
                                                                                                   self.crashes]:
                self.crashes.append((n, n.agent.proc.returncode, n.agent.log_path))
                self.log(f"CRASH: {n.name} exited with {n.agent.proc.returncode} ({n.agent.log_path})")

    # -- phases

    def measure(self, label, seconds):
        t0 = time.monotonic()
        time.sleep(seconds)  # the schedule: a measured phase lasts this long
        t1 = time.monotonic()
        cpu = self.resources.cpu_percent(t0, t1)
        self.figures[f"cpu_{label}_pct"] = {"mean": round(sum(cpu.values()) / len(cpu), 2) if cpu else None,
                                            "max": round(max(cpu.values()), 2) if cpu else None}
        # RSS counts the shared libraries' pages in every agent; PSS shares them out, anon is the agent's own.
        for kind, field in (("rss", 1), ("pss", 3), ("anon", 4)):
            mem = self.resources.rss_max(t0, t1, field)
            self.figures[f"{kind}_{label}_mib"] = {
                "mean": round(sum(mem.values()) / len(mem) / 2**20, 1) if mem else None,
                "max": round(max(mem.values()) / 2**20, 1) if mem else None}
        self.log(f"{label}: CPU % of a core per agent {self.figures[f'cpu_{label}_pct']}, "
                 f"RSS MiB {self.figures[f'rss_{label}_mib']}, PSS MiB {self.figures[f'pss_{label}_mib']}, "
                 f"anonymous MiB {self.figures[f'anon_{label}_mib']}")
        return t0, t1

    def measure_idle(self):
        """The idle phase. electionlab.Checker's 50 ms polls of every agent are HTTP work the agents would
        not do idle: it polls once a second meanwhile (nothing changes the election then)."""
        interval = self.checker.interval if self.checker else None
        if self.checker:
            self.checker.interval = 1.0
        try:
            self.measure("idle", self.plan["idle"])
        finally:
            if self.checker:
                self.checker.interval = interval

    def default_timings_idle(self):
        """Phase 0 (unless --skip-default-timings): the cluster formed on the plugins' DEFAULT
        timings (election heartbeat 5 s, gossip heartbeat 1 s, availability every 30 s, backbeat's own
        tempo: what a user runs), then idle, measured with no test probe polling the agents. Then every
        agent stops (SIGTERM, exit 0) and the rest of the soak runs on the test timings."""
        lab, nodes = self.lab, self.lab.nodes
        lab.default_timings, saved = True, lab.agent_config
        lab.agent_config = {}
        try:
            for node in nodes:
                lab.start(node)
            lab.wait_directories(120, " (default timings)", interval=0.5)
            if self.has("election"):
                def one_admin():
                    seen = [n.election()[1] for n in nodes]
                    admins = {b.get("admin") for b in seen if isinstance(b, dict)}
                    return len(admins) == 1 and all(admins) and admins
                admin = wait_for(one_admin, 120, "one admin all agree on (default timings)", interval=0.5)
                self.log(f"default timings: admin {admin.pop()} agreed by all")
            self.measure("idle_default", self.plan["idle"])
            for node in nodes:
                node.ready = False
                node.down_since = time.monotonic()
                rc = node.agent.stop()
                if rc != 0:
                    raise AssertionError(f"{node.name} exited with {rc} on SIGTERM after the default-timings idle "
                                         f"({node.agent.log_path})")
        finally:
            lab.default_timings, lab.agent_config = False, saved

    def start_load(self):
        self.ai = monitors.AiLoad(self.lab.nodes, self.plan["ai_clients"])
        self.tasks = monitors.TaskLoad(self.lab.nodes, self.plan["task_every"], self.lab.tag)
        self.store = monitors.StoreLoad(self.lab.nodes, self.plan["store_every"], self.lab.tag)
        self.ai.start()
        for t in (self.probe.ticker, self.tasks.ticker, self.store.ticker):
            t.start()
        self.log("load started: AI chat clients, pubsub publications, task announcements, UCXI and DHT puts/gets")

    def burst(self):
        """Publications as fast as 4 clients get them accepted, for plan['burst'] s: messages/s."""
        import threading
        before = len(self.probe.published)
        stop = time.monotonic() + self.plan["burst"]
        t0 = time.monotonic()

        def pump():
            while time.monotonic() < stop:
                self.probe.publish_one()

        ts = [threading.Thread(target=pump) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.monotonic() - t0
        published = len(self.probe.published) - before
        with self.probe.lock:
            seqs = sorted(self.probe.published)[-published:] if published else []
        want = published * sum(1 for s in self.probe.streams if s.closed_at is None)
        got = lambda: sum(len(self.probe.delivered_at.get(q, [])) for q in seqs)  # noqa: E731
        try:
            wait_for(lambda: got() >= want, 30, "the burst's deliveries")
        except AssertionError:
            pass
        last = max((max(self.probe.delivered_at.get(q, [t0])) for q in seqs), default=t0)
        self.figures["pubsub_publish_per_s"] = round(published / dt, 1)
        self.figures["pubsub_deliveries_per_s"] = round(got() / max(last - t0, dt), 1)
        self.log(f"burst: {published} publications in {dt:.1f} s ({self.figures['pubsub_publish_per_s']}/s), "
                 f"{got()}/{want} deliveries ({self.figures['pubsub_deliveries_per_s']}/s over all subscribers)")

    def wait_healthy(self, nodes, bound, what):
        """Waits until every node's /health says healthy; returns the seconds it took."""
        t0 = time.monotonic()

        def bad():
            out = {}
            for n in nodes:
                status, body = n.get("/health")
                if status != 200 or body.get("status") != "healthy":
                    out[n.name] = {p: v.get("message") for p, v in (body.get("plugins") or {}).items()
                                   if not v.get("healthy")} if isinstance(body, dict) else body
            return out

        try:
            wait_for(lambda: not bad(), bound, what, interval=0.2)
        except AssertionError:
            raise AssertionError(f"{what}: not healthy within {scale(bound):.0f} s: {bad()}")
        return time.monotonic() - t0

    # -- faults

    def restart(self, node, what):
        self.disturb()
        self.lab.kill(node)
        killed = time.monotonic()
        self.log(f"kill -9 {node.name} ({what})")
        time.sleep(self.plan["down"])  # the schedule: how long it stays down
        started = time.monotonic()
        self.lab.start(node)
        ready = time.monotonic() - started
        took = self.wait_healthy([node], HEALTH_BOUND_S, f"{node.name} healthy after its restart")
        self.attach(node)
        self.settled()
        self.figures.setdefault("restart_to_healthy_s", []).append(round(ready + took, 2))
        self.log(f"{node.name} restarted ({started - killed:.1f} s down): ready {ready:.2f} s after its start, "
                 f"healthy {took:.2f} s later")

    def kill_follower(self):
        admin, _ = self.current_admin()
        others = [n for n in reversed(self.lab.nodes) if n.name != admin]
        node = others[self.round % len(others)]  # another one each round
        self.restart(node, "a follower")

    def current_admin(self):
        """(admin name, term) all agree on; (None, 0) without the election plugin."""
        if not self.checker:
            return None, 0
        return self.checker.wait_agreement({n.name for n in self.lab.nodes}, ELECTION_BOUND_S + 20)

    def kill_admin(self):
        if not self.checker:
            self.log("kill of the admin skipped: no election plugin")
            return
        names = {n.name for n in self.lab.nodes}
        admin, term = self.checker.wait_agreement(names, ELECTION_BOUND_S + 20)
        node = next(n for n in self.lab.nodes if n.name == admin)
        self.disturb()
        self.lab.kill(node)
        killed = time.monotonic()
        self.log(f"kill -9 {admin}, the admin of term {term}")
        new, new_term = self.checker.wait_agreement(names - {admin}, ELECTION_BOUND_S, min_term=term + 1)
        failover = time.monotonic() - killed
        self.figures.setdefault("admin_failover_s", []).append(round(failover, 2))
        self.log(f"{new} admin of term {new_term} {failover:.2f} s after the kill")
        time.sleep(max(0.0, self.plan["down"] - failover))
        self.lab.start(node)
        self.wait_healthy([node], HEALTH_BOUND_S, f"{admin} healthy after its restart")
        self.attach(node)
        a, t = self.checker.wait_agreement(names, ELECTION_BOUND_S, min_term=new_term)
        self.settled()
        self.log(f"{admin} back; {a} admin of term {t} for all")

    def partition(self):
        nodes = self.lab.nodes
        admin, term = self.current_admin()
        admin_node = next((n for n in nodes if n.name == admin), nodes[0])
        k = (len(nodes) - 1) // 2  # the minority: the admin and k-1 others
        others = [n for n in nodes if n is not admin_node]
        shift = self.round * (k - 1) % len(others)
        minority = [admin_node] + (others[shift:] + others[:shift])[:k - 1]
        majority = [n for n in nodes if n not in minority]
        names_min, names_maj = {n.name for n in minority}, {n.name for n in majority}
        self.disturb()
        self.lab.partition(minority, majority)
        cut = time.monotonic()
        if self.checker:
            self.checker.partition([names_min, names_maj])
        self.log(f"partition {sorted(names_min)} | {sorted(names_maj)} (the admin {admin} on the minority side)")
        if self.checker:
            new, new_term = self.checker.wait_agreement(names_maj, ELECTION_BOUND_S, min_term=term + 1)
            took = time.monotonic() - cut
            self.figures.setdefault("partition_majority_admin_s", []).append(round(took, 2))
            self.log(f"majority side: {new} admin of term {new_term} {took:.2f} s after the cut")
        time.sleep(self.plan["partition"])  # the schedule: how long the partition holds
        self.lab.heal()
        healed = time.monotonic()
        if self.checker:
            self.checker.heal()
            a, t = self.checker.wait_agreement({n.name for n in nodes}, ELECTION_BOUND_S + 20,
                                               what="one admin after the heal")
            took = time.monotonic() - healed
            self.figures.setdefault("heal_to_one_admin_s", []).append(round(took, 2))
            self.log(f"healed: {a} the one admin of term {t} for all {took:.2f} s after the heal")
        self.wait_healthy(nodes, HEALTH_BOUND_S, "every agent healthy after the heal")
        self.settled()
        sizes = {}
        for n in nodes:
            status, r = n.get("/api/v1/dht/routing")
            sizes[n.name] = r.get("peers") if status == 200 else status
        self.figures.setdefault("dht_routing_peers_after_heal", []).append(sizes)
        self.log(f"DHT routing table sizes after the heal: {sizes}")

    def nats_restart(self):
        if not self.has("backbeat"):
            self.log("NATS restart skipped: no backbeat plugin")
            return
        self.lab.nats.kill()
        self.log("nats-server killed")
        time.sleep(self.plan["nats_down"])  # the schedule: how long NATS stays down
        self.lab.nats.start()
        t = time.monotonic()
        took = self.wait_healthy(self.lab.nodes, HEALTH_BOUND_S, "every agent healthy after the NATS restart")
        took = time.monotonic() - t
        self.figures.setdefault("nats_restart_to_healthy_s", []).append(round(took, 2))
        self.log(f"nats-server back; every agent healthy {took:.2f} s later")

    def ai_swap(self):
        if not self.has("ai-openai"):
            self.log("AI provider swap skipped: no ai-openai plugin")
            return
        target = "ai-openai" if self.lab.binding == "ai-ollama" else "ai-ollama"
        start = time.monotonic()
        lines = self.lab.rebind(target)
        bad = {k: v for k, v in lines.items() if "reload complete" not in v}
        if bad:
            raise AssertionError(f"the reloads of the swap to {target} did not complete: {bad}")
        done = time.monotonic()
        self.swaps.append([start, done])
        self.log(f"chorus.ai.provider rebound to {target} by SIGHUP on {len(lines)} agents in {done - start:.2f} s")
        wait_for(lambda: any(r[0] > done and r[5] == 200 and r[6] == target for r in list(self.ai.results)), 30,
                 f"an answer from {target}")
        time.sleep(self.plan["after_swap"])  # load keeps running on the new binding
        self.swaps[-1][1] = time.monotonic()

    def replace_so(self):
        provider = self.lab.binding
        # The other build of ai-ollama (version 1.0.1-test) on even rounds when there is one, else a copy.
        v2 = os.environ.get("CHORUS_AI_PLUGIN_V2_DIR", "")
        source = None
        if provider == "ai-ollama" and v2 and self.round % 2 == 0:
            source = os.path.join(v2, "chorus-ai-ollama.so")
        start = time.monotonic()
        lines = {}
        for n in self.lab.nodes:
            if n.alive():
                lines[n.name] = self.lab.replace_provider_file(n, provider, source)
        bad = {k: v for k, v in lines.items() if "hot-swapped" not in v}
        self.swaps.append([start, time.monotonic()])
        if bad:
            raise AssertionError(f"replacing chorus-{provider}.so did not hot-swap it: {bad}")
        self.log(f"chorus-{provider}.so replaced on disk on {len(lines)} agents and hot-swapped by SIGHUP "
                 f"({next(iter(lines.values()))})")
        time.sleep(self.plan["after_swap"])
        self.swaps[-1][1] = time.monotonic()

    def fault_round(self):
        steps = (self.kill_follower, self.kill_admin, self.partition, self.nats_restart, self.ai_swap,
                 self.ai_swap, self.replace_so)
        for i, step in enumerate(steps):
            step()
            self.last_fault_end = time.monotonic()
            if i + 1 < len(steps):
                time.sleep(self.plan["settle"])  # the schedule: load runs between faults

    # -- the end

    def stop_load(self):
        self.ai.stop()
        for t in (self.probe.ticker, self.tasks.ticker, self.store.ticker):
            t.stop()
        self.log("load stopped")

    # -- run

    def run(self):
        ok = False
        try:
            self.setup()
            self.measure_idle()
            self.start_load()
            load_start = time.monotonic()
            self.measure("load", self.plan["load"])
            self.burst()
            end_by = self.t0 + self.minutes * 60 - (150 if self.long else 0)
            rounds = 0
            while True:
                self.fault_round()
                rounds += 1
                self.round = rounds
                if self.plan["rounds"] and rounds >= self.plan["rounds"]:
                    break
                if time.monotonic() > end_by:
                    break
            if self.long:
                time.sleep(self.plan["settle"])
            self.wait_healthy(self.lab.nodes, HEALTH_BOUND_S, "every agent healthy after the last fault")
            took = time.monotonic() - self.last_fault_end
            self.figures["healthy_after_last_fault_s"] = round(took, 2)
            self.verdict(f"every /health healthy within {HEALTH_BOUND_S} s of the last fault", True, f"{took:.1f} s")
            self.figures["fault_rounds"] = rounds
            self.measure("after_faults", 5)
            self.stop_load()
            self.check_crashes()
            self.check_election()
            self.check_ai()
            self.check_pubsub()
            self.check_tasks()
            self.check_ucxi()
            self.check_rss(load_start)
            self.dht_figures()
            ok = all(v["held"] is not False for v in self.invariants.values())
        except Exception as e:  # noqa: BLE001 - reported as the run's failure
            self.log(f"RUN FAILED: {e!r}\n{traceback.format_exc()}")
            self.verdict("the run completed its schedule", False, str(e)[:2000])
            ok = False
        return ok

    def save_coordination(self):
        """Every task message heard, in arrival order, for a post-mortem of a task verdict."""
        import harness
        path = os.path.join(harness.LOG_DIR, f"cluster-coordination-{os.getpid()}.jsonl")
        try:
            os.makedirs(harness.LOG_DIR, exist_ok=True)
            with open(path, "w") as f:
                for r in self.coord.messages():
                    if str(r.get("type", "")).startswith("task_"):
                        f.write(json.dumps({"t": round(r.get("t", 0), 3), "type": r["type"], "from": r["from"], "data": r["data"],
                                            "seen_by": sorted(r["seen_by"])}) + "\n")
            self.log(f"task messages saved to {path}")
        except OSError as e:
            self.log(f"could not save the task messages: {e!r}")

    def dump_hung_agents(self):
        """gdb backtraces of running agents whose /health does not answer (a hang), next to their logs."""
        import shutil
        import subprocess
        if not shutil.which("gdb") or not self.lab:
            return
        for n in self.lab.nodes:
            if n.agent and n.agent.proc.poll() is None and n.get("/health", timeout=5)[0] is None:
                out = n.agent.log_path + ".gdb.txt"
                with open(out, "w") as f:
                    subprocess.run(["gdb", "-p", str(n.pid), "-batch", "-ex", "thread apply all bt"], stdout=f,
                                   stderr=subprocess.STDOUT, timeout=120)
                self.log(f"{n.name} does not answer /health: its threads' backtraces are in {out}")

    def close(self):
        if any(v["held"] is False for v in self.invariants.values()):
            try:
                self.dump_hung_agents()
            except Exception as e:  # noqa: BLE001 - a diagnosis only
                self.log(f"could not take backtraces: {e!r}")
        for t in (getattr(self, "crash_watch", None), self.resources and self.resources.ticker):
            if t:
                t.stop()
        if self.checker:
            self.checker.stop()
        if self.coord:
            self.coord.close()
            self.save_coordination()
        if self.probe:
            self.probe.close()
        if self.lab:
            try:
                self.lab.close()  # SIGTERM, exit 0, no sanitizer report (harness.finish_agents)
                self.verdict("every agent exits 0 on SIGTERM with no sanitizer report", True)
            except AssertionError as e:
                self.verdict("every agent exits 0 on SIGTERM with no sanitizer report", False, str(e)[:3000])
        self.report()

    def resources_timeline(self, every=5.0):
        """{agent-incarnation: [[s since the start, RSS, PSS, anonymous MiB], ...]} every `every` s: which
        phase or fault the memory came with (set against "events")."""
        out = {}
        with self.resources.lock:
            for (name, inc), ss in sorted(self.resources.samples.items()):
                rows, last = [], None
                for t, rss, _ticks, pss, anon in ss:
                    if last is None or t - last >= every:
                        rows.append([round(t - self.t0, 1)] + [round(v / 2**20, 1) if v is not None else None
                                                               for v in (rss, pss, anon)])
                        last = t
                out[f"{name}-i{inc}"] = rows
        return out

    def report(self):
        elapsed = time.monotonic() - self.t0
        self.figures["elapsed_s"] = round(elapsed, 1)
        print("\n==== invariants")
        for k, v in self.invariants.items():
            state = "HELD" if v["held"] else "not checked" if v["held"] is None else "VIOLATED"
            print(f"  {state:11} {k}" + (f"\n              {v['detail']}" if v["detail"] else ""))
        print("==== figures")
        print(json.dumps(self.figures, indent=2))
        if self.args.results:
            with open(self.args.results, "w") as f:
                json.dump({"mode": "long" if self.long else "short", "agents": self.n,
                           "sanitized": self.args.sanitized, "invariants": self.invariants,
                           "figures": self.figures, "events": self.events,
                           "resources": self.resources_timeline() if self.resources else {}}, f, indent=2)
        if self.long and not self.args.no_docs and not self.args.sanitized:  # docs hold the normal build's figures
            import docs_writer
            docs_writer.write(self)
