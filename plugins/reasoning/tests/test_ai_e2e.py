"""End to end through a real chorus-agent: generate on both providers (via the ai-probe test plugin),
the providers' periodic health probe, and the documented environment variable names."""
import json
import os
import unittest

from ai_harness import AI_PLUGINS, AiTestCase, FakeServer
from harness import wait_for
from test_ai import closed_port, ollama_cfg, openai_cfg

PROBE_DIR = os.environ.get("CHORUS_AI_PROBE_DIR", "")


class Generate(AiTestCase):
    def start_probe(self, plugins):
        plugins = dict(plugins)
        plugins["ai-probe"] = {"config": {}}
        return self.start_ai(plugins, plugin_dirs=[AI_PLUGINS, PROBE_DIR])

    def generate(self, agent, **body):
        status, text, _ = self.post(agent, body, path="/test/ai/generate")
        self.assertEqual(status, 200, text)
        return json.loads(text)

    @unittest.skipUnless(PROBE_DIR, "needs the ai-probe test plugin (CHORUS_AI_PROBE_DIR)")
    def test_ollama_generate_json_and_ndjson_stream(self):
        o = self.fake("ollama", "gen-O")
        agent = self.start_probe({"ai-ollama": ollama_cfg(o)})
        r = self.generate(agent, prompt="Say hello", system="Be brief.", options={"max_tokens": 8})
        self.assertEqual(r["provider"], "ai-ollama")
        self.assertEqual(r["chunks"], [])
        self.assertEqual(r["done"]["content"], "gen-O says: hello world")
        self.assertEqual(r["done"]["model"], "llama3.1:latest")
        self.assertEqual(r["done"]["finish_reason"], "stop")
        self.assertEqual(r["done"]["usage"], {"prompt_tokens": 26, "completion_tokens": 3, "total_tokens": 29})
        sent = o.chat_requests()[-1]
        self.assertEqual(sent["path"], "/api/generate")
        self.assertEqual(sent["body"], {"model": "llama3.1:latest", "stream": False, "prompt": "Say hello",
                                        "system": "Be brief.", "options": {"num_predict": 8}})

        r = self.generate(agent, prompt="Say hello", stream=True)
        self.assertEqual([c["delta"] for c in r["chunks"]], ["gen-O says: ", "hello", " ", "world"])
        self.assertEqual(r["done"]["content"], "gen-O says: hello world")
        self.assertEqual(o.chat_requests()[-1]["body"]["stream"], True)

        # Errors come back through the sink: upstream 404 for an unknown model, a refused bad request.
        r = self.generate(agent, prompt="x", model="no-such-model")
        self.assertIn("not found", r["error"]["message"])
        r = self.generate(agent, messages=[])
        self.assertIn("prompt must be a string", r["refused"]["message"])

    @unittest.skipUnless(PROBE_DIR, "needs the ai-probe test plugin (CHORUS_AI_PROBE_DIR)")
    def test_openai_generate_json_and_sse_stream(self):
        a = self.fake("openai", "gen-A", api_key="sk-test-SECRET-123")
        agent = self.start_probe({"ai-openai": openai_cfg(a)})
        r = self.generate(agent, prompt="Say hello", system="Be brief.")
        self.assertEqual(r["provider"], "ai-openai")
        self.assertEqual(r["done"]["content"], "gen-A says: hello world")
        sent = a.chat_requests()[-1]
        self.assertEqual(sent["path"], "/v1/chat/completions")
        self.assertEqual(sent["body"]["messages"], [{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": "Say hello"}])
        self.assertEqual(sent["headers"]["Authorization"], "Bearer sk-test-SECRET-123")

        r = self.generate(agent, prompt="Say hello", stream=True)
        self.assertEqual("".join(c.get("delta", "") for c in r["chunks"]), "gen-A says: hello world")
        self.assertGreaterEqual(len(r["chunks"]), 4)
        self.assertEqual(r["done"]["content"], "gen-A says: hello world")
        self.assertEqual(r["done"]["finish_reason"], "stop")

        a.mode = "truncate"
        r = self.generate(agent, prompt="x", stream=True)
        self.assertIn("truncated", r["error"]["message"])


class HealthProbe(AiTestCase):
    def plugin_health(self, agent, pid):
        _, h = agent.http_json("/health")
        return h["status"], h["plugins"][pid]

    def wait_health(self, agent, pid, status, healthy):
        """The plugin logs a probe result before it reports health: wait for /health to show it."""
        def reached():
            st, p = self.plugin_health(agent, pid)
            return (st, p) if (st, p["healthy"]) == (status, healthy) else None
        return wait_for(reached, 10, f"{pid} {status} in /health")[1]

    def test_ollama_backend_down_then_up(self):
        o = self.fake("ollama", "probe-O")
        port = o.port
        agent = self.start_ai({"ai-ollama": ollama_cfg(o, health_interval_ms=100, health_timeout_ms=2000),
                               "reasoning": {"config": {}}})
        first = o.wait_request(("/api/tags", "/v1/models"))
        self.assertIsNotNone(first, "the first probe runs at start")
        self.assertEqual((first["method"], first["path"]), ("GET", "/api/tags"))
        self.wait_health(agent, "ai-ollama", "healthy", True)

        mark = agent.mark()
        o.close()
        # A probe in flight when the server closes fails with "Empty reply from server"; the next
        # ones cannot connect. The warning is logged once, on the first failure, whichever it was.
        agent.wait_log(r"ai-ollama.*health probe failed: .*127\.0\.0\.1:%d" % port, start=mark)
        self.wait_health(agent, "ai-ollama", "degraded", False)
        wait_for(lambda: "health probe failed: cannot connect" in self.plugin_health(agent, "ai-ollama")[1]["message"],
                 10, "/health to report that the backend cannot be reached")

        mark = agent.mark()
        self.fakes.append(FakeServer("ollama", "probe-O2", port=port))
        agent.wait_log(r"ai-ollama.*health probe: http://127\.0\.0\.1:%d answers again" % port, start=mark)
        self.wait_health(agent, "ai-ollama", "healthy", True)

    def test_openai_http_error_then_recovery_and_status_detail(self):
        a = self.fake("openai", "probe-A", api_key="sk-test-SECRET-123")
        agent = self.start_ai({"ai-openai": openai_cfg(a, health_interval_ms=100), "reasoning": {"config": {}}})
        first = a.wait_request(("/api/tags", "/v1/models"))
        self.assertIsNotNone(first, "the first probe runs at start")
        self.assertEqual((first["method"], first["path"]), ("GET", "/v1/models"))
        self.assertEqual(first["headers"]["Authorization"], "Bearer sk-test-SECRET-123")
        mark = agent.mark()
        a.mode, a.status, a.status_body = "status", 503, "model server overloaded"
        agent.wait_log(r"ai-openai.*health probe failed: .*HTTP 503: model server overloaded", start=mark)
        p = self.wait_health(agent, "ai-openai", "degraded", False)
        self.assertIn("HTTP 503: model server overloaded", p["message"])
        _, st = agent.http_json("/api/v1/ai/status")
        self.assertEqual(st["provider_health"]["state"], "degraded")
        self.assertFalse(st["provider_health"]["probe"]["ok"])
        mark = agent.mark()
        a.mode = "ok"
        agent.wait_log(r"ai-openai.*health probe: .* answers again", start=mark)
        self.wait_health(agent, "ai-openai", "healthy", True)
        agent.stop()
        self.assertNotIn("SECRET", agent.log_text())

    def test_interval_zero_disables_the_probe(self):
        o = self.fake("ollama", "noprobe")
        agent = self.start_ai({"ai-ollama": ollama_cfg(o, health_interval_ms=0), "reasoning": {"config": {}}})
        self.assertEqual(self.chat_result(agent)[0], 200)
        _, st = agent.http_json("/api/v1/ai/status")
        self.assertFalse(st["provider_health"]["probe"]["enabled"])
        self.assertEqual(o.probe_requests(), [])


class EnvironmentNames(AiTestCase):
    def test_resetdata_variables_override_the_file(self):
        a = self.fake("openai", "resetdata", api_key="rd-ENV-KEY-1")
        cfg = openai_cfg(a, base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key="file-key",
                         default_model="file-model")
        agent = self.start_ai({"ai-openai": cfg, "reasoning": {"config": {}}},
                              env={"RESETDATA_BASE_URL": a.base, "RESETDATA_API_KEY": "rd-ENV-KEY-1",
                                   "RESETDATA_MODEL": "meta/llama-3.1-8b-instruct"})
        self.assertEqual(self.chat_result(agent), (200, "ai-openai", "resetdata says: hello world"))
        sent = a.chat_requests()[-1]
        self.assertEqual(sent["headers"]["Authorization"], "Bearer rd-ENV-KEY-1")
        self.assertEqual(sent["body"]["model"], "meta/llama-3.1-8b-instruct")
        agent.stop()
        self.assertNotIn("rd-ENV-KEY-1", agent.log_text())

    def test_reasoning_models_webhook_and_default_model(self):
        o = self.fake("ollama", "env-O")
        hook = self.webhook(answer="phi3:latest")
        env = {"CHORUS_MODELS": " llama3.1:latest , phi3:latest", "BZZZ_MODEL_SELECTION_WEBHOOK": hook.url}
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {}}}, env=env)
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(hook.calls[-1]["models"], ["llama3.1:latest", "phi3:latest"])
        self.assertEqual(o.chat_requests()[-1]["body"]["model"], "phi3:latest")
        agent.stop()

        # The CHORUS_ name wins over the BZZZ-era one.
        other = self.webhook(answer="llama3.1:latest")
        env["CHORUS_MODEL_SELECTION_WEBHOOK"] = other.url
        n = len(hook.calls)
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {}}}, env=env)
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(len(hook.calls), n)
        self.assertEqual(len(other.calls), 1)
        self.assertEqual(o.chat_requests()[-1]["body"]["model"], "llama3.1:latest")
        agent.stop()

        # No model list: CHORUS_DEFAULT_REASONING_MODEL overrides the file's default_model.
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {"default_model": "llama3.1:latest"}}},
                              env={"CHORUS_DEFAULT_REASONING_MODEL": "phi3:latest"})
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(o.chat_requests()[-1]["body"]["model"], "phi3:latest")


if __name__ == "__main__":
    unittest.main()
