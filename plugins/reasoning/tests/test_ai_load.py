"""The issue's load test: 64 concurrent clients on /api/v1/ai/chat (streaming and not), 10 provider
swaps back and forth during the run, zero failed requests, and every response comes from the
provider that was bound when the request began."""
import threading
import time
import unittest

from ai_harness import SLOW, AiTestCase
from harness import wait_for


class Load(AiTestCase):
    def test_64_clients_10_swaps_zero_failures(self):
        o = self.fake("ollama", "ollama-A")
        a = self.fake("openai", "openai-B", api_key="sk-test-SECRET-123")
        o.token_delay = a.token_delay = 0.005
        plugins = {"ai-ollama": {"config": {"endpoint": o.base, "default_model": "llama3.1:latest", "max_concurrency": 64}},
                   "ai-openai": {"config": {"base_url": a.base, "api_key": "sk-test-SECRET-123",
                                            "default_model": "gpt-4o-mini", "max_concurrency": 64}},
                   "reasoning": {"config": {}}}
        agent = self.start_ai(plugins, bindings={"chorus.ai.provider": "ai-ollama"})
        stop = threading.Event()
        results = []  # (t0, t1, status, provider, content)
        lock = threading.Lock()

        def client(i):
            stream = i % 2 == 0
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    status, provider, content = self.chat_result(agent, stream=stream)
                except Exception as e:  # a transport error is a failed request
                    status, provider, content = -1, None, repr(e)
                with lock:
                    results.append((t0, time.monotonic(), status, provider, content, stream))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        windows = []

        def window_done(since):
            # A request is only checked against its binding when it begins and ends inside one window:
            # a window lasts at least 0.3 s and until 30 requests did that, so under the sanitizers or
            # on a loaded machine windows grow instead of holding too few requests.
            def done():
                with lock:
                    inside = sum(1 for r in results if r[0] >= since)
                return time.monotonic() - since >= 0.3 and inside >= 30
            wait_for(done, 60, "30 requests inside one binding window")

        bound_since, current = time.monotonic(), "ai-ollama"
        for _ in range(10):
            window_done(bound_since)
            target = "ai-openai" if current == "ai-ollama" else "ai-ollama"
            self.write_config(plugins, bindings={"chorus.ai.provider": target})
            windows.append((bound_since, time.monotonic(), current))
            agent.reload()
            bound_since, current = time.monotonic(), target
        window_done(bound_since)
        windows.append((bound_since, time.monotonic(), current))
        stop.set()
        for t in threads:
            t.join(60 * SLOW)
        failed = [r for r in results if r[2] != 200]
        self.assertEqual(failed, [], f"{len(failed)} of {len(results)} failed")
        self.assertGreater(len(results), 300)
        expect = {"ai-ollama": "ollama-A says: hello world", "ai-openai": "openai-B says: hello world"}
        for r in results:
            self.assertEqual(r[4], expect[r[3]])  # the content matches the provider that answered
        checked = 0
        for t0, t1, _, provider, _, _ in results:
            for begin, end, bound in windows:
                if begin <= t0 and t1 < end:
                    self.assertEqual(provider, bound)
                    checked += 1
        self.assertGreater(checked, 100)
        both = {r[3] for r in results if r[5]} | {r[3] for r in results if not r[5]}
        self.assertEqual(both, {"ai-ollama", "ai-openai"})
        print(f"\nload: {len(results)} requests, {checked} checked against their binding window")


if __name__ == "__main__":
    unittest.main()
