"""What plugins/mdns/README.md promises and the other suites do not check, with agents in network
namespaces (mdnslab): the packet rate limit and its counters, the `interfaces` filter, degraded health
without a usable interface, and the answer to a legacy unicast query carrying the query's id.

Needs root and `ip netns` (skips otherwise); every namespace, link and agent is removed in cleanup.
"""
import json
import socket
import struct
import time
import unittest

import mdnslab
from mdnslab import Lab, unique_tag, wait_until

SKIP = mdnslab.lab_missing_reason()


def dns_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def ptr_query(service, query_id=0):
    """A DNS query for `service` PTR IN."""
    return struct.pack(">HHHHHH", query_id, 0, 1, 0, 0, 0) + dns_name(service) + struct.pack(">HH", 12, 1)


def mdns_health(agent):
    _, body, _ = agent.http("/health")
    return json.loads(body)["plugins"]["mdns"]


@unittest.skipIf(SKIP, SKIP or "")
class Behaviour(unittest.TestCase):
    def setUp(self):
        self.lab = Lab()
        self.addCleanup(self.lab.close)

    def cfg(self, tag, **kw):
        c = {"service_tag": tag, "query_interval_ms": 1000}
        c.update(kw)
        return c

    def multicast_sender(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(f"10.{self.lab.subnet}.0.254"))
        self.addCleanup(s.close)
        return s

    def test_packets_beyond_the_rate_are_dropped_and_counted(self):
        tag = unique_tag()
        rate = 5  # burst 2x = 10
        a = self.lab.start_agent(self.cfg(tag, packets_per_second=rate))
        a.wait_log(r"mdns: announcing")
        s = self.multicast_sender()
        base_in = a.metric("chorus_mdns_packets_total", 'direction="in"')
        base_limited = a.metric("chorus_mdns_packets_rejected_total", 'reason="rate_limited"')
        flood = 300
        start = time.monotonic()
        query = ptr_query(f"_{unique_tag('other')}._udp.local")  # well-formed, for nobody here
        seen = lambda: (a.metric("chorus_mdns_packets_total", 'direction="in"') - base_in +  # noqa: E731
                        a.metric("chorus_mdns_packets_rejected_total", 'reason="rate_limited"') - base_limited)
        # In batches, each read before the next goes out, so the socket buffer drops none. Every datagram
        # is either processed (counted in) or rate limited.
        for sent in range(50, flood + 1, 50):
            for _ in range(50):
                s.sendto(query, ("224.0.0.251", 5353))
            wait_until(lambda: seen() >= sent, 20, f"the agent to read {sent} packets")
        elapsed = time.monotonic() - start
        processed = a.metric("chorus_mdns_packets_total", 'direction="in"') - base_in
        limited = a.metric("chorus_mdns_packets_rejected_total", 'reason="rate_limited"') - base_limited
        # At most the burst plus what the bucket refilled (its own looped-back packets take tokens too).
        allowed = 2 * rate + rate * (elapsed + 1)
        self.assertLessEqual(processed, allowed, (processed, limited, elapsed))
        self.assertGreaterEqual(limited, flood - allowed, (processed, limited, elapsed))
        # The limit sheds load; it does not deafen the agent: a new peer is still found.
        b = self.lab.start_agent(self.cfg(tag))
        wait_until(lambda: b.peer_id in a.discovered(), 30, "a discovering b after the flood")
        self.assertIsNone(a.proc.poll(), "the agent died")

    def test_interfaces_filter_and_degraded_health(self):
        tag = unique_tag()
        ns, ip = self.lab.add_ns()  # eth0 is up on the bridge, but the filter names only eth1
        # (debug: the joins made at start are logged at debug level)
        x = self.lab.start_agent(self.cfg(tag, interfaces=["eth1"], interface_scan_ms=200), ns_ip=(ns, ip),
                                 log_level="debug")
        x.wait_log(r"mdns: announcing .* on 0 interface")
        # No usable interface: running, degraded, and saying why.
        h = mdns_health(x)
        self.assertFalse(h["healthy"], h)
        self.assertIn("no multicast-capable interface", h["message"])
        self.assertEqual(x.metric("chorus_mdns_interfaces"), 0)
        b = self.lab.start_agent(self.cfg(tag))  # on eth0's bridge: x must not hear it through eth0
        b.wait_log(r"mdns: announcing .* on 1 interface")

        # eth1 appears (a second link to the same bridge): x joins it, and only it.
        mark = x.mark()
        i = len(self.lab.nss)
        host_end = f"vi{self.lab.tag}y{i}"
        mdnslab.sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth1", "netns", ns)
        mdnslab.sh("ip", "link", "set", host_end, "master", self.lab.bridge)
        mdnslab.sh("ip", "link", "set", host_end, "up")
        mdnslab.sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.{self.lab.subnet}.0.{200 + i}/24", "dev", "eth1")
        mdnslab.sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth1", "up")
        x.wait_log(r"mdns: joined 224\.0\.0\.251 on eth1", start=mark)
        wait_until(lambda: mdns_health(x)["healthy"], 10, "x healthy once eth1 is up")
        wait_until(lambda: b.peer_id in x.discovered(), 30, "x discovering b through eth1")
        self.assertEqual(x.metric("chorus_mdns_interfaces"), 1)
        self.assertNotRegex(x.log_text(), r"joined \S+ on (eth0|lo)\b")

    def test_legacy_unicast_query_gets_a_unicast_answer_with_its_id(self):
        tag = unique_tag()
        a = self.lab.start_agent(self.cfg(tag))
        a.wait_log(r"mdns: announcing")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.bind((f"10.{self.lab.subnet}.0.254", 0))  # an ordinary resolver's port, not 5353
        query_id = 0x4A7B
        answer = None
        deadline = time.monotonic() + 20 * mdnslab.SLOW
        while answer is None:  # UDP: ask again until answered (each wait is on the socket)
            self.assertLess(time.monotonic(), deadline, "no unicast answer to the legacy query")
            s.sendto(ptr_query(f"_{tag}._udp.local", query_id), (a.ip, 5353))
            s.settimeout(1.0)
            try:
                data, src = s.recvfrom(9000)
            except socket.timeout:
                continue
            answer = data
        self.assertEqual(src, (a.ip, 5353))
        rid, flags = struct.unpack(">HH", answer[:4])
        self.assertEqual(rid, query_id)
        self.assertTrue(flags & 0x8000, f"not a response: flags {flags:#x}")
        self.assertIn(f"dnsaddr=/ip4/{a.ip}/tcp/9000/p2p/{a.peer_id}".encode(), answer)


if __name__ == "__main__":
    unittest.main()
