"""What plugins/backbeat/README.md promises and the other suites do not check, against a real
nats-server: subject_prefix, signing_key_file, the reconnect back-off (observed as the agent's
connection attempts on the NATS port while the server is away) and a tempo change by a real SIGHUP."""
import os
import re
import socket
import threading
import time
import unittest

from harness import SLOW, Agent
from natsutil import CLUSTER, BackbeatTestCase, backbeat_yaml, validate_claim, validate_frame
from test_backbeat_basic import ed25519_verify, seed_public_key_b64


def beat_frames(client, prefix="backbeat"):
    return [m.json() for m in client.select(lambda m: m.subject == f"{prefix}.beat.{CLUSTER}")]


def wait_metrics(agent, patterns, timeout=10):
    """Polls /metrics until every regex in patterns matches."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        _, text, _ = agent.http("/metrics")
        missing = [p for p in patterns if not re.search(p, text)]
        if not missing:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics never matched {missing}:\n{text}")
        time.sleep(0.05)  # a poll interval, not a wait for the outcome


class SubjectPrefix(BackbeatTestCase):
    def test_frames_and_claims_use_the_configured_prefix(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub(">")  # everything, so anything on the default prefix would be seen too
        pulse = self.backbeat_agent("pfx-pulse", srv.url, pulse=True, driver=False, subject_prefix="bbx")
        listener = self.backbeat_agent("pfx-listener", srv.url, subject_prefix="bbx")
        listener.wait_log(r"connected to NATS")
        self.assertEqual(self.drive(listener, "start", id="prefixed-op", beats=50)["status"], 0)
        # The listener hears the pulse on bbx.beat.<cluster> (remote beats) and claims on bbx.status.
        claim = sub.wait_msg(lambda m: m.subject == f"bbx.status.{CLUSTER}.pfx-listener" and
                             m.json().get("task_id") == "prefixed-op" and "beats_passed" in m.json()["metadata"],
                             what="a claim of a pulsed beat on bbx.status")
        validate_claim(self, claim.json(), "pfx-listener")
        sub.wait(lambda: len(beat_frames(sub, "bbx")) >= 5, what="5 frames on bbx.beat")
        for f in beat_frames(sub, "bbx"):
            validate_frame(self, f)
        _, metrics, _ = listener.http("/metrics")
        self.assertRegex(metrics, r'chorus_backbeat_beats_total\{source="remote"\} [1-9]')
        sub.flush()
        stray = [m.subject for m in sub.select(lambda m: not m.subject.startswith("bbx.")
                                               and not m.subject.startswith("_INBOX."))]
        self.assertEqual(stray, [], "messages outside the configured prefix")
        self.assertEqual(listener.stop(), 0)
        self.assertEqual(pulse.stop(), 0)


class SigningKeyFile(BackbeatTestCase):
    SEED = "33" * 32

    def test_claims_are_signed_with_the_key_in_the_file(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub(f"backbeat.status.{CLUSTER}.signer")
        key_file = self.ws.write("backbeat.key", self.SEED + "\n")  # surrounding whitespace is trimmed
        os.chmod(key_file, 0o600)
        agent = self.backbeat_agent("signer", srv.url, signing_key_file=key_file)
        agent.wait_log(r"connected to NATS")
        self.assertEqual(self.drive(agent, "start", id="signed-op", beats=5)["status"], 0)
        m = sub.wait_msg(lambda m: m.json().get("task_id") == "signed-op", what="a claim of signed-op")
        self.assertEqual(m.headers.get("Backbeat-Public-Key"), seed_public_key_b64(self.SEED), m.headers)
        self.assertTrue(ed25519_verify(self.SEED, m.headers["Backbeat-Signature"], m.data))
        self.assertFalse(ed25519_verify("11" * 32, m.headers["Backbeat-Signature"], m.data))
        self.assertEqual(agent.stop(), 0)

    def test_unreadable_key_file_is_a_clear_error(self):
        missing = self.ws.path("no-such.key")
        agent = self.backbeat_agent("nokey", "nats://127.0.0.1:1", driver=False, signing_key_file=missing)
        _, health = agent.http_json("/health")
        self.assertEqual(health["plugins"]["backbeat"]["state"], "failed")
        self.assertIn(f"signing_key_file: cannot read {missing}", health["plugins"]["backbeat"]["message"])


class AttemptRecorder:
    """A TCP listener on the NATS port while nats-server is away: it records when the agent tries to
    connect and closes each connection at once (a NATS client then fails that attempt and backs off)."""

    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.times = []
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = time.monotonic()
            conn.close()
            with self.cond:
                self.times.append(t)
                self.cond.notify_all()

    def wait_attempts(self, n, timeout):
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while len(self.times) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(self.times)} connection attempts within {timeout * SLOW}s")
                self.cond.wait(remaining)
            return list(self.times)

    def close(self):
        # shutdown first: it wakes the thread blocked in accept(), which otherwise keeps the port listening
        # after close() and nats-server could not bind it.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ReconnectBackoff(BackbeatTestCase):
    WAIT_MS, WAIT_MAX_MS = 100, 1600

    def test_reconnects_back_off_exponentially_and_recover(self):
        srv = self.nats()
        agent = self.backbeat_agent("retrier", srv.url, pulse=True, reconnect_wait_ms=self.WAIT_MS,
                                    reconnect_wait_max_ms=self.WAIT_MAX_MS)
        agent.wait_log(r"connected to NATS")
        port = srv.port
        mark = agent.mark()
        srv.kill()
        recorder = AttemptRecorder(port)
        self.addCleanup(recorder.close)
        agent.wait_log(r"disconnected from NATS", start=mark)
        # While disconnected: not healthy, and the plugin says why.
        _, health = agent.http_json("/health")
        self.assertFalse(health["plugins"]["backbeat"]["healthy"], health)
        self.assertFalse(self.bb_health(agent)["connected"])
        # 100, 200, 400, 800, 1600, 1600 ms (+ up to 10 % jitter) between attempts.
        times = recorder.wait_attempts(6, timeout=15)
        gaps = [b - a for a, b in zip(times, times[1:])]
        # Attempts the recorder missed (before it listened) only shift the sequence: it still grows.
        for earlier, later in zip(gaps, gaps[1:]):
            self.assertGreaterEqual(later, 0.8 * earlier, f"the delay shrank: {gaps}")
        self.assertGreaterEqual(gaps[-1], 3 * gaps[0], f"no exponential growth: {gaps}")
        self.assertGreaterEqual(gaps[-1], 0.9 * self.WAIT_MAX_MS / 1000 / 2, gaps)
        # Bounded by reconnect_wait_max_ms (+10 % jitter and a loaded machine's slack).
        self.assertLessEqual(max(gaps), 1.1 * self.WAIT_MAX_MS / 1000 + 0.5 * SLOW, gaps)

        recorder.close()
        mark = agent.mark()
        self.nats(port=port)
        agent.wait_log(r"reconnected to NATS", start=mark, timeout=30)
        h = self.bb_health(agent)
        self.assertTrue(h["connected"])
        self.assertEqual(h["reconnect_count"], 1)
        # The plugin exports its metrics once a second: poll them (with a deadline).
        wait_metrics(agent, [r"chorus_backbeat_reconnects_total 1\b", r"chorus_backbeat_connected 1\b"])
        self.assertEqual(agent.stop(), 0)


class TempoBySighup(BackbeatTestCase):
    def test_a_new_tempo_is_applied_live_in_steps(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub(f"backbeat.beat.{CLUSTER}")
        config = {"cluster_id": CLUSTER, "agent_id": "tempo", "nats_url": srv.url, "tempo_bpm": 600,
                  "bar_length": 4, "reconnect_wait_ms": 100, "reconnect_wait_max_ms": 500, "pulse": True}
        host_extra = {"state_dir": self.ws.path("state-tempo")}
        path = self.ws.write("tempo.yaml", backbeat_yaml(self.ws, config, driver=False, host_extra=host_extra))
        agent = Agent(path)
        self.agents.append(agent)
        agent.wait_ready()
        sub.wait(lambda: len(beat_frames(sub)) >= 4, what="frames at 600 BPM")
        self.assertTrue(all(f["tempo_bpm"] == 600 for f in beat_frames(sub)), beat_frames(sub))
        pid = agent.proc.pid

        config["tempo_bpm"] = 720
        self.ws.write("tempo.yaml", backbeat_yaml(self.ws, config, driver=False, host_extra=host_extra))
        m = agent.reload()
        self.assertEqual(m.group(0), "reload complete", agent.log_text()[-3000:])
        agent.wait_log(r"tempo_bpm reconfigured to 720 BPM")
        agent.wait_log(r"reconfigured plugin 'backbeat'")  # applied in place, not by a restart
        sub.wait(lambda: any(f["tempo_bpm"] == 720 for f in beat_frames(sub)), timeout=30,
                 what="a frame at 720 BPM")
        self.assertEqual(agent.proc.pid, pid)
        frames = beat_frames(sub)
        tempos = [f["tempo_bpm"] for f in frames]
        # Never more than 10 % at once, only on downbeats, and 660 on the way (600 -> 660 -> 720).
        changes = [(a, b, f) for a, b, f in zip(tempos, tempos[1:], frames[1:]) if a != b]
        self.assertEqual([(a, b) for a, b, _ in changes], [(600, 660), (660, 720)], tempos)
        for _, _, f in changes:
            self.assertTrue(f["downbeat"], f)
        self.assertEqual(tempos, sorted(tempos))
        sub.wait(lambda: self.bb_health(agent)["current_tempo"] == 720, what="health at 720 BPM")
        self.assertNotIn("tempo_target", self.bb_health(agent))
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
