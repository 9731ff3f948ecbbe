"""ABI compatibility: a plugin built against only the ABI 1.0 header (tests/compat/abi10_plugin.c) loads
and runs in today's host (ABI 1.2): it starts, logs, serves a route, and stops cleanly."""
import json
import os
import unittest

from harness import AgentTestCase, missing

COMPAT_DIR = os.environ.get("CHORUS_COMPAT_PLUGIN_DIR", "")


class Abi10Plugin(AgentTestCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(os.path.join(COMPAT_DIR, "chorus-compat10.so")):
            raise unittest.SkipTest(missing("compat plugin", "chorus-compat10.so is not built (target compat_abi10_plugin)"))

    def test_a_10_plugin_starts_logs_serves_and_stops(self):
        agent = self.start_agent({"compat10": {}}, plugin_dirs=[COMPAT_DIR])
        agent.wait_log(r"\[compat10\] compat10 started: built for ABI 1\.0, host ABI 1\.2")
        status, body, _ = agent.http("/compat10/echo?hello")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"abi_minor": 0, "host_abi_minor": 2, "bytes": 5})
        agent.wait_log(r"\[compat10\] compat10 echo: hello")
        status, plugins = agent.http_json("/plugins")
        self.assertEqual(status, 200)
        self.assertIn("compat10", json.dumps(plugins))
        self.assertEqual(agent.stop(), 0)
        agent.wait_log(r"compat10 stopped")


if __name__ == "__main__":
    unittest.main()
