"""Interop: a js-libp2p node with @libp2p/mdns (service tag `p2p`) and a chorus-agent, each in its own
network namespace on one bridge, discover each other; each side dials the other.

Skips when not root, without `ip netns`, without node, or without tests/interop/js/node_modules
(`cd tests/interop/js && npm ci`).
"""
import json
import os
import shutil
import subprocess
import threading
import time
import unittest

import mdnslab
import nodecheck  # tests/interop
from harness import SLOW, missing
from mdnslab import Lab, wait_until

JS_DIR = os.environ.get("MDNS_JS_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "interop", "js"))
NODE = os.environ.get("NODE_BIN") or shutil.which("node")
JS_SEED = "11" * 32
JS_ID = "12D3KooWPqT2nMDSiXUSx5D7fasaxhxKigVhcqfkKqrLghCq9jxz"  # docs/protocols.md, Keys and peer ids


def skip_reason():
    r = mdnslab.lab_missing_reason()
    if r:
        return r
    r = nodecheck.missing_reason(NODE, "@libp2p/mdns")
    return missing("js-libp2p", r) if r else None


SKIP = skip_reason()


class JsMdnsPeer:
    """mdns_peer.mjs inside a namespace; its JSON-line events are collected by a thread."""

    def __init__(self, ns, *args):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, NODE, os.path.join(JS_DIR, "mdns_peer.mjs"), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=JS_DIR)
        self.events = []
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, pred, timeout=30, what="event"):
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise AssertionError(f"js peer: no {what}; events: {self.events[-20:]}; stderr: {''.join(self.stderr[-20:])}")
                self.cond.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass


@unittest.skipIf(SKIP, SKIP or "")
class JsInterop(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()
        self.addCleanup(self.lab.close)

    def js(self, *args):
        ns, _ = self.lab.add_ns()
        peer = JsMdnsPeer(ns, "--seed", JS_SEED, *args)
        self.addCleanup(peer.stop)
        ready = peer.wait(lambda e: e.get("event") == "ready", what="ready")
        self.assertEqual(ready["peer_id"], JS_ID)
        return peer

    def test_chorus_discovers_and_dials_js(self):
        js = self.js()  # js does not dial: any connection is the chorus-agent's doing
        agent = self.lab.start_agent({"service_tag": "p2p", "query_interval_ms": 1000})
        # js discovers the chorus-agent (our response format is readable by @libp2p/mdns) ...
        found = js.wait(lambda e: e.get("event") == "peer:discovery" and e["peer"] == agent.peer_id,
                        what="peer:discovery of the chorus-agent")
        self.assertTrue(any(a.startswith(f"/ip4/10.{self.lab.subnet}.0.") for a in found["addrs"]), found)
        # ... and the chorus-agent discovers js and dials it.
        wait_until(lambda: JS_ID in agent.discovered(), 30, "the agent discovering js")
        conn = js.wait(lambda e: e.get("event") == "connection:open" and e["peer"] == agent.peer_id,
                       what="the agent's connection")
        self.assertEqual(conn["direction"], "inbound")
        wait_until(lambda: JS_ID in agent.connected_peers(), 30, "js in the agent's /p2p/peers")
        agent.wait_log(rf"connected to discovered peer {JS_ID}")

    def test_js_dials_a_discovered_chorus_agent(self):
        agent = self.lab.start_agent({"service_tag": "p2p", "query_interval_ms": 1000, "auto_connect": False})
        js = self.js("--dial")
        js.wait(lambda e: e.get("event") == "dial" and e["peer"] == agent.peer_id and e["ok"], what="a successful dial")
        conn = js.wait(lambda e: e.get("event") == "connection:open" and e["peer"] == agent.peer_id, what="connection")
        self.assertEqual(conn["direction"], "outbound")
        wait_until(lambda: JS_ID in agent.discovered(), 30, "the agent discovering js")

    def test_js_records_keep_their_announced_ttl(self):
        # The agent keeps js's records for the TTL js announced (120 s).
        js = self.js()
        agent = self.lab.start_agent({"service_tag": "p2p", "query_interval_ms": 1000, "auto_connect": False})
        wait_until(lambda: JS_ID in agent.discovered(), 30, "the agent discovering js")
        self.assertGreater(agent.discovered()[JS_ID]["ttl_remaining_ms"], 100000)
        js.stop()


if __name__ == "__main__":
    unittest.main()
