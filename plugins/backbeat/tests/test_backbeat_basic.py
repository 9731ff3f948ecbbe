"""backbeat against a real nats-server: pulse + listener agents, claims validated field by field,
operation lifecycle incl. failure and budget overrun, bad input, disabled and unreachable BACKBEAT."""
import base64
import ctypes
import ctypes.util
import json
import re
import subprocess
import time
import unittest

from harness import wait_for
from natsutil import CLUSTER, VERIFY, BackbeatTestCase, free_port, validate_claim, validate_frame


def _sodium():
    """libsodium through ctypes: Python's stdlib has no Ed25519, and the key derivation and check must
    not go through the plugin's own code."""
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    if lib.sodium_init() < 0:
        raise RuntimeError("sodium_init failed")
    return lib


def seed_public_key(seed_hex):
    """The Ed25519 public key (32 bytes) of a 32-byte seed given in hex."""
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
    if _sodium().crypto_sign_seed_keypair(pk, sk, bytes.fromhex(seed_hex)) != 0:
        raise RuntimeError("crypto_sign_seed_keypair failed")
    return pk.raw


def seed_public_key_b64(seed_hex):
    return base64.b64encode(seed_public_key(seed_hex)).decode()


def ed25519_verify(seed_hex, signature_b64, payload):
    """True iff signature_b64 is an Ed25519 signature over payload by the key of seed_hex."""
    sig = base64.b64decode(signature_b64)
    if len(sig) != 64:
        return False
    return _sodium().crypto_sign_verify_detached(sig, payload, ctypes.c_ulonglong(len(payload)),
                                                 seed_public_key(seed_hex)) == 0


class PulseAndListener(BackbeatTestCase):
    def test_claims_and_frames_are_schema_valid_and_track_the_lifecycle(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub("backbeat.>")
        seed = "11" * 32
        pulse = self.backbeat_agent("pulse-a", srv.url, pulse=True, driver=False)
        listener = self.backbeat_agent("listener-b", srv.url, signing_key=seed)
        listener.wait_log(r"connected to NATS")

        # Frames from the pulse, every one schema-valid, consecutive, downbeat each 8 beats.
        sub.wait(lambda: len(sub.select(lambda m: m.subject == f"backbeat.beat.{CLUSTER}")) >= 12, what="12 frames")
        frames = [m.json() for m in sub.select(lambda m: m.subject == f"backbeat.beat.{CLUSTER}")]
        for f in frames:
            validate_frame(self, f)
        idx = [f["beat_index"] for f in frames]
        self.assertEqual(idx, list(range(idx[0], idx[0] + len(idx))))
        for f in frames:
            self.assertEqual(f["downbeat"], f["beat_index"] % 8 == 0)

        # Lifecycle: start, phases, complete.
        r = self.drive(listener, "start", id="election-leader-2025", type="election", beats=4,
                       data='{"candidates":3}')
        self.assertEqual(r["status"], 0, r)
        self.assertEqual(self.drive(listener, "start", id="election-leader-2025", type="election")["status"], -14)
        self.assertEqual(self.drive(listener, "update", id="election-leader-2025", phase=1, peers=2)["status"], 0)
        self.assertEqual(self.drive(listener, "update", id="nope", phase=1)["status"], -2)
        sub.wait(lambda: len([c for c in self.claims_for(sub, "listener-b", "election-leader-2025")
                              if c.get("beats_left") == 0]) >= 2, what="claims down to beats_left 0")
        claims = self.claims_for(sub, "listener-b", "election-leader-2025")
        for c in claims:
            validate_claim(self, c, "listener-b")
            self.assertEqual(c["state"], "executing")
        beats = [c["beat_index"] for c in claims]
        self.assertEqual(beats, sorted(beats))
        lefts = [c["beats_left"] for c in claims]
        self.assertEqual(lefts, sorted(lefts, reverse=True))
        self.assertEqual(claims[0]["beats_left"], 4)
        self.assertEqual(claims[0]["progress"], 0.0)
        self.assertEqual(claims[0]["metadata"]["data"], {"candidates": 3})
        # Budget overrun: past 4 beats the claim says so, never negative, never above 1.0.
        over = self.claims_for(sub, "listener-b", "election-leader-2025")[-1]
        self.assertEqual(over["progress"], 1.0)
        sub.wait(lambda: any("over_budget_beats" in c.get("metadata", {})
                             for c in self.claims_for(sub, "listener-b", "election-leader-2025")), what="overrun")
        self.assertEqual(self.drive(listener, "complete", id="election-leader-2025", peers=3)["status"], 0)
        done = sub.wait_msg(lambda m: m.subject.endswith(".listener-b") and m.json().get("task_id") ==
                            "election-leader-2025" and m.json()["state"] == "completed", what="completed claim")
        c = done.json()
        validate_claim(self, c)
        self.assertEqual((c["beats_left"], c["progress"]), (0, 1.0))
        self.assertIn("P2P election: completed (peers: 3", c["notes"])
        self.assertEqual(self.drive(listener, "complete", id="election-leader-2025")["status"], -2)

        # Failure.
        self.assertEqual(self.drive(listener, "start", id="dht-store-k1", type="dht_store", beats=3)["status"], 0)
        self.assertEqual(self.drive(listener, "fail", id="dht-store-k1", reason="no+peers")["status"], 0)
        failed = sub.wait_msg(lambda m: m.subject.endswith(".listener-b") and m.json().get("task_id") == "dht-store-k1"
                              and m.json()["state"] == "failed", what="failed claim").json()
        self.assertEqual((failed["beats_left"], failed["progress"]), (0, 0.0))
        self.assertEqual(failed["notes"], "P2P operation failed: no peers (type: dht_store)")

        # Health claim every 8 beats; signatures verify with the key derived from the configured seed
        # (not merely with the key the message carries, which a wrong signer would carry too).
        health = sub.wait_msg(lambda m: m.subject.endswith(".listener-b") and
                              m.json().get("task_id") == "chorus-p2p-health", what="health claim")
        validate_claim(self, health.json())
        self.assertIn(health.json()["state"], {"idle", "executing", "failed"})
        self.assertIn("Backbeat-Signature", health.headers)
        seed_key = seed_public_key_b64(seed)
        self.assertEqual(health.headers["Backbeat-Public-Key"], seed_key)
        self.assertTrue(ed25519_verify(seed, health.headers["Backbeat-Signature"], health.data))
        self.assertFalse(ed25519_verify(seed, health.headers["Backbeat-Signature"], health.data + b" "))
        self.assertFalse(ed25519_verify("22" * 32, health.headers["Backbeat-Signature"], health.data))
        # The plugin's own verifier (backbeat_verify) agrees, given the seed's key.
        ok = subprocess.run([VERIFY, seed_key, health.headers["Backbeat-Signature"]], input=health.data).returncode
        self.assertEqual(ok, 0)
        bad = subprocess.run([VERIFY, seed_key, health.headers["Backbeat-Signature"]],
                             input=health.data + b" ").returncode
        self.assertEqual(bad, 1)

        # execute_with_beat_budget: within budget and over budget (1 beat = 100 ms).
        self.assertEqual(self.drive(listener, "budget", beats=5, work_ms=10)["status"], 0)
        r = self.drive(listener, "budget", beats=1, work_ms=400)
        self.assertEqual(r["status"], -8, r)
        self.assertIn("beat budget of 1 beats", r["message"])

        # Health, route and metrics of the listener.
        h = self.bb_health(listener)
        for k in ("enabled", "started", "connected", "current_beat", "current_tempo", "measured_bpm", "tempo_drift",
                  "reconnect_count", "active_operations", "local_degradation", "errors", "node_id"):
            self.assertIn(k, h)
        self.assertTrue(h["connected"])
        self.assertFalse(h["local_degradation"])
        self.assertEqual(h["active_operations"], 0)
        # The measured tempo comes from beat arrival times over real NATS, so one reading taken while
        # this machine is loaded can be off: wait (deadline scaled) for a reading inside the band.
        def steady_tempo():
            h = self.bb_health(listener)
            return abs(h["measured_bpm"] - 600) <= 30 and h["tempo_drift"] in {"acceptable", "moderate"}
        wait_for(steady_tempo, 20, "a measured tempo of 600 +- 30 BPM with acceptable or moderate drift "
                                   f"(first reading: {h['measured_bpm']} BPM, {h['tempo_drift']})")
        self.assertEqual(self.bb_health(pulse)["pulsing"], True)
        status, ops = listener.http_json("/backbeat/operations")
        self.assertEqual(status, 200)
        self.assertEqual(ops["active_operations"], 0)
        _, metrics, _ = listener.http("/metrics")
        self.assertRegex(metrics, r'chorus_backbeat_beats_total\{source="remote"\} [1-9]')
        self.assertRegex(metrics, r"chorus_backbeat_connected 1")
        self.assertEqual(listener.stop(), 0)
        self.assertEqual(pulse.stop(), 0)


class BadInput(BackbeatTestCase):
    def test_malformed_stale_legacy_and_flooded_frames_are_ignored_and_counted(self):
        srv = self.nats()
        pub = self.client(srv)
        claims = self.client(srv)
        claims.sub(f"backbeat.status.{CLUSTER}.victim")
        agent = self.backbeat_agent("victim", srv.url, max_pending_frames=16)
        agent.wait_log(r"connected to NATS")
        # An operation makes every processed beat visible as a claim.
        self.assertEqual(self.drive(agent, "start", id="watch-op", beats=1000)["status"], 0)
        subj = f"backbeat.beat.{CLUSTER}"
        # Ahead of the wall-clock beat the agent derives while no pulse runs (600 BPM = 10 beats/s).
        beat = int(time.time() * 10) + 100000
        good = {"type": "backbeat.beatframe.v1", "cluster_id": CLUSTER, "beat_index": beat, "downbeat": False,
                "phase": "plan", "hlc": "0001:0001:0001", "deadline_at": "2030-01-01T00:00:00Z", "tempo_bpm": 600,
                "window_id": "0" * 32}
        for bad in ["", "{", "null", "[1,2]", "\x00\xff", json.dumps(dict(good, tempo_bpm=1e9)),
                    json.dumps(dict(good, beat_index=-5)), json.dumps(dict(good, extra=1)),
                    json.dumps(dict(good, phase="dance")), "[" * 5000]:
            pub.pub(subj, bad)
        mark = agent.mark()
        pub.pub(subj, json.dumps({"bar": 3, "beat": 2}))  # legacy (REQ-043): warned, counted, not used
        pub.pub(subj, json.dumps({"bar": 3, "beat": 5}))  # the warning is rate-limited: no second line
        pub.pub(subj, json.dumps(good))
        pub.pub(subj, json.dumps(dict(good, beat_index=beat - 1)))  # from the past
        pub.pub(subj, json.dumps(dict(good, cluster_id="elsewhere", beat_index=beat + 1)))
        pub.flush()
        agent.wait_log(r"ignored stale BeatFrame", start=mark)
        agent.wait_log(r"ignored a legacy \{bar, beat\} BeatFrame", start=mark)
        claims.wait_msg(lambda m: m.json().get("task_id") == "watch-op" and m.json()["beat_index"] == beat,
                        what="the claim of the good frame's beat")
        # The wrong-cluster frame was published last; nothing logs it, so wait for its count.
        wait_for(lambda: self.bb_health(agent)["frames_rejected"]["wrong_cluster"] >= 1, 10,
                 "the wrong-cluster frame to be counted")
        h = self.bb_health(agent)
        self.assertGreaterEqual(h["current_beat"], beat)
        # 9 or 10: libnats does not hand an empty payload ("") to the subscription callback.
        self.assertIn(h["frames_rejected"]["invalid"], (9, 10), h)
        self.assertEqual(h["frames_rejected"]["legacy"], 2)
        self.assertEqual(h["frames_rejected"]["stale"], 1)
        self.assertEqual(h["frames_rejected"]["wrong_cluster"], 1)
        self.assertEqual(len(re.findall(r"legacy \{bar, beat\}", agent.log_text())), 1)

        # A flood far beyond max_pending_frames (16): NATS drops what the agent cannot queue and
        # reports a slow consumer, which is counted; the agent neither crashes nor stalls.
        mark = agent.mark()
        blob = "".join(f"PUB {subj} 3\r\nxyz\r\n" for _ in range(50000)).encode()
        pub._send(blob)
        pub.flush(timeout=60)
        agent.wait_log(r"NATS: Slow Consumer", start=mark, timeout=30)
        h = self.bb_health(agent)
        self.assertGreaterEqual(h["slow_consumer"], 1)
        self.assertEqual(agent.http("/health/live")[0], 200)
        # Recovery: later beats are processed again (ahead of any locally derived beat). While the
        # agent still works off the flood, NATS may drop a frame too, as it should for a slow
        # consumer; so a beat a second is sent until one is processed.
        after = h["current_beat"] + 1000
        for attempt in range(30):
            after += 1
            pub.pub(subj, json.dumps(dict(good, beat_index=after)))
            pub.flush()
            try:
                claims.wait_msg(lambda m: m.json().get("task_id") == "watch-op" and m.json()["beat_index"] == after,
                                timeout=1, what="a claim for a beat after the flood")
                break
            except AssertionError:
                if attempt == 29:
                    raise
        # A tempo jump beyond ±10 % (BACKBEAT-REQ-004) is followed (the pulse is authoritative) but
        # counted and reported.
        pub.pub(subj, json.dumps(dict(good, beat_index=after + 1, tempo_bpm=900)))
        pub.flush()
        claims.wait_msg(lambda m: m.json().get("task_id") == "watch-op" and m.json()["beat_index"] == after + 1,
                        what="the claim of the faster beat")
        h = self.bb_health(agent)
        self.assertEqual(h["tempo_jumps"], 1)
        self.assertEqual(h["current_tempo"], 900)
        self.assertTrue(any("600 -> 900 BPM exceeds the 10 % change limit" in e for e in h["errors"]), h["errors"])
        _, metrics, _ = agent.http("/metrics")
        self.assertRegex(metrics, r"chorus_backbeat_slow_consumer_total [1-9]")
        self.assertRegex(metrics, r'chorus_backbeat_frames_rejected_total\{reason="legacy"\} 2')
        self.assertEqual(agent.stop(), 0)


class Degraded(BackbeatTestCase):
    def test_nats_down_at_start_then_up(self):
        port = free_port()
        agent = self.backbeat_agent("early", f"nats://127.0.0.1:{port}")
        agent.wait_log(r"unreachable; retrying in the background")
        agent.wait_log(r"deriving beats locally")
        status, health = agent.http_json("/health")
        self.assertEqual(health["plugins"]["backbeat"]["state"], "running")
        self.assertFalse(health["plugins"]["backbeat"]["healthy"] and health["status"] == "healthy")
        self.assertEqual(self.drive(agent, "start", id="op-early", beats=50)["status"], 0)
        h = self.bb_health(agent)
        self.assertFalse(h["connected"])
        self.assertTrue(h["local_degradation"])
        mark = agent.mark()  # before the server starts: the agent may connect at once
        srv = self.nats(port=port)
        sub = self.client(srv)
        sub.sub(f"backbeat.status.{CLUSTER}.early")
        agent.wait_log(r"connected to NATS", start=mark, timeout=30)
        c = sub.wait_msg(lambda m: m.json().get("task_id") == "op-early", what="claim after connect").json()
        validate_claim(self, c, "early")
        self.assertTrue(self.bb_health(agent)["connected"])
        self.assertEqual(agent.stop(), 0)

    def test_disabled_by_environment(self):
        agent = self.backbeat_agent("off", "nats://127.0.0.1:1", env={"CHORUS_BACKBEAT_ENABLED": "false"})
        agent.wait_log(r"BACKBEAT integration is disabled")
        r = self.drive(agent, "start", id="x")
        self.assertEqual(r["status"], -6)
        self.assertEqual(r["message"], "BACKBEAT integration is disabled")
        self.assertEqual(self.drive(agent, "budget", beats=1, work_ms=1)["status"], 0)
        self.assertFalse(self.bb_health(agent)["enabled"])
        _, health = agent.http_json("/health")
        self.assertEqual(health["plugins"]["backbeat"]["state"], "running")
        self.assertEqual(agent.stop(), 0)

    def test_bad_config_is_a_clear_error(self):
        agent = self.backbeat_agent("bad", "nats://127.0.0.1:1", driver=False, cluster_id="no.dots")
        _, health = agent.http_json("/health")
        self.assertEqual(health["plugins"]["backbeat"]["state"], "failed")
        self.assertIn("cluster_id", health["plugins"]["backbeat"]["message"])


if __name__ == "__main__":
    unittest.main()
