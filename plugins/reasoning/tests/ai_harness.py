"""Shared helpers for the AI integration tests: config writing, HTTP calls, SSE parsing.

Reuses tests/integration/harness.py (Agent, Workspace, AgentTestCase) from the host's tests.
"""
import json
import os
import threading
import urllib.error
import urllib.request

from harness import SLOW, AgentTestCase  # noqa: F401  (tests/integration on PYTHONPATH)
from fake_ai import FakeServer, FakeWebhook  # noqa: F401  (libs/ai-common/tests/fakes)

AI_PLUGINS = os.environ.get("CHORUS_AI_PLUGIN_DIR", "")


def ai_config(ws, plugins, bindings=None, host_extra=None, plugin_dirs=None):
    host = {"log_level": "debug", "state_dir": ws.state, "shutdown_timeout_ms": 8000, "swap_drain_timeout_ms": 20000}
    host.update(host_extra or {})
    lines = ["host:", "  http:", "    listen: 127.0.0.1:0"]
    for k, v in host.items():
        lines.append(f"  {k}: {json.dumps(v)}")
    lines.append(f"  plugin_dirs: {json.dumps(plugin_dirs if plugin_dirs is not None else [AI_PLUGINS])}")
    lines.append("plugins:")
    for pid, spec in plugins.items():
        lines.append(f"  {pid}: {json.dumps(spec)}")
    if bindings:
        lines.append("bindings:")
        for svc, pid in bindings.items():
            lines.append(f"  {svc}: {pid}")
    return "\n".join(lines) + "\n"


def parse_sse(text):
    """Returns [(event, data-str)] of an SSE body."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ev, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        events.append((ev, "\n".join(data)))
    return events


class AiTestCase(AgentTestCase):
    def setUp(self):
        super().setUp()
        self.fakes = []

    def tearDown(self):
        try:
            super().tearDown()  # agents first (SIGTERM, checked by AgentTestCase), then their fakes
        finally:
            for f in self.fakes:
                f.close()

    def fake(self, kind, name, **kw):
        f = FakeServer(kind, name, **kw)
        self.fakes.append(f)
        return f

    def webhook(self, **kw):
        w = FakeWebhook(**kw)
        self.fakes.append(w)
        return w

    def write_config(self, plugins, **kw):
        return self.ws.write("chorus.yaml", ai_config(self.ws, plugins, **kw))

    def start_ai(self, plugins, env=None, wait=True, **kw):
        from harness import Agent
        path = self.write_config(plugins, **kw)
        agent = Agent(path, env=env)
        self.agents.append(agent)
        if wait:
            agent.wait_ready()
        return agent

    @staticmethod
    def post(agent, body, path="/api/v1/ai/chat", timeout=30, raw=None):
        """POST; returns (status, text, headers)."""
        data = raw if raw is not None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{agent.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def chat(self, agent, stream=False, **extra):
        body = {"messages": [{"role": "user", "content": "Say hello"}], "stream": stream}
        body.update(extra)
        return self.post(agent, body)

    def chat_result(self, agent, stream=False, **extra):
        """(status, provider, content or error message) of one chat call, streaming or not."""
        status, text, headers = self.chat(agent, stream, **extra)
        if not stream or status != 200:
            j = json.loads(text)
            if status != 200:
                return status, j["error"].get("provider"), j["error"]["message"]
            return status, j["provider"], j["choices"][0]["message"]["content"]
        events = parse_sse(text)
        errors = [json.loads(d) for e, d in events if e == "error"]
        if errors:
            return 502, errors[0]["error"].get("provider"), errors[0]["error"]["message"]
        if not events or events[-1][1] != "[DONE]":
            return -2, None, "stream did not end with [DONE]: " + text[-200:]
        chunks = [json.loads(d) for e, d in events[:-1]]
        providers = {c["provider"] for c in chunks}
        if len(providers) != 1:
            return -3, None, f"chunks from several providers: {providers}"
        content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        return 200, providers.pop(), content


def run_threads(n, fn):
    ts = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    return ts
