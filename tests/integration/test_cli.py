"""The command line (docs/contract.md, Command line): run/check/plugins/--version, exit codes, config errors."""
import hashlib
import json
import os
import re
import stat
import unittest

from harness import BAD_PLUGINS, PLUGINS, AgentTestCase, config_yaml, not_applicable, run_cli


class VersionAndUsage(unittest.TestCase):
    def test_version(self):
        rc, out, _ = run_cli("--version")
        self.assertEqual(rc, 0)
        # The commit is "unknown" outside a git checkout (a release tarball).
        self.assertRegex(out, r"^chorus-agent \d+\.\d+\.\d+ \(plugin ABI 1\.\d+; commit ([0-9a-f]{7,40}|unknown), "
                              r"built \d{4}-\d\d-\d\d\)\n$")

    def test_help(self):
        rc, out, _ = run_cli("--help")
        self.assertEqual(rc, 0)
        for word in ("run", "check", "plugins", "--json", "SIGHUP"):
            self.assertIn(word, out)

    def test_unknown_option_is_usage_error(self):
        rc, _, err = run_cli("--frobnicate")
        self.assertEqual(rc, 2)
        self.assertIn("unknown option '--frobnicate'", err)

    def test_unknown_command_is_usage_error(self):
        rc, _, err = run_cli("launch")
        self.assertEqual(rc, 2)
        self.assertIn("unknown command 'launch'", err)

    def test_missing_config_argument(self):
        rc, _, err = run_cli("check", "-c")
        self.assertEqual(rc, 2)
        self.assertIn("-c needs a file name", err)


class ConfigErrors(AgentTestCase):
    def one_line_error(self, text, *args):
        path = self.ws.write("bad.yaml", text)
        rc, out, err = run_cli(*(args or ("check",)), "-c", path)
        self.assertEqual(rc, 2, err)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, err)
        return lines[0]

    def test_missing_file(self):
        rc, _, err = run_cli("check", "-c", self.ws.path("nope.yaml"))
        self.assertEqual(rc, 2)
        self.assertIn("nope.yaml", err)
        self.assertIn("No such file or directory", err)

    def test_missing_file_on_run(self):
        rc, _, err = run_cli("run", "-c", self.ws.path("nope.yaml"))
        self.assertEqual(rc, 2)
        self.assertIn("nope.yaml", err)

    def test_unreadable_file(self):
        if os.geteuid() == 0:
            self.skipTest(not_applicable("root can read any file"))
        path = self.ws.write("secret.yaml", "host: {}\n")
        os.chmod(path, 0)
        rc, _, err = run_cli("check", "-c", path)
        self.assertEqual(rc, 2)
        self.assertIn("Permission denied", err)

    def test_config_path_that_cannot_be_read(self):
        # A directory cannot be read as a file, even by root (chmod 000 would not stop root).
        d = self.ws.path("conf.d")
        os.mkdir(d)
        rc, _, err = run_cli("check", "-c", d)
        self.assertEqual(rc, 2)
        self.assertIn(f"cannot read config file '{d}'", err)

    def test_malformed_yaml_names_line(self):
        line = self.one_line_error("host:\n  log_level: [info\n")
        self.assertRegex(line, r"bad\.yaml:\d+:\d+:")

    def test_unknown_key_names_path(self):
        line = self.one_line_error("host:\n  htp: {}\n")
        self.assertIn("host.htp", line)
        self.assertIn("unknown key", line)

    def test_wrong_type_names_path(self):
        line = self.one_line_error("plugins:\n  test.base: {critical: maybe}\n")
        self.assertIn("plugins.test.base.critical", line)

    def test_invalid_plugin_id(self):
        line = self.one_line_error("plugins:\n  Bad_ID: {}\n")
        self.assertIn("Bad_ID", line)

    def test_duplicate_plugin_key(self):
        line = self.one_line_error("plugins:\n  test.base: {}\n  test.base: {}\n")
        self.assertIn("test.base", line)
        self.assertIn("duplicate", line.lower())

    def test_env_config_variable_is_used(self):
        path = self.ws.write("env.yaml", "host:\n  bogus: 1\n")
        rc, _, err = run_cli("check", env={"CHORUS_CONFIG": path})
        self.assertEqual(rc, 2)
        self.assertIn("host.bogus", err)

    def test_plugin_config_rejected_by_schema(self):
        path = self.ws.write("c.yaml", config_yaml(self.ws, {"test.base": {"config": {"recrod": "x"}}}))
        rc, out, err = run_cli("check", "-c", path)
        self.assertEqual(rc, 2)
        self.assertIn("plugins.test.base.config", out)
        self.assertIn("recrod", out)


class Check(AgentTestCase):
    def check_json(self, plugins, **kw):
        path = self.ws.write("c.yaml", config_yaml(self.ws, plugins, **kw))
        rc, out, err = run_cli("check", "-c", path, "--json")
        return rc, json.loads(out), err

    def test_order_is_dependency_then_id(self):
        rc, report, err = self.check_json({"test.top": {}, "test.side": {}, "test.mid": {}, "test.base": {}})
        self.assertEqual(rc, 0, err)
        self.assertEqual(report["order"], ["test.base", "test.mid", "test.side", "test.top"])
        self.assertEqual(report["errors"], [])
        self.assertEqual(report["skipped"], [])
        self.assertEqual(report["bindings"]["test.base"], "test.base")

    def test_text_output(self):
        path = self.ws.write("c.yaml", config_yaml(self.ws, {"test.mid": {}, "test.base": {}}))
        rc, out, _ = run_cli("check", "-c", path)
        self.assertEqual(rc, 0)
        self.assertIn("start order: test.base, test.mid\n", out)
        self.assertIn("bindings:\n  test.base -> test.base\n", out)
        self.assertIn("skipped: (none)\n", out)

    def test_missing_dependency_is_skipped_with_reason(self):
        rc, report, _ = self.check_json({"test.needs-missing": {}, "test.base": {}})
        self.assertEqual(rc, 0)
        self.assertEqual(report["order"], ["test.base"])
        self.assertEqual(len(report["skipped"]), 1)
        self.assertEqual(report["skipped"][0]["id"], "test.needs-missing")
        self.assertIn("test.missing", report["skipped"][0]["reason"])

    def test_missing_dependency_of_critical_plugin_is_an_error(self):
        rc, report, _ = self.check_json({"test.needs-missing": {"critical": True}})
        self.assertEqual(rc, 2)
        self.assertTrue(any("test.needs-missing" in e for e in report["errors"]), report)

    def test_cycle_names_every_member(self):
        rc, report, _ = self.check_json({"test.cyc-a": {}, "test.cyc-b": {}, "test.base": {}})
        self.assertEqual(report["order"], ["test.base"])
        reasons = {s["id"]: s["reason"] for s in report["skipped"]}
        self.assertEqual(set(reasons), {"test.cyc-a", "test.cyc-b"})
        for reason in reasons.values():
            self.assertIn("cycle", reason)
            self.assertIn("test.cyc-a", reason)
            self.assertIn("test.cyc-b", reason)

    def test_optional_dependency_missing_is_fine(self):
        rc, report, _ = self.check_json({"test.opt": {}})
        self.assertEqual(rc, 0)
        self.assertEqual(report["order"], ["test.opt"])

    def test_ambiguous_provider_needs_binding(self):
        plugins = {"test.echo-a": {}, "test.echo-b": {}, "test.consumer": {}}
        rc, report, _ = self.check_json(plugins)
        self.assertEqual(rc, 2)
        self.assertTrue(any("test.echo" in e and "bindings" in e for e in report["errors"]), report)
        rc, report, _ = self.check_json(plugins, bindings={"test.echo": "test.echo-b"})
        self.assertEqual(rc, 0, report)
        self.assertEqual(report["bindings"]["test.echo"], "test.echo-b")

    def test_unknown_plugin_id(self):
        rc, report, _ = self.check_json({"no.such-plugin": {}})
        self.assertEqual(report["skipped"][0]["id"], "no.such-plugin")
        self.assertIn("no plugin file chorus-no.such-plugin.so", report["skipped"][0]["reason"])

    def test_check_starts_nothing(self):
        rc, report, _ = self.check_json({"test.base": {}})
        self.assertEqual(rc, 0)
        self.assertEqual(self.ws.records(), [])

    def test_world_writable_plugin_dir_is_refused(self):
        d = self.ws.plugin_dir("open", ["test.base"])
        os.chmod(d, 0o777)
        rc, report, _ = self.check_json({"test.base": {}}, plugin_dirs=[d])
        self.assertEqual(report["order"], [])
        self.assertIn("world-writable", report["skipped"][0]["reason"])
        self.assertIn(d, report["skipped"][0]["reason"])

    def test_sha256_pin(self):
        d = self.ws.plugin_dir("pinned", ["test.base"])
        with open(os.path.join(d, "chorus-test.base.so"), "rb") as f:
            good = hashlib.sha256(f.read()).hexdigest()
        rc, report, _ = self.check_json({"test.base": {"sha256": good}}, plugin_dirs=[d])
        self.assertEqual(report["order"], ["test.base"], report)
        rc, report, _ = self.check_json({"test.base": {"sha256": "0" * 64}}, plugin_dirs=[d])
        self.assertEqual(report["order"], [])
        self.assertIn("sha256", report["skipped"][0]["reason"])


class BadPlugins(AgentTestCase):
    """Each broken .so gives one clear line naming the file."""

    EXPECTED = {
        "not-a-plugin": "not a chorus plugin (no chorus_plugin_entry_v1 symbol)",
        "wrong-major": "built for plugin ABI major 2, this host speaks 1",
        "major-field": "built for plugin ABI major 2, this host speaks 1",
        "short-struct": "malformed descriptor: struct_size 16 is smaller than the minimum",
        "no-vtable": "malformed descriptor: vtable is NULL",
        "bad-id": "malformed descriptor: id is missing or not",
        "refuses": "the plugin refused this host",
        "bad-range": "malformed descriptor: requirement 'test.base' has a bad version range",
        "newer-minor": "needs host ABI 1.99 or newer, this host has 1.",
    }

    def test_plugins_lists_every_defect(self):
        path = self.ws.write("c.yaml", config_yaml(self.ws, {}, plugin_dirs=[BAD_PLUGINS]))
        rc, out, err = run_cli("plugins", "-c", path, "--json")
        self.assertEqual(rc, 2)
        listed = {os.path.basename(p["path"]): p for p in json.loads(out)}
        for name, message in self.EXPECTED.items():
            item = listed[f"chorus-test.{name}.so"]
            self.assertIn(message, item["error"], name)
            self.assertIn(f"chorus-test.{name}.so", item["error"])
            self.assertIn(message, err)

    def test_run_reports_a_bad_plugin_and_keeps_running(self):
        for name, message in self.EXPECTED.items():
            with self.subTest(name=name):
                agent = self.start_agent({f"test.{name}": {}, "test.base": {}}, plugin_dirs=[BAD_PLUGINS, PLUGINS])
                agent.wait_log(re.escape(message))
                status, health = agent.http_json("/health")
                self.assertEqual(health["plugins"][f"test.{name}"]["state"], "failed")
                self.assertEqual(health["plugins"]["test.base"]["state"], "running")
                self.assertEqual(health["status"], "degraded")
                self.assertEqual(agent.stop(), 0)

    def test_file_that_is_not_a_shared_object(self):
        d = self.ws.plugin_dir("junk")
        with open(os.path.join(d, "chorus-test.junk.so"), "wb") as f:
            f.write(b"this is not an ELF file\n" * 10)
        path = self.ws.write("c.yaml", config_yaml(self.ws, {"test.junk": {}}, plugin_dirs=[d]))
        rc, out, _ = run_cli("check", "-c", path, "--json")
        reason = json.loads(out)["skipped"][0]["reason"]
        self.assertRegex(reason, r"chorus-test\.junk\.so: cannot load: .*(invalid ELF header|file too short)")

    def test_id_mismatch(self):
        d = self.ws.plugin_dir("renamed")
        src = os.path.join(PLUGINS, "chorus-test.base.so")
        dst = os.path.join(d, "chorus-test.other.so")
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
        path = self.ws.write("c.yaml", config_yaml(self.ws, {"test.other": {}}, plugin_dirs=[d]))
        rc, out, _ = run_cli("check", "-c", path, "--json")
        reason = json.loads(out)["skipped"][0]["reason"]
        self.assertIn("declares plugin id 'test.base' but was loaded as 'test.other'", reason)

    def test_duplicate_ids_across_paths(self):
        d = self.ws.plugin_dir("dup", ["test.base"])
        path = self.ws.write("c.yaml", config_yaml(self.ws, {"test.other": {"path": os.path.join(d, "chorus-test.base.so")}},
                                                   plugin_dirs=[PLUGINS]))
        rc, out, err = run_cli("plugins", "-c", path)
        self.assertEqual(rc, 2)
        self.assertIn("duplicate plugin id 'test.base'", err)


class Plugins(AgentTestCase):
    def test_lists_test_plugins(self):
        path = self.ws.write("c.yaml", config_yaml(self.ws, {}))
        rc, out, err = run_cli("plugins", "-c", path, "--json")
        self.assertEqual(rc, 0, err)
        by_id = {p["id"]: p for p in json.loads(out)}
        mid = by_id["test.mid"]
        self.assertEqual(mid["version"], "1.0.0")
        self.assertEqual(mid["abi"], "1.2")
        self.assertEqual(mid["provides"], [{"service": "test.mid", "version": "1.2", "swappable": False}])
        self.assertEqual(mid["requires"], [{"service": "test.base", "range": "^1", "optional": False, "late": False}])
        self.assertTrue(mid["path"].endswith("/chorus-test.mid.so"))
        self.assertTrue(by_id["test.echo-a"]["provides"][0]["swappable"])

    def test_text_output(self):
        path = self.ws.write("c.yaml", config_yaml(self.ws, {}))
        rc, out, _ = run_cli("plugins", "-c", path)
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"test\.mid 1\.0\.0 \(ABI 1\.2\)\n    provides: test\.mid 1\.2\n    requires: test\.base \^1\n")


if __name__ == "__main__":
    unittest.main()
