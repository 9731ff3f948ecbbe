"""The agent's dynamic assignment (docs/configuration.md, "Assignment"), on real agents: the host loads it
from a URL (ASSIGN_URL, with TASK_SLOT and TASK_ID) served by a real local HTTP server, or from a file, at
start and on every SIGHUP - also when the YAML did not change - and merges it over the static config. A
changed role and model take effect live in reasoning; new bootstrap peers are dialled by p2p. A failing
assignment is a warning and the agent carries on with what it had.
"""
import http.server
import json
import os
import threading
import urllib.parse

from fake_ai import FakeServer
from harness import wait_for
from p2ptest import P2PAgent, P2PTestCase, free_port, is_event, p2p_config_yaml, post_json


class AssignmentServer:
    """A WHOOSH stand-in: GET /assign answers `doc` (a dict, or raw text) with `status`; every request's
    path and query is recorded."""

    def __init__(self):
        self.doc, self.status, self.requests = {}, 200, []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append(self.path)
                    doc, status = server.doc, server.status
                body = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/assign"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set(self, doc, status=200):
        with self.lock:
            self.doc, self.status = doc, status

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class AssignmentCase(P2PTestCase):
    def setUp(self):
        super().setUp()
        self.server = AssignmentServer()
        self.ai = FakeServer("ollama", "asg")
        self.addCleanup(self.server.close)
        self.addCleanup(self.ai.close)

    def assigned_agent(self, name, *, agent_section, env=None):
        """An agent with p2p, the probe, reasoning and ai-ollama (the fake); agent_section: the YAML
        agent: keys."""
        state = self.ws.path(f"state-{name}")
        os.makedirs(state, exist_ok=True)
        port = free_port()
        text = "agent:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in agent_section.items())
        text += p2p_config_yaml(state, listen=[f"/ip4/127.0.0.1/tcp/{port}"], log_level="debug")
        text += "  reasoning: " + json.dumps({"enabled": True, "critical": True, "config": {}}) + "\n"
        text += "  ai-ollama: " + json.dumps({"enabled": True, "critical": True, "config": {
            "endpoint": self.ai.base, "default_model": "llama3.1:latest"}}) + "\n"
        from harness import Agent
        agent = Agent(self.ws.write(f"{name}.yaml", text), env=env)
        self.agents.append(agent)
        agent.wait_ready()
        return P2PAgent(agent, port)

    def ai_status(self, a):
        status, st = a.get("/api/v1/ai/status")
        self.assertEqual(status, 200, st)
        return st

    def model_used(self, a):
        """The model reasoning picks for a request that names none, as the LLM server sees it."""
        status, ans = post_json(a.agent, "/api/v1/ai/chat", {"messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(status, 200, ans)
        return self.ai.chat_requests()[-1]["body"]["model"]


class UrlAssignment(AssignmentCase):
    def test_role_model_and_peers_from_the_url_at_start_and_live_on_sighup(self):
        a1 = self.p2p_agent("a1")
        a2 = self.p2p_agent("a2")
        self.server.set({"role": "backend_developer", "model": "phi3:latest", "bootstrap_peers": [a1.addr],
                         "expertise": ["go"], "max_tasks": 2, "whoosh_only_field": {"ignored": True}})
        b = self.assigned_agent("b", agent_section={"role": "static_role"},
                                env={"ASSIGN_URL": self.server.url, "TASK_SLOT": "3", "TASK_ID": "task 42"})
        self.assertEqual(self.server.requests[0], "/assign?task_slot=3&task_id=task%2042")
        b.agent.wait_log(r"assignment loaded from url:http://127\.0\.0\.1:\d+/assign\?task_slot=3&task_id=task%2042: "
                         r"role 'backend_developer', model 'phi3:latest', 1 areas of expertise, max_tasks 2, "
                         r"1 bootstrap peers")
        # Assignment > config for the peers; the assignment's role wins over agent.role.
        a1.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b dialling a1 from the assignment")
        self.assertEqual(self.ai_status(b)["role"], "backend_developer")
        self.assertEqual(self.ai_status(b)["assigned_model"], "phi3:latest")
        self.assertEqual(self.model_used(b), "phi3:latest")

        # A new assignment; the YAML stays as it is. Everything changes in the running process.
        pid = b.pid()
        self.server.set({"role": "qa_engineer", "model": "llama3.1:latest", "bootstrap_peers": [a2.addr]})
        m = b.agent.reload()
        self.assertEqual(m.group(0), "reload complete", b.agent.log_text()[-3000:])
        self.assertEqual(len(self.server.requests), 2)
        a2.wait_for_event(is_event("connected", b.peer_id, "inbound"), what="b dialling a2 after SIGHUP")
        b.agent.wait_log(r"\[reasoning\] role is now 'qa_engineer' \(was 'backend_developer'\)")
        self.assertEqual(self.ai_status(b)["role"], "qa_engineer")
        self.assertEqual(self.model_used(b), "llama3.1:latest")
        self.assertEqual(b.pid(), pid)

    def test_a_failing_assignment_is_a_warning_and_what_is_in_use_stays(self):
        self.server.set({"error": "no slot"}, status=500)
        b = self.assigned_agent("b", agent_section={"role": "static_role", "assignment_url": self.server.url})
        b.agent.wait_log(r"failed to load the assignment \(GET http://127\.0\.0\.1:\d+/assign: HTTP 500\); "
                         r"continuing with the base configuration")
        self.assertEqual(self.ai_status(b)["role"], "static_role")
        self.assertEqual(b.agent.http("/health/ready")[0], 200)

        self.server.set({"role": "architect"})
        b.agent.reload()
        wait_for(lambda: self.ai_status(b)["role"] == "architect", 10, "the role of the new assignment")

        # Invalid JSON, then a wrong type: warnings; the assignment in use stays.
        for bad in ("{not json", json.dumps({"role": 7})):
            self.server.set(bad)
            mark = b.agent.mark()
            b.agent.reload()
            b.agent.wait_log(r"failed to load the assignment \(.*(not valid JSON|role: expected a string)\); "
                             r"continuing with the assignment in use", start=mark)
            self.assertEqual(self.ai_status(b)["role"], "architect")
        # A server that is gone: the same.
        self.server.close()
        mark = b.agent.mark()
        b.agent.reload()
        b.agent.wait_log(r"failed to load the assignment \(GET .*\); continuing with the assignment in use", start=mark)
        self.assertEqual(b.agent.http("/health/ready")[0], 200)


class FileAssignment(AssignmentCase):
    def test_the_file_is_reread_on_sighup_though_the_yaml_did_not_change(self):
        path = self.ws.write("assignment.json", json.dumps({"role": "first_role"}))
        b = self.assigned_agent("b", agent_section={"assignment_file": path})
        b.agent.wait_log(r"assignment loaded from file:.*assignment\.json: role 'first_role'")
        self.assertEqual(self.ai_status(b)["role"], "first_role")
        self.ws.write("assignment.json.new", json.dumps({"role": "second_role", "model": "phi3:latest"}))
        os.replace(self.ws.path("assignment.json.new"), path)
        b.agent.reload()
        wait_for(lambda: self.ai_status(b)["role"] == "second_role", 10, "the role of the re-read file")
        self.assertEqual(self.model_used(b), "phi3:latest")
