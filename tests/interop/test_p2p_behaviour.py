"""What plugins/p2p/README.md promises and no other suite checks, on real agents over loopback (and the
machine's own non-loopback address for the per-IP limit): bootstrap dialling at start, the assignment
file re-read on SIGHUP, watermark trimming, dial back-off with a non-zero base, the per-IP connection
limit, and the per-stream send buffer answering CHORUS_E_BUSY to a writer whose peer does not read.
"""
import json
import os
import re
import socket
import time
import unittest

from harness import SLOW, Agent, missing
from p2ptest import (JS_ID_A, JS_ID_B, P2PAgent, P2PTestCase, YamuxClient, free_port, is_event, metric_value,
                     noise_dial, p2p_config_yaml, raw_connect, sodium_missing_reason, wait_metric)

KIB = 1024
REJECTED = "chorus_p2p_inbound_rejected_total"


def local_non_loopback_ipv4():
    """An IPv4 address of this machine outside 127/8 (the one a default route would use), or None. A
    connection from it to itself stays on the machine but is not loopback to the agent."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the source address
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def accepted(sock, timeout):
    """True if the agent accepted the connection (it speaks first: the multistream header), False if it
    closed it without a byte."""
    sock.settimeout(timeout)
    try:
        return bool(sock.recv(64))
    except ConnectionResetError:
        return False
    except socket.timeout:
        raise AssertionError("the agent neither answered nor closed a new connection")


class BehaviourCase(P2PTestCase):
    def agent_on(self, name, listen, p2p_extra=None, log_level="debug"):
        """An agent with the probe, listening on the given multiaddrs (p2p_agent listens on 127.0.0.1)."""
        state = self.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        text = p2p_config_yaml(state, listen=listen, p2p_extra=p2p_extra, log_level=log_level)
        agent = Agent(self.ws.write(f"{name}.yaml", text))
        self.agents.append(agent)
        agent.wait_ready()
        return agent


# ---- bootstrap_peers and assignment_file ------------------------------------------------------------

class Bootstrap(BehaviourCase):
    def test_bootstrap_peers_are_dialled_at_start(self):
        a = self.p2p_agent("a")
        # A peer that is not there comes first: its failure is logged and does not stop the agent or the
        # other dials.
        dead = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{JS_ID_A}"
        b = self.p2p_agent("b", p2p_extra={"bootstrap_peers": [dead, a.addr]})
        b.agent.wait_log(r"dialing 2 bootstrap peer\(s\) \(from config\)")
        a.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b's bootstrap dial arriving at a")
        b.wait_for_event(is_event("connected", a.peer_id, "outbound"), what="b connected to a")
        b.agent.wait_log(rf"connected to bootstrap peer {re.escape(a.addr)}")
        b.agent.wait_log(rf"Failed to connect to bootstrap peer {re.escape(dead)}")
        self.assertEqual(b.agent.http("/health/live")[0], 200)
        self.assertGreater(b.probe("ping", peer=a.peer_id)["rtt_us"], 0)

    def test_a_changed_bootstrap_list_is_dialled_on_sighup(self):
        a1 = self.p2p_agent("a1")
        a2 = self.p2p_agent("a2")
        b = self.p2p_agent("b", p2p_extra={"bootstrap_peers": [a1.addr]})
        a1.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b's bootstrap dial to a1")
        pid = b.pid()
        # Rewrite b's config with a2 added (same listen port, same state dir: only the list changes).
        text = p2p_config_yaml(self.ws.path("state-b"), listen=[f"/ip4/127.0.0.1/tcp/{b.p2p_port}"],
                               p2p_extra={"bootstrap_peers": [a1.addr, a2.addr]})
        self.ws.write("b.yaml", text)
        m = b.agent.reload()
        self.assertEqual(m.group(0), "reload complete", b.agent.log_text()[-3000:])
        a2.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b dialling a2 after SIGHUP")
        # Applied live: the same process, the plugin reconfigured rather than restarted, a1 still connected.
        self.assertEqual(b.pid(), pid)
        b.agent.wait_log(r"reconfigured plugin 'p2p'")
        self.assertFalse(any(e["type"] == "disconnected" and e["peer"] == a1.peer_id for e in b.events()),
                         b.events())

    # The config stays as it is, so the host calls the plugin's reload (not reconfigure) on SIGHUP.
    def test_assignment_file_is_reread_on_sighup(self):
        a1 = self.p2p_agent("a1")
        a2 = self.p2p_agent("a2")
        assignment = self.ws.write("assignment.json", json.dumps({"bootstrap_peers": [a1.addr]}))
        b = self.p2p_agent("b", p2p_extra={"assignment_file": assignment})
        b.agent.wait_log(r"dialing 1 bootstrap peer\(s\) \(from assignment\)")
        a1.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b dialling a1 from the assignment")
        self.assertFalse(any(e["peer"] == b.peer_id for e in a2.events()), "a2 is not in the assignment yet")

        # A new assignment: only the file changes, the agent's config stays as it is.
        self.ws.write("assignment.json.new", json.dumps({"bootstrap_peers": [a2.addr]}))
        os.replace(self.ws.path("assignment.json.new"), assignment)
        m = b.agent.reload()
        self.assertNotIn("failed", m.group(0), b.agent.log_text()[-3000:])
        a2.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b dialling a2 after SIGHUP")
        # a2 (the listener) can finish the upgrade before b does: ping once b holds the connection too.
        b.wait_for_event(is_event("connected", a2.peer_id, "outbound"), what="b connected to a2")
        self.assertGreater(b.probe("ping", peer=a2.peer_id)["rtt_us"], 0)


# ---- connection manager -------------------------------------------------------------------------------

@unittest.skipIf(sodium_missing_reason(), sodium_missing_reason() or "")
class UnusableAssignment(BehaviourCase):
    def test_an_unreadable_assignment_is_a_warning_and_the_configured_peers_are_dialled(self):
        a = self.p2p_agent("a")
        missing_file = self.ws.path("no-such-assignment.json")
        b = self.p2p_agent("b", p2p_extra={"assignment_file": missing_file, "bootstrap_peers": [a.addr]})
        b.agent.wait_log(r"assignment not used \(.*cannot read.*\); carrying on with the configured bootstrap peers")
        a.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b dialling its configured peer")
        self.assertEqual(b.agent.http("/health/ready")[0], 200)


class StatusLine(BehaviourCase):
    def test_the_connected_peer_count_is_logged_periodically(self):
        # The runtime logs its peer count every 60 s; 1 s here (status_interval_ms).
        a = self.p2p_agent("a", p2p_extra={"status_interval_ms": 1000})
        a.agent.wait_log(r"status: connected to 0 peer\(s\)")
        b = self.p2p_agent("b", p2p_extra={"bootstrap_peers": [a.addr], "status_interval_ms": 0})
        a.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b connecting to a")
        a.agent.wait_log(r"status: connected to 1 peer\(s\)")
        self.assertNotIn("status: connected", b.agent.log_text())  # 0 turns the line off


class Watermarks(BehaviourCase):
    HIGH, LOW = 3, 1

    def sessions_alive(self, sessions):
        """Which Python sessions still answer a ping (a trimmed one is closed by the agent)."""
        alive = []
        for y in sessions:
            y.noise.sock.settimeout(5 * SLOW)
            try:
                y.ping()
                alive.append(y)
            except (AssertionError, OSError, EOFError):
                pass
        return alive

    def test_connections_beyond_the_high_watermark_are_trimmed_to_the_low(self):
        port = free_port()  # the trim is logged at debug level: agent_on starts the agent at debug
        b = P2PAgent(self.agent_on("b", [f"/ip4/127.0.0.1/tcp/{port}"],
                                   {"limits": {"high_watermark": self.HIGH, "low_watermark": self.LOW,
                                               "grace_period_ms": 0, "max_connections": 20}}), port)
        # Each session is a peer of its own (a fresh identity).
        sessions = [YamuxClient(noise_dial(b.p2p_port)) for _ in range(self.HIGH)]
        self.addCleanup(lambda: [y.noise.sock.close() for y in sessions])
        # At the high watermark nothing is trimmed (the trim runs as each connection opens, so the last
        # ping's answer comes after any trim it caused).
        self.assertEqual(len(self.sessions_alive(sessions)), self.HIGH)
        self.assertEqual(len(b.get("/p2p/peers")[1]), self.HIGH)
        mark = b.agent.mark()
        sessions.append(YamuxClient(noise_dial(b.p2p_port)))  # one above the high watermark
        b.agent.wait_log(r"trimming connection to \S+ \(over the high watermark 3\)", start=mark)
        deadline = time.monotonic() + 10 * SLOW
        while len(b.get("/p2p/peers")[1]) != self.LOW:
            self.assertLess(time.monotonic(), deadline, f"/p2p/peers: {b.get('/p2p/peers')[1]}")
            b.post("/test/p2p/events", since=b.events_answer()["count"], wait_ms=200)
        self.assertEqual(len(self.sessions_alive(sessions)), self.LOW)
        self.assertEqual(len(re.findall(r"trimming connection to", b.agent.log_text())), self.HIGH + 1 - self.LOW)


    def test_connections_within_the_grace_period_are_not_trimmed(self):
        b = self.p2p_agent("b", p2p_extra={"limits": {"high_watermark": self.HIGH, "low_watermark": self.LOW,
                                                       "grace_period_ms": 600000, "max_connections": 20}})
        sessions = [YamuxClient(noise_dial(b.p2p_port)) for _ in range(self.HIGH + 2)]
        self.addCleanup(lambda: [y.noise.sock.close() for y in sessions])
        # Above the high watermark, but every connection is younger than the grace period: all stay.
        self.assertEqual(len(self.sessions_alive(sessions)), self.HIGH + 2)
        self.assertEqual(len(b.get("/p2p/peers")[1]), self.HIGH + 2)


class DialBackoff(BehaviourCase):
    # Whole seconds (the agent announces the wait rounded up to seconds), longer on sanitizer builds so a
    # slow HTTP round trip cannot outlast a back-off period.
    BASE_MS = 1000 * SLOW
    MAX_MS = 8 * BASE_MS
    BACKED_OFF = re.compile(r"failed recently; next attempt allowed in (\d+) s")

    def test_failed_dials_are_retried_with_a_growing_delay(self):
        b = self.p2p_agent("b", p2p_extra={"limits": {"dial_backoff_base_ms": self.BASE_MS,
                                                       "dial_backoff_max_ms": self.MAX_MS}})
        target = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{JS_ID_B}"  # nothing listens there: refused
        attempts = []   # monotonic time of each dial that reached TCP (and was refused)
        announced = []  # the back-off the agent announced after each of them, in seconds
        deadline = time.monotonic() + 20 * SLOW * SLOW
        while len(attempts) < 3 or len(announced) < 3:
            self.assertLess(time.monotonic(), deadline, f"attempts {attempts}, announced {announced}")
            t = time.monotonic()
            status, ans = b.post("/test/p2p/connect", target=target, timeout_ms=5000)
            self.assertNotEqual(status, 200, ans)
            m = self.BACKED_OFF.search(ans.get("error", ""))
            if m is None:
                self.assertIn("all addresses failed", ans.get("error", ""), ans)
                self.assertEqual(len(attempts), len(announced), "two real dials in a row: no back-off")
                attempts.append(t)
            elif len(announced) < len(attempts):
                announced.append(int(m.group(1)))
            # Pace the retries on the probe's event long-poll (no event comes; it returns after wait_ms).
            b.post("/test/p2p/events", since=b.events_answer()["count"], wait_ms=100)
        # 1 s after the first failure, 2 s after the second, 4 s after the third: doubling from the base.
        base_s = self.BASE_MS // 1000
        self.assertEqual(announced, [base_s, 2 * base_s, 4 * base_s])
        gaps = [attempts[1] - attempts[0], attempts[2] - attempts[1]]
        self.assertGreaterEqual(gaps[0], 0.9 * self.BASE_MS / 1000, gaps)
        self.assertGreaterEqual(gaps[1], 0.9 * 2 * self.BASE_MS / 1000, gaps)
        self.assertGreater(gaps[1], gaps[0], gaps)
        wait_metric(b, "chorus_p2p_dials_total", 3, 'result="failed"')


class PerIpLimit(BehaviourCase):
    def test_inbound_connections_per_remote_ip_are_limited_and_loopback_is_exempt(self):
        ip = local_non_loopback_ipv4()
        if ip is None:
            self.skipTest(missing("network", "this machine has no non-loopback IPv4 address to connect from"))
        port = free_port()
        agent = self.agent_on("b", [f"/ip4/0.0.0.0/tcp/{port}"], {"limits": {"max_connections_per_ip": 2}})
        b = P2PAgent(agent, port)
        before = metric_value(agent, REJECTED)
        mark = agent.mark()
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((ip, 0))  # the remote address the agent sees is `ip`, not 127.0.0.1
            s.connect((ip, port))
            socks.append(s)
        self.assertEqual([accepted(s, 5 * SLOW) for s in socks], [True, True, False])
        agent.wait_log(r"per-IP limit reached \(max_connections_per_ip 2\)", start=mark)
        wait_metric(b, REJECTED, before + 1)
        # Loopback is exempt: every local agent shares 127.0.0.1.
        local = [raw_connect(port) for _ in range(4)]
        socks.extend(local)
        self.assertEqual([accepted(s, 5 * SLOW) for s in local], [True] * 4)


# ---- per-stream send buffer -----------------------------------------------------------------------------

class SendBuffer(BehaviourCase):
    BUFFER = 64 * KIB
    CHUNK = 4 * KIB
    WINDOW = 256 * KIB  # yamux's initial stream window: what a peer that never reads can be sent

    def test_writes_beyond_the_send_buffer_to_a_peer_that_does_not_read_are_busy(self):
        a = self.p2p_agent("a", p2p_extra={"limits": {"stream_send_buffer": self.BUFFER}})
        b = self.p2p_agent("b")
        a.probe("connect", target=b.addr)

        # b's /chorus/hold/1.0.0 stops reading at the first bytes: the window fills, then the queue.
        r = a.probe("fill", peer=b.peer_id, protocol="/chorus/hold/1.0.0", bytes=8 * 1024 * KIB,
                    chunk=self.CHUNK, timeout_ms=int(1500 * SLOW))
        self.assertFalse(r["completed"], r)
        self.assertGreaterEqual(r["busy"], 1, r)
        # The first BUSY comes when the queue holds the buffer (writes from the network thread are not
        # sent until it returns, so nothing drains in between).
        self.assertGreaterEqual(r["first_busy_at"], self.BUFFER, r)
        self.assertLessEqual(r["first_busy_at"], self.BUFFER + self.CHUNK, r)
        # What the stalled stream took: at most one window in flight plus the buffer (plus the first
        # frame the reader consumed before pausing).
        self.assertGreaterEqual(r["written"], self.WINDOW, r)
        self.assertLess(r["written"], 2 * self.WINDOW + self.BUFFER + self.CHUNK, r)

        # A peer that reads: the same writer meets BUSY at the same mark, and on_writable lets it finish.
        r = a.probe("fill", peer=b.peer_id, protocol="/chorus/sink/1.0.0", bytes=4 * 1024 * KIB,
                    chunk=self.CHUNK, timeout_ms=int(30000 * SLOW))
        self.assertTrue(r["completed"], r)
        self.assertEqual(r["written"], 4 * 1024 * KIB)
        self.assertGreaterEqual(r["busy"], 1, r)
        self.assertLessEqual(r["first_busy_at"], self.BUFFER + self.CHUNK, r)


if __name__ == "__main__":
    unittest.main()
