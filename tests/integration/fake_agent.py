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
# The SIGTERM behaviour is set before anything is printed, and the handler ends the process at once
# (os._exit): an exception raised from a handler can land inside a write or a flush, and under load a
# SIGTERM sent right after start was seen to leave the stand-in running.
if config.get("on_sigterm") == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(config.get("exit", 0)))
for line in config.get("print", []):
    print(line, file=sys.stderr, flush=True)
if config.get("crash"):
    os.kill(os.getpid(), config["crash"])
print("ready: 0 plugins running", file=sys.stderr, flush=True)
if "exit_now" in config:
    sys.exit(config["exit_now"])
while True:
    time.sleep(3600)  # until a signal: this stands in for an agent serving requests
