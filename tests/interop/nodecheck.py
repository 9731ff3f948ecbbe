#!/usr/bin/env python3
"""Can this machine run the js-libp2p peers of tests/interop/js? (Python stdlib only.)

The minimum Node version is not written down here: it is the highest ">= X.Y.Z" lower bound among the
engines fields of js/package-lock.json, so it follows the pinned packages when they are updated.

    nodecheck.py [--no-modules] [NODE]   prints the verdict; exit 0 = usable, 1 = not (reason printed)
                                         (--no-modules: only the Node version, before `npm ci`)
"""
import json
import os
import re
import shutil
import subprocess
import sys

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
_LOWER_BOUND = re.compile(r"^>=\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def minimum_node(lock_path=os.path.join(JS_DIR, "package-lock.json")):
    """The highest plain lower bound (major, minor, patch) on Node in the lock's engines fields."""
    with open(lock_path) as f:
        lock = json.load(f)
    best = (0, 0, 0)
    for pkg in lock.get("packages", {}).values():
        m = _LOWER_BOUND.match(str(pkg.get("engines", {}).get("node", "")).strip())
        if m:
            best = max(best, tuple(int(g or 0) for g in m.groups()))
    return best


def node_version(node):
    """(major, minor, patch) of `node --version`, or None if it cannot be run."""
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in m.groups()) if m else None


def fmt(version):
    return ".".join(map(str, version))


def missing_reason(node, module="libp2p"):
    """Why the js peer (which imports `module` from js/node_modules; None: do not look) cannot run with
    `node`, or None."""
    if not node or not (os.path.isabs(node) and os.access(node, os.X_OK) or shutil.which(node)):
        return f"node is not installed (NODE_BIN={node!r}); scripts/setup.sh test installs it"
    have = node_version(node)
    if have is None:
        return f"`{node} --version` did not run"
    need = minimum_node()
    if have < need:
        return (f"node {fmt(have)} is older than {fmt(need)}, which the pinned js-libp2p packages need "
                f"(engines in {os.path.join(JS_DIR, 'package-lock.json')}); Debian 12's nodejs is 18")
    if module and not os.path.isdir(os.path.join(JS_DIR, "node_modules", *module.split("/"))):
        return f"js peer dependencies missing ({module}): run `npm ci` in {JS_DIR}"
    return None


if __name__ == "__main__":
    args = sys.argv[1:]
    modules = "--no-modules" not in args
    args = [a for a in args if a != "--no-modules"]
    node = args[0] if args else (os.environ.get("NODE_BIN") or shutil.which("node"))
    reason = missing_reason(node, "libp2p" if modules else None)
    if reason:
        print(reason)
        sys.exit(1)
    print(f"node {fmt(node_version(node))} (>= {fmt(minimum_node())})" + (" with the js peer's packages" if modules else ""))
