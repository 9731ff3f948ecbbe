#!/usr/bin/env bash
# The two commands of README.md:
#   scripts/setup.sh run    install what is missing, build, run an agent with the shipped config/chorus.yaml
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
if [ "$mode" = run ]; then
  packages+=(curl age)  # the README's walkthrough (curl) and its UCXI role key (age-keygen, below)
fi
if [ "$mode" = test ]; then
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev nats-server
    iproute2 debhelper lintian debootstrap systemd curl
    openssl  # test certificates for the providers' HTTPS tests (plugins/reasoning/tests/test_ai_https.py)
    ccache  # the Debian package build of packaging.debs reuses the test build's objects (below)
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
  # The shipped config enables the core (p2p on port 9000, mdns, gossip, dht, election, ucxi, agent), so
  # this agent joins the LAN; the built-in default (no -c) would enable no plugin.
  config=${CHORUS_CONFIG:-$root/config/chorus.yaml}
  # The state dir the agent would pick itself (docs/configuration.md), named so the key below lands in it.
  if [ -z "${CHORUS_STATE_DIR:-}" ]; then
    if [ "$(id -u)" -eq 0 ]; then CHORUS_STATE_DIR=/var/lib/chorus; else CHORUS_STATE_DIR=${XDG_STATE_HOME:-$HOME/.local/state}/chorus; fi
  fi
  export CHORUS_STATE_DIR
  # UCXI content is encrypted to a role; an agent holding no role key cannot store any. On first run, give
  # this one the key of role "dev" (the README's walkthrough uses it). The dht reads its keys at start.
  roles=$CHORUS_STATE_DIR/dht/roles
  if ! compgen -G "$roles/*.key" >/dev/null; then
    (umask 077 && mkdir -p "$roles" && age-keygen -o "$roles/dev.key" 2>/dev/null)
    echo "== created a key for UCXI role 'dev': $roles/dev.key"
  fi
  http=127.0.0.1:${CHORUS_HEALTH_PORT:-8081}
  echo "== starting chorus-agent -c $config (state: $CHORUS_STATE_DIR; Ctrl-C stops it)"
  "$build/bin/chorus-agent" run -c "$config" &
  agent=$!
  trap 'kill -TERM "$agent" 2>/dev/null || true' INT TERM
  for _ in $(seq 300); do  # up to 30 s for the plugins to start
    curl -fsS -o /dev/null "http://$http/health/ready" 2>/dev/null && break
    kill -0 "$agent" 2>/dev/null || break
    sleep 0.1
  done
  if peer_id=$(curl -fsS "http://$http/p2p/id" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["peer_id"])'); then
    echo "== chorus-agent is up: peer id $peer_id, HTTP on http://$http (try: curl http://$http/health)"
  fi
  # `wait` returns early (status > 128) when the trap runs; wait again until the agent has exited.
  while :; do
    rc=0
    wait "$agent" || rc=$?
    if [ "$rc" -le 128 ] || ! kill -0 "$agent" 2>/dev/null; then break; fi
  done
  exit "$rc"
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

# The test build is compiled with the flags of the Debian package build (dpkg-buildflags with the
# hardening of packaging/debian/rules, CPPFLAGS appended the way debhelper's CMake build system does,
# build type None) and through ccache, with paths made relative to the source root. packaging.debs
# builds the packages with packaging/build-debs.sh from a copy of the tree staged under this build
# directory, with the same flags and the same ccache settings, so it takes the objects from the cache
# instead of compiling everything a second time (that needs the build directory one level below the
# source root, as the default "build" is, so that the relative paths match). Depend mode: a miss
# costs no extra preprocessor run (the compiler's -MD output lists the headers).
deb_flags() {  # variable
  (cd "$root" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1")
}
normal_build_args=(-DCHORUS_BUILD_BENCH=ON)
if command -v ccache >/dev/null && command -v dpkg-buildflags >/dev/null; then
  cppflags=$(deb_flags CPPFLAGS)
  ldflags=$(deb_flags LDFLAGS)
  # LC_ALL: debhelper runs the package build's compiler with LC_ALL=C.UTF-8, and ccache hashes the
  # locale variables (without it, not one object of the package build is found in the cache).
  launcher="env;LC_ALL=C.UTF-8;CCACHE_BASEDIR=$root;CCACHE_NOHASHDIR=true;CCACHE_DEPEND=true;ccache"
  normal_build_args+=(-DCMAKE_BUILD_TYPE=None
    -DCMAKE_C_FLAGS="$(deb_flags CFLAGS) $cppflags" -DCMAKE_CXX_FLAGS="$(deb_flags CXXFLAGS) $cppflags"
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags" -DCMAKE_MODULE_LINKER_FLAGS="$ldflags"
    -DCMAKE_C_COMPILER_LAUNCHER="$launcher" -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
fi
echo "== build"
configure_and_build "$build" "${normal_build_args[@]}"
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
