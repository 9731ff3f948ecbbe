"""BACKBEAT operation tracking: with chorus.backbeat bound, every dial of a discovered peer is a
`peer_discovery` operation whose StatusClaims (executing, then completed) reach NATS.

Needs root, `ip netns`, nats-server and the backbeat plugin (skips otherwise). The nats-server runs in
the root namespace on all addresses; the agents reach it through the lab bridge.
"""
import os
import subprocess
import sys
import threading
import time
import unittest

import mdnslab
from harness import SLOW, missing
from mdnslab import Lab, full_mesh, unique_tag, wait_until

BACKBEAT_DIR = os.environ.get("CHORUS_BACKBEAT_PLUGIN_DIR", "")
NATS_SERVER = os.environ.get("NATS_SERVER_BIN", "")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "backbeat", "tests"))


def skip_reason():
    r = mdnslab.lab_missing_reason()
    if r:
        return r
    if not NATS_SERVER or not os.path.exists(NATS_SERVER):
        return missing("nats", "nats-server not found (NATS_SERVER_BIN)")
    if not BACKBEAT_DIR or not os.path.exists(os.path.join(BACKBEAT_DIR, "chorus-backbeat.so")):
        return missing("build", "chorus-backbeat.so not found (CHORUS_BACKBEAT_PLUGIN_DIR)")
    return None


SKIP = skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class BackbeatTracking(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()
        self.addCleanup(self.lab.close)

    def start_nats(self):
        import natsutil
        port = natsutil.free_port()
        proc = subprocess.Popen([NATS_SERVER, "-a", "0.0.0.0", "-p", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (proc.kill(), proc.wait(), proc.stderr.close()))
        for line in proc.stderr:  # its own log line is the event we wait for
            if "Server is ready" in line:
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        client = natsutil.NatsClient(port)
        self.addCleanup(client.close)
        return port, client

    def test_dials_are_peer_discovery_operations(self):
        port, nats = self.start_nats()
        nats.sub("backbeat.status.>")
        tag = unique_tag()
        bb = {"enabled": True, "critical": True,
              "config": {"cluster_id": "mdnstest", "agent_id": "mdns-a", "pulse": True, "tempo_bpm": 600,
                         "bar_length": 8, "nats_url": f"nats://10.{self.lab.subnet}.0.254:{port}"}}
        other = self.lab.start_agent({"service_tag": tag, "query_interval_ms": 1000, "auto_connect": False})
        a = self.lab.start_agent({"service_tag": tag, "query_interval_ms": 1000},
                                 extra_plugins={"backbeat": bb}, extra_dirs=[BACKBEAT_DIR])
        wait_until(lambda: full_mesh([a, other]), 20, "a dialing the other agent")
        claim = nats.wait_msg(lambda m: m.subject == "backbeat.status.mdnstest.mdns-a" and
                              m.json().get("task_id", "").startswith(f"mdns-{other.peer_id}-") and
                              m.json().get("state") == "completed", timeout=30, what="a completed peer_discovery claim")
        c = claim.json()
        self.assertIn("peer_discovery", c.get("notes", ""), c)
        self.assertEqual((c["progress"], c["beats_left"]), (1.0, 0))
        # Its start claim carries the budget of the BACKBEAT guideline for peer discovery (2-5 beats).
        start = nats.wait_msg(lambda m: m.subject == "backbeat.status.mdnstest.mdns-a" and
                              m.json().get("task_id") == c["task_id"] and
                              m.json().get("metadata", {}).get("phase") == "started",
                              timeout=30, what="the peer_discovery start claim")
        self.assertEqual(start.json()["beats_left"], 5, start.json())


if __name__ == "__main__":
    unittest.main()
