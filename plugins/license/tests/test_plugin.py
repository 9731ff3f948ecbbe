"""license inside a real chorus-agent against a real local licence server (Python stdlib only).

The server below speaks exactly the exchange of docs/protocols.md ("Licence validation"):
POST /v1/licenses/validate with the request JSON, answered as the test says (valid, refused, 5xx), and
counts the requests it gets. Uses the agent's integration harness (tests/integration/harness.py on
PYTHONPATH); exits 77 (reported as Skipped) when the agent or the harness is missing.
"""
import http.server
import json
import os
import sys
import threading
import time

PLUGIN_ID = "license"
LICENSE_ID = "lic-test-1"

try:
    import harness
except ImportError:
    harness = None


class LicenceServer:
    """A local licence server. mode: "valid", "invalid" (403 refusal), "error" (HTTP 503)."""

    def __init__(self, mode="valid"):
        self.mode = mode
        self.requests = []
        self.cond = threading.Condition()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.cond:
                    server.requests.append((self.path, json.loads(body)))
                    server.cond.notify_all()
                    mode = server.mode
                if self.path != "/v1/licenses/validate":
                    return self._send(404, {"error": "not found"})
                if mode == "valid":
                    self._send(200, {"valid": True, "license_id": json.loads(body)["license_id"],
                                     "expires_at": "2099-01-01T00:00:00Z", "features": ["p2p"]})
                elif mode == "invalid":
                    self._send(403, {"valid": False, "reason": "licence revoked by test"})
                else:
                    self._send(503, {"error": "maintenance"})

            def _send(self, status, doc):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set_mode(self, mode):
        with self.cond:
            self.mode = mode

    def count(self):
        with self.cond:
            return len(self.requests)

    def wait_count(self, n, timeout=20):
        deadline = time.monotonic() + harness.scale(timeout)
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"licence server got {len(self.requests)} requests, expected {n}")
                self.cond.wait(left)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def refused_url():
    """A URL nothing listens on."""
    return f"http://127.0.0.1:{harness.free_port()}"


class LicenceGate(harness.AgentTestCase if harness else object):
    def start(self, config, wait=True, env=None, critical=True, extra_plugins=()):
        """An agent with this plugin enabled (critical by default), with `config` as its config section,
        plus the test plugins named in extra_plugins (from CHORUS_TEST_PLUGIN_DIR, not critical)."""
        plugin_dir = self.ws.plugin_dir(ids=[PLUGIN_ID], source=os.environ["CHORUS_PLUGIN_UNDER_TEST_DIR"])
        if extra_plugins:
            self.ws.plugin_dir(ids=extra_plugins, source=os.environ.get("CHORUS_TEST_PLUGIN_DIR"))
        config_path = self.ws.write("chorus.yaml", "\n".join([
            "host:",
            "  http:",
            "    listen: 127.0.0.1:0",
            f"  state_dir: {json.dumps(self.ws.state)}",
            f"  plugin_dirs: [{json.dumps(plugin_dir)}]",
            "plugins:",
            f"  {PLUGIN_ID}: {json.dumps({'enabled': True, 'critical': critical, 'config': config})}",
            *[f"  {pid}: {json.dumps({'enabled': True})}" for pid in extra_plugins],
            ""]))
        agent = harness.Agent(config_path, env=env)
        self.agents.append(agent)
        return agent.wait_ready() if wait else agent

    def server(self, mode="valid"):
        s = LicenceServer(mode)
        self.addCleanup(s.close)
        return s

    def plugin_health(self, agent):
        status, body = agent.http_json("/health")
        return status, body["status"], body["plugins"][PLUGIN_ID]

    def test_valid_licence_starts_the_agent_with_the_documented_request(self):
        srv = self.server("valid")
        agent = self.start({"license_id": LICENSE_ID, "endpoint": srv.url})
        path, req = srv.requests[0]
        self.assertEqual(path, "/v1/licenses/validate")
        self.assertEqual(req["license_id"], LICENSE_ID)
        self.assertEqual(req["product"], "chorus-agent")
        self.assertTrue(req["agent_id"])
        self.assertIn("cluster_id", req)
        self.assertIn("version", req)
        code, status, plugin = self.plugin_health(agent)
        self.assertEqual((code, status, plugin["healthy"]), (200, "healthy", True), plugin)
        _, metrics, _ = agent.http("/metrics")
        self.assertRegex(metrics, r'chorus_license_validations_total\{[^}]*result="valid"[^}]*\} 1')

    def test_environment_overrides_the_licence_id(self):
        srv = self.server("valid")
        self.start({"license_id": "from-config", "endpoint": srv.url}, env={"CHORUS_LICENSE_ID": "from-env"})
        self.assertEqual(srv.requests[0][1]["license_id"], "from-env")

    def test_refused_licence_stops_a_critical_plugin_s_agent(self):
        srv = self.server("invalid")
        agent = self.start({"license_id": LICENSE_ID, "endpoint": srv.url}, wait=False)
        self.assertNotEqual(agent.wait_exit(), 0)
        self.assertIn("licence revoked by test", agent.log_text())

    def test_a_plugin_requiring_the_licence_does_not_start_when_it_fails(self):
        needs = "test.needs-license"
        test_plugins = os.environ.get("CHORUS_TEST_PLUGIN_DIR", "")
        if not os.path.exists(os.path.join(test_plugins, f"chorus-{needs}.so")):
            self.skipTest("the test plugin chorus-test.needs-license.so is not built (tests/CMakeLists.txt)")
        srv = self.server("invalid")
        # Neither is critical, so the agent runs and shows what the resolver did.
        agent = self.start({"license_id": LICENSE_ID, "endpoint": srv.url}, critical=False, extra_plugins=[needs])
        _, plugins = agent.http_json("/plugins")
        state = {p["id"]: p for p in plugins}
        self.assertEqual(state[PLUGIN_ID]["state"], "failed", state[PLUGIN_ID])
        self.assertEqual(state[needs]["state"], "skipped", state[needs])
        self.assertIn("requires chorus.license", state[needs]["message"])

    def test_unreachable_server_without_a_cache_fails(self):
        agent = self.start({"license_id": LICENSE_ID, "endpoint": refused_url()}, wait=False)
        self.assertNotEqual(agent.wait_exit(), 0)
        self.assertIn("unreachable and no valid cached licence", agent.log_text())

    def test_unreachable_server_with_a_fresh_cache_starts_degraded(self):
        srv = self.server("valid")
        first = self.start({"license_id": LICENSE_ID, "endpoint": srv.url})
        self.assertEqual(first.stop(), 0)
        # Same state dir, no server: the cached answer of the first run carries the agent.
        agent = self.start({"license_id": LICENSE_ID, "endpoint": refused_url()})
        agent.wait_log(r"starting on the cached licence")
        code, status, plugin = self.plugin_health(agent)
        self.assertEqual((code, status, plugin["healthy"]), (200, "degraded", False), plugin)
        self.assertIn("grace ends in", plugin["message"])
        cache = os.path.join(self.ws.state, "license", "cache.db")
        self.assertEqual(os.stat(cache).st_mode & 0o777, 0o600)

    def test_breaker_opens_after_the_threshold_and_half_opens(self):
        srv = self.server("valid")
        open_ms = 1500
        agent = self.start({"license_id": LICENSE_ID, "endpoint": srv.url, "revalidate_interval_ms": 100,
                            "retry_interval_ms": 50,
                            "circuit_breaker": {"failure_threshold": 3, "open_ms": open_ms}})
        mark = agent.mark()
        srv.set_mode("error")
        agent.wait_log(r"circuit breaker open after 3 consecutive failures", start=mark)
        at_open = srv.count()
        opened = time.monotonic()
        # Open: the server hears nothing until open_ms has passed; then exactly one probe.
        agent.wait_log(r"circuit breaker half-open", start=mark)
        self.assertGreaterEqual(time.monotonic() - opened, open_ms / 1000 * 0.9)
        # The probe fails: open again (the fourth consecutive failure), after exactly one request.
        agent.wait_log(r"circuit breaker open after 4 consecutive failures", start=mark)
        self.assertEqual(srv.count(), at_open + 1)
        mark2 = agent.mark()
        code, status, plugin = self.plugin_health(agent)
        self.assertEqual((status, plugin["healthy"]), ("degraded", False), plugin)
        # The server comes back: the next probe closes the breaker and the licence is valid again.
        srv.set_mode("valid")
        agent.wait_log(r"circuit breaker closed", start=mark2, timeout=20)
        agent.wait_log(r"is valid again", start=mark2)
        self.assertEqual(self.plugin_health(agent)[1], "healthy")

    def test_revalidation_turning_invalid_makes_the_plugin_unhealthy(self):
        srv = self.server("valid")
        agent = self.start({"license_id": LICENSE_ID, "endpoint": srv.url, "revalidate_interval_ms": 100})
        mark = agent.mark()
        srv.set_mode("invalid")
        agent.wait_log(r"is no longer valid: .*licence revoked by test.*failing closed", start=mark)
        code, status, plugin = self.plugin_health(agent)
        self.assertEqual((code, status, plugin["healthy"]), (503, "unhealthy", False), plugin)
        self.assertIn("licence revoked by test", plugin["message"])


if __name__ == "__main__":
    import unittest
    missing = [what for what, ok in (
        ("tests/integration/harness.py on PYTHONPATH", harness is not None),
        ("CHORUS_AGENT_BIN", os.access(os.environ.get("CHORUS_AGENT_BIN", ""), os.X_OK)),
        ("CHORUS_PLUGIN_UNDER_TEST_DIR", os.path.isdir(os.environ.get("CHORUS_PLUGIN_UNDER_TEST_DIR", ""))),
    ) if not ok]
    if missing:
        print("SKIP: missing " + ", ".join(missing))
        sys.exit(77)
    unittest.main()
