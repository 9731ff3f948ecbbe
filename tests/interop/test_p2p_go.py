"""A chorus-agent (p2p + probe plugins) against go/peer.go, a peer whose Noise comes from flynn/noise
and whose yamux comes from hashicorp/yamux: the libraries go-libp2p is built on (go-libp2p uses
flynn/noise, and go-yamux is a fork of hashicorp/yamux with the same wire format). go-libp2p itself
cannot be fetched here (no Go module proxy), so this checks our wire format against Go's
implementations of those two layers; multistream-select, the libp2p Noise payload, identify and ping
in peer.go are written from the specs. Both dial directions, identify both ways, ping both ways, echo
over 200 concurrent streams both ways, 64 MiB each way checked by sha256, `na` both ways, a wrong /p2p/
id. Skipped when the Go peer is not built (see go_missing_reason)."""
import unittest

from p2ptest import (ECHO, JS_ID_A, JS_ID_B, JS_SEED_A, P2PTestCase, go_missing_reason, is_event,
                     strip_p2p)

BASE_PROTOCOLS = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"}
MiB = 1024 * 1024
GO_ID = JS_ID_A  # same seed, same Ed25519 key, same peer id: the id derivation matches js's


@unittest.skipIf(go_missing_reason(), go_missing_reason() or "")
class AgentAndGo(P2PTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.p2p_agent("a")
        self.go = self.go_peer(seed=JS_SEED_A)
        self.assertEqual(self.go.peer_id, GO_ID)

    def check_identify_both_ways(self, since):
        ev = self.go.wait_event(lambda e: e.get("event") == "identify" and e.get("peer") == self.a.peer_id,
                                start=since, what="Go identify of the agent")
        self.assertTrue(ev["key_matches"], ev)  # the public key in identify is the one the id names
        self.assertLessEqual(BASE_PROTOCOLS | {ECHO}, set(ev["protocols"]), ev)
        self.assertEqual(ev["protocol_version"], "ipfs/0.1.0", ev)
        self.assertIn(f"/ip4/127.0.0.1/tcp/{self.a.p2p_port}", [strip_p2p(x) for x in ev["listen_addrs"]], ev)
        got = self.a.wait_for_event(is_event("identified", GO_ID), what="IDENTIFIED of the Go peer")["identify"]
        self.assertTrue(got["agent_version"].startswith("chorus-interop-go/"), got)
        self.assertLessEqual(BASE_PROTOCOLS | {ECHO}, set(got["protocols"]), got)
        self.assertIn(strip_p2p(self.go.addr), [strip_p2p(x) for x in got["listen_addrs"]], got)

    def ping_both_ways(self):
        self.assertGreater(self.a.probe("ping", peer=GO_ID)["rtt_us"], 0)
        self.assertGreaterEqual(self.go.ok("ping", target=self.a.peer_id)["rtt_ms"], 0)

    def test_agent_dials_go(self):
        mark = self.go.mark()
        self.assertEqual(self.a.probe("connect", target=self.go.addr)["peer_id"], GO_ID)
        ev = self.go.wait_event(lambda e: e.get("event") == "connection:open" and e.get("peer") == self.a.peer_id,
                                start=mark, what="Go connection:open")
        self.assertEqual(ev["direction"], "inbound")
        self.a.wait_for_event(is_event("connected", GO_ID, "outbound"))
        self.check_identify_both_ways(mark)
        self.ping_both_ways()

    def test_go_dials_agent(self):
        mark = self.go.mark()
        r = self.go.ok("dial", target=self.a.addr)
        self.assertEqual(r["peer"], self.a.peer_id)
        self.a.wait_for_event(is_event("connected", GO_ID, "inbound"))
        self.assertEqual(self.a.wait_peer(GO_ID)["direction"], "inbound")
        self.check_identify_both_ways(mark)
        self.ping_both_ways()

    def test_echo_200_concurrent_streams_both_ways(self):
        self.a.probe("connect", target=self.go.addr)
        r = self.a.probe("echo", peer=GO_ID, streams=200, bytes_per_stream=64 * 1024, timeout=600)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["bytes"], 200 * 64 * 1024)
        r = self.go.ok("echo", target=self.a.peer_id, streams=200, bytes_per_stream=64 * 1024, timeout=600)
        self.assertEqual(r["bytes"], 200 * 64 * 1024)

    def test_64_mib_each_way_checked_by_sha256(self):
        self.go.ok("dial", target=self.a.addr)
        self.a.wait_peer(GO_ID)
        r = self.a.probe("echo", peer=GO_ID, streams=1, bytes_per_stream=64 * MiB, timeout=600)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["bytes"], 64 * MiB)
        r = self.go.ok("echo", target=self.a.peer_id, streams=1, bytes_per_stream=64 * MiB, timeout=600)
        self.assertEqual(r["bytes"], 64 * MiB)

    def test_unknown_protocol_gets_na_both_ways(self):
        self.go.ok("dial", target=self.a.addr)
        self.a.wait_peer(GO_ID)
        r = self.go.call("open", target=self.a.peer_id, protocol="/chorus/no-such/1.0.0")
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["code"], "na", r)
        status, ans = self.a.post("/test/p2p/open", peer=GO_ID, protocol="/chorus/no-such/1.0.0")
        self.assertEqual(status, 502, ans)
        self.assertEqual(ans["status_name"], "CHORUS_E_PROTOCOL", ans)
        self.assertEqual(self.go.ok("open", target=self.a.peer_id, protocol=ECHO)["protocol"], ECHO)
        self.assertEqual(self.a.probe("open", peer=GO_ID, protocol=ECHO)["protocol"], ECHO)

    def test_wrong_peer_id_fails_both_ways(self):
        wrong = f"{strip_p2p(self.go.addr)}/p2p/{JS_ID_B}"
        status, ans = self.a.post("/test/p2p/connect", target=wrong, timeout_ms=10000)
        self.assertNotEqual(status, 200, ans)
        self.assertRegex(ans["error"].lower(), r"peer id|identity|mismatch|expected|unexpected", ans)
        r = self.go.call("dial", target=f"{strip_p2p(self.a.addr)}/p2p/{JS_ID_B}")
        self.assertFalse(r["ok"], r)
        self.assertIn("peer id mismatch", r["error"])
        # With the right ids both work.
        self.assertEqual(self.a.probe("connect", target=self.go.addr)["peer_id"], GO_ID)
        self.assertEqual(self.go.ok("dial", target=self.a.addr)["peer"], self.a.peer_id)


if __name__ == "__main__":
    unittest.main()
