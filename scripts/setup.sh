#!/usr/bin/env bash
# The two commands of README.md:
#   scripts/setup.sh run    install what is missing, build, run the agent with the default config
#   scripts/setup.sh test   install what is missing, build, run every test (also under ASan+UBSan)
# Works on a fresh Debian 12 machine (as root, or with sudo). Environment knobs:
#   CHORUS_BUILD_DIR (default build), CHORUS_JOBS (default 2), CHORUS_SKIP_SANITIZE=1, CHORUS_SKIP_FUZZ=1,
#   CHORUS_TIME_SCALE (multiplies every test deadline, for a loaded machine; tests/integration/harness.py)
# With CI set (any value), what the CI machine must have is required: a failed `npm ci` fails the run,
# and so does a test suite skipped for a missing js-libp2p peer, network namespaces or NATS
# (tests/run_suite.py). `test` ends by printing the wall time of each phase and of the whole run.
set -euo pipefail

mode=${1:-}
case "$mode" in
  run | test) ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
build=${CHORUS_BUILD_DIR:-$root/build}
jobs=${CHORUS_JOBS:-2}

# Debian 12 packages only. Runtime/build needs first, then what only the tests need.
packages=(build-essential cmake ninja-build pkg-config python3
  libboost-dev libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsodium-dev libssl-dev libre2-dev
  libnats-dev libcurl4-openssl-dev libsqlite3-dev)
if [ "$mode" = test ]; then
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev nats-server
    iproute2 debhelper lintian debootstrap systemd curl
    age  # the age CLI: the dht tests check it reads our files and we read its files
    golang-go golang-github-flynn-noise-dev golang-github-hashicorp-yamux-dev)  # the Go interop peer
  # The js-libp2p interop peer runs on Node. Debian 12's own nodejs is 18, older than the pinned
  # packages need (checked below); a newer Node installed another way (NodeSource, nvm) is kept.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

configure_and_build() {  # dir, extra cmake args...
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

if [ "$mode" = run ]; then
  configure_and_build "$build" -DCHORUS_BUILD_TESTS=OFF -DCHORUS_BUILD_BENCH=OFF
  echo "== starting chorus-agent (Ctrl-C stops it)"
  exec "$build/bin/chorus-agent" run
fi

# Wall time per phase, printed at the end of the run whatever its outcome (the CI log records it).
# "setup" runs from the start of this script: package installation and `npm ci`.
phases=()
phase_began=0
phase_done() {  # name: closes the phase that began at $phase_began
  local t=$((SECONDS - phase_began))
  phases+=("$(printf '%-22s %3dm%02ds' "$1" $((t / 60)) $((t % 60)))")
  phase_began=$SECONDS
}
print_times() {
  echo "== wall time"
  local p
  for p in "${phases[@]}"; do echo "   $p"; done
  printf '   %-22s %3dm%02ds\n' "whole run" $((SECONDS / 60)) $((SECONDS % 60))
}
trap print_times EXIT

status=0
fail_in_ci() {  # message: a warning, or (CI set) a failure of the run
  if [ -n "${CI:-}" ]; then
    echo "== FAIL (CI is set): $1"
    status=1
  else
    echo "== WARNING: $1"
  fi
}

# The js-libp2p reference peer of tests/interop (pinned by package-lock.json, whose engines fields give
# the minimum Node version: tests/interop/nodecheck.py reads it).
js_dir="$root/tests/interop/js"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  fail_in_ci "node or npm is not installed: the js interop suites will be Skipped"
elif ! node_verdict=$(python3 "$root/tests/interop/nodecheck.py" --no-modules); then
  fail_in_ci "$node_verdict. The js interop suites will be Skipped: install a newer Node (e.g. from NodeSource) and run this again"
else
  echo "== npm ci (tests/interop/js; $node_verdict)"
  (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error) ||
    fail_in_ci "npm ci failed in $js_dir: the js interop suites will be Skipped"
fi
phase_done "setup"

echo "== build"
configure_and_build "$build" -DCHORUS_BUILD_BENCH=ON
phase_done "build"
echo "== test"
(cd "$build" && ctest --output-on-failure -j "$jobs") || status=1
phase_done "tests"

if [ "${CHORUS_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build under AddressSanitizer + UndefinedBehaviorSanitizer"
  configure_and_build "$build-asan" -DCHORUS_SANITIZE=ON -DCHORUS_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
  phase_done "ASan+UBSan build"
  echo "== test under AddressSanitizer + UndefinedBehaviorSanitizer"
  (cd "$build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs") || status=1
  phase_done "ASan+UBSan tests"
fi

if [ "${CHORUS_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== short fuzz runs"
  "$root/scripts/fuzz.sh" "$build-fuzz" 12 || status=1
  phase_done "fuzz"
fi
exit $status
