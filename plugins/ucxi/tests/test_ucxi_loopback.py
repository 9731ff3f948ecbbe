"""Three chorus-agents (p2p + gossip + dht + ucxi) on 127.0.0.1, B and C dialling A, driven over
/ucxi/v1/ (plugins/ucxi/README.md, HTTP):

  * content put on A is got on C through the DHT, latest and `*~1`;
  * announce from two agents, discover on the third lists both;
  * content for role `ops`, whose key only A holds, is refused to C with UCXL-403-FORBIDDEN;
  * navigate back and forward to the bounds, and one step past them (UCXL-400-TEMPORAL_INVALID);
  * bad input at the HTTP boundary: invalid addresses, wildcards where one address is needed, an oversize
    body (413), a non-UTF-8 body for a text type (UCXL-400-INVALID_PAYLOAD), a wrong method (405), an
    unknown role, a version or series that does not exist (404);
  * delete, status, query, a decision announced on pubsub and heard by the others;
  * at the end every agent is stopped with SIGTERM, exits 0 and printed no sanitizer report.

Roles: every agent runs as role `dev` and holds its key (one key, copied); `ops` is held by A alone, B and
C know only its recipient (so they may store for it but not read it). The agents are started once for
the class; tests run in name order.
"""
import base64
import hashlib
import json
import re
import unittest

import harness
from harness import Workspace, finish_agents
from ucxitest import agent_missing_reason, make_role_key, start_ucxi_agent

DHT_CONFIG = {"query_timeout_ms": 3000, "lookup_deadline_ms": 15000, "probe": {"enabled": False}}
MAX_BODY = 8192
UCXI_CONFIG = {"max_body_bytes": MAX_BODY, "timeout_ms": 15000}
REQUEST_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def wait_for(what, fn, timeout=30):
    return harness.wait_for(fn, timeout, what, interval=0.05)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


class UcxiLoopbackTest(unittest.TestCase):
    agents = []
    ws = None

    @classmethod
    def setUpClass(cls):
        reason = agent_missing_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.ws = Workspace()
        cls.agents, cls.nodes = [], []
        try:
            dev_key, dev_rcpt = make_role_key()
            ops_key, ops_rcpt = make_role_key()
            recipients = {"dev": dev_rcpt, "ops": ops_rcpt}
            for name in ("a", "b", "c"):
                keys = {"dev": dev_key, **({"ops": ops_key} if name == "a" else {})}
                bootstrap = [cls.nodes[0].addr] if cls.nodes else []
                agent, node = start_ucxi_agent(cls.ws, name, role="dev", keys=keys, recipients=recipients,
                                               bootstrap=bootstrap, dht=DHT_CONFIG, ucxi=UCXI_CONFIG)
                cls.agents.append(agent)
                cls.nodes.append(node)
            cls.a, cls.b, cls.c = cls.nodes
            ids = {n.peer_id for n in cls.nodes}
            for i, n in enumerate(cls.nodes):
                others = ids - {n.peer_id}

                def table_full(n=n, others=others):
                    status, r = n.agent.http_json("/api/v1/dht/routing")
                    return status == 200 and others <= set(r["peer_ids"])
                wait_for(f"routing table of agent {i} holds the other two", table_full)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = finish_agents(cls.agents) if cls.agents else []
        if cls.ws:
            cls.ws.cleanup()
        if problems:
            raise AssertionError("agent check at the end of the suite:\n" + "\n".join(problems))

    # -- envelope checks

    def assert_success(self, status, env, hdrs, code, http_status, what):
        self.assertEqual(status, http_status, f"{what}: {env}")
        self.assertIsInstance(env, dict, what)
        self.assertEqual(set(env), {"response"}, f"{what}: {env}")
        r = env["response"]
        self.assertTrue({"code", "message", "data", "details", "request_id", "timestamp"} <= set(r), f"{what}: {r}")
        self.assertEqual(r["code"], code, f"{what}: {r}")
        self.assertIsInstance(r["details"], dict, f"{what}: {r}")
        self.assertRegex(r["request_id"], REQUEST_ID, what)
        self.assertRegex(r["timestamp"], TIMESTAMP, what)
        self.assertEqual(hdrs.get("X-Request-Id"), r["request_id"], f"{what}: headers {hdrs}")
        return r["data"]

    def assert_error(self, status, env, hdrs, code, http_status, path, what):
        self.assertEqual(status, http_status, f"{what}: {env}")
        self.assertIsInstance(env, dict, what)
        self.assertEqual(set(env), {"error"}, f"{what}: {env}")
        e = env["error"]
        self.assertTrue({"code", "message", "details", "source", "path", "request_id", "timestamp"} <= set(e),
                        f"{what}: {e}")
        self.assertEqual(e["code"], code, f"{what}: {e}")
        self.assertEqual(e["source"], "ucxi-server", what)
        self.assertEqual(e["path"], path, what)
        self.assertIsInstance(e["details"], dict, f"{what}: {e}")
        self.assertRegex(e["request_id"], REQUEST_ID, what)
        self.assertRegex(e["timestamp"], TIMESTAMP, what)
        self.assertEqual(hdrs.get("X-Request-Id"), e["request_id"], f"{what}: headers {hdrs}")
        return e

    # -- the scenarios of the issue

    def test_1_put_on_a_get_latest_and_first_on_c(self):
        series = "ucxl://alice:dev@loopback:put-get/*^/notes/plan.md"
        first, second = b"first draft\n", "second draft \u00e9\n".encode()
        d1 = self.a.put(series, first, "text/markdown")
        self.assertEqual(d1["version"], 1, d1)
        self.assertEqual(d1["sha256"], sha256(first), d1)
        self.assertEqual(d1["size"], len(first), d1)
        self.assertEqual(d1["address"], "ucxl://alice:dev@loopback:put-get/*~1/notes/plan.md", d1)
        d2 = self.a.put(series, second, "text/markdown")
        self.assertEqual(d2["version"], 2, d2)
        self.assertEqual(d2["address"], "ucxl://alice:dev@loopback:put-get/*~2/notes/plan.md", d2)

        status, env, hdrs = self.c.get(series)
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "get latest on C")
        self.assertEqual(data["content"], second.decode(), data)
        self.assertEqual((data["version"], data["versions"]), (2, 2), data)
        self.assertEqual(data["sha256"], sha256(second), data)
        self.assertEqual(data["size"], len(second), data)
        self.assertEqual(data["role"], "dev", data)
        self.assertTrue(data["content_type"].startswith("text/markdown"), data)
        self.assertEqual(data["address"], d2["address"], data)

        status, env, hdrs = self.c.get("ucxl://alice:dev@loopback:put-get/*~1/notes/plan.md")
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "get *~1 on C")
        self.assertEqual(data["content"], first.decode(), data)
        self.assertEqual(data["version"], 1, data)
        self.assertEqual(data["sha256"], sha256(first), data)

        # Binary content: returned base64 and byte for byte.
        blob = bytes(range(256)) * 4
        self.b.put("ucxl://bob:dev@loopback:put-get/*^/blob.bin", blob, "application/octet-stream")
        status, env, hdrs = self.c.get("ucxl://bob:dev@loopback:put-get/*^/blob.bin")
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "get binary on C")
        self.assertNotIn("content", data)
        self.assertEqual(base64.b64decode(data["content_base64"]), blob)

    def test_2_announce_from_two_discover_lists_both(self):
        series = "ucxl://alice:dev@loopback:announce/*^/shared/spec.md"
        self.a.put(series, b"spec", "text/plain")
        for n in (self.a, self.b):
            status, env, hdrs = n.op("POST", "announce", series)
            data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, f"announce on {n.name}")
            self.assertEqual(data["peer_id"], n.peer_id, data)
        status, env, hdrs = self.c.op("GET", "discover", series)
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "discover on C")
        got = {p["peer_id"] for p in data["providers"]}
        self.assertEqual(got, {self.a.peer_id, self.b.peer_id}, data)
        for p in data["providers"]:
            self.assertIsInstance(p["addrs"], list, p)
        status, env, hdrs = self.c.op("GET", "discover", "ucxl://alice:dev@loopback:announce/*^/nobody/has.this")
        self.assert_error(status, env, hdrs, "UCXL-404-RESOLUTION_FAILED", 404, "/ucxi/v1/discover",
                          "discover of a series nobody announced")

    def test_3_node_without_the_role_key_is_forbidden(self):
        secret = "ucxl://alice:ops@loopback:secret/*^/keys.txt"
        self.a.put(secret, b"for ops only", "text/plain")
        status, env, hdrs = self.a.get(secret)
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "get on A, which holds ops")
        self.assertEqual(data["content"], "for ops only")
        status, env, hdrs = self.c.get(secret)
        e = self.assert_error(status, env, hdrs, "UCXL-403-FORBIDDEN", 403, "/ucxi/v1/get",
                              "get on C, which lacks the ops key")
        self.assertNotIn("for ops only", json.dumps(env))
        self.assertGreaterEqual(self.c.metric("chorus_ucxi_requests_total", 'op="get"', 'code="UCXL-403-FORBIDDEN"'),
                                1)
        self.assertIn("code", e)

    def test_4_navigate_to_the_bounds_and_one_past(self):
        base = "ucxl://alice:dev@loopback:navigate/{}/log.txt"
        for i in (1, 2, 3):
            self.a.put(base.format("*^"), f"v{i}".encode(), "text/plain")

        def nav(node, temporal, **params):
            return node.op("GET", "navigate", base.format(temporal), params=params)

        cases = [("*^", {}, 3), ("*~", {}, 3), ("*~1", {}, 1), ("*~3", {}, 3), ("~~1", {}, 2), ("~~2", {}, 1),
                 ("^^2", {"from": 1}, 3), ("^^1", {"from": 2}, 3), ("~~1", {"from": 3}, 2)]
        for temporal, params, version in cases:
            status, env, hdrs = nav(self.c, temporal, **params)
            data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, f"navigate {temporal} {params}")
            self.assertEqual((data["version"], data["versions"]), (version, 3), f"{temporal} {params}: {data}")
            self.assertNotIn("content", data)
            self.assertNotIn("content_base64", data)
        # get follows the same resolution, with content.
        status, env, hdrs = self.c.get(base.format("~~2"))
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "get ~~2")
        self.assertEqual(data["content"], "v1")
        for temporal, params in (("~~3", {}), ("^^1", {}), ("^^3", {"from": 1}), ("~~1", {"from": 1}),
                                 ("*~4", {})):
            status, env, hdrs = nav(self.c, temporal, **params)
            self.assert_error(status, env, hdrs, "UCXL-400-TEMPORAL_INVALID", 400, "/ucxi/v1/navigate",
                              f"navigate one past the bounds: {temporal} {params}")
        status, env, hdrs = self.c.get(base.format("~~3"))
        self.assert_error(status, env, hdrs, "UCXL-400-TEMPORAL_INVALID", 400, "/ucxi/v1/get", "get ~~3")
        self.assertGreaterEqual(self.c.metric("chorus_ucxi_requests_total", 'op="navigate"'), 14)

    def test_5_bad_input_at_the_http_boundary(self):
        n = self.b
        # Invalid addresses: the field the parser names, and the address as given.
        invalid = [("http://a:b@c:d/*^/x", "address"), ("ucxl://a@c:d/*^/x", None), ("ucxl://a:b@c/*^/x", None),
                   ("ucxl://a!:b@c:d/*^/x", "agent"), ("ucxl://a:b@c:d/*x/p", "temporal_segment"),
                   ("ucxl://a:b@c:d/*^/p q", "path"), ("ucxl://a:b@c:d/*~0/p", "temporal_segment"),
                   ("ucxl://a:b@c:d/~~/p", "temporal_segment"), ("ucxl://a:b@c:d/x/p", "temporal_segment"),
                   ("ucxl://" + "a" * 3000 + ":b@c:d/*^/x", "address")]
        for addr, field in invalid:
            for method, op in (("GET", "get"), ("GET", "navigate"), ("PUT", "put")):
                status, env, hdrs = n.op(method, op, addr, b"x" if method == "PUT" else None, "text/plain")
                e = self.assert_error(status, env, hdrs, "UCXL-400-INVALID_ADDRESS", 400, f"/ucxi/v1/{op}",
                                      f"{op} {addr[:60]!r}")
                shown = addr
                if len(addr) > 2048:  # an oversize address is echoed cut short, with its length
                    shown = e["details"].get("provided_address", "")
                    self.assertTrue(shown.startswith(addr[:40]) and f"({len(addr)} bytes)" in shown, e)
                self.assertEqual(e["details"].get("provided_address"), shown, e)
                self.assertIn("parse_error", e["details"], e)
                self.assertTrue(e["details"]["parse_error"], e)
                self.assertTrue(e["message"].startswith("UCXL address validation error in "), e)
                self.assertTrue(e["message"].endswith(f"(address: {shown})"), e)
                if field:
                    self.assertEqual(e["details"].get("field"), field, e)
                    self.assertTrue(e["message"].startswith(f"UCXL address validation error in {field}: "), e)
        # Wildcards where one address is needed.
        wild = "ucxl://any:dev@loopback:wild/*^/x"
        for method, op in (("GET", "get"), ("PUT", "put"), ("DELETE", "delete"), ("POST", "announce"),
                           ("GET", "navigate")):
            status, env, hdrs = n.op(method, op, wild, b"x" if method == "PUT" else None, "text/plain")
            e = self.assert_error(status, env, hdrs, "UCXL-400-INVALID_ADDRESS", 400, f"/ucxi/v1/{op}",
                                  f"{op} of a wildcard address")
            self.assertEqual(e["details"].get("field"), "address", e)
            self.assertEqual(e["details"].get("parse_error"), f"wildcard 'any' not allowed for {op}", e)
        # put needs *^.
        status, env, hdrs = n.op("PUT", "put", "ucxl://bob:dev@loopback:bad/*~1/x", b"x", "text/plain")
        self.assertEqual(status, 400, env)
        # Missing address.
        status, env, hdrs = n.op("GET", "get")
        e = self.assert_error(status, env, hdrs, "UCXL-400-BAD_REQUEST", 400, "/ucxi/v1/get", "get without address")
        self.assertEqual(e["details"].get("field"), "address", e)
        # Oversize body: 413, and nothing stored.
        big = "ucxl://bob:dev@loopback:bad/*^/big.bin"
        status, env, hdrs = n.op("PUT", "put", big, b"z" * (MAX_BODY + 1), "application/octet-stream")
        self.assert_error(status, env, hdrs, "UCXL-413-PAYLOAD_TOO_LARGE", 413, "/ucxi/v1/put", "oversize put")
        status, env, hdrs = n.get(big)
        self.assert_error(status, env, hdrs, "UCXL-404-NOT_FOUND", 404, "/ucxi/v1/get", "get after a refused put")
        d = n.put(big, b"z" * MAX_BODY, "application/octet-stream")  # the limit itself is accepted
        self.assertEqual(d["size"], MAX_BODY)
        # Not UTF-8 where text is required; the same bytes as octets are fine.
        latin = "caf\u00e9".encode("latin-1")
        for ctype in ("text/plain", "application/json", "text/markdown; charset=utf-8", "application/ld+json"):
            status, env, hdrs = n.op("PUT", "put", "ucxl://bob:dev@loopback:bad/*^/latin.txt", latin, ctype)
            self.assert_error(status, env, hdrs, "UCXL-400-INVALID_PAYLOAD", 400, "/ucxi/v1/put",
                              f"non-UTF-8 body as {ctype}")
        d = n.put("ucxl://bob:dev@loopback:bad/*^/latin.bin", latin, "application/octet-stream")
        self.assertEqual(d["sha256"], sha256(latin))
        # Wrong methods on known operations; an unknown operation is the host's 404.
        for method, op in (("DELETE", "get"), ("GET", "put"), ("PUT", "announce"), ("POST", "discover"),
                           ("PUT", "status"), ("PATCH", "navigate"), ("GET", "post"), ("POST", "query")):
            status, env, hdrs = n.op(method, op, "ucxl://bob:dev@loopback:bad/*^/x")
            self.assert_error(status, env, hdrs, "UCXL-405-METHOD_NOT_ALLOWED", 405, f"/ucxi/v1/{op}",
                              f"{method} {op}")
        status, _, _ = n.raw("GET", "/ucxi/v1/no-such-op")
        self.assertEqual(status, 404)
        # A role no agent knows.
        status, env, hdrs = n.op("PUT", "put", "ucxl://bob:nosuchrole@loopback:bad/*^/x", b"x", "text/plain")
        e = self.assert_error(status, env, hdrs, "UCXL-422-UNPROCESSABLE", 422, "/ucxi/v1/put", "unknown role")
        self.assertEqual(e["details"].get("field"), "role", e)
        # A series never put, and a version that does not exist.
        status, env, hdrs = n.get("ucxl://bob:dev@loopback:bad/*^/never/put")
        self.assert_error(status, env, hdrs, "UCXL-404-NOT_FOUND", 404, "/ucxi/v1/get", "get of a series never put")
        # *~N past the last version is out of range, like ~~N and ^^N (navigator.hpp), not a 404.
        status, env, hdrs = n.get("ucxl://bob:dev@loopback:bad/*~9/latin.bin")
        self.assert_error(status, env, hdrs, "UCXL-400-TEMPORAL_INVALID", 400, "/ucxi/v1/get", "get *~9 of 1 version")
        # A decision that is not one.
        status, env, hdrs = n.op("POST", "post", None, b'{"id": "x"}', "application/json")
        self.assert_error(status, env, hdrs, "UCXL-400-INVALID_PAYLOAD", 400, "/ucxi/v1/post", "an incomplete decision")
        # The agent still serves after all of that.
        status, env, hdrs = n.op("GET", "status")
        self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "status after the bad input")

    def test_6_delete_keeps_earlier_versions(self):
        addr = "ucxl://carol:dev@loopback:delete/*^/draft.txt"
        self.c.put(addr, b"kept", "text/plain")
        status, body, hdrs = self.c.raw("DELETE", "/ucxi/v1/delete?address=" +
                                        "ucxl%3A%2F%2Fcarol%3Adev%40loopback%3Adelete%2F%2A%5E%2Fdraft.txt")
        self.assertEqual(status, 204, body)
        self.assertEqual(body, b"")
        self.assertRegex(hdrs.get("X-Request-Id", ""), REQUEST_ID)
        status, env, hdrs = self.a.get(addr)
        e = self.assert_error(status, env, hdrs, "UCXL-404-NOT_FOUND", 404, "/ucxi/v1/get", "latest of a deleted series")
        self.assertIn("deleted at version 2", e["message"] + json.dumps(e["details"]))
        status, env, hdrs = self.a.get("ucxl://carol:dev@loopback:delete/*~1/draft.txt")
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "*~1 of a deleted series")
        self.assertEqual(data["content"], "kept")

    def test_7_status_and_query(self):
        status, env, hdrs = self.a.op("GET", "status")
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "status")
        for k in ("server", "resolver", "storage", "cache", "navigator", "p2p", "pubsub"):
            self.assertIn(k, data, data)
        self.assertEqual(data["p2p"]["peer_id"], self.a.peer_id, data)
        self.assertGreaterEqual(data["p2p"]["connected_peers"], 2, data)
        self.assertIs(data["pubsub"]["present"], True, data)
        self.assertEqual(data["server"]["base_path"].rstrip("/"), "/ucxi/v1", data)
        self.a.put("ucxl://alice:dev@loopback:query/*^/q/one.txt", b"1", "text/plain")
        self.a.put("ucxl://alice:dev@loopback:query/*^/q/two.txt", b"2", "text/plain")
        status, env, hdrs = self.a.op("GET", "query", "ucxl://any:any@loopback:query/*^/q")
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "query")
        got = {m["address"] for m in data["matches"]}
        self.assertTrue({"ucxl://alice:dev@loopback:query/q/one.txt", "ucxl://alice:dev@loopback:query/q/two.txt"} <=
                        {re.sub(r"/(\*\^|\*~\d*)/", "/", a) for a in got}, data)
        status, env, hdrs = self.a.op("GET", "query", "ucxl://any:any@loopback:query/*^/q", params={"limit": 1})
        data = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "query limit=1")
        self.assertEqual(len(data["matches"]), 1, data)

    def test_8_decision_posted_on_a_is_heard_by_b_and_c(self):
        decision = {"id": "adopt-ucxl", "title": "Adopt UCXL addresses", "summary": "loopback test",
                    "outcome": "approval", "author": {"agent": "alice", "role": "dev"}, "project": "loopback",
                    "task": "decide",
                    "citations": ["ucxl://alice:dev@loopback:put-get/*~1/notes/plan.md"],
                    "created": "2026-12-07T04:00:00Z"}
        heard_before = [n.metric("chorus_ucxi_announcements_heard_total") for n in (self.b, self.c)]
        status, env, hdrs = self.a.op("POST", "post", None, json.dumps(decision).encode(), "application/json")
        data = self.assert_success(status, env, hdrs, "UCXL-201-CREATED", 201, "post a decision")
        self.assertEqual(data["id"], "adopt-ucxl", data)
        self.assertEqual(data["address"], "ucxl://alice:dev@loopback:decide/*~1/decisions/adopt-ucxl.json", data)
        for n, before in zip((self.b, self.c), heard_before):
            wait_for(f"{n.name} hearing the decision on pubsub",
                     lambda n=n, before=before: n.metric("chorus_ucxi_announcements_heard_total") > before)
        status, env, hdrs = self.c.get("ucxl://alice:dev@loopback:decide/*^/decisions/adopt-ucxl.json")
        got = self.assert_success(status, env, hdrs, "UCXL-200-SUCCESS", 200, "get the decision on C")
        self.assertEqual(json.loads(got["content"])["id"], "adopt-ucxl")
        self.assertGreaterEqual(self.a.metric("chorus_ucxi_decisions_published_total"), 1)

    def test_9_sigterm_exits_cleanly(self):
        for agent in reversed(self.agents):
            self.assertEqual(agent.stop(), 0, f"{agent.log_path}: exit status after SIGTERM")
        problems = finish_agents(self.agents)
        self.assertEqual(problems, [], "\n".join(problems))


if __name__ == "__main__":
    unittest.main()
