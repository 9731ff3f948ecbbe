#!/usr/bin/env python3
"""The cluster test and soak of issue 21 (tests/cluster/README.md says what it proves and how to run it).

N chorus-agents (10 by default) with every plugin, each in its own network namespace on one bridge, a
real nats-server and the fake LLMs (clusterlab.py). Under load (AI chat clients, pubsub publications,
task announcements, UCXI and DHT puts and gets; monitors.py) the faults come on a schedule: kill -9 and
restart of an agent, then of the admin; a partition with the admin on the minority side, then the heal;
a NATS restart; an AI provider hot swap by SIGHUP; a provider's .so replaced on disk. Invariants are
checked along the way and at the end; the figures are printed and, with --long, written into
docs/benchmarks.md.

Exit status: 0 every invariant held, 1 one did not (or the run failed), 77 a prerequisite is missing
(only without CI set; with CI set that is a failure).
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for d in ("tests/integration", "tests/interop", "plugins/agent/tests", "plugins/election/tests",
          "plugins/ucxi/tests", "plugins/reasoning/tests", "libs/ai-common/tests/fakes", "tests/cluster"):
    sys.path.insert(0, os.path.join(ROOT, d))

SKIP = 77


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--short", action="store_true", help="<= 5 minutes, one round of every fault")
    mode.add_argument("--long", action="store_true", help="30 minutes of fault rounds; writes docs/benchmarks.md")
    ap.add_argument("--build", default=os.environ.get("CHORUS_BUILD_DIR", ""),
                    help="build tree: bin/chorus-agent and lib/chorus/plugins/ (or CHORUS_AGENT_BIN and "
                         "CHORUS_CLUSTER_PLUGIN_DIR)")
    ap.add_argument("--agents", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=None, help="override the duration of --long")
    ap.add_argument("--allow-missing-plugins", action="store_true",
                    help="development only: run without the plugins the build lacks (their checks are skipped)")
    ap.add_argument("--agent-status-log-ms", type=int, default=None,
                    help="the agent plugin's status_log_interval_ms (default 5000; 0 turns the status line off)")
    ap.add_argument("--skip-default-timings", action="store_true",
                    help="leave out the first phase: the cluster idle on the plugins' default timings (about 30 s "
                         "on 10 agents; the idle figures users get), before the restart on the test timings")
    ap.add_argument("--sanitized", action="store_true", default=os.environ.get("CHORUS_SANITIZE") == "1",
                    help="the agents are a sanitizer (ASan/UBSan) build, as CMake passes in a CHORUS_SANITIZE tree "
                         "(default: CHORUS_SANITIZE=1): RSS growth is reported but not judged, since ASan's "
                         "quarantine keeps freed memory; --long writes no docs")
    ap.add_argument("--results", default="", help="write the results as JSON here")
    ap.add_argument("--no-docs", action="store_true", help="--long: do not write docs/benchmarks.md")
    return ap.parse_args()


def prerequisites(args):
    """Sets the environment the helpers read; returns a reason when something is missing, else None."""
    import shutil
    agent_bin = os.environ.get("CHORUS_AGENT_BIN") or (os.path.join(args.build, "bin", "chorus-agent") if args.build else "")
    plugin_dir = os.environ.get("CHORUS_CLUSTER_PLUGIN_DIR") or (
        os.path.join(args.build, "lib", "chorus", "plugins") if args.build else "")
    if not agent_bin or not os.access(agent_bin, os.X_OK):
        return f"chorus-agent not found ({agent_bin!r}; pass --build or set CHORUS_AGENT_BIN)"
    os.environ["CHORUS_AGENT_BIN"] = agent_bin
    os.environ["CHORUS_CLUSTER_PLUGIN_DIR"] = plugin_dir
    v2 = os.path.join(args.build, "test-plugins-ai-v2") if args.build else ""
    if not os.environ.get("CHORUS_AI_PLUGIN_V2_DIR") and v2 and os.path.exists(os.path.join(v2, "chorus-ai-ollama.so")):
        os.environ["CHORUS_AI_PLUGIN_V2_DIR"] = v2  # the replaced .so is then another version
    os.environ.setdefault("NATS_SERVER_BIN", shutil.which("nats-server") or "/usr/sbin/nats-server")
    if not os.access(os.environ["NATS_SERVER_BIN"], os.X_OK):
        return "nats-server is not installed (Debian package nats-server)"
    if not shutil.which("age-keygen"):
        return "age-keygen is not installed (Debian package age)"
    import clusterlab
    missing = clusterlab.plugin_dir_missing(plugin_dir)
    core = {"p2p", "gossip", "dht", "ucxi", "agent", "reasoning", "ai-ollama"}
    if missing and (not args.allow_missing_plugins or core & set(missing)):
        return f"plugins missing from {plugin_dir!r}: {', '.join(missing)}"
    import netns_lab
    return netns_lab.netns_missing_reason()


def main():
    args = parse_args()
    reason = prerequisites(args)
    if reason:
        print(f"SKIPPED: {reason}", flush=True)
        return 1 if os.environ.get("CI") else SKIP
    from scenario import Soak
    soak = Soak(args)
    try:
        ok = soak.run()
    finally:
        soak.close()  # stops the agents (their exit status and output are one more invariant) and reports
    ok = ok and all(v["held"] is not False for v in soak.invariants.values())
    print(f"\ncluster soak: {'PASSED' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
