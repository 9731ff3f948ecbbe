"""license inside a real chorus-agent, driven over HTTP (Python stdlib only).

Uses the agent's integration harness (tests/integration/harness.py of the chorus-agent source tree,
on PYTHONPATH). Run by ctest; exits 77 (reported as Skipped) when the agent or the harness is
missing, never passes without running.
"""
import json
import os
import sys
import urllib.error
import urllib.request

PLUGIN_ID = "license"

try:
    import harness
except ImportError:
    harness = None


class PluginInAgent(harness.AgentTestCase if harness else object):
    def start(self, config):
        """An agent with only this plugin enabled, with `config` as its config section."""
        plugin_dir = self.ws.plugin_dir(ids=[PLUGIN_ID], source=os.environ["CHORUS_PLUGIN_UNDER_TEST_DIR"])
        config_path = self.ws.write("chorus.yaml", "\n".join([
            "host:",
            "  http:",
            "    listen: 127.0.0.1:0",
            f"  state_dir: {json.dumps(self.ws.state)}",
            f"  plugin_dirs: [{json.dumps(plugin_dir)}]",
            "plugins:",
            f"  {PLUGIN_ID}: {json.dumps({'enabled': True, 'critical': True, 'config': config})}",
            ""]))
        agent = harness.Agent(config_path)
        self.agents.append(agent)
        return agent.wait_ready()

    def greet(self, agent, body):
        req = urllib.request.Request(f"http://127.0.0.1:{agent.port}/{PLUGIN_ID}/greet", data=body.encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10 * harness.SLOW) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_greets_with_the_configured_greeting(self):
        agent = self.start({"greeting": "hi"})
        self.assertEqual(self.greet(agent, '{"name": "ada"}'), (200, {"greeting": "hi, ada"}))

    def test_the_host_fills_in_the_schema_defaults(self):
        agent = self.start({})  # greeting "hello", max_name_bytes 64 from the schema
        self.assertEqual(self.greet(agent, '{"name": "ada"}'), (200, {"greeting": "hello, ada"}))
        status, body = self.greet(agent, json.dumps({"name": "x" * 65}))
        self.assertEqual(status, 400, body)


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
