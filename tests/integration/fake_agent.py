#!/usr/bin/env python3
"""A stand-in for `chorus-agent run -c CONFIG` in test_harness.py: CONFIG is JSON saying what to print
and how to end, so the harness's end-of-test checks can be shown to catch what they must catch.

    {"print": [lines...], "on_sigterm": "exit" | "ignore", "exit": status, "crash": signal number}
"""
import json
import os
import signal
import sys
import time

config = json.load(open(sys.argv[sys.argv.index("-c") + 1]))
for line in config.get("print", []):
    print(line, file=sys.stderr, flush=True)
if config.get("crash"):
    os.kill(os.getpid(), config["crash"])
if config.get("on_sigterm") == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(config.get("exit", 0)))
print("ready: 0 plugins running", file=sys.stderr, flush=True)
if "exit_now" in config:
    sys.exit(config["exit_now"])
while True:
    time.sleep(3600)  # until a signal: this stands in for an agent serving requests
