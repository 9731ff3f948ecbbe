"""chorus-agents in separate network namespaces on one bridge find each other with mDNS alone.

Needs root and `ip netns` (skips otherwise). Every test uses its own random service tag, so agents
of other tests or other software on this machine never interfere; every namespace, link and agent is
removed in cleanup even when an assertion fails.
"""
import os
import random
import signal
import socket
import struct
import time
import unittest

import mdnslab
from mdnslab import Lab, full_mesh, unique_tag, wait_until

SKIP = mdnslab.lab_missing_reason()


# ---- a minimal DNS encoder for hostile traffic -------------------------------------------------

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58(data):
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def fake_peer_id():
    return b58(bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + os.urandom(32))


def dns_name(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def announcement(service, instance, txt, ttl=120):
    ptr = dns_name(instance)
    rr_ptr = dns_name(service) + struct.pack(">HHIH", 12, 1, ttl, len(ptr)) + ptr
    data = b"".join(bytes([len(t)]) + t.encode() for t in txt)
    rr_txt = dns_name(instance) + struct.pack(">HHIH", 16, 1, ttl, len(data)) + data
    return struct.pack(">HHHHHH", 0, 0x8400, 0, 2, 0, 0) + rr_ptr + rr_txt


@unittest.skipIf(SKIP, SKIP or "")
class Mesh(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()
        self.addCleanup(self.lab.close)

    def cfg(self, tag, **kw):
        c = {"service_tag": tag, "query_interval_ms": 1000}
        c.update(kw)
        return c

    def test_agents_form_a_full_mesh_with_no_bootstrap_config(self):
        tag = unique_tag()
        agents = [self.lab.start_agent(self.cfg(tag)) for _ in range(4)]
        wait_until(lambda: full_mesh(agents), 20, "a full mesh of 4 agents")
        ids = {a.peer_id for a in agents}
        # Everyone also lists everyone else as discovered (from answers to its own queries).
        for a in agents:
            wait_until(lambda a=a: set(a.discovered()) == ids - {a.peer_id}, 20, f"{a.ns} discovering all")
            for pid, p in a.discovered().items():
                self.assertTrue(p["addrs"][0].startswith(f"/ip4/10.{self.lab.subnet}.0."), p)  # source address first
                self.assertGreater(p["ttl_remaining_ms"], 60000)
        # Seed metrics: discoveries and successful dials were counted, health is ok.
        self.assertGreaterEqual(sum(a.metric("chorus_mdns_peers_discovered_total") for a in agents), 4 * 3 - 3)
        self.assertGreater(sum(a.metric("chorus_mdns_connections_total", 'result="ok"') for a in agents), 0)
        self.assertGreater(agents[0].metric("chorus_mdns_last_discovery_timestamp_seconds"), time.time() - 600)
        status, health = agents[0].http_json("/health")
        self.assertEqual(health["plugins"]["mdns"]["healthy"], True, health)

    @unittest.skipUnless(mdnslab.HAVE_PROBE, "test.discovery-probe plugin not built (CHORUS_MDNS_PROBE_DIR)")
    def test_goodbye_removes_a_stopped_agent_at_once(self):
        tag = unique_tag()
        a = self.lab.start_agent(self.cfg(tag), probe=True)  # a consumer of chorus.discovery runs on a
        a.wait_log(r"probe: subscribed")
        agents = [a] + [self.lab.start_agent(self.cfg(tag)) for _ in range(2)]
        wait_until(lambda: full_mesh(agents), 20, "a full mesh of 3 agents")
        c = agents[2]
        wait_until(lambda: c.peer_id in a.discovered(), 20, "a discovering c")
        a.wait_log(rf"probe: found {c.peer_id} addrs=2 ttl=120")
        mark = a.mark()
        t0 = time.monotonic()
        self.assertEqual(c.stop(signal.SIGTERM), 0)
        a.wait_log(rf"peer {c.peer_id} said goodbye", timeout=10, start=mark)
        a.wait_log(rf"probe: lost {c.peer_id}", timeout=10, start=mark)  # the service event
        elapsed = time.monotonic() - t0
        self.assertNotIn(c.peer_id, a.discovered())
        self.assertIn(agents[1].peer_id, a.discovered())
        # The records' TTL is 120 s: dropping the peer within seconds proves the goodbye (TTL 0) worked.
        self.assertLess(elapsed, 10)

    def test_different_service_tags_do_not_see_each_other(self):
        x, y = unique_tag("group-x"), unique_tag("group-y")
        gx = [self.lab.start_agent(self.cfg(x)) for _ in range(2)]
        gy = [self.lab.start_agent(self.cfg(y)) for _ in range(2)]
        wait_until(lambda: full_mesh(gx) and full_mesh(gy), 20, "each group meshed")
        # Let both groups query and answer several more times (observed through the receive counter)
        # so any leak across tags would have happened.
        before = gx[0].metric("chorus_mdns_packets_total", 'direction="in"')
        wait_until(lambda: gx[0].metric("chorus_mdns_packets_total", 'direction="in"') >= before + 12, 30,
                   "more mDNS traffic")
        for group, other in ((gx, gy), (gy, gx)):
            others = {a.peer_id for a in other}
            for a in group:
                self.assertFalse(a.connected_peers() & others, f"{a.ns} connected across service tags")
                self.assertFalse(set(a.discovered()) & others, f"{a.ns} discovered across service tags")

    def test_hostile_traffic_is_bounded_and_survived(self):
        tag = unique_tag()
        agent = self.lab.start_agent(self.cfg(tag, max_peers=8, auto_connect=False, packets_per_second=100000))
        service = f"_{tag}._udp.local"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(f"10.{self.lab.subnet}.0.254"))
        dst = ("224.0.0.251", 5353)
        sent = 0
        # Garbage, compression loops, absurd counts, truncated records.
        junk = [b"", b"\0" * 5, struct.pack(">HHHHHH", 0, 0x8400, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF),
                struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0) + b"\xc0\x0c\0\x0c\0\x01",
                announcement(service, "a." + service, ["dnsaddr=/ip4/1.2.3.4/tcp/1"])[:-5]]
        junk += [os.urandom(random.randint(12, 600)) for _ in range(200)]
        # TXT entries that are not multiaddrs, and records claiming the agent's own peer id.
        junk.append(announcement(service, "b." + service, ["dnsaddr=/ip4/999.1.1.1/tcp/1", "dnsaddr=hello"]))
        junk.append(announcement(service, "c." + service, [f"dnsaddr=/ip4/10.9.9.9/tcp/1/p2p/{agent.peer_id}"]))
        # A flood of fake peers: far more than max_peers.
        for i in range(300):
            pid = fake_peer_id()
            junk.append(announcement(service, f"fake{i}." + service, [f"dnsaddr=/ip4/10.9.{i // 250}.{i % 250}/tcp/1/p2p/{pid}"]))
        # In batches, each read before the next goes out, so the socket buffer does not drop any.
        base = agent.metric("chorus_mdns_packets_total", 'direction="in"')
        for i in range(0, len(junk), 25):
            for p in junk[i:i + 25]:
                s.sendto(p, dst)
                sent += 1
            wait_until(lambda: agent.metric("chorus_mdns_packets_total", 'direction="in"') >= base + sent - 3, 20,
                       f"the agent to read {sent} hostile packets")
        s.close()
        peers = agent.discovered()
        self.assertEqual(len(peers), 8)  # capped at max_peers
        self.assertNotIn(agent.peer_id, peers)
        self.assertGreater(agent.metric("chorus_mdns_packets_rejected_total", 'reason="malformed"'), 0)
        self.assertGreater(agent.metric("chorus_mdns_discoveries_dropped_total", 'reason="table_full"'), 0)
        self.assertIsNone(agent.proc.poll(), "the agent died")
        status, _ = agent.http_json("/health")
        self.assertEqual(status, 200)

    def test_interfaces_that_appear_later_are_joined(self):
        tag = unique_tag()
        ns_b, ip_b = self.lab.add_ns(up=False)  # eth0 exists but is down and has no address yet
        b = self.lab.start_agent(self.cfg(tag, interface_scan_ms=200), ns_ip=(ns_b, "127.0.0.1"), wait=False)
        b.wait_log(r"mdns: announcing .* on 1 interface")  # lo, the only interface up
        b.peer_id = b.wait_log(r"libp2p host (\S+) listening").group(1)
        a = self.lab.start_agent(self.cfg(tag))
        mark = b.mark()
        self.lab.bring_up(ns_b, ip_b)
        b.wait_log(r"mdns: joined 224\.0\.0\.251 on eth0", start=mark)
        wait_until(lambda: b.peer_id in a.connected_peers(), 20, "a connected to b after b's eth0 came up")
        # And it follows the interface going away: back to lo alone.
        mark = b.mark()
        mdnslab.sh("ip", "netns", "exec", ns_b, "ip", "link", "set", "eth0", "down")
        b.wait_log(r"mdns: left eth0", start=mark)

    def test_ipv6_only(self):
        # Discovery over ff02::fb alone (the records still carry the agents' IPv4 TCP addresses).
        tag = unique_tag()
        agents = [self.lab.start_agent(self.cfg(tag, ipv4=False)) for _ in range(3)]
        # (IPv6 needs the link-local address to finish duplicate address detection, ~2 s, before the
        # first datagram leaves; the periodic queries then find everyone.)
        wait_until(lambda: full_mesh(agents), 30, "a full mesh over IPv6 mDNS")

    def test_loopback_only_namespace(self):
        # A namespace with nothing but lo (no multicast flag, no route): two agents still find each other.
        tag = unique_tag()
        ns, ip = self.lab.add_ns(veth=False)
        a = self.lab.start_agent(self.cfg(tag), ns_ip=(ns, ip), p2p_port=9000, http_port=8081)
        b = self.lab.start_agent(self.cfg(tag), ns_ip=(ns, ip), p2p_port=9001, http_port=8082)
        a.wait_log(rf"mdns: discovered peer {b.peer_id} at /ip4/127\.0\.0\.1/tcp/9001")
        b.wait_log(rf"mdns: discovered peer {a.peer_id} at /ip4/127\.0\.0\.1/tcp/9000")
        # One of them dials the other (whichever heard the other first); the second finds it connected.
        wait_until(lambda: f"connected to discovered peer {b.peer_id}" in a.log_text() or
                   f"connected to discovered peer {a.peer_id}" in b.log_text(), 20, "a dial between a and b")

    def test_bad_config_names_the_key(self):
        ns, ip = self.lab.add_ns()
        path = self.lab.config("bad", ip, {"service_tag": "no.dots"})
        agent = mdnslab.NsAgent(ns, ip, path)
        self.lab.agents.append(agent)
        rc = agent.wait_exit(timeout=30)
        self.assertNotEqual(rc, 0)
        self.assertIn("mdns.config.service_tag", agent.log_text())


if __name__ == "__main__":
    unittest.main()
