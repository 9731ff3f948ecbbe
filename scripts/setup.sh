#!/usr/bin/env bash
# The two commands of README.md:
#   scripts/setup.sh run    install what is missing, build, run the agent with the default config
#   scripts/setup.sh test   install what is missing, build, run every test (also under ASan+UBSan)
# Works on a fresh Debian 12 machine (as root, or with sudo). Environment knobs:
#   CHORUS_BUILD_DIR (default build), CHORUS_JOBS (default 2), CHORUS_SKIP_SANITIZE=1, CHORUS_SKIP_FUZZ=1
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
  libboost-dev libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsodium-dev libssl-dev
  libnats-dev libcurl4-openssl-dev)
if [ "$mode" = test ]; then
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev nats-server
    iproute2 debhelper lintian debootstrap systemd curl
    golang-go golang-github-flynn-noise-dev golang-github-hashicorp-yamux-dev)  # the Go interop peer
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

# The js-libp2p reference peer of tests/interop (pinned by package-lock.json; Node 20 from the machine).
if command -v npm >/dev/null; then
  echo "== npm ci (tests/interop/js)"
  (cd "$root/tests/interop/js" && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "== npm ci failed: the js interop tests will be skipped"
else
  echo "== npm not found: the js interop tests will be skipped (install Node 20)"
fi

status=0
echo "== build and test"
configure_and_build "$build" -DCHORUS_BUILD_BENCH=ON
(cd "$build" && ctest --output-on-failure -j "$jobs") || status=1

if [ "${CHORUS_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
  configure_and_build "$build-asan" -DCHORUS_SANITIZE=ON -DCHORUS_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
  (cd "$build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs") || status=1
fi

if [ "${CHORUS_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== short fuzz runs"
  "$root/scripts/fuzz.sh" "$build-fuzz" 30 || status=1
fi
exit $status
