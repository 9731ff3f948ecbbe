"""AI providers + reasoning against fake Ollama/OpenAI servers, in a real chorus-agent."""
import json
import os
import re
import signal
import socket
import threading
import time
import unittest

from ai_harness import SLOW, AiTestCase, parse_sse


def ollama_cfg(fake, **extra):
    cfg = {"endpoint": fake.base if fake else "http://127.0.0.1:9", "default_model": "llama3.1:latest",
           "retry_base_ms": 20, "retry_max_ms": 100}
    cfg.update(extra)
    return {"config": cfg}


def openai_cfg(fake, **extra):
    cfg = {"base_url": fake.base, "api_key": "sk-test-SECRET-123", "default_model": "gpt-4o-mini",
           "retry_base_ms": 20, "retry_max_ms": 100}
    cfg.update(extra)
    return {"config": cfg}


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Chat(AiTestCase):
    def test_ollama_json_and_ndjson_stream(self):
        o = self.fake("ollama", "ollama-A")
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {}}})
        self.assertEqual(self.chat_result(agent), (200, "ai-ollama", "ollama-A says: hello world"))
        status, text, headers = self.chat(agent, stream=True)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/event-stream"))
        self.assertEqual(headers["X-Chorus-Provider"], "ai-ollama")
        events = parse_sse(text)
        self.assertEqual(events[-1], ("message", "[DONE]"))
        deltas = [json.loads(d)["choices"][0]["delta"].get("content", "") for _, d in events[:-1]]
        self.assertEqual(deltas[:4], ["ollama-A says: ", "hello", " ", "world"])
        self.assertEqual(json.loads(events[-2][1])["choices"][0]["finish_reason"], "stop")
        sent = o.chat_requests()
        self.assertEqual([r["body"]["stream"] for r in sent], [False, True])
        self.assertEqual(sent[0]["path"], "/api/chat")
        status, models = agent.http_json("/api/v1/ai/models")
        self.assertEqual([m["id"] for m in models["data"]], ["llama3.1:latest", "phi3:latest"])

    def test_openai_sse_bearer_auth_tools_and_redaction(self):
        a = self.fake("openai", "openai-A", api_key="sk-test-SECRET-123")
        agent = self.start_ai({"ai-openai": openai_cfg(a), "reasoning": {"config": {}}})
        self.assertEqual(self.chat_result(agent, stream=True), (200, "ai-openai", "openai-A says: hello world"))
        self.assertEqual(self.chat_result(agent), (200, "ai-openai", "openai-A says: hello world"))
        reqs = a.chat_requests()
        self.assertEqual(reqs[0]["path"], "/v1/chat/completions")
        self.assertEqual(reqs[0]["headers"]["Authorization"], "Bearer sk-test-SECRET-123")
        self.assertEqual(reqs[0]["body"]["stream_options"], {"include_usage": True})
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        status, text, _ = self.chat(agent, tools=tools)
        msg = json.loads(text)["choices"][0]
        self.assertEqual((status, msg["finish_reason"]), (200, "tool_calls"))
        self.assertEqual(msg["message"]["tool_calls"][0]["function"], {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        self.assertEqual(a.chat_requests()[-1]["body"]["tools"], tools)
        status, text, _ = self.chat(agent, stream=True, tools=tools)
        last = json.loads(parse_sse(text)[-2][1])
        self.assertEqual(last["choices"][0]["finish_reason"], "tool_calls")
        # Secret: redacted in /plugins, never in the log.
        status, plugins = agent.http_json("/plugins")
        cfg = [p for p in plugins if p["id"] == "ai-openai"][0]["config"]
        self.assertEqual(cfg["api_key"], "***")
        self.assertNotIn("sk-test-SECRET-123", json.dumps(plugins))
        agent.stop()
        self.assertNotIn("SECRET", agent.log_text())

    def test_ollama_endpoint_environment_overrides_the_file(self):
        o = self.fake("ollama", "from-env")
        agent = self.start_ai({"ai-ollama": ollama_cfg(None), "reasoning": {"config": {}}},
                              env={"OLLAMA_ENDPOINT": o.base})
        self.assertEqual(self.chat_result(agent), (200, "ai-ollama", "from-env says: hello world"))

    def test_wrong_api_key_is_a_clear_upstream_error(self):
        a = self.fake("openai", "openai-A", api_key="the-right-key")
        agent = self.start_ai({"ai-openai": openai_cfg(a), "reasoning": {"config": {}}})
        status, provider, msg = self.chat_result(agent)
        self.assertEqual(status, 502)
        self.assertIn("HTTP 401: Incorrect API key provided", msg)


class BadInput(AiTestCase):
    def test_provider_down_refusing(self):
        agent = self.start_ai({"ai-ollama": {"config": {"endpoint": f"http://127.0.0.1:{closed_port()}",
                                                        "default_model": "m", "retry_base_ms": 10, "retry_max_ms": 20}},
                               "reasoning": {"config": {}}})
        status, _, msg = self.chat_result(agent)
        self.assertEqual(status, 503)
        self.assertIn("cannot connect", msg)
        status, _, msg = self.chat_result(agent, stream=True)
        self.assertEqual(status, 502)  # the stream had begun: the error arrives as an SSE error event
        self.assertIn("cannot connect", msg)

    def test_slow_provider_times_out(self):
        o = self.fake("ollama", "slow")
        o.delay = 6 * SLOW  # far beyond the time limit below, which scales the same way
        agent = self.start_ai({"ai-ollama": ollama_cfg(o, first_byte_timeout_ms=300, max_retries=0), "reasoning": {"config": {}}})
        t0 = time.monotonic()
        status, _, msg = self.chat_result(agent)
        self.assertEqual(status, 504)
        self.assertIn("sent nothing within 300 ms", msg)
        self.assertLess(time.monotonic() - t0, 2.5 * SLOW)

    def test_malformed_truncated_and_midstream_errors(self):
        o = self.fake("ollama", "bad")
        a = self.fake("openai", "bad", api_key="sk-test-SECRET-123")
        plugins = {"ai-ollama": ollama_cfg(o), "ai-openai": openai_cfg(a), "reasoning": {"config": {}}}
        agent = self.start_ai(plugins, bindings={"chorus.ai.provider": "ai-ollama"})
        cases = [("malformed", False, "malformed JSON body"), ("malformed", True, "malformed NDJSON line"),
                 ("truncate", True, "truncated"), ("midstream_error", True, "an unexpected error occurred")]
        for mode, stream, needle in cases:
            o.mode = mode
            status, provider, msg = self.chat_result(agent, stream=stream)
            self.assertEqual((status, provider), (502, "ai-ollama"), (mode, stream, msg))
            self.assertIn(needle, msg)
        self.write_config(plugins, bindings={"chorus.ai.provider": "ai-openai"})
        agent.reload()
        cases = [("malformed", False, "malformed JSON body"), ("malformed", True, "malformed SSE data"),
                 ("truncate", True, "truncated"), ("midstream_error", True, "The server had an error")]
        for mode, stream, needle in cases:
            a.mode = mode
            status, provider, msg = self.chat_result(agent, stream=stream)
            self.assertEqual((status, provider), (502, "ai-openai"), (mode, stream, msg))
            self.assertIn(needle, msg)

    def test_429_and_5xx_are_retried_then_reported(self):
        a = self.fake("openai", "flaky", api_key="sk-test-SECRET-123")
        a.status, a.retry_after, a.fail_first = 429, 0, 2
        agent = self.start_ai({"ai-openai": openai_cfg(a, max_retries=2), "reasoning": {"config": {}}})
        self.assertEqual(self.chat_result(agent), (200, "ai-openai", "flaky says: hello world"))
        self.assertEqual(len(a.chat_requests()), 3)
        a.reset()
        a.mode, a.status, a.fail_first = "status", 429, 0
        status, _, msg = self.chat_result(agent)
        self.assertEqual(status, 429)
        self.assertIn("Rate limit reached (after 3 attempts)", msg)
        a.status = 500
        status, _, msg = self.chat_result(agent)
        self.assertEqual(status, 502)
        self.assertIn("HTTP 500", msg)
        self.assertIn("ai_openai_retries_total", agent.http("/metrics")[1])

    def test_breaker_opens_and_recovers(self):
        o = self.fake("ollama", "down")
        o.mode, o.status = "status", 503
        agent = self.start_ai({"ai-ollama": ollama_cfg(o, max_retries=0, breaker_threshold=2, breaker_cooldown_ms=500),
                               "reasoning": {"config": {}}})
        for _ in range(2):
            self.assertEqual(self.chat_result(agent)[0], 503)
        status, _, msg = self.chat_result(agent)
        self.assertIn("circuit breaker open", msg)
        status, health = agent.http_json("/health")
        self.assertEqual(health["plugins"]["ai-ollama"]["healthy"], False)
        o.mode = "ok"
        time.sleep(0.6)
        self.assertEqual(self.chat_result(agent)[0], 200)
        agent.wait_log(r"circuit breaker closed")

    def test_oversized_answer(self):
        o = self.fake("ollama", "big")
        o.mode = "oversized"
        agent = self.start_ai({"ai-ollama": ollama_cfg(o, max_response_bytes=1 << 20), "reasoning": {"config": {}}})
        for stream in (False, True):
            status, _, msg = self.chat_result(agent, stream=stream)
            self.assertEqual(status, 502)
            self.assertIn("larger than 1048576 bytes", msg)

    def test_bad_request_bodies_and_unknown_models(self):
        o = self.fake("ollama", "x")
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {"models": ["llama3.1:latest", "nope:1b"]}}})
        for raw, needle in [(b"{not json", "not valid JSON"), (b"[1,2]", "must be a JSON object"),
                            (b'{"messages": []}', "non-empty array"), (b'{"messages":[{"role":"user"}],"stream":"yes"}', "stream must be a boolean")]:
            status, text, _ = self.post(agent, None, raw=raw)
            self.assertEqual(status, 400, raw)
            self.assertIn(needle, json.loads(text)["error"]["message"])
        status, _, msg = self.chat_result(agent, model="gpt-5")
        self.assertEqual(status, 400)
        self.assertIn("not among the configured models", msg)
        status, _, msg = self.chat_result(agent, model="nope:1b")
        self.assertEqual(status, 404)
        self.assertIn('model "nope:1b" not found', msg)


class ModelSelection(AiTestCase):
    def agent_with(self, o, **reasoning):
        return self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": reasoning}})

    def used_model(self, o):
        return o.chat_requests()[-1]["body"]["model"]

    def test_webhook_choice_fallbacks_and_default(self):
        o = self.fake("ollama", "x")
        hook = self.webhook(answer="phi3:latest")
        agent = self.agent_with(o, models=["llama3.1:latest", "phi3:latest"], model_selection_webhook=hook.url,
                                webhook_timeout_ms=500)
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(self.used_model(o), "phi3:latest")
        self.assertEqual(hook.calls[-1], {"models": ["llama3.1:latest", "phi3:latest"], "prompt": "Say hello"})
        hook.answer = "gpt-9"  # not in the list: first configured model
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(self.used_model(o), "llama3.1:latest")
        agent.wait_log(r"webhook chose 'gpt-9', which is not among the configured models")
        # Times out (500 ms): first configured model. The hook would answer only after twice the time
        # limit of the whole call, so the limit tells "gave up at the timeout" from "waited for the hook".
        hook.answer, hook.delay = "phi3:latest", 5 * SLOW
        t0 = time.monotonic()
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(self.used_model(o), "llama3.1:latest")
        self.assertLess(time.monotonic() - t0, 2.5 * SLOW)
        hook.delay = 0
        self.assertEqual(self.chat_result(agent, model="phi3:latest")[0], 200)  # explicit choice wins
        self.assertEqual(self.used_model(o), "phi3:latest")

    def test_default_model_when_nothing_is_configured(self):
        o = self.fake("ollama", "x")
        agent = self.agent_with(o, default_model="phi3:latest")
        self.assertEqual(self.chat_result(agent)[0], 200)
        self.assertEqual(self.used_model(o), "phi3:latest")


class Prompts(AiTestCase):
    def test_role_prompt_composition_from_env(self):
        o = self.fake("ollama", "x")
        d = self.ws.path("prompts")
        os.makedirs(d)
        with open(os.path.join(d, "a.yaml"), "w") as f:
            f.write("roles:\n  developer:\n    name: Developer\n    system_prompt: |\n      You are a developer.\n"
                    "    defaults:\n      models: [meta/llama-3.1-8b-instruct]\n")
        with open(os.path.join(d, "b.yml"), "w") as f:
            f.write("roles:\n  developer:\n    name: Dev2\n    system_prompt: You write code.\n  reviewer:\n    system_prompt: You review.\n")
        defaults = self.ws.write("defaults.md", "Be concise.\n")
        env = {"CHORUS_PROMPTS_DIR": d, "CHORUS_DEFAULT_INSTRUCTIONS_PATH": defaults, "CHORUS_ROLE": "developer"}
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {}}}, env=env)
        self.chat_result(agent, messages=[{"role": "user", "content": "hi"}])
        msgs = o.chat_requests()[-1]["body"]["messages"]
        self.assertEqual(msgs[0], {"role": "system", "content": "You write code.\n\nBe concise."})
        self.assertEqual(msgs[1], {"role": "user", "content": "hi"})

    def test_invalid_yaml_is_a_clear_start_error(self):
        o = self.fake("ollama", "x")
        d = self.ws.path("prompts")
        os.makedirs(d)
        with open(os.path.join(d, "roles.yaml"), "w") as f:
            f.write("roles:\n  developer: [unclosed\n")
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {"prompts_dir": d, "role": "developer"}}},
                              wait=False)
        agent.wait_log(r"roles\.yaml': invalid YAML at line \d+")
        agent.wait_ready()
        status, health = agent.http_json("/health")
        self.assertNotEqual(health["plugins"]["reasoning"]["state"], "running")


class HotSwap(AiTestCase):
    def two_providers(self, bound, token_delay=0.0):
        o = self.fake("ollama", "ollama-A")
        a = self.fake("openai", "openai-B", api_key="sk-test-SECRET-123")
        o.token_delay = a.token_delay = token_delay
        plugins = {"ai-ollama": ollama_cfg(o), "ai-openai": openai_cfg(a), "reasoning": {"config": {}}}
        return o, a, plugins

    def test_binding_change_moves_new_requests_and_finishes_inflight_streams(self):
        o, a, plugins = self.two_providers("ai-ollama", token_delay=0.4)
        agent = self.start_ai(plugins, bindings={"chorus.ai.provider": "ai-ollama"})
        results = []
        lock = threading.Lock()

        def one(stream):
            r = self.chat_result(agent, stream=stream)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one, args=(i % 2 == 0,)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10 * SLOW
        while o.active < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(o.active, 8)
        self.write_config(plugins, bindings={"chorus.ai.provider": "ai-openai"})
        agent.reload()
        agent.wait_log(r"re-bound chorus.ai.provider from 'ai-ollama' to 'ai-openai'")
        a.token_delay = 0
        self.assertEqual(self.chat_result(agent, stream=True)[:2], (200, "ai-openai"))
        for t in threads:
            t.join(30 * SLOW)
        self.assertEqual(sorted(results), [(200, "ai-ollama", "ollama-A says: hello world")] * 8)
        status, plugins_json = agent.http_json("/plugins")
        bound = {p["id"]: p["bound"] for p in plugins_json}
        self.assertEqual((bound["ai-openai"], bound["ai-ollama"]), (["chorus.ai.provider"], []))

    def test_config_change_hot_swaps_the_provider_instance(self):
        o1 = self.fake("ollama", "endpoint-1")
        o2 = self.fake("ollama", "endpoint-2")
        o1.token_delay = 0.4
        plugins = {"ai-ollama": ollama_cfg(o1), "reasoning": {"config": {}}}
        agent = self.start_ai(plugins)
        inflight = []
        t = threading.Thread(target=lambda: inflight.append(self.chat_result(agent, stream=True)))
        t.start()
        deadline = time.monotonic() + 10 * SLOW
        while o1.active < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.write_config({"ai-ollama": ollama_cfg(o2), "reasoning": {"config": {}}})
        agent.reload()
        agent.wait_log(r"hot-swapped plugin 'ai-ollama' to 1\.0\.0 \(instance 2\)")
        self.assertEqual(self.chat_result(agent)[2], "endpoint-2 says: hello world")
        t.join(30 * SLOW)
        self.assertEqual(inflight, [(200, "ai-ollama", "endpoint-1 says: hello world")])
        agent.wait_log(r"retired plugin 'ai-ollama")

    @unittest.skipUnless(os.environ.get("CHORUS_AI_PLUGIN_V2_DIR"), "needs the ai-ollama v2 test build")
    def test_replaced_provider_file_is_hot_swapped(self):
        import shutil
        from ai_harness import AI_PLUGINS
        o = self.fake("ollama", "ollama-A")
        o.token_delay = 0.3
        d = self.ws.plugin_dir("swap", ["ai-ollama", "reasoning"], source=AI_PLUGINS)
        # An explicit path: the agent's own plugin dir (the build tree) would win over plugin_dirs.
        spec = dict(ollama_cfg(o), path=os.path.join(d, "chorus-ai-ollama.so"))
        agent = self.start_ai({"ai-ollama": spec, "reasoning": {"config": {}}})
        inflight = []

        def one(stream):
            status, text, _ = self.chat(agent, stream=stream)
            if stream:
                text = [dd for e, dd in parse_sse(text) if dd != "[DONE]"][-1]
            inflight.append((status, json.loads(text)["provider_version"]))

        threads = [threading.Thread(target=one, args=(i % 2 == 0,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10 * SLOW
        while o.active < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        tmp = os.path.join(d, ".incoming.so")
        shutil.copy2(os.path.join(os.environ["CHORUS_AI_PLUGIN_V2_DIR"], "chorus-ai-ollama.so"), tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(d, "chorus-ai-ollama.so"))  # atomic, like dpkg
        agent.reload()
        agent.wait_log(r"hot-swapped plugin 'ai-ollama' to 1\.0\.1-test \(instance 2\)")
        o.token_delay = 0
        status, text, _ = self.chat(agent)
        self.assertEqual((status, json.loads(text)["provider_version"]), (200, "1.0.1-test"))
        for t in threads:
            t.join(30 * SLOW)
        self.assertEqual(inflight, [(200, "1.0.0")] * 4)
        agent.wait_log(r"retired plugin 'ai-ollama")

    def test_failed_start_of_the_new_provider_leaves_the_old_one_serving(self):
        o = self.fake("ollama", "old")
        agent = self.start_ai({"ai-ollama": ollama_cfg(o), "reasoning": {"config": {}}})
        self.write_config({"ai-ollama": {"config": {"endpoint": "ftp://nowhere"}}, "reasoning": {"config": {}}})
        agent.reload()
        agent.wait_log(r"hot swap of plugin 'ai-ollama' failed: .*endpoint must be an http:// or https:// URL")
        self.assertEqual(self.chat_result(agent), (200, "ai-ollama", "old says: hello world"))

    def test_drain_deadline_cancels_stragglers_with_a_clear_error(self):
        o1 = self.fake("ollama", "hanging")
        o2 = self.fake("ollama", "fresh")
        o1.mode = "hang"
        agent = self.start_ai({"ai-ollama": ollama_cfg(o1), "reasoning": {"config": {}}},
                              host_extra={"swap_drain_timeout_ms": 500})
        out = []
        t = threading.Thread(target=lambda: out.append(self.chat_result(agent)))
        t.start()
        deadline = time.monotonic() + 10 * SLOW
        while o1.active < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.write_config({"ai-ollama": ollama_cfg(o2), "reasoning": {"config": {}}},
                          host_extra={"swap_drain_timeout_ms": 500})
        agent.reload()
        agent.wait_log(r"still has 1 requests in flight after 500 ms; stopping it")
        t.join(20 * SLOW)
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0][0], 503)
        self.assertIn("provider stopping", out[0][2])
        self.assertEqual(self.chat_result(agent)[2], "fresh says: hello world")

if __name__ == "__main__":
    unittest.main()
