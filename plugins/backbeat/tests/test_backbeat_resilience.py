"""backbeat when things break: NATS killed and restarted mid-run (no claim lost within the buffer
bound), the pulse stopping and returning (local degradation and recovery)."""
import tempfile
import unittest

from harness import wait_for
from natsutil import CLUSTER, BackbeatTestCase, js_all_messages, js_create_stream, validate_claim


class NatsRestart(BackbeatTestCase):
    def test_claims_made_while_nats_is_down_arrive_after_restart(self):
        # JetStream (file store) captures every claim, so what the agent flushes right after it
        # reconnects is recorded however fast it reconnects: no race with a test subscriber.
        store = tempfile.mkdtemp(prefix="bb-js-", dir=self.ws.root)
        srv = self.nats(jetstream_dir=store)
        js = self.client(srv)
        js_create_stream(js, "CLAIMS", [f"backbeat.status.{CLUSTER}.>"])
        js.close()
        agent = self.backbeat_agent("survivor", srv.url, pulse=True, buffer_limit=5000)
        agent.wait_log(r"connected to NATS")
        self.assertEqual(self.drive(agent, "start", id="before", beats=100)["status"], 0)

        port = srv.port
        mark = agent.mark()
        srv.kill()
        agent.wait_log(r"disconnected from NATS", start=mark)
        # Work done while NATS is down: 20 operations started and completed.
        for i in range(20):
            self.assertEqual(self.drive(agent, "start", id=f"during-{i}", type="pubsub_sync", beats=2)["status"], 0)
        for i in range(20):
            self.assertEqual(self.drive(agent, "complete", id=f"during-{i}", peers=i)["status"], 0)
        h = self.bb_health(agent)
        self.assertFalse(h["connected"])
        self.assertGreater(h["buffered"], 0)
        self.assertEqual(h["dropped"], 0)

        mark = agent.mark()
        srv2 = self.nats(port=port, jetstream_dir=store)
        agent.wait_log(r"reconnected to NATS", start=mark, timeout=30)
        # The outbox is flushed before the reconnection is reported.
        js2 = self.client(srv2)
        done = set()
        h = self.bb_health(agent)
        self.assertEqual(h["buffered"], 0)
        self.assertEqual(h["reconnect_count"], 1)
        claims = js_all_messages(js2, "CLAIMS")
        for c in claims:
            validate_claim(self, c, "survivor")
            if c.get("task_id", "").startswith("during-") and c["state"] == "completed":
                done.add(c["task_id"])
        self.assertEqual(done, {f"during-{i}" for i in range(20)})
        # Beat claims of the long-running operation kept coming while NATS was away.
        before = [c["beat_index"] for c in claims if c.get("task_id") == "before"]
        self.assertEqual(before, sorted(before))
        self.assertEqual(agent.stop(), 0)


class PulseLoss(BackbeatTestCase):
    def test_listener_degrades_when_the_pulse_stops_and_recovers_when_it_returns(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub(f"backbeat.status.{CLUSTER}.listener")
        pulse = self.backbeat_agent("pulse-1", srv.url, pulse=True, driver=False)
        listener = self.backbeat_agent("listener", srv.url)
        listener.wait_log(r"connected to NATS")
        mark = listener.mark()
        self.assertEqual(self.drive(listener, "start", id="long-op", beats=500)["status"], 0)
        sub.wait_msg(lambda m: m.json().get("task_id") == "long-op" and "beats_passed" in m.json()["metadata"],
                     what="beat claim from the pulse")
        self.assertFalse(self.bb_health(listener)["local_degradation"])

        self.assertEqual(pulse.stop(), 0)
        listener.wait_log(r"no pulse for 2 beats: deriving beats locally", start=mark)
        h = self.bb_health(listener)
        self.assertTrue(h["local_degradation"])
        # /health reports the plugin's state as the host last saw it, which can trail the log line by a
        # health poll on a loaded machine: wait (deadline scaled) for it to say unhealthy.
        wait_for(lambda: listener.http_json("/health")[1]["plugins"]["backbeat"]["healthy"] is False, 10,
                 "/health to report backbeat unhealthy while it derives beats locally")
        sub.wait_msg(lambda m: m.json().get("task_id") == "long-op" and
                     m.json()["metadata"].get("local_degradation") is True, what="claim from a derived beat")

        mark = listener.mark()
        self.backbeat_agent("pulse-2", srv.url, pulse=True, driver=False)
        listener.wait_log(r"pulse returned", start=mark)
        h = self.bb_health(listener)
        self.assertFalse(h["local_degradation"])
        beats = [m.json()["beat_index"] for m in sub.select(lambda m: m.json().get("task_id") == "long-op"
                                                            and "beats_passed" in m.json()["metadata"])]
        self.assertEqual(beats, sorted(beats))  # never backwards across degradation and recovery
        self.assertEqual(listener.stop(), 0)


if __name__ == "__main__":
    unittest.main()
