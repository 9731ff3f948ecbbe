"""SHHH end to end, with real agents: a secret in a plugin's log line, in an AI request's logged error
and in a published message each reaches its destination redacted; the audit file holds each secret's
SHA-256 and never the secret; the agents' output never holds a secret.

Agent A runs p2p, gossip, the ABI 1.0 test plugin compat10 (which logs what its route is given) and
ai-ollama pointed at a fake Ollama that answers every request with an error naming a secret. Agent B
(p2p + gossip) dials A and reads A's publication from /api/v1/pubsub/stream."""
import base64
import hashlib
import http.server
import json
import os
import secrets
import string
import sys
import threading
import unittest
import urllib.request

SOURCE = os.environ.get("CHORUS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLUGIN_DIR = os.environ.get("CHORUS_PLUGIN_OUTPUT_DIR", "")
COMPAT_DIR = os.environ.get("CHORUS_COMPAT_PLUGIN_DIR", "")
os.environ.setdefault("CHORUS_GOSSIP_PLUGIN_DIR", PLUGIN_DIR)
os.environ.setdefault("CHORUS_P2P_PLUGIN_DIR", PLUGIN_DIR)
sys.path[:0] = [os.path.join(SOURCE, "tests", "interop"), os.path.join(SOURCE, "plugins", "gossip", "tests")]

import harness  # noqa: E402
from gossiptest import GossipAgent  # noqa: E402
from gossiptest import SseStream  # noqa: E402
from harness import Agent, Workspace, finish_agents, free_port, missing  # noqa: E402

TOPIC = "shhh/it/v1"


def custom_secret():
    """Matches the custom rule test.secret exactly (so its finding is the whole string)."""
    return "TESTSECRET-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(24))


def openai_key():
    """Matches the built-in openai_api_key rule as a whole."""
    return "sk-proj-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


class FakeOllama(http.server.ThreadingHTTPServer):
    """Answers every request with HTTP 401 and an Ollama error naming a credential."""

    def __init__(self, leaked):
        self.leaked = leaked

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(h):
                body = json.dumps({"error": "upstream refused credential " + self.leaked}).encode()
                h.send_response(401)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(h, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()


def config(state, agent_id, p2p_port, plugins, plugin_dirs, bootstrap=()):
    p2p = {"listen": [f"/ip4/127.0.0.1/tcp/{p2p_port}"]}
    if bootstrap:
        p2p["bootstrap_peers"] = list(bootstrap)
    lines = [
        "agent:",
        f"  id: {json.dumps(agent_id)}",
        "host:",
        "  http: { listen: 127.0.0.1:0 }",
        "  log_level: info",
        f"  state_dir: {json.dumps(state)}",
        "  shutdown_timeout_ms: 8000",
        f"  plugin_dirs: {json.dumps(plugin_dirs)}",
        "  shhh:",
        "    rules:",
        '      - { name: test.secret, pattern: "TESTSECRET-[a-z]{24}", severity: critical, tags: [it] }',
        "plugins:",
        "  p2p: " + json.dumps({"enabled": True, "critical": True, "config": p2p}),
        "  gossip: " + json.dumps({"enabled": True, "critical": True,
                                   "config": {"router": {"heartbeat_ms": 300}, "topics": [TOPIC]}}),
    ]
    for pid, spec in plugins.items():
        lines.append(f"  {pid}: " + json.dumps(spec))
    return "\n".join(lines) + "\n"


class ShhhEndToEnd(unittest.TestCase):
    def setUp(self):
        for d, f in ((PLUGIN_DIR, "chorus-p2p.so"), (PLUGIN_DIR, "chorus-gossip.so"), (PLUGIN_DIR, "chorus-ai-ollama.so"),
                     (COMPAT_DIR, "chorus-compat10.so")):
            if not d or not os.path.exists(os.path.join(d, f)):
                raise unittest.SkipTest(missing("plugins", f"{f} is not built in {d or '(unset)'}"))
        self.ws = Workspace()
        self.agents = []
        self.streams = []
        self.ai_key = openai_key()
        self.ollama = FakeOllama(self.ai_key)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for s in self.streams:
            s.close()
        problems = finish_agents(self.agents)
        self.ollama.shutdown()
        self.ollama.server_close()
        self.ws.cleanup()
        if problems:
            self.fail("agent check at the end of the test:\n" + "\n".join(problems))

    def _start(self, name, plugins, bootstrap=()):
        state = self.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        text = config(state, f"it-{name}", port, plugins, [PLUGIN_DIR, COMPAT_DIR], bootstrap)
        agent = Agent(self.ws.write(f"{name}.yaml", text))
        self.agents.append(agent)
        agent.wait_ready()
        return GossipAgent(agent, f"/ip4/127.0.0.1/tcp/{port}", f"it-{name}"), state

    def audit(self, state):
        path = os.path.join(state, "shhh-audit.jsonl")
        if not os.path.exists(path):
            return "", []
        with open(path) as f:
            text = f.read()
        return text, [json.loads(line) for line in text.splitlines()]

    def test_log_ai_error_and_publication_are_redacted_and_audited(self):
        ollama_url = f"http://127.0.0.1:{self.ollama.server_address[1]}"
        a, state_a = self._start("a", {
            "compat10": {"enabled": True},
            "ai-ollama": {"enabled": True, "config": {"endpoint": ollama_url, "health_interval_ms": 200}},
        })
        b, _ = self._start("b", {}, bootstrap=[a.addr])
        log_secret, log_key, pub_secret = custom_secret(), openai_key(), custom_secret()

        # 1. A plugin's log line (compat10 logs the body its route is given).
        status, _ = a.request("POST", "/compat10/echo", raw=f"login {log_secret} then {log_key}".encode())
        self.assertEqual(status, 200)
        a.agent.wait_log(r"\[compat10\] compat10 echo: login \[REDACTED\] then \[REDACTED\]")

        # 2. An AI request's logged error: ai-ollama's model-list probe gets 401 naming a key.
        a.agent.wait_log(r"\[ai-ollama\] health probe failed: .*upstream refused credential \[REDACTED\]")

        # 3. A publication, read on B. Wait until B's stream is subscribed and A sees B on the topic.
        stream = SseStream("127.0.0.1", b.agent.port, TOPIC)
        self.streams.append(stream)
        stream.wait_subscribed()
        harness.wait_for(lambda: b.peer_id in a.topic_peers(TOPIC), 30, "B on A's topic", interval=0.05)
        ans = a.publish(TOPIC, "task_help_request", {"note": "deploy with " + pub_secret, "n": 1})
        ev = stream.wait_event(lambda e: e.get("message_id") == ans["message_id"], what="the publication")
        self.assertEqual(ev["data"]["data"], {"note": "deploy with [REDACTED]", "n": 1})
        raw = a.publish_raw(TOPIC, f"raw {pub_secret}".encode())
        ev = stream.wait_event(lambda e: e.get("message_id") == raw["message_id"], what="the raw publication")
        self.assertEqual(base64.b64decode(ev["raw_base64"]), b"raw [REDACTED]")

        # The audit file of A: each secret's digest, with its channel and source; never a secret.
        all_secrets = [log_secret, log_key, self.ai_key, pub_secret]
        text, lines = self.audit(state_a)
        for s in all_secrets:
            self.assertNotIn(s, text)
        found = {(line["sha256"], line["channel"], line["source"]) for line in lines}
        self.assertIn((sha256(log_secret), "log", "compat10"), found)
        self.assertIn((sha256(log_key), "log", "compat10"), found)
        self.assertIn((sha256(self.ai_key), "log", "ai-ollama"), found)
        self.assertIn((sha256(pub_secret), "pubsub", "gossip"), found)
        self.assertEqual(oct(os.stat(os.path.join(state_a, "shhh-audit.jsonl")).st_mode & 0o777), "0o600")
        # Metrics count them.
        status, metrics, _ = a.agent.http("/metrics")
        self.assertIn('chorus_shhh_findings_total{rule="test.secret",severity="critical",channel="pubsub"}', metrics)

        # The agents' own output never held a secret (checked after they stopped, so it is all there).
        for agent in self.agents:
            self.assertEqual(agent.stop(), 0)
            for s in all_secrets:
                self.assertNotIn(s, agent.log_text())
                with open(agent.log_path, errors="replace") as f:
                    self.assertNotIn(s, f.read())


class ShhhReload(harness.AgentTestCase):
    """SIGHUP with changed host.shhh rules swaps the sentinel; a rule that does not compile is a reload
    error that names the key, and the running rules stay."""

    def setUp(self):
        super().setUp()
        if not COMPAT_DIR or not os.path.exists(os.path.join(COMPAT_DIR, "chorus-compat10.so")):
            raise unittest.SkipTest(missing("plugins", "chorus-compat10.so is not built"))

    def echo(self, agent, text):
        url = f"http://127.0.0.1:{agent.port}/compat10/echo"
        req = urllib.request.Request(url, data=text.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=harness.scale(10)) as r:
            self.assertEqual(r.status, 200)

    def test_reload_swaps_the_rules_and_a_bad_rule_keeps_them(self):
        rule = {"name": "ticket", "pattern": "TCK-[0-9]{8}", "severity": "low"}
        agent = self.start_agent({"compat10": {}}, plugin_dirs=[COMPAT_DIR])
        start = agent.mark()
        self.echo(agent, "first TCK-12345678")
        agent.wait_log(r"compat10 echo: first TCK-12345678", start=start)  # no such rule yet
        self.rewrite_config({"compat10": {}}, plugin_dirs=[COMPAT_DIR], host_extra={"shhh": {"rules": [rule]}})
        self.assertIn("reload complete", agent.reload().group(0))
        start = agent.mark()
        self.echo(agent, "second TCK-87654321")
        agent.wait_log(r"compat10 echo: second \[REDACTED\]", start=start)
        self.rewrite_config({"compat10": {}}, plugin_dirs=[COMPAT_DIR],
                            host_extra={"shhh": {"rules": [{"name": "broken", "pattern": "(unclosed"}]}})
        self.assertIn("reload failed", agent.reload().group(0))
        agent.wait_log(r"host\.shhh\.rules: rule 'broken': ")
        start = agent.mark()
        self.echo(agent, "third TCK-11112222")
        agent.wait_log(r"compat10 echo: third \[REDACTED\]", start=start)
        self.assertNotIn("TCK-87654321", agent.log_text())
        self.assertEqual(agent.stop(), 0)

if __name__ == "__main__":
    unittest.main()
