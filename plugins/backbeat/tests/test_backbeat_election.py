"""backbeat with chorus.election present (docs/protocols.md, BACKBEAT operations: only the admin
pulses). The stand-in provider test.backbeat-election switches this agent's admin flag over HTTP;
frames are observed on a real nats-server."""
import json
import unittest

from natsutil import CLUSTER, BackbeatTestCase, validate_frame

FRAMES = f"backbeat.beat.{CLUSTER}"
STATUS = f"backbeat.status.{CLUSTER}.candidate"


def is_frame(m):
    return m.subject == FRAMES


def is_health(m):
    return m.subject == STATUS and m.json().get("task_id") == "chorus-p2p-health"


class OnlyTheAdminPulses(BackbeatTestCase):
    def set_admin(self, agent, admin):
        status, body, _ = agent.http(f"/bbelection/set?admin={1 if admin else 0}")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["is_self"], admin)

    def health_claims_after(self, sub, start, n, what):
        """Waits for n health claims (one every 8 beats) among the messages from index `start`, and
        returns the index just past the n-th: a span of at least 8 * (n - 1) beats of this agent."""
        found = []

        def enough():
            found.clear()
            for i, m in enumerate(sub.msgs[start:], start):
                if is_health(m):
                    found.append(i)
            return len(found) >= n

        sub.wait(enough, timeout=30, what=what)
        return found[n - 1] + 1

    def test_pulse_follows_the_admin_flag(self):
        srv = self.nats()
        sub = self.client(srv)
        sub.sub("backbeat.>")
        agent = self.backbeat_agent("candidate", srv.url, pulse=True, driver=False,
                                    extra_plugins=["test.backbeat-election"])
        agent.wait_log(r"connected to NATS")

        # Not the admin: no frames. The agent's own health claims (every 8 beats of its locally
        # derived beat) mark time: two of them span 8 beats in which the pulse would have sent 8 frames.
        # NATS keeps one publisher's messages in order for one subscriber, so a frame published before
        # a claim arrives before it.
        self.health_claims_after(sub, 0, 2, "two health claims while not admin")
        self.assertEqual(sub.select(is_frame), [])
        h = self.bb_health(agent)
        self.assertFalse(h["pulsing"])
        self.assertTrue(h["local_degradation"])

        # Becomes the admin: it starts pulsing.
        mark = agent.mark()
        self.set_admin(agent, True)
        agent.wait_log(r"pulsing: this agent publishes the beat", start=mark)
        sub.wait(lambda: len(sub.select(is_frame)) >= 5, timeout=30, what="5 frames from the new admin")
        frames = [m.json() for m in sub.select(is_frame)]
        for f in frames:
            validate_frame(self, f)
        idx = [f["beat_index"] for f in frames]
        self.assertEqual(idx, list(range(idx[0], idx[0] + len(idx))))
        self.assertTrue(self.bb_health(agent)["pulsing"])

        # Loses the admin: it stops. Any frame still in flight was published before the agent logged
        # the change; after the second health claim that follows the log, none may appear.
        mark = agent.mark()
        self.set_admin(agent, False)
        agent.wait_log(r"not pulsing: another agent is the admin", start=mark)
        cut = len(sub.msgs)
        quiet_from = self.health_claims_after(sub, cut, 2, "health claims after losing admin")
        quiet_to = self.health_claims_after(sub, quiet_from, 2, "two more health claims")
        self.assertEqual([m for m in sub.msgs[quiet_from:quiet_to] if is_frame(m)], [])
        h = self.bb_health(agent)
        self.assertFalse(h["pulsing"])

        # And takes over again: pulsing resumes where the beat numbering is.
        before = len(sub.select(is_frame))
        last = max(idx + [f.json()["beat_index"] for f in sub.select(is_frame)])
        self.set_admin(agent, True)
        sub.wait(lambda: len(sub.select(is_frame)) >= before + 3, timeout=30, what="frames after re-election")
        self.assertGreater(sub.select(is_frame)[-1].json()["beat_index"], last)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
