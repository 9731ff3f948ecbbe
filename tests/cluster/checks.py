"""The end checks of the cluster soak (tests/cluster/scenario.py's Soak inherits them): each records a
verdict per invariant (README.md, What it proves) and the figures that go with it."""
import concurrent.futures
import statistics
import time
from urllib.parse import quote

from clusterlab import http_json
from harness import scale, wait_for

ELECTION_BOUND_S = 15     # a new admin agreed on this long after its loss (heartbeat timeout 1.2 s + rounds)
DELIVER_BOUND_S = 5       # a pubsub publication reaches every subscriber this fast while connected
RSS_GROWTH_BOUND = 0.5    # RSS of an agent that ran throughout grows at most 50 % (+ 8 MiB) after warm-up
RSS_GROWTH_SLACK = 8 << 20
QUIET_S = 6               # idle after the last completion: longer than a re-announcement takes


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))] if xs else None


class Checks:
    def check_crashes(self):
        self.verdict("no agent crashed", not self.crashes,
                     "; ".join(f"{n.name} status {rc} ({log})" for n, rc, log in self.crashes))

    def check_election(self):
        if not self.checker:
            self.verdict("no term with two admins", None, "no election plugin")
            return
        two = self.checker.terms_with_two_admins()
        self.verdict("no term with two admins", not two, f"{len(self.checker.observations)} observations"
                     if not two else f"terms {two}")
        try:
            a, t = self.checker.wait_agreement({n.name for n in self.lab.nodes}, ELECTION_BOUND_S)
            self.verdict("exactly one admin after the heal", True, f"{a}, term {t}")
        except AssertionError as e:
            self.verdict("exactly one admin after the heal", False, str(e)[:500])
        at_once = self.checker.two_admins_at_once()
        self.figures["two_admins_at_once_on_one_side"] = len(at_once)
        if at_once:
            self.log(f"note: two admins at once on one side (polling view): {at_once[:3]}")

    def check_ai(self):
        results = list(self.ai.results)
        failed = [r for r in results if r[5] != 200]
        running = [r for r in failed if r[3] == r[4]]  # the agent ran through the whole request
        in_swaps = [r for r in running if any(s <= r[1] and r[0] <= e for s, e in self.swaps)]
        swapped = [r for r in results if any(s <= r[1] and r[0] <= e for s, e in self.swaps)]
        self.verdict("no AI request fails during swaps", not in_swaps and len(swapped) > 0,
                     f"{len(swapped)} requests overlapped a swap, {len(in_swaps)} failed: "
                     f"{[r[2:] for r in in_swaps[:5]]}")
        self.verdict("no AI request to a running agent fails", not running,
                     f"{len(results)} requests, {len(failed)} failed, {len(failed) - len(running)} of them on an "
                     f"agent killed meanwhile; on running agents: {[r[2:] for r in running[:5]]}")
        providers = {}
        for r in results:
            if r[5] == 200:
                providers[r[6]] = providers.get(r[6], 0) + 1
        self.figures["ai_requests"] = {"total": len(results), "by_provider": providers}

    def check_tasks(self):
        accepted = dict(self.tasks.accepted)

        def announced():
            return {r["data"].get("task_id") for r in self.coord.messages("task_announcement")}

        def done():
            return set(self.coord.completions())

        try:
            wait_for(lambda: (announced() & set(accepted)) <= done(), 120, "a completion of every announced task",
                     interval=0.5)
        except AssertionError:
            pass
        last = [len(self.coord.order)]
        quiet_until = [time.monotonic() + QUIET_S]

        def quiet():  # no task message for QUIET_S
            n = len(self.coord.messages("task_announcement")) + len(self.coord.messages("task_complete"))
            if n != last[0]:
                last[0] = n
                quiet_until[0] = time.monotonic() + QUIET_S
            return time.monotonic() >= quiet_until[0]
        last[0] = -1
        wait_for(quiet, 60 + QUIET_S, "the task messages to stop", interval=0.2)
        ann = announced() & set(accepted)
        comp = self.coord.completions()
        never_announced = sorted(set(accepted) - announced())
        not_done = sorted(ann - set(comp))
        twice = {t: [(c.get("agent_id"), c.get("attempt")) for c in comp[t]] for t in ann if len(comp.get(t, [])) > 1}
        failed = [r["data"] for r in self.coord.messages("task_complete") if r["data"].get("status") != "completed"
                  and r["data"].get("task_id") in accepted]
        self.verdict("every announced task completed exactly once", not not_done and not twice,
                     f"{len(accepted)} accepted, {len(ann)} announced, {len(not_done)} never completed "
                     f"{not_done[:10]}, {len(twice)} completed more than once {dict(list(twice.items())[:5])}; "
                     f"{len(failed)} failure reports; accepted but never announced: {never_announced[:10]}")
        self.figures["tasks"] = {"accepted": len(accepted), "announced": len(ann), "completed": len(comp),
                                 "refused": len(self.tasks.refused)}

    def check_pubsub(self):
        dups = self.probe.duplicates()
        missing = self.probe.missing(self.connected, self.plan["settle"], DELIVER_BOUND_S)
        checked = self.probe.checked(self.connected)
        self.verdict("pubsub: every publication while connected delivered everywhere", checked > 0 and not missing,
                     f"{checked} of {len(self.probe.published)} publications made while connected; "
                     f"{len(missing)} (publication, subscriber) misses {missing[:10]}; "
                     f"{len(self.probe.publish_failures)} publish calls refused")
        self.verdict("pubsub: no duplicate deliveries", not dups, f"{dups[:10]}")

    def check_ucxi(self):
        acked = list(self.store.ucxi_acked)
        nodes = self.lab.nodes

        def read(item, node):
            _, _, address, _, content = item
            status, env = http_json(node.url("/ucxi/v1/get?address=" + quote(address, safe="")), timeout=30)
            ok = status == 200 and env.get("response", {}).get("data", {}).get("content") == content
            return ok, (address, node.name, status, str(env)[:200])

        pending = [(i, n) for i in acked for n in nodes]
        deadline = time.monotonic() + scale(45)
        bad = []
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            while pending:
                outcomes = list(pool.map(lambda p: (p, read(*p)), pending))
                bad = [o for _, o in outcomes if not o[0]]
                pending = [p for p, o in outcomes if not o[0]]
                if not pending or time.monotonic() > deadline:
                    break
                time.sleep(1)  # a read that failed is retried once a second until the deadline
        calm = [p for p in pending if self.connected(p[0][0])]
        self.verdict("every UCXI put acknowledged while connected readable from every agent after the heal",
                     not calm and len(acked) > 0,
                     f"{sum(1 for i in acked if self.connected(i[0]))} puts x {len(nodes)} agents; unreadable: "
                     f"{len(calm)} {[(p[0][2], p[1].name) for p in calm[:5]]}")
        during = [i for i in acked if not self.connected(i[0])]
        bad_during = {p[0][2] for p in pending if not self.connected(p[0][0])}
        self.figures["ucxi_puts"] = {"acknowledged": len(acked), "refused": len(self.store.ucxi_failed),
                                     "acked_during_faults": len(during),
                                     "of_those_unreadable_somewhere_after_heal": len(bad_during)}
        if pending:
            self.log(f"UCXI reads that failed: {len(pending)}, e.g. {bad[:3]}")
            for n in nodes:
                status, r = n.get("/api/v1/dht/routing")
                self.log(f"  {n.name} DHT routing table: {r.get('peers') if status == 200 else (status, r)} peers")

    def check_rss(self, load_start):
        """RSS growth of every agent incarnation that lived long enough, from its warm-up to its last
        sample: the first incarnations warm up with the first load phase, a restarted one during the
        first load-phase length of its life. A long run restarts every agent at some point, so growth
        is judged per incarnation, not only over agents that ran from the start."""
        warm_t = load_start + self.plan["load"]
        min_span = 3 * self.plan["load"]
        grew = {}
        for key, (first, last) in self.resources.lives().items():
            t0 = max(warm_t, first + self.plan["load"])
            if last - t0 >= min_span:
                grew[key] = (self.resources.rss_of(key, t0), self.resources.rss_of(key, last))
        over = {f"{k[0]}#{k[1]}": f"{a / 2**20:.1f}->{b / 2**20:.1f} MiB" for k, (a, b) in grew.items()
                if b > a * (1 + RSS_GROWTH_BOUND) + RSS_GROWTH_SLACK}
        growth = [(b - a) / 2**20 for a, b in grew.values()]
        self.figures["rss_growth_mib"] = {"max": round(max(growth), 1) if growth else None,
                                          "mean": round(statistics.mean(growth), 1) if growth else None}
        seen = (f"{len(grew)} incarnations lived {min_span} s past their warm-up; "
                f"growth MiB {self.figures['rss_growth_mib']}")
        if self.args.sanitized:  # ASan's quarantine holds freed memory back: growth says nothing about leaks
            self.verdict("RSS growth bounded", None, f"sanitizer build, ASan's quarantine keeps freed memory; {seen}")
            return
        self.verdict("RSS growth bounded", bool(grew) and not over,
                     f"{seen}; over {int(RSS_GROWTH_BOUND * 100)} % + {RSS_GROWTH_SLACK >> 20} MiB: {over}")

    def dht_figures(self):
        gets = list(self.store.dht_gets)
        ok = [dt for t, dt, s in gets if s == 200]
        quiet = [dt for t, dt, s in gets if s == 200 and self.connected(t)]
        self.figures["dht_get_ms"] = {"count": len(ok), "p50": round(1000 * statistics.median(ok), 1) if ok else None,
                                      "p95": round(1000 * p95(ok), 1) if ok else None,
                                      "p95_connected": round(1000 * p95(quiet), 1) if quiet else None}
        self.figures["dht_failures"] = len(self.store.dht_failed)
        self.log(f"DHT get ms {self.figures['dht_get_ms']}, {len(self.store.dht_failed)} failures "
                 f"{self.store.dht_failed[:3]}")
