"""install.sdk: the installed tree (docs/contract.md, Names and layout) and the plugin SDK as a third party uses it.

Python 3 stdlib only. Registered with ctest by tests/install/CMakeLists.txt, which passes the build
tree, the compiler and the install dirs in the environment. Steps:

  1. `cmake --install <build dir> --prefix <tmp>/prefix` (the current build tree, nothing rebuilt), then
     check the layout and that no installed package file holds an absolute build or prefix path.
  2. Configure, build and install tests/sdk-consumer (find_package(ChorusPlugin 0.1)) against that
     prefix; the plugin lands in <prefix>/<libdir>/chorus/plugins through its own install step.
  3. The installed chorus-agent finds acme.hello in its own plugin dir (`plugins --json`, `check
     --json`), runs it (HTTP, health, metrics) and stops cleanly on SIGTERM.
  4. Move the whole prefix elsewhere: the agent still finds the plugin, and the pkg-config variant
     (acme.hello-pc, built by pkgconfig.mk from the moved prefix's chorus-plugin.pc) is listed and runs.
  Every plugin built here must export only chorus_plugin_entry_v1 (`nm -D --defined-only`).

Set CHORUS_KEEP_INSTALL_TEST=1 to keep the temporary directory for inspection.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402  (Agent, the end-of-test checks, scale)

ENV = os.environ


def tool(var, default):
    """A tool path from CMake's find_program, or the plain name when CMake did not find it."""
    value = ENV.get(var, "")
    return default if not value or value.endswith("-NOTFOUND") else value


BUILD_DIR = ENV.get("CHORUS_BUILD_DIR", "")
SOURCE_DIR = ENV.get("CHORUS_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CMAKE = tool("CHORUS_CMAKE", "cmake")
GENERATOR = ENV.get("CHORUS_CMAKE_GENERATOR", "")
MAKE_PROGRAM = ENV.get("CHORUS_MAKE_PROGRAM", "")
MAKE = tool("CHORUS_MAKE", "make")
PKG_CONFIG = tool("CHORUS_PKG_CONFIG", "pkg-config")
NM = tool("CHORUS_NM", "nm")
CXX = tool("CHORUS_CXX", "c++")
LIBDIR = ENV.get("CHORUS_INSTALL_LIBDIR", "lib")
BINDIR = ENV.get("CHORUS_INSTALL_BINDIR", "bin")
INCLUDEDIR = ENV.get("CHORUS_INSTALL_INCLUDEDIR", "include")
DATADIR = ENV.get("CHORUS_INSTALL_DATADIR", "share")
SANITIZED = ENV.get("CHORUS_SANITIZE", "0") == "1"
SANITIZE_FLAGS = ENV.get("CHORUS_SANITIZE_FLAGS", "")
KEEP = ENV.get("CHORUS_KEEP_INSTALL_TEST", "") == "1"
SLOW = harness.SLOW  # sanitizer builds and loaded machines are slower: deadlines scale

CONSUMER_SRC = os.path.join(SOURCE_DIR, "tests", "sdk-consumer")
PLUGIN_SUBDIR = os.path.join(LIBDIR, "chorus", "plugins")
CMAKE_PKG_SUBDIR = os.path.join(LIBDIR, "cmake", "ChorusPlugin")
PC_SUBDIR = os.path.join(LIBDIR, "pkgconfig")
ENTRY = "chorus_plugin_entry_v1"


def run(cmd, *, env=None, cwd=None, timeout=300):
    """Runs a tool to completion; fails the test with its output if it exits non-zero."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout * SLOW)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
    return p.stdout


def tool_env(**extra):
    """The environment for builds and the agent: none of the CHORUS_* settings of this test, no
    CHORUS_CONFIG, no prefix paths that could point the consumer at another SDK."""
    env = {k: v for k, v in ENV.items()
           if not k.startswith("CHORUS_") and k not in ("CMAKE_PREFIX_PATH", "PKG_CONFIG_PATH", "MAKEFLAGS")}
    env.update(extra)
    return env


def real(path):
    return os.path.realpath(path)


def exported_symbols(so):
    out = run([NM, "-D", "--defined-only", so])
    return sorted(line.split()[-1] for line in out.splitlines() if line.strip())


class Agent(harness.Agent):
    """The installed `chorus-agent run -c FILE`, in the clean tool environment; output capture, waits and
    the end-of-test checks (SIGTERM, exit status, sanitizer reports) are harness.Agent's."""

    def __init__(self, exe, config):
        super().__init__(config, command=[exe], base_env=tool_env())

    def wait_log(self, pattern, timeout=30, start=0):
        return super().wait_log(pattern, timeout, start)

    def get(self, path):
        status, body, headers = self.http(path)
        return status, headers.get("Content-Type", ""), body

    def stop(self, sig=signal.SIGTERM, timeout=60):
        return super().stop(sig, timeout)

    def log(self):
        return self.log_text()


class InstalledSdk(unittest.TestCase):
    """The steps share one install and run in name order (test_1_..., test_2_...)."""

    @classmethod
    def setUpClass(cls):
        if not BUILD_DIR or not os.path.isfile(os.path.join(BUILD_DIR, "cmake_install.cmake")):
            raise unittest.SkipTest(harness.missing("build", "CHORUS_BUILD_DIR is not a configured build tree "
                                                             "(run this through ctest)"))
        cls.root = tempfile.mkdtemp(prefix="chorus-install-")
        os.chmod(cls.root, 0o755)  # the agent refuses plugin dirs others can write
        cls.prefix = os.path.join(cls.root, "prefix")
        try:
            run([CMAKE, "--install", BUILD_DIR, "--prefix", cls.prefix])
        except BaseException:
            cls.tearDownClass()  # not called by unittest when setUpClass fails
            raise
        if SANITIZED:
            print(f"sanitizer build: the consumer plugins are built with {SANITIZE_FLAGS!r}")

    @classmethod
    def tearDownClass(cls):
        if KEEP:
            print(f"kept {cls.root}")
        else:
            shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.agents = []

    def tearDown(self):
        problems = harness.finish_agents(self.agents)
        if problems:
            self.fail("agent check at the end of the test:\n" + "\n".join(problems))

    # ---- helpers -------------------------------------------------------------------------------

    def agent_exe(self, prefix):
        return os.path.join(prefix, BINDIR, "chorus-agent")

    def cli_json(self, prefix, *args):
        exe = self.agent_exe(prefix)
        p = subprocess.run([exe, *args, "--json"], capture_output=True, text=True, env=tool_env(), timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, f"{exe} {' '.join(args)} --json\n{p.stdout}\n{p.stderr}")
        return json.loads(p.stdout)

    def write_config(self, name, plugins):
        """A config with the given plugins enabled and NO plugin_dirs: only the install's own
        plugin directory is searched."""
        lines = ["host:", "  log_level: info", f"  state_dir: {json.dumps(os.path.join(self.root, 'state'))}",
                 "  shutdown_timeout_ms: 10000", "  http:", "    listen: 127.0.0.1:0", "plugins:"]
        for pid, cfg in plugins.items():
            lines.append(f"  {pid}: {json.dumps({'enabled': True, 'critical': True, 'config': cfg})}")
        path = os.path.join(self.root, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def assert_listed(self, listed, pid, plugin_dir):
        by_id = {p.get("id"): p for p in listed}
        self.assertIn(pid, by_id, json.dumps(listed, indent=2))
        p = by_id[pid]
        self.assertEqual(real(p["path"]), real(os.path.join(plugin_dir, f"chorus-{pid}.so")))
        self.assertEqual(p["version"], "1.0.0")
        self.assertRegex(p["abi"], r"^1\.\d+$")
        self.assertEqual(p["provides"], [{"service": pid, "version": "1.0", "swappable": False}])
        self.assertEqual(p["requires"], [])

    def assert_exports_only_entry(self, so):
        self.assertEqual(exported_symbols(so), [ENTRY], f"{so} must export only {ENTRY}")

    def run_and_probe(self, prefix, config, routes):
        """Runs the installed agent, GETs each (route, plugin id), checks /health and /metrics, SIGTERM."""
        agent = Agent(self.agent_exe(prefix), config)
        self.agents.append(agent)
        agent.wait_ready()
        for route, pid in routes:
            status, ctype, body = agent.get(route)
            self.assertEqual(status, 200, body)
            self.assertTrue(ctype.startswith("application/json"), ctype)
            self.assertEqual(json.loads(body), {"greeting": "hello", "plugin": pid, "requests": 1})
        status, _, body = agent.get("/health")
        self.assertEqual(status, 200, body)
        health = json.loads(body)
        self.assertEqual(health["status"], "healthy", body)
        for _, pid in routes:
            self.assertTrue(health["plugins"][pid]["healthy"], body)
            self.assertEqual(health["plugins"][pid]["state"], "running", body)
        status, _, body = agent.get("/metrics")
        self.assertEqual(status, 200)
        # Both variants define the same counter (same shape), so the host keeps one series for them.
        self.assertRegex(body, rf"(?m)^chorus_acme_hello_requests_total {len(routes)}(\.0)?$")
        self.assertEqual(agent.stop(), 0, agent.log())
        return agent

    # ---- 1: the installed layout ------------------------------------------------------------------

    def test_1_layout(self):
        pre = self.prefix
        isfile = lambda *p: self.assertTrue(os.path.isfile(os.path.join(pre, *p)), os.path.join(*p))
        isdir = lambda *p: self.assertTrue(os.path.isdir(os.path.join(pre, *p)), os.path.join(*p))
        isfile(BINDIR, "chorus-agent")
        self.assertTrue(os.access(os.path.join(pre, BINDIR, "chorus-agent"), os.X_OK))
        isdir(PLUGIN_SUBDIR)
        # In-tree plugins installed with the agent follow the same export rule as third-party ones.
        for name in sorted(os.listdir(os.path.join(pre, PLUGIN_SUBDIR))):
            self.assertRegex(name, r"^chorus-[a-z0-9][a-z0-9._-]*\.so$")
            self.assert_exports_only_entry(os.path.join(pre, PLUGIN_SUBDIR, name))
        for h in ("plugin.h", "plugin.hpp", "status.h", "config_schema.hpp", os.path.join("testing", "fake_host.hpp")):
            isfile(INCLUDEDIR, "chorus", h)
        isdir(INCLUDEDIR, "chorus", "services")
        for f in ("ChorusPluginConfig.cmake", "ChorusPluginConfigVersion.cmake", "ChorusPluginTargets.cmake",
                  "ChorusPluginFunctions.cmake", "chorus-plugin.map"):
            isfile(CMAKE_PKG_SUBDIR, f)
        isfile(PC_SUBDIR, "chorus-plugin.pc")
        isfile(DATADIR, "chorus", "chorus.yaml")
        docdir = os.path.join(DATADIR, "doc", "chorus")
        self.assertTrue(os.path.isdir(os.path.join(pre, docdir)) and os.listdir(os.path.join(pre, docdir)),
                        f"docs/contract.md, Names and layout: the docs belong in <prefix>/{docdir}/; installed: "
                        f"{sorted(os.listdir(os.path.join(pre, DATADIR, 'doc')))} under {DATADIR}/doc")
        # The SDK headers are installed once: nothing else named plugin.hpp under include/.
        found = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(pre, INCLUDEDIR)) for f in fs
                 if f == "plugin.hpp"]
        self.assertEqual(len(found), 1, found)
        # Relocatable: no installed package file refers to the build tree, the sources or the prefix.
        for rel in (CMAKE_PKG_SUBDIR, PC_SUBDIR):
            for name in os.listdir(os.path.join(pre, rel)):
                with open(os.path.join(pre, rel, name)) as f:
                    text = f.read()
                for needle in (BUILD_DIR, SOURCE_DIR, pre, real(pre)):
                    self.assertNotIn(needle, text, f"{rel}/{name} holds the absolute path {needle}")
        with open(os.path.join(pre, PC_SUBDIR, "chorus-plugin.pc")) as f:
            pc = f.read()
        self.assertRegex(pc, r"(?m)^prefix=\$\{pcfiledir\}(/\.\.)+$")
        self.assertRegex(pc, r"(?m)^Cflags: -I\$\{includedir\}$")
        self.assertNotRegex(pc, r"(?m)^Libs")

    def test_1_headers_self_contained(self):
        # Every installed header compiles on its own from the prefix (config_schema.hpp and
        # fake_host.hpp also need nlohmann_json, which a plugin project has on its include path).
        inc = os.path.join(self.prefix, INCLUDEDIR)
        headers = sorted(os.path.relpath(os.path.join(d, f), inc)
                         for d, _, fs in os.walk(os.path.join(inc, "chorus")) for f in fs if f.endswith((".h", ".hpp")))
        self.assertIn(os.path.join("chorus", "config_schema.hpp"), headers)
        for h in headers:
            with self.subTest(header=h):
                run([CXX, "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I", inc,
                     "-include", os.path.join(inc, h), "-x", "c++", os.devnull])

    # ---- 2: a third-party plugin through the installed CMake package, then relocation ------------

    def test_2_consumer(self):
        prefix = self.prefix
        plugin_dir = os.path.join(prefix, PLUGIN_SUBDIR)

        # CMake consumer: find_package(ChorusPlugin 0.1 REQUIRED), chorus_add_plugin(... INSTALL_DIR
        # ${CHORUS_PLUGIN_INSTALL_DIR}), installed by its own install step into the agent's prefix.
        build = os.path.join(self.root, "consumer-build")
        cfg = [CMAKE, "-S", CONSUMER_SRC, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}",
               f"-DCMAKE_CXX_COMPILER={CXX}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
               "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"]
        if GENERATOR:
            cfg += ["-G", GENERATOR]
        if MAKE_PROGRAM:
            cfg += [f"-DCMAKE_MAKE_PROGRAM={MAKE_PROGRAM}"]
        if SANITIZED:
            cfg += [f"-DCMAKE_CXX_FLAGS={SANITIZE_FLAGS}", "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined"]
        run(cfg, env=tool_env())
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            m = re.search(r"(?m)^ChorusPlugin_DIR:PATH=(.*)$", f.read())
        self.assertIsNotNone(m)
        self.assertEqual(real(m.group(1)), real(os.path.join(prefix, CMAKE_PKG_SUBDIR)),
                         "the consumer must use the SDK of the fresh install")
        run([CMAKE, "--build", build, "--verbose"], env=tool_env())
        run([CMAKE, "--install", build, "--prefix", prefix], env=tool_env())
        so = os.path.join(plugin_dir, "chorus-acme.hello.so")
        self.assertTrue(os.path.isfile(so), f"the consumer's install step must put the plugin in {plugin_dir}")
        self.assert_exports_only_entry(so)

        # The installed agent finds it in its own plugin dir (the config has no plugin_dirs).
        config = self.write_config("chorus.yaml", {"acme.hello": {}})
        self.assert_listed(self.cli_json(prefix, "plugins", "-c", config), "acme.hello", plugin_dir)
        check = self.cli_json(prefix, "check", "-c", config)
        self.assertEqual(check["order"], ["acme.hello"], check)
        self.assertEqual(check["errors"], [], check)
        self.assertEqual(check["skipped"], [], check)
        self.run_and_probe(prefix, config, [("/acme/hello", "acme.hello")])

        # Relocation: move the whole prefix; the agent still finds its plugins relative to itself.
        moved = os.path.join(self.root, "elsewhere", "chorus")
        os.makedirs(os.path.dirname(moved))
        os.chmod(os.path.dirname(moved), 0o755)
        shutil.move(prefix, moved)
        self.assertFalse(os.path.exists(prefix))
        type(self).prefix = moved
        moved_plugins = os.path.join(moved, PLUGIN_SUBDIR)
        self.assert_listed(self.cli_json(moved, "plugins", "-c", config), "acme.hello", moved_plugins)

        # pkg-config consumer, from the MOVED prefix's chorus-plugin.pc (prefix=${pcfiledir}/...).
        pc_env = tool_env(PKG_CONFIG_PATH=os.path.join(moved, PC_SUBDIR))
        pc = lambda *a: run([PKG_CONFIG, *a, "chorus-plugin"], env=pc_env).strip()
        self.assertEqual(real(pc("--variable=prefix")), real(moved))
        self.assertEqual(real(pc("--variable=plugindir")), real(moved_plugins))
        mapfile = pc("--variable=mapfile")
        self.assertEqual(real(mapfile), real(os.path.join(moved, CMAKE_PKG_SUBDIR, "chorus-plugin.map")))
        cflags = pc("--cflags")
        self.assertTrue(cflags.startswith("-I"), cflags)
        self.assertEqual(real(cflags[2:]), real(os.path.join(moved, INCLUDEDIR)))
        self.assertEqual(pc("--libs"), "")
        with open(os.path.join(moved, INCLUDEDIR, "chorus", "plugin.h")) as f:
            header = f.read()
        abi = ".".join(re.search(rf"#define CHORUS_ABI_{k} (\d+)", header).group(1) for k in ("MAJOR", "MINOR"))
        self.assertEqual(pc("--variable=abi_version"), abi)
        pc_out = os.path.join(self.root, "pc-build")
        os.makedirs(pc_out)
        make = [MAKE, "-f", os.path.join(CONSUMER_SRC, "pkgconfig.mk"), f"OUT={pc_out}", f"CXX={CXX}",
                f"PKG_CONFIG={PKG_CONFIG}"]
        if SANITIZED:
            make += [f"CXXFLAGS=-O1 -g {SANITIZE_FLAGS}", "LDFLAGS=-fsanitize=address,undefined"]
        print(run(make, env=pc_env))
        pc_so = os.path.join(pc_out, "chorus-acme.hello-pc.so")
        self.assert_exports_only_entry(pc_so)
        shutil.copy2(pc_so, moved_plugins)

        both = self.write_config("chorus-both.yaml", {"acme.hello": {}, "acme.hello-pc": {}})
        listed = self.cli_json(moved, "plugins", "-c", both)
        self.assert_listed(listed, "acme.hello", moved_plugins)
        self.assert_listed(listed, "acme.hello-pc", moved_plugins)
        check = self.cli_json(moved, "check", "-c", both)
        self.assertEqual(sorted(check["order"]), ["acme.hello", "acme.hello-pc"], check)
        self.assertEqual(check["errors"], [], check)
        self.run_and_probe(moved, both, [("/acme/hello", "acme.hello"), ("/acme/hello-pc", "acme.hello-pc")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
