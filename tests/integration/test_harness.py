"""The harness's own guarantees (no agent binary needed: tests/integration/fake_agent.py stands in):

  * a sanitizer report (AddressSanitizer, LeakSanitizer, UBSan "runtime error:") in an agent's output
    fails the test, and the output is kept in a log file;
  * an agent still running at the end of a test gets SIGTERM and must exit 0 (or what the test set in
    expected_exit) within a bounded time; SIGKILL after that is itself a failure; a crash fails;
  * tests/run_suite.py turns a skip for a missing prerequisite into ctest's skip code 77 (a failure
    when CI is set, for the kinds the CI must have), and a not_applicable skip leaves the suite passed.
"""
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = [sys.executable, os.path.join(HERE, "fake_agent.py")]
RUN_SUITE = os.path.join(HERE, "..", "run_suite.py")


def fake_agent(tc, **config):
    """A fake agent (see fake_agent.py) started like a real one; tc.ws holds its config."""
    path = tc.ws.write(f"fake{len(tc.agents)}.json", json.dumps(config))
    agent = harness.Agent(path, command=FAKE)
    tc.agents.append(agent)
    agent.wait_log(r"ready: 0 plugins running")
    return agent


class Scanner(unittest.TestCase):
    def test_finds_every_sanitizer_report(self):
        lines = ["==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010",
                 "==4242==ERROR: LeakSanitizer: detected memory leaks",
                 "/src/host/src/x.cpp:12:5: runtime error: signed integer overflow",
                 "SUMMARY: UndefinedBehaviorSanitizer: undefined-behavior /src/x.cpp:12:5",
                 "WARNING: AddressSanitizer failed to allocate 0x1000 bytes"]
        self.assertEqual(harness.sanitizer_reports(lines), lines)

    def test_ordinary_log_lines_are_not_reports(self):
        lines = ["[info] ready: 3 plugins running", "[error] plugin 'x' failed: std::runtime_error thrown",
                 "[warn] AddressSanitizer is not enabled in this build"]
        self.assertEqual(harness.sanitizer_reports(lines), [])

    def test_check_output_raises_with_the_report(self):
        with self.assertRaisesRegex(AssertionError, "runtime error: load of misaligned"):
            harness.check_output("agent", ["ok", "a.cpp:1:2: runtime error: load of misaligned address"])


class Finish(harness.AgentTestCase):
    """Agent.finish on fake agents: what it reports as problems."""

    def test_clean_stop_has_no_problem(self):
        agent = fake_agent(self)
        self.assertEqual(agent.finish(), [])
        self.assertEqual(agent.proc.returncode, 0)

    def test_planted_asan_line_is_a_problem_and_is_in_the_log_file(self):
        agent = fake_agent(self, print=["==77==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x1"])
        problems = agent.finish()
        self.assertTrue(any("sanitizer report" in p and "heap-buffer-overflow" in p for p in problems), problems)
        with open(agent.log_path) as f:
            self.assertIn("ERROR: AddressSanitizer: heap-buffer-overflow", f.read())

    def test_planted_ubsan_line_is_a_problem(self):
        agent = fake_agent(self, print=["src/a.cpp:3:7: runtime error: member call on null pointer"])
        problems = agent.finish()
        self.assertTrue(any("runtime error: member call" in p for p in problems), problems)

    def test_report_after_exit_status_seen_is_still_a_problem(self):
        agent = fake_agent(self, print=["==1==ERROR: LeakSanitizer: detected memory leaks"])
        self.assertEqual(agent.stop(), 0)
        self.assertTrue(any("LeakSanitizer" in p for p in agent.finish()))

    def test_wrong_exit_status_on_sigterm_is_a_problem(self):
        agent = fake_agent(self, exit=3)
        problems = agent.finish()
        self.assertTrue(any("exited with status 3, expected 0" in p for p in problems), problems)

    def test_status_of_a_stop_is_checked_even_if_the_test_ignores_it(self):
        agent = fake_agent(self, exit=3)
        agent.stop()
        problems = agent.finish()
        self.assertTrue(any("exited with status 3, expected 0" in p for p in problems), problems)

    def test_expected_exit_status_is_accepted(self):
        agent = fake_agent(self, exit=3)
        agent.expected_exit = 3
        self.assertEqual(agent.finish(), [])

    def test_unobserved_early_exit_is_checked(self):
        path = self.ws.write("early.json", json.dumps({"exit_now": 5}))
        agent = harness.Agent(path, command=FAKE)
        self.agents.append(agent)
        agent.proc.wait(timeout=harness.scale(30))
        problems = agent.finish()
        self.assertTrue(any("exited with status 5, expected 0" in p for p in problems), problems)

    def test_status_the_test_collected_is_left_to_the_test(self):
        path = self.ws.write("early.json", json.dumps({"exit_now": 5}))
        agent = harness.Agent(path, command=FAKE)
        self.agents.append(agent)
        self.assertEqual(agent.wait_exit(), 5)
        self.assertEqual(agent.finish(), [])

    def test_ignoring_sigterm_ends_in_sigkill_and_is_a_problem(self):
        agent = fake_agent(self, on_sigterm="ignore")
        problems = agent.finish(timeout=0.5 / harness.SLOW)
        self.assertTrue(any("did not exit within" in p and "SIGKILL" in p for p in problems), problems)
        self.assertEqual(agent.proc.returncode, -signal.SIGKILL)

    def test_crash_is_a_problem_even_when_collected(self):
        path = self.ws.write("crash.json", json.dumps({"crash": int(signal.SIGSEGV)}))
        agent = harness.Agent(path, command=FAKE)
        self.agents.append(agent)
        self.assertEqual(agent.wait_exit(), -signal.SIGSEGV)
        self.assertTrue(any(f"died from signal {int(signal.SIGSEGV)}" in p for p in agent.finish()))

    def test_kill_on_purpose_is_not_a_problem(self):
        agent = fake_agent(self)
        agent.kill()
        self.assertEqual(agent.finish(), [])


@harness.require("build", None if os.environ.get("CHORUS_AGENT_BIN") and harness.PLUGINS else
                 "CHORUS_AGENT_BIN / CHORUS_TEST_PLUGIN_DIR not set (run through ctest)")
class RealAgent(harness.AgentTestCase):
    """The same checks on the real chorus-agent (the planted report is printed by a shell that then
    execs the agent, so it lands in the same captured output)."""

    def real_agent(self, plugins, command=None, **kw):
        path = self.ws.write("chorus.yaml", harness.config_yaml(self.ws, plugins, **kw))
        agent = harness.Agent(path, command=command)
        self.agents.append(agent)
        return agent

    def test_clean_run_and_sigterm_has_no_problem(self):
        agent = self.real_agent({"test.base": {}}).wait_ready()
        self.assertEqual(agent.finish(), [])
        self.assertEqual(agent.proc.returncode, 0)

    def test_planted_report_in_real_agent_output_is_a_problem(self):
        plant = 'echo "==1==ERROR: AddressSanitizer: planted by test_harness" >&2; exec "$0" "$@"'
        agent = self.real_agent({"test.base": {}}, command=["sh", "-c", plant, harness.AGENT]).wait_ready()
        problems = agent.finish()
        self.assertTrue(any("planted by test_harness" in p for p in problems), problems)
        self.assertEqual(agent.proc.returncode, 0)  # the agent itself stopped cleanly

    def test_agent_exiting_1_on_its_own_is_a_problem(self):
        agent = self.real_agent({"test.base": {"critical": True, "config": {"fail_start": True}}})
        agent.wait_log(r"fail|error")
        agent.proc.wait(timeout=harness.scale(30))
        problems = agent.finish()
        self.assertTrue(any("exited with status 1, expected 0" in p for p in problems), problems)


class TeardownFailsTheTest(unittest.TestCase):
    """AgentTestCase turns those problems into a failure of the test that started the agent."""

    def run_case(self, config):
        class Case(harness.AgentTestCase):
            def test_it(self):
                fake_agent(self, **config)

        result = unittest.TestResult()
        Case("test_it").run(result)
        return result

    def test_sanitizer_report_fails_the_test(self):
        result = self.run_case({"print": ["==9==ERROR: AddressSanitizer: stack-use-after-return"]})
        self.assertEqual(len(result.failures), 1, result.errors)
        self.assertIn("stack-use-after-return", result.failures[0][1])

    def test_nonzero_exit_on_sigterm_fails_the_test(self):
        result = self.run_case({"exit": 1})
        self.assertEqual(len(result.failures), 1, result.errors)
        self.assertIn("exited with status 1, expected 0", result.failures[0][1])

    def test_clean_agent_passes(self):
        result = self.run_case({})
        self.assertTrue(result.wasSuccessful(), result.failures + result.errors)


class RunSuite(unittest.TestCase):
    """run_suite.py's exit status for the kinds of skip."""

    def run_suite(self, body, env_ci=None):
        d = tempfile.mkdtemp(prefix="chorus-run-suite-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        with open(os.path.join(d, "test_sample.py"), "w") as f:
            f.write("import unittest\nimport harness\n\n" + textwrap.dedent(body))
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env["CHORUS_TEST_LOG_DIR"] = d
        if env_ci is not None:
            env["CI"] = env_ci
        p = subprocess.run([sys.executable, RUN_SUITE, "test_sample"], cwd=d, env=env, capture_output=True,
                           text=True, timeout=harness.scale(60))
        return p.returncode, p.stdout + p.stderr

    PASS = """
        class T(unittest.TestCase):
            def test_ok(self):
                pass
    """
    MISSING_JS = """
        class T(unittest.TestCase):
            def test_ok(self):
                pass

            @harness.require("js-libp2p", "node is not installed")
            def test_js(self):
                pass
    """
    MISSING_GO = MISSING_JS.replace('"js-libp2p"', '"go"')
    NOT_APPLICABLE = """
        class T(unittest.TestCase):
            def test_ok(self):
                pass

            def test_root(self):
                self.skipTest(harness.not_applicable("root can read any file"))
    """
    PLAIN_SKIP = """
        class T(unittest.TestCase):
            @unittest.skip("something is missing")
            def test_x(self):
                pass
    """
    FAILS = """
        class T(unittest.TestCase):
            def test_bad(self):
                self.fail("no")

            @harness.require("js-libp2p", "node is not installed")
            def test_js(self):
                pass
    """

    def test_declared_module_check_is_77(self):
        rc, out = self.run_suite("""
            def setUpModule():
                raise unittest.SkipTest(harness.missing("nats", "nats-server not found"))

            class T(unittest.TestCase):
                def test_ok(self):
                    pass
        """)
        self.assertEqual(rc, 77, out)
        self.assertIn("missing prerequisite [nats]: nats-server not found", out)

    def test_all_passed_is_0(self):
        self.assertEqual(self.run_suite(self.PASS)[0], 0)

    def test_missing_prerequisite_is_77_with_the_reason(self):
        rc, out = self.run_suite(self.MISSING_JS)
        self.assertEqual(rc, 77, out)
        self.assertIn("missing prerequisite [js-libp2p]: node is not installed", out)

    def test_missing_ci_prerequisite_fails_under_ci(self):
        rc, out = self.run_suite(self.MISSING_JS, env_ci="1")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: CI is set", out)

    def test_other_prerequisite_still_skips_under_ci(self):
        self.assertEqual(self.run_suite(self.MISSING_GO, env_ci="true")[0], 77)

    def test_not_applicable_skip_passes(self):
        self.assertEqual(self.run_suite(self.NOT_APPLICABLE, env_ci="1")[0], 0)

    def test_unmarked_skip_counts_as_missing(self):
        self.assertEqual(self.run_suite(self.PLAIN_SKIP)[0], 77)

    def test_failure_wins_over_skip(self):
        self.assertEqual(self.run_suite(self.FAILS)[0], 1)

    def test_leftover_agent_fails_the_suite(self):
        rc, out = self.run_suite(f"""
            import json, os, tempfile
            class T(unittest.TestCase):
                def test_leaves_an_agent(self):
                    path = os.path.join(os.environ["CHORUS_TEST_LOG_DIR"], "cfg.json")
                    with open(path, "w") as f:
                        f.write("{{}}")
                    harness.Agent(path, command={FAKE!r}).wait_log("ready")
        """)
        self.assertEqual(rc, 1, out)
        self.assertIn("was still running after its test", out)

    def test_stopped_and_dropped_agent_is_still_scanned(self):
        rc, out = self.run_suite(f"""
            import json, os, tempfile
            class T(unittest.TestCase):
                def test_drops_an_agent(self):
                    path = os.path.join(os.environ["CHORUS_TEST_LOG_DIR"], "cfg.json")
                    with open(path, "w") as f:
                        f.write(json.dumps({{"print": ["==5==ERROR: AddressSanitizer: SEGV"]}}))
                    agent = harness.Agent(path, command={FAKE!r})
                    agent.wait_log("ready")
                    self.assertEqual(agent.stop(), 0)
        """)
        self.assertEqual(rc, 1, out)
        self.assertIn("ERROR: AddressSanitizer: SEGV", out)


if __name__ == "__main__":
    unittest.main()
