"""Five chorus-agents (p2p + gossip + election, + mdns when built), each in its own network namespace on one
bridge, with short timings (a heartbeat every 300 ms, an election after 1.2 s without one) and
cluster_size 5 (a quorum of 3):

  * one admin, agreed on by all five, within a bounded time of start;
  * kill -9 of the admin: the four others elect a new admin after the heartbeat timeout;
  * a 3|2 partition with the admin on the minority side (blackhole routes between the namespaces):
    the minority's admin steps down, the majority elects exactly one admin, the minority never
    has one; after the heal there is one admin and the minority has adopted the higher term;
  * the manual trigger: refused (409) inside the stability window, accepted (202) after it, and the
    triggering agent becomes the admin of the new term.

A checker polls every agent's GET /api/v1/election all along (electionlab.Checker) and each test ends
by asserting on everything it recorded: no term ever had two admins, and no side of a partition (the
whole cluster when there is none) had two admins at once.

Peers: agent i dials agents 0..i-1 at start (a full mesh); mdns re-finds peers after the heal.
Needs root and `ip netns` (Skipped otherwise; failed under CI). The agents end by SIGTERM with their
exit status checked (netns_lab.NetnsLab.close); kill -9 is used on the admin of the kill test only.
"""
import time
import unittest

import electionlab
from electionlab import FAST_GOSSIP, FAST_TIMING, Checker, NetnsElectionLab
from harness import scale

N_AGENTS = 5
TIMEOUT_S = FAST_TIMING["heartbeat_timeout_ms"] / 1000
# Upper bound of one election once it is due: the largest jitter, the vote window and one failed
# round (candidacy timeout + jitter) on top of it, with room for a loaded machine.
ROUND_S = (FAST_TIMING["max_jitter_ms"] + FAST_TIMING["vote_window_ms"] + FAST_TIMING["candidacy_timeout_ms"]) / 1000
ELECTION_BOUND_S = TIMEOUT_S + 3 * ROUND_S + 2.0
FIRST_ADMIN_BOUND_S = FAST_TIMING["discovery_timeout_ms"] / 1000 + 3 * ROUND_S + 4.0
MDNS_CONFIG = {"query_interval_ms": 1000, "interface_scan_ms": 1000, "ipv6": False}


class FiveAgentsInNamespaces(unittest.TestCase):
    # The manual trigger's stability window: long enough that the first trigger lands inside it on a
    # loaded machine (the test waits it out).
    MANUAL_MIN_TERM_MS = 8000
    TIMING_FOR = {"test_the_manual_trigger": {"min_term_ms": MANUAL_MIN_TERM_MS}}

    def setUp(self):
        use_mdns = bool(electionlab.MDNS_PLUGIN_DIR)
        for reason in (electionlab.agent_missing_reason(mdns=use_mdns), electionlab.netns_missing_reason()):
            if reason:
                self.skipTest(reason)
        self.lab = NetnsElectionLab()
        self.addCleanup(self.lab.close)
        self.checker = None
        config = dict(FAST_TIMING, cluster_size=N_AGENTS, **self.TIMING_FOR.get(self._testMethodName, {}))
        self.started = time.monotonic()
        agents = []
        for _ in range(N_AGENTS):
            agents.append(self.lab.start_agent(bootstrap=list(agents), election=config, gossip=FAST_GOSSIP,
                                               mdns=MDNS_CONFIG if use_mdns else None))
        self.agents = {a.name: a for a in agents}
        self.checker = Checker(agents)
        self.addCleanup(self.checker.stop)  # runs before lab.close (cleanups are last in, first out)

    def tearDown(self):
        if self.checker is not None:
            self.checker.report(self)

    def agreement(self, names=None, timeout=ELECTION_BOUND_S, **kw):
        return self.checker.wait_agreement(names or set(self.agents), timeout, **kw)

    def test_one_admin_within_a_bounded_time_of_start(self):
        admin, term = self.agreement(timeout=FIRST_ADMIN_BOUND_S)
        elapsed = time.monotonic() - self.started
        print(f"\nfirst admin {admin} in term {term}, agreed by all {N_AGENTS} agents {elapsed:.1f}s after the "
              f"first start (bound {scale(FIRST_ADMIN_BOUND_S):.1f}s after the last)")
        self.assertGreaterEqual(term, 1)
        body = self.agents[admin].state()
        self.assertEqual(body["state"], "admin")
        self.assertEqual(body["admin"], self.agents[admin].peer_id)
        self.assertEqual(body["quorum"], 3)
        self.assertEqual(body["cluster_size"], N_AGENTS)
        self.assertEqual({m["id"] for m in body["members"]}, {a.peer_id for a in self.agents.values()},
                         "the admin hears every member")
        # The reign holds: ten heartbeat intervals later the same admin, the same term, everywhere.
        hold_until = time.monotonic() + 10 * FAST_TIMING["heartbeat_interval_ms"] / 1000
        self.checker.wait(lambda latest: time.monotonic() >= hold_until, 10, "ten heartbeat intervals")
        self.assertEqual(self.agreement(timeout=1), (admin, term), "the admin or the term changed while idle")
        self.assertEqual(self.agents[admin].metric("chorus_election_is_admin"), 1)
        self.assertEqual(self.agents[admin].metric("chorus_election_term"), term)

    def test_kill_9_of_the_admin_elects_a_new_admin_after_the_timeout(self):
        admin, term = self.agreement(timeout=FIRST_ADMIN_BOUND_S)
        survivors = set(self.agents) - {admin}
        self.checker.remove(admin)
        killed_at = time.monotonic()
        self.agents[admin].agent.kill()
        new_admin, new_term = self.agreement(survivors, min_term=term + 1)
        failover = time.monotonic() - killed_at
        print(f"\nadmin {admin} (term {term}) killed; {new_admin} admin of term {new_term} after {failover:.2f}s")
        self.assertNotEqual(new_admin, admin)
        # Nobody may take over before the followers' heartbeat timeout ran out (a little slack for the
        # time between the admin's last heartbeat and the kill).
        self.assertGreaterEqual(failover, TIMEOUT_S - FAST_TIMING["heartbeat_interval_ms"] / 1000)
        self.assertLessEqual(failover, scale(ELECTION_BOUND_S))
        triggers = sum(self.agents[n].metric("chorus_election_triggers_total", 'trigger="heartbeat_timeout"')
                       for n in survivors)
        self.assertGreaterEqual(triggers, 1, "the election was not counted as a heartbeat timeout")

    def test_a_3_2_partition_and_its_heal(self):
        admin, term = self.agreement(timeout=FIRST_ADMIN_BOUND_S)
        # The admin goes to the minority side: it must step down there, and the majority must elect.
        others = sorted(set(self.agents) - {admin})
        minority = {admin, others[0]}
        majority = set(others[1:])
        self.lab.partition([self.agents[n] for n in minority], [self.agents[n] for n in majority])
        self.checker.partition([minority, majority])
        cut = self.checker.now()

        maj_admin, maj_term = self.agreement(majority, min_term=term + 1)
        self.assertIn(maj_admin, majority)
        # The minority's admin loses its quorum within the heartbeat timeout; then neither minority
        # agent is admin, and it stays so for several timeouts (candidacies need a quorum heard).
        self.checker.wait(lambda latest: all(n in latest and latest[n].state != "admin" for n in minority),
                          ELECTION_BOUND_S, "the minority's admin to step down")
        stepped = self.checker.now()
        self.assertLessEqual(stepped - cut, scale(TIMEOUT_S + 2.0), "the minority's admin kept its reign too long")
        watch_until = time.monotonic() + 4 * TIMEOUT_S
        self.checker.wait(lambda latest: time.monotonic() >= watch_until, 10, "four heartbeat timeouts")
        for o in self.checker.observations_of(minority, since=stepped):
            self.assertNotEqual(o.state, "admin", f"an admin on the minority side: {o}")
            self.assertLess(o.term, maj_term + 1, f"the minority raised its term without a quorum: {o}")
        # The majority still has one admin (the checker holds every term to one); on a loaded machine a
        # late heartbeat may legitimately have elected another in a later term.
        maj_admin, maj_term = self.agreement(majority, min_term=maj_term)
        self.assertIn(maj_admin, majority)
        self.assertGreaterEqual(self.agents[admin].metric("chorus_election_triggers_total", 'trigger="quorum_loss"'), 1)
        minority_term = max(o.term for o in self.checker.observations_of(minority, since=stepped))

        self.lab.heal()
        self.checker.heal()
        healed_admin, healed_term = self.agreement(set(self.agents), timeout=ELECTION_BOUND_S + 20,
                                                   min_term=maj_term, what="one admin after the heal")
        print(f"\npartition: {admin} (term {term}) stepped down on the minority side, {maj_admin} admin of term "
              f"{maj_term} on the majority side; after the heal {healed_admin} admin of term {healed_term}, "
              f"minority term {minority_term} -> {healed_term}")
        self.assertGreaterEqual(healed_term, maj_term)
        self.assertGreater(healed_term, minority_term, "the minority did not adopt the higher term")
        for n in minority:
            self.assertEqual(self.agents[n].state()["term"], healed_term)

    def test_the_manual_trigger(self):
        admin, term = self.agreement(timeout=FIRST_ADMIN_BOUND_S)
        elected_at = time.monotonic()
        follower = sorted(set(self.agents) - {admin})[0]
        # Inside the stability window (min_term_ms after the admin's term began): refused.
        status, body = self.agents[follower].trigger()
        self.assertEqual(status, 409, body)
        self.assertIn("error", body)
        self.assertEqual(self.agreement(timeout=1), (admin, term), "a refused trigger changed the admin")
        # After the window: accepted with the new term, and the triggering agent (the only candidate,
        # without jitter) becomes its admin.
        window_end = elected_at + self.MANUAL_MIN_TERM_MS / 1000 + 0.2
        self.checker.wait(lambda latest: time.monotonic() >= window_end, 10, "the end of the stability window")
        status, body = self.agents[follower].trigger()
        self.assertEqual(status, 202, body)
        self.assertGreater(body["term"], term)
        new_admin, new_term = self.agreement(min_term=body["term"])
        self.assertEqual(new_admin, follower)
        self.assertEqual(self.agents[follower].metric("chorus_election_triggers_total", 'trigger="manual"'), 1)
        self.assertGreaterEqual(self.agents[admin].metric("chorus_election_admin_changes_total"), 2)


if __name__ == "__main__":
    unittest.main()
