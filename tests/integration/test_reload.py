"""SIGHUP: live reload of the config (docs/contract.md, Signals)."""
import unittest

from harness import AgentTestCase


class Reload(AgentTestCase):
    def states(self, agent):
        return {pid: p["state"] for pid, p in agent.http_json("/health")[1]["plugins"].items()}

    def test_newly_enabled_plugins_start_in_order(self):
        agent = self.start_agent({"test.base": {}})
        self.rewrite_config({"test.base": {}, "test.top": {}, "test.mid": {}})
        agent.reload()
        self.assertEqual(self.ws.events("start"), ["test.base", "test.mid", "test.top"])
        self.assertEqual(self.states(agent), {"test.base": "running", "test.mid": "running", "test.top": "running"})
        agent.stop()
        self.assertEqual(self.ws.events("stop"), ["test.top", "test.mid", "test.base"])

    def test_disabled_plugin_stops(self):
        agent = self.start_agent({"test.base": {}, "test.side": {}, "test.mid": {}})
        self.rewrite_config({"test.base": {}, "test.side": {"enabled": False}, "test.mid": {}})
        agent.reload()
        self.assertEqual(self.ws.events("stop"), ["test.side"])
        self.assertEqual(self.ws.events("destroy"), ["test.side"])
        self.assertEqual(self.states(agent)["test.mid"], "running")
        self.assertNotIn("test.side", self.states(agent))

    def test_removed_plugin_stops(self):
        agent = self.start_agent({"test.base": {}, "test.side": {}})
        self.rewrite_config({"test.base": {}})
        agent.reload()
        self.assertEqual(self.ws.events("stop"), ["test.side"])

    def test_disabling_a_required_plugin_is_refused(self):
        agent = self.start_agent({"test.base": {}, "test.mid": {}})
        self.rewrite_config({"test.base": {"enabled": False}, "test.mid": {}})
        agent.reload()
        agent.wait_log(r"not disabling plugin 'test.base': 'test.mid' still requires test.base")
        self.assertEqual(self.ws.events("stop"), [])
        self.assertEqual(self.states(agent)["test.base"], "running")

    def test_changed_config_is_applied_with_reconfigure(self):
        agent = self.start_agent({"test.base": {}, "test.mid": {}})
        self.rewrite_config({"test.base": {"config": {"health": "degraded", "health_message": "x"}}, "test.mid": {}})
        agent.reload()
        self.assertEqual(self.ws.events("reconfigure"), ["test.base"])
        self.assertEqual(self.ws.events("stop"), [])

    def test_change_needing_restart_restarts_a_leaf(self):
        agent = self.start_agent({"test.base": {}, "test.mid": {}})
        self.rewrite_config({"test.base": {}, "test.mid": {"config": {"needs_restart": True}}})
        agent.reload()
        self.assertEqual(self.ws.events("stop"), ["test.mid"])
        self.assertEqual(self.ws.events("start"), ["test.base", "test.mid", "test.mid"])
        self.assertEqual(self.states(agent)["test.mid"], "running")

    def test_change_needing_restart_is_refused_with_dependents(self):
        agent = self.start_agent({"test.base": {}, "test.mid": {}})
        self.rewrite_config({"test.base": {"config": {"needs_restart": True}}, "test.mid": {}})
        agent.reload()
        agent.wait_log(r"plugin 'test.base' needs a restart to apply the change, but test.mid \(test.base\) depend on it")
        self.assertEqual(self.ws.events("stop"), [])

    def test_malformed_config_keeps_the_running_one(self):
        agent = self.start_agent({"test.base": {}})
        self.ws.write("chorus.yaml", "host: [unterminated\n")
        m = agent.reload()
        self.assertIn("reload failed", m.group(0))
        self.assertEqual(self.states(agent), {"test.base": "running"})
        status, text, _ = agent.http("/metrics")
        self.assertIn('chorus_reloads_total{result="error"} 1', text)

    def test_failed_plugin_is_retried_after_the_config_is_fixed(self):
        agent = self.start_agent({"test.base": {"config": {"fail_start": True}}})
        self.assertEqual(self.states(agent), {"test.base": "failed"})
        self.rewrite_config({"test.base": {}})
        agent.reload()
        self.assertEqual(self.states(agent), {"test.base": "running"})
        status, text, _ = agent.http("/metrics")
        self.assertIn('chorus_reloads_total{result="ok"} 1', text)

    def test_invalid_plugin_config_on_reload_keeps_the_old_one(self):
        agent = self.start_agent({"test.base": {}})
        self.rewrite_config({"test.base": {"config": {"health": "purple"}}})
        agent.reload()
        agent.wait_log(r"plugin 'test.base': new config rejected: plugins\.test\.base\.config\.health")
        self.assertEqual(self.ws.events("reconfigure"), [])
        self.assertEqual(self.states(agent), {"test.base": "running"})


if __name__ == "__main__":
    unittest.main()
