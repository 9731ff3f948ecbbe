"""The load test of CHORUS's BACKBEAT integration, against a real agent and nats-server: 1000
operations started, beats pass, all completed, active_operations back to 0, every completion claim
received."""
import unittest

from natsutil import CLUSTER, BackbeatTestCase, validate_claim


class Load(BackbeatTestCase):
    def test_thousand_operations(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub(f"backbeat.status.{CLUSTER}.loaded")
        agent = self.backbeat_agent("loaded", srv.url, pulse=True, tempo_bpm=300, bar_length=4, buffer_limit=20000)
        agent.wait_log(r"connected to NATS")
        r = self.drive(agent, "bulk_start", prefix="test-op-", n=1000, beats=5)
        self.assertEqual((r["status"], r["ok"]), (0, 1000), r)
        self.assertEqual(self.bb_health(agent)["active_operations"], 1000)
        start_beat = self.bb_health(agent)["current_beat"]

        def beat_claims():
            return [c for c in (m.json() for m in sub.select(lambda m: True))
                    if c.get("task_id", "").startswith("test-op-") and "beats_passed" in c.get("metadata", {})]

        def claims_per_beat():
            per_beat = {}
            for c in beat_claims():
                per_beat.setdefault(c["beat_index"], set()).add(c["task_id"])
            return per_beat

        # Beats pass, each with a claim for every operation. The beat during which the operations
        # started may carry claims for only part of them, and the newest beat's claims may still be
        # arriving, so wait for two beats that are complete.
        sub.wait(lambda: sum(len(ids) == 1000 for ids in claims_per_beat().values()) >= 2, timeout=60,
                 what="2 beats with a claim for each of the 1000 operations")
        self.assertGreater(self.bb_health(agent)["current_beat"], start_beat)

        r = self.drive(agent, "bulk_complete", prefix="test-op-", n=1000, peers=5)
        self.assertEqual((r["status"], r["ok"]), (0, 1000), r)
        self.assertEqual(self.bb_health(agent)["active_operations"], 0)
        sub.wait(lambda: len({m.json()["task_id"] for m in sub.select(lambda m: b'"completed"' in m.data)}) >= 1000,
                 timeout=60, what="1000 completed claims")
        completed = [m.json() for m in sub.select(lambda m: b'"completed"' in m.data)]
        for c in completed[:50]:
            validate_claim(self, c, "loaded")
        self.assertEqual(len({c["task_id"] for c in completed}), 1000)
        h = self.bb_health(agent)
        self.assertEqual(h["dropped"], 0)
        _, ops = agent.http_json("/backbeat/operations")
        self.assertEqual(ops["active_operations"], 0)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
