#!/usr/bin/env python3
"""Runs one Python test suite for ctest and turns its outcome into an exit status ctest understands.

    run_suite.py MODULE [MODULE...]      (from the suite's directory; tests/integration is on sys.path)

  0   every test ran and passed (tests skipped with harness.not_applicable() do not count as skips);
  1   a test failed or errored, no test ran at all, an agent was left running, or CI is set and a
      prerequisite the CI machine must have (CI_REQUIRED) is missing;
  77  a test was skipped because something it needs is missing: ctest reports the suite as Skipped
      (SKIP_RETURN_CODE 77 on every suite registered with chorus_python_suite), never as Passed.

A test marks a missing prerequisite with harness.require(kind, reason) / harness.missing(kind, reason);
any other skip without harness.not_applicable() counts as a missing prerequisite of kind "unknown".
"""
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
sys.path.insert(0, os.getcwd())

import harness  # noqa: E402

SKIP_EXIT = 77
# Prerequisites whose absence fails the run when CI is set: the CI machine is set up to have them
# (scripts/setup.sh test installs them), so their absence means the machine, not the test, is broken.
CI_REQUIRED = {"js-libp2p", "netns", "nats"}
KIND = re.compile(r"^missing prerequisite \[([^\]]+)\]: ")


def skip_kind(reason):
    """None for a not-applicable skip, else the prerequisite's kind."""
    if reason.startswith(harness.NOT_APPLICABLE):
        return None
    m = KIND.match(reason)
    return m.group(1) if m else "unknown"


class _Result(unittest.TextTestResult):
    """Names each agent log file after the test that started the agent."""

    def startTest(self, test):
        harness._current_test = test.id()
        super().startTest(test)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    names = argv[1:]
    # Agent logs of this suite's previous run would be mistaken for this run's.
    if os.environ.get("CHORUS_TEST_LOG_DIR") and os.path.isdir(harness.LOG_DIR):
        for name in os.listdir(harness.LOG_DIR):
            if name.endswith(".log"):
                os.remove(os.path.join(harness.LOG_DIR, name))
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=_Result).run(suite)
    sys.stdout.flush()

    leftovers = harness.finish_leftover_agents()
    if leftovers:
        print("\nFAIL: agents that no test finished were still running or failed the agent checks:")
        print("\n".join(leftovers))
        return 1
    if not result.wasSuccessful():
        return 1

    missing = []   # (kind, test id, reason)
    for test, reason in result.skipped:
        kind = skip_kind(reason)
        if kind is not None:
            missing.append((kind, test.id(), reason))
    if result.testsRun == 0 and not result.skipped:
        print(f"\nFAIL: {' '.join(names)} holds no tests")
        return 1
    if not missing:
        return 0

    print(f"\n{len(missing)} skips (tests, classes or modules) because a prerequisite is missing:")
    by_reason = {}
    for kind, test_id, reason in missing:
        by_reason.setdefault(reason, []).append(test_id)
    for reason, tests in by_reason.items():
        shown = ", ".join(tests[:3]) + (f" and {len(tests) - 3} more" if len(tests) > 3 else "")
        print(f"  {reason}\n    ({len(tests)} tests: {shown})")
    required = sorted({kind for kind, _, _ in missing} & CI_REQUIRED)
    if os.environ.get("CI") and required:
        print(f"FAIL: CI is set and the CI machine must provide: {', '.join(required)} "
              "(scripts/setup.sh test installs them; see the reasons above)")
        return 1
    print("SKIPPED: the suite is reported as skipped, not passed")
    return SKIP_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv))
