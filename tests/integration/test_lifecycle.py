"""Start/stop order, failures, HTTP routes and health of a running agent."""
import json
import os
import re
import signal
import time
import unittest

from harness import SLOW, Agent, AgentTestCase, config_yaml


class Order(AgentTestCase):
    def test_start_in_dependency_order_stop_in_exact_reverse(self):
        agent = self.start_agent({"test.top": {}, "test.side": {}, "test.mid": {}, "test.base": {}})
        self.assertEqual(self.ws.events("start"), ["test.base", "test.mid", "test.side", "test.top"])
        self.assertEqual(agent.stop(), 0)
        self.assertEqual(self.ws.events("stop"), ["test.top", "test.side", "test.mid", "test.base"])
        self.assertEqual(self.ws.events("destroy"), ["test.top", "test.side", "test.mid", "test.base"])

    def test_sigint_stops_cleanly(self):
        agent = self.start_agent({"test.base": {}})
        self.assertEqual(agent.stop(signal.SIGINT), 0)
        self.assertEqual(self.ws.events("stop"), ["test.base"])
        agent.wait_log(r"received SIGINT")

    def test_order_is_the_actual_start_order_when_one_failed(self):
        agent = self.start_agent({"test.base": {}, "test.side": {"config": {"fail_start": True}}, "test.mid": {}})
        self.assertEqual(self.ws.events("start"), ["test.base", "test.mid", "test.side"])
        agent.stop()
        # test.side never started, so it is neither stopped nor destroyed after its failed start.
        self.assertEqual(self.ws.events("stop"), ["test.mid", "test.base"])
        self.assertEqual(self.ws.events("destroy"), ["test.side", "test.mid", "test.base"])


class Callbacks(AgentTestCase):
    def test_posted_task_and_timer_run_once_then_their_dtor_once(self):
        agent = self.start_agent({"test.base": {"config": {"post_on_start": True}}})
        deadline = time.monotonic() + 10 * SLOW
        while len([r for r in self.ws.records() if r[0].startswith("task")]) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)  # the callbacks run on worker threads; nothing else to wait on
        self.assertEqual(agent.stop(), 0)
        events = [r[0] for r in self.ws.records() if r[0].startswith("task")]
        self.assertEqual(sorted(events), ["task", "task", "task-dtor", "task-dtor"])
        # Each dtor comes after a run (never at registration).
        self.assertEqual(events[0], "task")


class Failures(AgentTestCase):
    def test_critical_failure_exits_1_after_stopping_the_rest(self):
        agent = self.start_agent({"test.base": {}, "test.mid": {"critical": True, "config": {"fail_start": True}}},
                                 wait=False)
        self.assertEqual(agent.wait_exit(), 1)
        agent.wait_log(r"plugin 'test.mid' failed: start failed: unavailable: fail_start is set")
        self.assertEqual(self.ws.events("stop"), ["test.base"])

    def test_critical_plugin_that_cannot_load_exits_1_before_starting_anything(self):
        agent = self.start_agent({"test.base": {}, "no.such": {"critical": True}}, wait=False)
        self.assertEqual(agent.wait_exit(), 1)
        agent.wait_log(r"no plugin file chorus-no\.such\.so")
        self.assertEqual(self.ws.events("start"), [])

    def test_noncritical_failure_skips_dependents_and_degrades(self):
        agent = self.start_agent({"test.base": {"config": {"fail_create": True}}, "test.mid": {}, "test.opt": {}})
        status, health = agent.http_json("/health")
        self.assertEqual(status, 200)
        self.assertEqual(health["status"], "degraded")
        self.assertEqual(health["plugins"]["test.base"]["state"], "failed")
        self.assertIn("fail_create is set", health["plugins"]["test.base"]["message"])
        self.assertEqual(health["plugins"]["test.mid"]["state"], "skipped")
        self.assertIn("test.base", health["plugins"]["test.mid"]["message"])
        # test.opt only optionally needs test.base and still runs.
        self.assertEqual(health["plugins"]["test.opt"]["state"], "running")
        self.assertEqual(agent.http("/health/ready")[0], 200)

    def test_exception_in_start_is_contained(self):
        agent = self.start_agent({"test.base": {"config": {"throw_start": True}}, "test.side": {}})
        agent.wait_log(r"plugin 'test.base' failed: start failed: internal error: an exception escaped the plugin: "
                       r"test plugin threw in start")
        status, health = agent.http_json("/health")
        self.assertEqual(health["plugins"]["test.side"]["state"], "skipped")
        self.assertEqual(agent.stop(), 0)

    def test_exception_in_create_is_contained(self):
        agent = self.start_agent({"test.base": {"config": {"throw_create": True}}})
        agent.wait_log(r"create failed: internal error: an exception escaped the plugin: test plugin threw in create")
        self.assertEqual(agent.stop(), 0)

    def test_strict_mode_aborts_on_any_failure(self):
        agent = self.start_agent({"test.base": {}, "test.side": {"config": {"fail_start": True}}},
                                 host_extra={"strict": True}, wait=False)
        self.assertEqual(agent.wait_exit(), 1)
        self.assertEqual(self.ws.events("stop"), ["test.base"])

    def test_plugin_hanging_in_stop_hits_its_deadline(self):
        agent = self.start_agent({"test.base": {}, "test.top": {"config": {"hang_stop_ms": 60000}}, "test.mid": {}},
                                 host_extra={"shutdown_timeout_ms": 3000})
        began = time.monotonic()
        rc = agent.stop(timeout=30)
        elapsed = time.monotonic() - began
        self.assertEqual(rc, 0)
        agent.wait_log(r"plugin 'test.top' did not stop within 1000 ms")
        self.assertLess(elapsed, 20 * SLOW)
        # The others still stop, in order, after the hung one was abandoned.
        self.assertEqual(self.ws.events("stop"), ["test.top", "test.mid", "test.base"])
        self.assertEqual(self.ws.events("destroy"), ["test.mid", "test.base"])

    def test_route_clash_fails_the_second_plugin(self):
        agent = self.start_agent({"test.base": {"config": {"routes": ["/shared"]}},
                                  "test.side": {"config": {"routes": ["/shared"]}}})
        agent.wait_log(r"plugin 'test.side' failed: .*HTTP route GET /shared is already mounted by 'test.base'")
        status, body = agent.http_json("/shared")
        self.assertEqual(body["plugin"], "test.base")
        # The failed plugin was destroyed; the clash did not disturb the first one.
        self.assertIn("test.side", self.ws.events("destroy"))
        self.assertEqual(agent.http_json("/health")[1]["plugins"]["test.base"]["state"], "running")

    def test_route_clash_ignored_by_the_plugin_still_fails_it_and_stops_it(self):
        agent = self.start_agent({"test.base": {"config": {"routes": ["/shared"]}},
                                  "test.side": {"config": {"routes": ["/shared"], "ignore_route_errors": True}}})
        agent.wait_log(r"plugin 'test.side' failed: HTTP route GET /shared is already mounted by 'test.base'")
        # start() returned OK, so the host must call stop() before destroy().
        side = [r[0] for r in self.ws.records() if r[1] == "test.side"]
        self.assertEqual(side, ["create", "start", "stop", "destroy"])

    def test_plugin_cannot_take_a_host_route(self):
        agent = self.start_agent({"test.base": {"config": {"routes": ["/health"]}}})
        agent.wait_log(r"HTTP route GET /health is already mounted by 'host'")


class Http(AgentTestCase):
    def test_live_ready_health(self):
        agent = self.start_agent({"test.base": {"critical": True}, "test.mid": {"config": {"health": "degraded",
                                                                                            "health_message": "meh"}}})
        self.assertEqual(agent.http_json("/health/live"), (200, {"status": "alive"}))
        self.assertEqual(agent.http("/health/ready")[0], 200)
        status, health = agent.http_json("/health")
        self.assertEqual(status, 200)
        self.assertEqual(health["status"], "degraded")
        self.assertEqual(health["plugins"]["test.base"],
                         {"state": "running", "critical": True, "healthy": True, "message": ""})
        self.assertEqual(health["plugins"]["test.mid"],
                         {"state": "running", "critical": False, "healthy": False, "message": "meh"})

    def test_unhealthy_critical_plugin(self):
        agent = self.start_agent({"test.base": {"critical": True, "config": {"health": "unhealthy"}}})
        status, health = agent.http_json("/health")
        self.assertEqual(status, 503)
        self.assertEqual(health["status"], "unhealthy")

    def test_healthy(self):
        agent = self.start_agent({"test.base": {}})
        self.assertEqual(agent.http_json("/health")[1]["status"], "healthy")

    def test_metrics(self):
        agent = self.start_agent({"test.base": {}})
        agent.http("/health/live")
        # The request is counted when its exchange finishes, which can be just after the client
        # has read the answer: scrape until it shows up (bounded).
        deadline = time.monotonic() + 10 * SLOW
        while True:
            status, text, headers = agent.http("/metrics")
            if 'route="/health/live"' in text or time.monotonic() > deadline:
                break
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertRegex(text, r'chorus_plugin_up\{plugin="test.base",state="running"\} 1\n')
        self.assertRegex(text, r'chorus_build_info\{version="\d+\.\d+\.\d+",abi="1\.2"\} 1\n')
        self.assertRegex(text, r'chorus_http_requests_total\{route="/health/live",code="200"\} 1\n')
        self.assertIn("# TYPE chorus_http_request_duration_seconds histogram", text)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r"^chorus_[a-z_]+(\{.*\})? [-+0-9.eInf]+$")

    def test_plugins_route_redacts_secrets(self):
        agent = self.start_agent({"test.mid": {"config": {"token": "hunter2"}}, "test.base": {}})
        status, plugins = agent.http_json("/plugins")
        self.assertEqual(status, 200)
        by_id = {p["id"]: p for p in plugins}
        mid = by_id["test.mid"]
        self.assertEqual(mid["state"], "running")
        self.assertEqual(mid["version"], "1.0.0")
        self.assertEqual(mid["provides"], [{"service": "test.mid", "version": "1.2", "swappable": False}])
        self.assertEqual(mid["requires"], [{"service": "test.base", "range": "^1", "optional": False}])
        self.assertEqual(mid["wiring"], {"test.base": "test.base"})
        self.assertEqual(by_id["test.base"]["bound"], ["test.base"])
        self.assertEqual(mid["config"]["token"], "***")
        self.assertNotIn("hunter2", json.dumps(plugins))
        self.assertTrue(mid["path"].endswith("chorus-test.mid.so"))

    def test_plugin_route_and_unknown_route(self):
        agent = self.start_agent({"test.base": {"config": {"routes": ["/test/who"]}}})
        status, body = agent.http_json("/test/who")
        self.assertEqual((status, body["plugin"], body["version"]), (200, "test.base", "1.0.0"))
        status, body = agent.http_json("/nope")
        self.assertEqual(status, 404)
        self.assertIn("error", body)

    def test_ready_is_503_while_a_critical_plugin_starts(self):
        agent = self.start_agent({"test.base": {"critical": True, "config": {"hang_start_ms": 3000 * SLOW}}}, wait=False)
        m = agent.wait_log(r"HTTP listening on [0-9.]+:(\d+)")
        agent.port = int(m.group(1))
        self.assertEqual(agent.http("/health/ready")[0], 503)
        self.assertEqual(agent.http("/health/live")[0], 200)
        agent.wait_log(r"ready: 1 plugins running")
        self.assertEqual(agent.http("/health/ready")[0], 200)

    def test_json_logs(self):
        agent = self.start_agent({"test.base": {}}, host_extra={"log_format": "json"})
        line = agent.wait_log(r'"component":"test\.base"').string
        record = json.loads(line)
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["msg"], "test plugin started")
        self.assertRegex(record["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class AgentIdentity(AgentTestCase):
    """An empty agent.id is generated once, kept in the state dir and handed to plugins (host_info)."""

    def host_info_ids(self):
        return [r[3].split("=", 1)[1] for r in self.ws.records() if r[0] == "host-info"]

    def test_generated_id_is_kept_across_restarts_and_given_to_plugins(self):
        plugins = {"test.base": {"config": {"record_host_info": True}}}
        agent = self.start_agent(plugins)
        first = agent.wait_log(r"agent id '([^']+)' \(generated and kept in (.+)\)")
        generated, path = first.group(1), first.group(2)
        self.assertRegex(generated, r"^agent-[0-9a-f]{16}$")
        self.assertEqual(self.host_info_ids(), [generated])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            self.assertEqual(f.read(), generated + "\n")
        self.assertEqual(agent.stop(), 0)

        again = self.start_agent(plugins)
        again.wait_log(r"agent id '%s' \(kept in " % re.escape(generated))
        self.assertEqual(self.host_info_ids(), [generated, generated])

    def test_two_fresh_state_dirs_give_two_ids(self):
        plugins = {"test.base": {"config": {"record_host_info": True}}}
        a = self.start_agent(plugins)
        id_a = a.wait_log(r"agent id '([^']+)' \(generated").group(1)
        # A second agent of the same config file but its own state dir.
        other_state = self.ws.path("state-b")
        path = self.ws.write("b.yaml", config_yaml(self.ws, plugins, host_extra={"state_dir": other_state}))
        b = Agent(path)
        self.agents.append(b)
        b.wait_ready()
        id_b = b.wait_log(r"agent id '([^']+)' \(generated").group(1)
        self.assertNotEqual(id_a, id_b)

    def test_configured_id_wins_and_nothing_is_kept(self):
        agent = self.start_agent({"test.base": {"config": {"record_host_info": True}}},
                                 env={"CHORUS_AGENT_ID": "walnut-7"})
        agent.wait_log(r"agent id 'walnut-7' \(from the configuration\)")
        self.assertEqual(self.host_info_ids(), ["walnut-7"])
        self.assertFalse(os.path.exists(os.path.join(self.ws.state, "agent-id")))

    def test_unreadable_kept_id_stops_the_start_with_a_clear_error(self):
        os.makedirs(self.ws.state, exist_ok=True)
        self.ws.write("state/agent-id", "not an id!\n")
        agent = self.start_agent({"test.base": {}}, wait=False)
        agent.wait_log(r"agent id file '.*agent-id': does not hold a valid agent id")
        agent.expected_exit = 1
        self.assertEqual(agent.wait_exit(), 1)
        with open(self.ws.path("state/agent-id")) as f:
            self.assertEqual(f.read(), "not an id!\n")  # never replaced silently


if __name__ == "__main__":
    unittest.main()
