"""Hot swap of a swappable service (test.echo, like chorus.ai.provider) on SIGHUP."""
import concurrent.futures
import json
import os
import re
import shutil
import threading
import time
import unittest

from harness import BAD_PLUGINS, PLUGINS_V2, SLOW, AgentTestCase, scale, wait_for

ECHO = {"test.echo-a": {}, "test.echo-b": {}, "test.consumer": {}}


class HotSwap(AgentTestCase):
    def call(self, agent, delay_ms=0):
        """One request through the consumer; returns (status, body dict)."""
        status, body, _ = agent.http(f"/test.consumer/call?delay={delay_ms}", timeout=60)
        return status, json.loads(body)

    def wait_refs(self, agent, plugin, count):
        """Waits until `count` requests hold a reference to the plugin's service."""
        deadline = time.monotonic() + 20 * SLOW
        pattern = re.compile(r'chorus_service_references\{plugin="%s"\} (\d+)' % re.escape(plugin))
        while time.monotonic() < deadline:
            m = pattern.search(agent.http("/metrics")[1])
            if m and int(m.group(1)) == count:
                return
            time.sleep(0.02)
        self.fail(f"{plugin} never had {count} references in flight")

    def start_inflight(self, agent, n, delay_ms):
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=n)
        self.addCleanup(pool.shutdown)
        return [pool.submit(self.call, agent, delay_ms) for _ in range(n)]

    def test_binding_change_moves_new_requests_and_finishes_old_ones(self):
        agent = self.start_agent(ECHO, bindings={"test.echo": "test.echo-a"})
        self.assertEqual(self.call(agent)[1]["plugin"], "test.echo-a")
        inflight = self.start_inflight(agent, 8, 1500)
        self.wait_refs(agent, "test.echo-a", 8)
        self.rewrite_config(ECHO, bindings={"test.echo": "test.echo-b"})
        agent.reload()
        status, body = self.call(agent)
        self.assertEqual((status, body["plugin"]), (200, "test.echo-b"))
        for f in inflight:
            status, body = f.result(timeout=30 * SLOW)
            self.assertEqual((status, body["plugin"]), (200, "test.echo-a"))
        agent.wait_log(r"re-bound test.echo from 'test.echo-a' to 'test.echo-b'")
        status, plugins = agent.http_json("/plugins")
        bound = {p["id"]: p["bound"] for p in plugins}
        self.assertEqual(bound["test.echo-b"], ["test.echo"])
        self.assertEqual(bound["test.echo-a"], [])

    def test_disabled_old_provider_stops_only_when_idle(self):
        agent = self.start_agent(ECHO, bindings={"test.echo": "test.echo-a"})
        inflight = self.start_inflight(agent, 6, 1500)
        self.wait_refs(agent, "test.echo-a", 6)
        self.rewrite_config({"test.echo-b": {}, "test.consumer": {}})
        agent.reload()
        self.assertEqual(self.call(agent)[1]["plugin"], "test.echo-b")
        for f in inflight:
            self.assertEqual(f.result(timeout=30 * SLOW)[0], 200)
        agent.wait_log(r"retired plugin 'test.echo-a'")
        stops = [r for r in self.ws.records() if r[0] == "stop" and r[1] == "test.echo-a"]
        self.assertEqual(stops, [["stop", "test.echo-a", "1.0.0", "inflight=0"]])
        self.assertIn("drain", [r[0] for r in self.ws.records() if r[1] == "test.echo-a"])

    def replaceable_dir(self):
        return self.ws.plugin_dir("swap", ["test.echo-a", "test.consumer"])

    def replace_file(self, directory, source):
        tmp = os.path.join(directory, ".incoming.so")
        shutil.copy2(source, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(directory, "chorus-test.echo-a.so"))  # atomic, like dpkg

    def test_replaced_file_is_hot_swapped(self):
        d = self.replaceable_dir()
        plugins = {"test.echo-a": {}, "test.consumer": {}}
        agent = self.start_agent(plugins, plugin_dirs=[d])
        self.assertEqual(self.call(agent)[1]["version"], "1.0.0")
        inflight = self.start_inflight(agent, 8, 1500)
        self.wait_refs(agent, "test.echo-a", 8)
        self.replace_file(d, os.path.join(PLUGINS_V2, "chorus-test.echo-a.so"))
        agent.reload()
        agent.wait_log(r"hot-swapped plugin 'test.echo-a' to 1\.5\.0 \(instance 2\)")
        status, body = self.call(agent)
        self.assertEqual((status, body["version"]), (200, "1.5.0"))
        for f in inflight:
            status, body = f.result(timeout=30 * SLOW)
            self.assertEqual((status, body["version"]), (200, "1.0.0"))
        agent.wait_log(r"retired plugin 'test.echo-a#1'|retired plugin 'test.echo-a'")
        stops = [r for r in self.ws.records() if r[0] == "stop"]
        self.assertEqual(stops, [["stop", "test.echo-a", "1.0.0", "inflight=0"]])
        status, plugins_json = agent.http_json("/plugins")
        echo = [p for p in plugins_json if p["id"] == "test.echo-a"][0]
        self.assertEqual((echo["version"], echo["instance"]), ("1.5.0", 2))
        agent.stop()
        self.assertEqual([r[2] for r in self.ws.records() if r[0] == "stop" and r[1] == "test.echo-a"],
                         ["1.0.0", "1.5.0"])

    def test_unusable_new_file_leaves_the_old_provider_serving(self):
        d = self.replaceable_dir()
        agent = self.start_agent({"test.echo-a": {}, "test.consumer": {}}, plugin_dirs=[d])
        self.replace_file(d, os.path.join(BAD_PLUGINS, "chorus-test.not-a-plugin.so"))
        agent.reload()
        agent.wait_log(r"plugin 'test.echo-a': the replaced file cannot be used: .*not a chorus plugin")
        status, body = self.call(agent)
        self.assertEqual((status, body["version"]), (200, "1.0.0"))

    def test_failed_start_of_the_new_provider_leaves_the_old_one_serving(self):
        d = self.replaceable_dir()
        agent = self.start_agent({"test.echo-a": {}, "test.consumer": {}}, plugin_dirs=[d])
        self.replace_file(d, os.path.join(PLUGINS_V2, "chorus-test.echo-a.so"))
        self.rewrite_config({"test.echo-a": {"config": {"fail_start": True}}, "test.consumer": {}}, plugin_dirs=[d])
        agent.reload()
        agent.wait_log(r"hot swap of plugin 'test.echo-a' failed: start failed: .*; the running instance keeps serving")
        status, body = self.call(agent)
        self.assertEqual((status, body["version"]), (200, "1.0.0"))
        status, text, _ = agent.http("/metrics")
        self.assertIn('chorus_hot_swaps_total{service="test.echo",result="failed"} 1', text)

    def test_drain_deadline_cancels_stragglers(self):
        d = self.replaceable_dir()
        agent = self.start_agent({"test.echo-a": {}, "test.consumer": {}}, plugin_dirs=[d],
                                 host_extra={"swap_drain_timeout_ms": 1000})
        inflight = self.start_inflight(agent, 3, 120000)
        self.wait_refs(agent, "test.echo-a", 3)
        self.replace_file(d, os.path.join(PLUGINS_V2, "chorus-test.echo-a.so"))
        agent.reload()
        agent.wait_log(r"still has 3 requests in flight after 1000 ms; stopping it")
        for f in inflight:
            status, body = f.result(timeout=30 * SLOW)
            self.assertEqual((status, body), (503, {"error": "cancelled"}))
        self.assertEqual(self.call(agent)[1]["version"], "1.5.0")

    def test_swapped_provider_takes_over_its_routes(self):
        d = self.replaceable_dir()
        agent = self.start_agent({"test.echo-a": {"config": {"routes": ["/echo/who"]}}, "test.consumer": {}},
                                 plugin_dirs=[d])
        self.assertEqual(agent.http_json("/echo/who")[1]["version"], "1.0.0")
        self.replace_file(d, os.path.join(PLUGINS_V2, "chorus-test.echo-a.so"))
        agent.reload()
        agent.wait_log(r"hot-swapped plugin 'test.echo-a' to 1\.5\.0")
        status, body = agent.http_json("/echo/who")
        self.assertEqual((status, body["version"]), (200, "1.5.0"))
        agent.wait_log(r"retired plugin 'test.echo-a'")
        self.assertEqual(agent.http_json("/echo/who")[1]["version"], "1.5.0")

    def test_sigterm_stops_a_draining_instance_in_order(self):
        d = self.replaceable_dir()
        agent = self.start_agent({"test.echo-a": {}, "test.consumer": {}}, plugin_dirs=[d])
        inflight = self.start_inflight(agent, 3, 120000)
        self.wait_refs(agent, "test.echo-a", 3)
        self.replace_file(d, os.path.join(PLUGINS_V2, "chorus-test.echo-a.so"))
        agent.reload()
        agent.wait_log(r"hot-swapped plugin 'test.echo-a' to 1\.5\.0")
        self.assertEqual(agent.stop(), 0)
        stops = [r[1:] for r in self.ws.records() if r[0] == "stop"]
        # Consumer first (its stop cancels the calls it still has out), then the current provider,
        # then the draining one, which is stopped and destroyed too rather than dropped.
        self.assertEqual(stops, [["test.consumer", "1.0.0", "inflight=0"], ["test.echo-a", "1.5.0", "inflight=0"],
                                 ["test.echo-a", "1.0.0", "inflight=0"]])
        destroys = [r[1:3] for r in self.ws.records() if r[0] == "destroy"]
        self.assertEqual(destroys, [["test.consumer", "1.0.0"], ["test.echo-a", "1.5.0"], ["test.echo-a", "1.0.0"]])
        for f in inflight:
            self.assertEqual(f.result(timeout=30 * SLOW)[0], 503)

    def test_no_request_fails_across_repeated_swaps(self):
        agent = self.start_agent(ECHO, bindings={"test.echo": "test.echo-a"})
        stop = threading.Event()
        results = []  # (start, end, status, plugin)
        lock = threading.Lock()

        def client():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    status, body = self.call(agent, 20)
                    plugin = body.get("plugin")
                except Exception as e:  # any transport error is a failed request
                    status, plugin = -1, repr(e)
                with lock:
                    results.append((t0, time.monotonic(), status, plugin))

        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        windows = []  # (bound from, next SIGHUP at, plugin)

        def window_done(since):
            # A window lasts at least 0.15 s and until 12 requests began and ended inside it, so a slow
            # machine gets longer windows rather than too few requests checked against a binding.
            def done():
                with lock:
                    inside = sum(1 for r in results if r[0] >= since)
                return time.monotonic() - since >= 0.15 and inside >= 12
            wait_for(done, 30, "12 requests inside one binding window")

        bound_since, current = time.monotonic(), "test.echo-a"
        for i in range(10):
            window_done(bound_since)
            target = "test.echo-b" if current == "test.echo-a" else "test.echo-a"
            self.rewrite_config(ECHO, bindings={"test.echo": target})
            windows.append((bound_since, time.monotonic(), current))
            agent.reload()
            bound_since, current = time.monotonic(), target
        window_done(bound_since)
        windows.append((bound_since, time.monotonic(), current))
        stop.set()
        for t in threads:
            t.join(timeout=scale(60))
        failed = [r for r in results if r[2] != 200]
        self.assertEqual(failed, [])
        self.assertGreater(len(results), 100)
        # A request that ran entirely while one binding was in force was answered by that provider.
        checked = 0
        for t0, t1, _, plugin in results:
            for begin, end, bound in windows:
                if begin <= t0 and t1 < end:
                    self.assertEqual(plugin, bound)
                    checked += 1
        self.assertGreater(checked, 50)


if __name__ == "__main__":
    unittest.main()
