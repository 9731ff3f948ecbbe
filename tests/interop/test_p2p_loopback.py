"""Two chorus-agents (p2p + probe plugins) on 127.0.0.1: dial by /p2p/ address, peers on both sides,
identify both ways, ping both ways, echo over 64 concurrent streams, a wrong /p2p/ id, `na` for an
unknown protocol, connect/disconnect loops and a persistent identity."""
import os
import unittest

from p2ptest import ECHO, JS_ID_A, P2PTestCase, is_event

BASE_PROTOCOLS = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"}


class Loopback(P2PTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.p2p_agent("a")
        self.b = self.p2p_agent("b")

    def test_id_route_describes_the_node(self):
        info = self.a.info
        self.assertRegex(info["peer_id"], r"^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$")  # Ed25519 identity, base58
        self.assertNotEqual(info["peer_id"], self.b.peer_id)
        self.assertTrue(any(addr.startswith(f"/ip4/127.0.0.1/tcp/{self.a.p2p_port}") for addr in info["addrs"]),
                        info["addrs"])
        self.assertLessEqual(BASE_PROTOCOLS | {ECHO}, set(info["protocols"]))
        status, peers = self.a.get("/p2p/peers")
        self.assertEqual((status, peers), (200, []))

    def test_dial_identify_ping_and_echo_both_ways(self):
        r = self.a.probe("connect", target=self.b.addr)
        self.assertEqual(r["peer_id"], self.b.peer_id)

        # Both sides list each other, with the right direction.
        pa = self.a.wait_peer(self.b.peer_id)
        pb = self.b.wait_peer(self.a.peer_id)
        self.assertEqual(pa["direction"], "outbound")
        self.assertEqual(pb["direction"], "inbound")
        self.assertTrue(any(f"/tcp/{self.b.p2p_port}" in addr for addr in pa["addrs"]), pa)
        self.a.wait_for_event(is_event("connected", self.b.peer_id, "outbound"), what="CONNECTED on a")
        self.b.wait_for_event(is_event("connected", self.a.peer_id, "inbound"), what="CONNECTED on b")

        # Identify ran both ways and carries what the other side serves.
        for me, other in ((self.a, self.b), (self.b, self.a)):
            ev = me.wait_for_event(is_event("identified", other.peer_id), what=f"IDENTIFIED of {other.peer_id}")
            ident = ev["identify"]
            self.assertLessEqual(BASE_PROTOCOLS | {ECHO}, set(ident["protocols"]), ident)
            self.assertTrue(ident["agent_version"], ident)
            self.assertIn(f"/ip4/127.0.0.1/tcp/{other.p2p_port}", ident["listen_addrs"])
            peer = me.wait_peer(other.peer_id)
            self.assertIn(ECHO, peer["protocols"])

        # Ping both ways.
        for me, other in ((self.a, self.b), (self.b, self.a)):
            rtt = me.probe("ping", peer=other.peer_id)["rtt_us"]
            self.assertGreater(rtt, 0)
            self.assertLess(rtt, 5_000_000)

        # Echo: 64 concurrent streams each way, 256 KiB each (more than one yamux window per stream).
        for me, other in ((self.a, self.b), (self.b, self.a)):
            r = me.probe("echo", peer=other.peer_id, streams=64, bytes_per_stream=256 * 1024, timeout=300)
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["bytes"], 64 * 256 * 1024)
            self.assertGreater(r["mbps"], 0)

        # Still exactly one peer on each side (the streams shared the connection).
        self.assertEqual([p["peer_id"] for p in self.a.get("/p2p/peers")[1]], [self.b.peer_id])
        self.assertEqual([p["peer_id"] for p in self.b.get("/p2p/peers")[1]], [self.a.peer_id])

    def test_echo_with_a_multiaddr_dials_first(self):
        r = self.a.probe("echo", peer=self.b.addr, streams=4, bytes_per_stream=3 * 65536 + 7)
        self.assertTrue(r["ok"], r)
        self.b.wait_peer(self.a.peer_id)

    def test_wrong_peer_id_in_the_address_fails_clearly(self):
        wrong = f"/ip4/127.0.0.1/tcp/{self.b.p2p_port}/p2p/{JS_ID_A}"
        status, ans = self.a.post("/test/p2p/connect", target=wrong, timeout_ms=10000)
        self.assertNotEqual(status, 200, ans)
        self.assertFalse(ans["ok"])
        # The message must say what went wrong: the identity did not match the expected peer.
        self.assertRegex(ans["error"].lower(), r"peer id|identity|mismatch|expected|unexpected", ans)
        self.assertEqual(self.a.get("/p2p/peers")[1], [])
        self.assertFalse(any(e["type"] == "connected" for e in self.a.events()), self.a.events())
        # The right id still works afterwards.
        self.assertEqual(self.a.probe("connect", target=self.b.addr)["peer_id"], self.b.peer_id)

    def test_unreachable_address_fails(self):
        dead = f"/ip4/127.0.0.1/tcp/1/p2p/{self.b.peer_id}"
        status, ans = self.a.post("/test/p2p/connect", target=dead, timeout_ms=5000)
        self.assertNotEqual(status, 200, ans)
        self.assertFalse(ans["ok"])
        self.assertTrue(ans["error"])

    def test_malformed_multiaddr_is_invalid_arg(self):
        status, ans = self.a.post("/test/p2p/connect", target="/ip4/999.1.1.1/tcp/x")
        self.assertEqual(status, 400, ans)
        self.assertEqual(ans["status_name"], "CHORUS_E_INVALID_ARG")

    def test_unknown_protocol_gets_na(self):
        self.a.probe("connect", target=self.b.addr)
        status, ans = self.a.post("/test/p2p/open", peer=self.b.peer_id, protocol="/chorus/no-such/1.0.0")
        self.assertEqual(status, 502, ans)
        self.assertEqual(ans["status_name"], "CHORUS_E_PROTOCOL", ans)
        # The connection survives a refused protocol.
        self.assertEqual(self.a.probe("open", peer=self.b.peer_id, protocol=ECHO)["protocol"], ECHO)
        self.assertGreater(self.a.probe("ping", peer=self.b.peer_id)["rtt_us"], 0)

    def test_connect_disconnect_loop_reports_events(self):
        r = self.a.probe("handshakes", target=self.b.addr, count=20, timeout=120)
        self.assertEqual(r["count"], 20)
        self.assertGreater(r["per_second"], 0)
        evs = self.a.events()
        connected = [e for e in evs if e["type"] == "connected" and e["peer"] == self.b.peer_id]
        disconnected = [e for e in evs if e["type"] == "disconnected" and e["peer"] == self.b.peer_id]
        self.assertEqual(len(connected), 20, evs)
        self.assertGreaterEqual(len(disconnected), 19, evs)  # the last one may still be on its way
        self.b.wait_for_event(lambda e: e["type"] == "disconnected" and e["peer"] == self.a.peer_id)
        self.assertEqual(self.a.get("/p2p/peers")[1], [])

    def test_identity_persists_across_restarts(self):
        key = os.path.join(self.ws.path("state-b"), "p2p", "identity.key")
        self.assertTrue(os.path.exists(key), "the identity key is kept in <state dir>/p2p/identity.key")
        self.assertEqual(os.stat(key).st_mode & 0o077, 0, "the identity key must not be readable by others")
        first = self.b.peer_id
        port = self.b.p2p_port
        self.assertEqual(self.b.agent.stop(), 0)
        self.agents.remove(self.b.agent)
        self.b = self.p2p_agent("b", port=port)
        self.assertEqual(self.b.peer_id, first)
        self.assertEqual(self.a.probe("connect", target=self.b.addr)["peer_id"], first)


if __name__ == "__main__":
    unittest.main()
