"""Two chorus-agents (p2p + eventlog) on 127.0.0.1, driven over HTTP and through `chorus-agent verify-log`:

  * they connect: each logs peer_joined for the other; one stops: the other logs peer_left;
  * GET /api/v1/eventlog with a type filter and an index range, /head, and the error answers;
  * after SIGTERM, `chorus-agent verify-log` finds the chain whole (exit 0);
  * a restart continues the chain from the stored head (the next entry's prev_hash is the old head);
  * one row's data changed with Python's sqlite3: verify-log exits 1 naming that index;
  * a foreign file is refused by verify-log (exit 2) and by the plugin at start, and left as it was.

Everything waits on HTTP answers polled with a deadline (harness.wait_for), never on sleeps.
"""
import json
import os
import sqlite3
import unittest
from contextlib import closing
from urllib.parse import urlencode

import harness
from harness import Agent, Workspace, finish_agents, free_port, missing, run_cli

EVENTLOG_DIR = os.environ.get("CHORUS_EVENTLOG_PLUGIN_DIR", "")
P2P_DIR = os.environ.get("CHORUS_P2P_PLUGIN_DIR", "")


def missing_reason():
    if not os.environ.get("CHORUS_AGENT_BIN"):
        return missing("build", "CHORUS_AGENT_BIN is not set (run through ctest)")
    for d, f in ((P2P_DIR, "chorus-p2p.so"), (EVENTLOG_DIR, "chorus-eventlog.so")):
        if not d or not os.path.exists(os.path.join(d, f)):
            return missing("build", f"{f} not found in {d!r}")
    return None


def config_yaml(state_dir, agent_id, p2p_port, bootstrap=()):
    p2p = {"listen": [f"/ip4/127.0.0.1/tcp/{p2p_port}"]}
    if bootstrap:
        p2p["bootstrap_peers"] = list(bootstrap)
    return "\n".join([
        "agent:",
        f"  id: {json.dumps(agent_id)}",
        "host:",
        "  http:",
        "    listen: 127.0.0.1:0",
        "  log_level: debug",
        f"  state_dir: {json.dumps(state_dir)}",
        "  shutdown_timeout_ms: 8000",
        f"  plugin_dirs: {json.dumps([P2P_DIR, EVENTLOG_DIR])}",
        "plugins:",
        "  p2p: " + json.dumps({"enabled": True, "critical": True, "config": p2p}),
        "  eventlog: " + json.dumps({"enabled": True, "critical": True, "config": {}}),
    ]) + "\n"


class Node:
    """One agent's config, state dir and p2p address; start() runs it (again)."""

    def __init__(self, ws, name, bootstrap=()):
        self.ws = ws
        self.name = name
        self.state = ws.path(f"state-{name}")
        self.port = free_port()
        self.config = ws.write(f"{name}.yaml", config_yaml(self.state, f"agent-{name}", self.port, bootstrap))
        self.agent = None
        self.peer_id = None

    @property
    def db(self):
        return os.path.join(self.state, "eventlog", "log.db")

    def start(self):
        self.agent = Agent(self.config, label=self.name).wait_ready()
        status, info = self.agent.http_json("/p2p/id")
        assert status == 200, info
        self.peer_id = info["peer_id"]
        return self.agent

    @property
    def addr(self):
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    def entries(self, **params):
        status, body = self.agent.http_json("/api/v1/eventlog?" + urlencode(params))
        assert status == 200, (status, body)
        return body

    def head(self):
        status, body = self.agent.http_json("/api/v1/eventlog/head")
        assert status == 200, (status, body)
        return body

    def wait_entry(self, type, peer_id, since=0, timeout=30):
        """Waits until the log holds an entry of `type` from index `since` on whose data names peer_id;
        returns it."""
        def found():
            return next((e for e in self.entries(type=type, limit=1000, **{"from": since})
                         if e["data"].get("peer_id") == peer_id), None)
        return harness.wait_for(found, timeout, f"{self.name}: {type} for {peer_id}", interval=0.05)


def verify_log(*args):
    return run_cli("verify-log", *args)


class EventlogIntegrationTest(unittest.TestCase):
    def setUp(self):
        reason = missing_reason()
        if reason:
            self.skipTest(reason)
        self.ws = Workspace()
        self.agents = []

    def tearDown(self):
        problems = finish_agents(self.agents)
        self.ws.cleanup()
        if problems:
            self.fail("agent check at the end of the test:\n" + "\n".join(problems))

    def start(self, node):
        self.agents.append(node.start())
        return node

    def test_peer_events_query_verify_restart_tamper(self):
        a = self.start(Node(self.ws, "a"))
        b = Node(self.ws, "b", bootstrap=[a.addr])
        self.start(b)

        # Each logs peer_joined for the other, signed by itself.
        ja = a.wait_entry("peer_joined", b.peer_id)
        jb = b.wait_entry("peer_joined", a.peer_id)
        self.assertEqual(ja["author"], a.peer_id)
        self.assertEqual(jb["author"], b.peer_id)
        self.assertEqual(jb["data"]["direction"], "outbound")
        self.assertEqual(ja["data"]["direction"], "inbound")
        for e in (ja, jb):
            self.assertRegex(e["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertRegex(e["hash"], r"^[0-9a-f]{64}$")
            self.assertRegex(e["signature"], r"^[0-9a-f]{128}$")

        # B stops: A logs peer_left for it.
        self.assertEqual(b.agent.stop(), 0)
        left = a.wait_entry("peer_left", b.peer_id)
        self.assertGreater(left["index"], ja["index"])

        # Queries: everything, a type filter, a range, the head, and bad parameters.
        every = a.entries()
        self.assertEqual([e["index"] for e in every], list(range(len(every))))
        self.assertEqual(every[0]["prev_hash"], "0" * 64)
        for prev, cur in zip(every, every[1:]):
            self.assertEqual(cur["prev_hash"], prev["hash"])
        self.assertTrue(all(e["type"] == "peer_left" for e in a.entries(type="peer_left")))
        self.assertEqual(len(a.entries(type="peer_left")), sum(e["type"] == "peer_left" for e in every))
        self.assertEqual([e["index"] for e in a.entries(**{"from": 1, "to": 1})], [1])
        self.assertEqual(len(a.entries(limit=1)), 1)
        head = a.head()
        self.assertEqual(head, {"length": len(every), "index": len(every) - 1, "hash": every[-1]["hash"]})
        for bad in ("limit=0", "from=3&to=2", "type=Bad-Type", "from=x", "nope=1"):
            status, body = a.agent.http_json("/api/v1/eventlog?" + bad)
            self.assertEqual(status, 400, bad)
            self.assertEqual(body["error"]["code"], "CHORUS_E_INVALID_ARG", body)
            self.assertTrue(body["error"]["message"])

        # SIGTERM, then the whole chain verifies.
        self.assertEqual(a.agent.stop(), 0)
        rc, out, err = verify_log("--state-dir", a.state)
        self.assertEqual(rc, 0, out + err)
        self.assertIn(f"entries: {len(every)}", out)
        self.assertIn(head["hash"], out)
        self.assertIn(a.peer_id, out)
        self.assertEqual(os.stat(a.db).st_mode & 0o777, 0o600)
        # Without --state-dir, the state dir comes from the config, as `run` resolves it.
        rc, out2, err = run_cli("verify-log", "-c", a.config)
        self.assertEqual(rc, 0, out2 + err)
        self.assertEqual(out2, out)

        # Restart both: A continues its chain from the stored head.
        self.start(a)
        self.assertEqual(a.head(), head)
        self.start(b)
        rejoined = harness.wait_for(
            lambda: next((e for e in a.entries(**{"from": head["length"]}) if e["type"] == "peer_joined"), None),
            30, "a: peer_joined after the restart", interval=0.05)
        first_new = a.entries(**{"from": head["length"], "to": head["length"]})[0]
        self.assertEqual(first_new["prev_hash"], head["hash"])
        self.assertEqual(rejoined["data"]["peer_id"], b.peer_id)
        self.assertEqual(b.agent.stop(), 0)
        a.wait_entry("peer_left", b.peer_id, since=rejoined["index"] + 1)
        self.assertEqual(a.agent.stop(), 0)
        rc, out, err = verify_log("--file", a.db)
        self.assertEqual(rc, 0, out + err)
        rc, out, err = verify_log("--state-dir", b.state)
        self.assertEqual(rc, 0, out + err)

        # Tamper with one row's data: verify-log names that index and exits 1.
        with closing(sqlite3.connect(a.db)) as db:
            db.execute("UPDATE entries SET data = ? WHERE idx = ?", ('{"peer_id":"forged"}', 1))
            db.commit()
        rc, out, err = verify_log("--state-dir", a.state)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("BAD entry 1:", out)
        self.assertIn("hash does not match", out)

    def test_foreign_file_is_refused_and_kept(self):
        node = Node(self.ws, "f")
        os.makedirs(os.path.dirname(node.db))
        with closing(sqlite3.connect(node.db)) as db:
            db.execute("CREATE TABLE notes(x)")
            db.execute("INSERT INTO notes VALUES ('keep me')")
            db.commit()
        before = open(node.db, "rb").read()

        rc, out, err = verify_log("--file", node.db)
        self.assertEqual(rc, 2, out + err)
        self.assertIn("not a chorus event log", err)

        agent = Agent(node.config, label="foreign")
        self.agents.append(agent)
        rc = agent.wait_exit(timeout=60)
        self.assertNotEqual(rc, 0)
        self.assertIn("not a chorus event log", agent.log_text())
        self.assertEqual(open(node.db, "rb").read(), before)

    def test_verify_log_usage(self):
        rc, _, err = verify_log("--file")
        self.assertEqual(rc, 2)
        rc, _, err = verify_log("--file", self.ws.path("nothing.db"))
        self.assertEqual(rc, 2)
        self.assertIn("cannot read", err)
        rc, _, err = run_cli("check", "--state-dir", self.ws.root)
        self.assertEqual(rc, 2)
        self.assertIn("verify-log", err)


if __name__ == "__main__":
    unittest.main()
