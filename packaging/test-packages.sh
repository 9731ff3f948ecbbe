#!/usr/bin/env bash
# packaging/test-packages.sh WORK_DIR
#
# End-to-end test of the Debian packages (ctest: packaging.debs):
#   1. builds them (packaging/build-debs.sh), or takes prebuilt ones from $CHORUS_DEBS_DIR;
#   2. lintian: no errors and no warnings that are not overridden (with a reason) in debian/;
#   3. systemd-analyze verify and security (offline) on the packaged unit;
#   4. a clean Debian 12 chroot (debootstrap, cached in $CHORUS_DEBOOTSTRAP_CACHE, default
#      ${XDG_CACHE_HOME:-$HOME/.cache}/chorus-debootstrap): installs every package with apt, starts
#      the agent as user chorus with the packaged config and the unit's ExecStart line (systemd does
#      not run in a chroot), waits with the unit's ExecStartPost helper, checks /health/ready;
#   5. enables ai-ollama and reloads through `systemctl reload` (a test double that runs the unit's
#      ExecReload line), then upgrades chorus-plugin-ai-ollama to a newer version: the dpkg trigger
#      must reload the running agent, which hot-swaps the plugin;
#   6. removes chorus-plugin-ai-ollama while the config still enables it: the agent keeps running;
#   7. stops the agent, purges everything and checks that nothing is left but the system user.
#
# Needs root (chroot, mounts in a private namespace), dpkg-dev, debhelper, lintian, debootstrap,
# systemd (systemd-analyze), curl and the network to reach the Debian mirror. Exit 77 = skipped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = --in-namespace ]; then
  in_namespace=1
  shift
else
  in_namespace=0
fi
work=${1:?usage: test-packages.sh WORK_DIR}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
pass() { echo "ok: $*"; }

# ------------------------------------------------------------------------------------------------
# Outside the namespace: build, lint, verify, prepare the chroot, then re-enter in a private mount
# and PID namespace so every mount and every process of the test ends with it.
if [ "$in_namespace" = 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: test-packages.sh needs root (chroot and mounts)"
    exit 77
  fi
  for tool in dpkg-buildpackage dh lintian debootstrap systemd-analyze curl unshare; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
  done
  mkdir -p "$work"
  work=$(cd "$work" && pwd)
  start=$(date +%s)
  elapsed() { echo $(($(date +%s) - start)); }

  # 1. Packages.
  if [ -n "${CHORUS_DEBS_DIR:-}" ]; then
    debs=$CHORUS_DEBS_DIR
  else
    debs=$work/debs
    "$here/build-debs.sh" "$debs" >"$work/build-debs.out"
    grep '^== ccache' "$work/build-debs.out" || true  # how much the package build compiled again
  fi
  ls "$debs"/chorus-agent_*.deb >/dev/null 2>&1 || fail "no chorus-agent_*.deb in $debs"
  echo "== packages ($(elapsed) s):"
  for d in "$debs"/*.deb; do echo "   ${d##*/}"; done
  agent_deb=$(ls "$debs"/chorus-agent_*.deb)
  version=$(dpkg-deb -f "$agent_deb" Version)
  if [ -n "${CHORUS_EXPECT_VERSION:-}" ] && [ "${version%%+*}" != "$CHORUS_EXPECT_VERSION" ]; then
    fail "package version $version, but the CMake project version is $CHORUS_EXPECT_VERSION"
  fi

  # 2. lintian over every package; overrides come from the packages themselves.
  echo "== lintian"
  lintian_out=$work/lintian.txt
  # Gate on the tags themselves: lintian's --fail-on exits 2 when --show-overrides lists an
  # overridden warning (lintian 2.116), and the overrides are worth seeing in the log.
  lintian --fail-on none --display-info --show-overrides "$debs"/*.deb >"$lintian_out" 2>&1 || {
    cat "$lintian_out"
    fail "lintian did not run"
  }
  if grep -E '^[EW]: ' "$lintian_out"; then fail "lintian: errors or warnings that are not overridden (above)"; fi
  sed 's/^/   /' "$lintian_out"
  pass "lintian: no errors, every warning overridden ($(grep -c '^N: ' "$lintian_out" || true) notes," \
       "$(grep -c '^O: ' "$lintian_out" || true) overridden tags)"

  # 3. The unit, checked by systemd against the unpacked package (so ExecStart paths exist).
  unpacked=$work/unpacked
  rm -rf "$unpacked"
  mkdir -p "$unpacked"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$unpacked"; done
  unit=$unpacked/lib/systemd/system/chorus-agent.service
  [ -f "$unit" ] || fail "chorus-agent.deb has no lib/systemd/system/chorus-agent.service"
  # The units ours refers to (multi-user.target, network-online.target, ...) come from this host.
  cp -rn /lib/systemd/system/. "$unpacked/lib/systemd/system/"
  # Commands the unit runs from its dependencies (/bin/kill from procps) are taken from this host.
  while read -r cmd; do
    [ -e "$unpacked$cmd" ] || [ ! -e "$cmd" ] || cp --parents "$cmd" "$unpacked"
  done < <(sed -nE 's/^Exec[A-Za-z]*=[-@:+!]*([^ ]+).*/\1/p' "$unit")
  # MANPATH: verify checks that the Documentation= man page exists.
  verify_out=$(MANPATH="$unpacked/usr/share/man" systemd-analyze verify --root="$unpacked" "$unit" 2>&1) || {
    echo "$verify_out"
    fail "systemd-analyze verify"
  }
  # Messages about units of the host (not ours) are not this test's business.
  if grep -i 'chorus' <<<"$verify_out"; then fail "systemd-analyze verify complains about the unit"; fi
  pass "systemd-analyze verify: no complaints about chorus-agent.service"
  # MemoryDenyWriteExecute= makes dlopen() of an object that asks for an executable stack fail.
  for elf in "$unpacked"/usr/bin/chorus-agent "$unpacked"/usr/lib/*/chorus/plugins/*.so; do
    if readelf -lW "$elf" | awk '$1 == "GNU_STACK" && $7 ~ /E/ { found = 1 } END { exit !found }'; then
      fail "${elf#"$unpacked"} wants an executable stack, which MemoryDenyWriteExecute=yes forbids"
    fi
  done
  systemd-analyze security --offline=true --root="$unpacked" "$unit" >"$work/security.txt" 2>&1 || true
  exposure=$(sed -nE 's/.*Overall exposure level for chorus-agent.service: ([0-9.]+).*/\1/p' "$work/security.txt")
  [ -n "$exposure" ] || { cat "$work/security.txt"; fail "systemd-analyze security printed no exposure level"; }
  # 2.0 and below is what the unit reaches today; a change that weakens it has to say so here.
  awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "exposure level $exposure > 2.0"
  pass "systemd-analyze security: exposure $exposure (report: $work/security.txt)"

  # 4. A fresh chroot from the cached tarball.
  cache=${CHORUS_DEBOOTSTRAP_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/chorus-debootstrap}
  tarball=$("$here/make-chroot.sh" "$cache" | tail -n1)
  root=$work/chroot
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" -xf "$tarball"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/tmp/debs"
  for d in "$debs"/*.deb; do  # debug symbols are linted above but not installed
    case "$d" in *-dbgsym_*) ;; *) cp "$d" "$root/tmp/debs/" ;; esac
  done

  # The upgrade: the same plugin package under a higher version (a binNMU-like rebuild), so dpkg
  # replaces the plugin file and the trigger fires.
  up=$work/upgrade
  rm -rf "$up"
  mkdir -p "$up"
  ollama_deb=$(ls "$debs"/chorus-plugin-ai-ollama_*.deb)
  dpkg-deb -R "$ollama_deb" "$up/tree"
  sed -i "s/^Version: .*/Version: $version+test1/" "$up/tree/DEBIAN/control"
  mkdir -p "$root/tmp/upgrade"
  dpkg-deb --root-owner-group -b "$up/tree" "$root/tmp/upgrade/chorus-plugin-ai-ollama_${version}+test1.deb" >/dev/null

  # The third-party example plugin (packaging/example-plugin) with the sources of tests/sdk-consumer.
  if [ "${CHORUS_PKG_TEST_SDK:-1}" = 1 ]; then
    rm -rf "$work/sdk-root"
    mkdir -p "$work/sdk-root"
    tar -C "$work/sdk-root" -xf "$tarball"
    cp /etc/resolv.conf "$work/sdk-root/etc/resolv.conf"
    mkdir -p "$work/sdk-root/tmp/debs" "$work/sdk-root/tmp/src/acme-hello"
    cp "$debs"/libchorus-plugin-dev_*.deb "$work/sdk-root/tmp/debs/"
    cp "$here/../tests/sdk-consumer/CMakeLists.txt" "$here/../tests/sdk-consumer/hello.cpp" \
       "$work/sdk-root/tmp/src/acme-hello/"
    cp -a "$here/example-plugin/debian" "$work/sdk-root/tmp/src/acme-hello/debian"
  fi

  echo "== chroot ready ($(elapsed) s)"
  unshare --mount --pid --fork --propagation private \
    env CHORUS_PKG_VERSION="$version" CHORUS_PKG_START="$start" CHORUS_PKG_CACHE="$cache" \
    "$0" --in-namespace "$work"
  # The chroot and unpacked trees are large; on failure they stay for a look.
  rm -rf "$work/chroot" "$work/unpacked" "$work/upgrade"
  echo "== packaging.debs passed in $(elapsed) s"
  exit 0
fi

# ------------------------------------------------------------------------------------------------
# Inside the namespace, where this script is PID 1: when it exits, the kernel ends every process
# it started (the agent) and the private mounts go with the namespace.
root=$work/chroot
version=$CHORUS_PKG_VERSION
start=$CHORUS_PKG_START
elapsed() { echo $(($(date +%s) - start)); }
# Downloaded packages are kept between runs (warm runs fetch only what changed on the mirror).
archives=$CHORUS_PKG_CACHE/apt-archives
mkdir -p "$archives/partial"
enter() {  # root: the mounts a Debian root needs, plus the shared package cache
  mount -t proc proc "$1/proc"
  mount --bind /dev "$1/dev"
  mount -t tmpfs tmpfs "$1/run"
  mount --bind "$archives" "$1/var/cache/apt/archives"
}
leave() { umount "$1/var/cache/apt/archives" "$1/run" "$1/dev" "$1/proc"; }
enter "$root"

in_chroot() { local r=$1; shift; chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
in_root() { in_chroot "$root" "$@"; }
apt_in() {  # root apt-get-args... ; refreshes stale package lists once if the first try fails
  local r=$1
  shift
  # --force-unsafe-io: no fsync in a throwaway root (most of the time of a large install).
  local opts=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-unsafe-io)
  if ! in_chroot "$r" apt-get "${opts[@]}" "$@" >"$work/apt.log" 2>&1; then
    in_chroot "$r" apt-get update -qq >>"$work/apt.log" 2>&1 || true
    in_chroot "$r" apt-get "${opts[@]}" "$@" >"$work/apt.log" 2>&1 || {
      cat "$work/apt.log"
      fail "apt-get $*"
    }
  fi
}
apt_in_root() { apt_in "$root" "$@"; }

# A third party's view: a clean Debian 12 root with libchorus-plugin-dev from apt builds the
# example plugin package (packaging/example-plugin), installed further down next to the agent.
thirdparty_deb=""
if [ -d "$work/sdk-root" ]; then
  sdk=$work/sdk-root
  enter "$sdk"
  # Rebuilding the manual page index is the slowest trigger of the build tools, and unused here.
  echo "man-db man-db/auto-update boolean false" | in_chroot "$sdk" debconf-set-selections
  apt_in "$sdk" install --no-install-recommends build-essential debhelper cmake pkg-config nlohmann-json3-dev \
    ./tmp/debs/"$(cd "$sdk/tmp/debs" && echo libchorus-plugin-dev_*.deb)"
  in_chroot "$sdk" sh -c 'cd /tmp/src/acme-hello && dpkg-buildpackage -us -uc -b' >"$work/sdk-build.log" 2>&1 || {
    tail -n 40 "$work/sdk-build.log"
    fail "the example third-party plugin package did not build against libchorus-plugin-dev"
  }
  leave "$sdk"
  mkdir -p "$root/tmp/thirdparty"
  cp "$sdk"/tmp/src/chorus-plugin-acme-hello_*.deb "$root/tmp/thirdparty/"
  thirdparty_deb=./tmp/thirdparty/$(cd "$root/tmp/thirdparty" && echo chorus-plugin-acme-hello_*.deb)
  rm -rf "$sdk"
  pass "example third-party plugin built against libchorus-plugin-dev in a clean root ($(elapsed) s)"
fi

# What the clean system holds, to compare with after the purge.
snapshot() {
  (cd "$root" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./run -o -path ./tmp \
      -o -path ./var/lib/apt -o -path ./var/lib/dpkg -o -path ./var/cache -o -path ./var/log \) -prune \
      -o -print) | LC_ALL=C sort
}
snapshot >"$work/before.txt"

# Install every package, letting apt resolve the dependencies from the mirror.
debs_in_root=()
for d in "$root"/tmp/debs/*.deb; do debs_in_root+=("./tmp/debs/${d##*/}"); done
apt_in_root install --no-install-recommends "${debs_in_root[@]}"
pass "apt installed ${#debs_in_root[@]} packages into a clean Debian 12 chroot ($(elapsed) s)"

# The installed system.
in_root getent passwd chorus >/dev/null || fail "no system user chorus"
# (stat inside the chroot: user names must come from its /etc/passwd)
mode=$(in_root stat -c '%U:%G %a' /var/lib/chorus)
[ "$mode" = "chorus:chorus 750" ] || fail "/var/lib/chorus is $mode, expected chorus:chorus 750"
mode=$(in_root stat -c '%U:%G %a' /etc/chorus/chorus.yaml)
[ "$mode" = "root:chorus 640" ] || fail "/etc/chorus/chorus.yaml is $mode, expected root:chorus 640"
# shellcheck disable=SC2016
in_root dpkg-query -W -f='${Conffiles}\n' chorus-agent | grep -q ' /etc/chorus/chorus.yaml ' ||
  fail "/etc/chorus/chorus.yaml is not a conffile"
agent_version=$(in_root chorus-agent --version)
[[ "$agent_version" == "chorus-agent ${version%%+*} "* ]] ||
  fail "chorus-agent --version says '$agent_version', the package is $version"
plugin_list=$(in_root chorus-agent plugins --json)
plugin_ids=()
for d in "$root"/tmp/debs/chorus-plugin-*.deb; do
  id=${d##*/chorus-plugin-}
  plugin_ids+=("${id%%_*}")
done
[ "${#plugin_ids[@]}" -ge 4 ] || fail "expected at least 4 plugin packages, got ${plugin_ids[*]}"
for id in "${plugin_ids[@]}"; do
  grep -q "\"id\": \"$id\"" <<<"$plugin_list" || fail "chorus-agent plugins does not list $id"
done
pass "user chorus, /var/lib/chorus 0750, conffile root:chorus 0640, '$agent_version', plugins: ${plugin_ids[*]}"

# The packaged config enables the core of an agent (config/chorus.yaml).
core=(p2p mdns gossip dht election ucxi agent)
for id in "${core[@]}"; do
  grep -Eq "^  $id: *\{ enabled: true" "$root/etc/chorus/chorus.yaml" ||
    fail "/etc/chorus/chorus.yaml does not enable the core plugin $id"
done
# The chroot shares this machine's network: mdns would announce the test agent on the real LAN, so it
# is turned off here (tests/integration/test_out_of_the_box.py runs the shipped config in namespaces).
sed -i 's/^\(  mdns: *{ enabled: \)true/\1false/' "$root/etc/chorus/chorus.yaml"

# Start the agent the way the unit does: its ExecStart line, as User=chorus, with the environment
# systemd would give it (StateDirectory= sets STATE_DIRECTORY). Free ports keep this test off the
# default 8081 and p2p's 9000, which another agent on this machine may use.
unit=$root/lib/systemd/system/chorus-agent.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
exec_start_post=$(sed -n 's/^ExecStartPost=//p' "$unit")
exec_reload=$(sed -n 's/^ExecReload=//p' "$unit")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
p2p_port=$(free_port)
log=$root/var/log/chorus-agent.log
as_chorus=(chroot "$root" setpriv --reuid=chorus --regid=chorus --init-groups --no-new-privs
  /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin STATE_DIRECTORY=/var/lib/chorus
  CHORUS_HEALTH_PORT="$port" CHORUS_P2P_PORT="$p2p_port")
# shellcheck disable=SC2086  # the unit's command line is split into words as systemd does
"${as_chorus[@]}" $exec_start >"$log" 2>&1 &
agent=$!
echo "$agent" >"$root/run/chorus-agent.pid"
# shellcheck disable=SC2086
"${as_chorus[@]}" MAINPID="$agent" $exec_start_post || { cat "$log"; fail "ExecStartPost: agent not ready"; }
ready=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")
[ "$ready" = 200 ] || fail "/health/ready answered $ready"
[ "$(in_root stat -c %U "/proc/$agent")" = chorus ] || fail "the agent does not run as chorus"
health=$(curl -fsS "http://127.0.0.1:$port/health")
for id in "${core[@]}"; do
  [ "$id" = mdns ] && continue
  python3 -c 'import json, sys; assert json.load(sys.stdin)["plugins"][sys.argv[1]]["state"] == "running"' "$id" \
    <<<"$health" || fail "core plugin $id is not running: $health"
done
pass "agent (pid $agent) runs as chorus with the packaged config; /health/ready 200 on port $port; core running"

# Wait for a log line that appears after byte offset $1 (events, not sleeps: tail follows the file).
wait_log() {  # offset pattern seconds
  # tail ends when grep has matched (coreutils notices the closed pipe) or at the timeout; grep's
  # status is the answer.
  { timeout "$3" tail -c +"$(($1 + 1))" -f "$log" || true; } | grep -q -m1 -- "$2"
}
log_size() { stat -c %s "$log"; }

# A test double for systemctl: the service is active while the agent runs; reload runs the unit's
# ExecReload line with $MAINPID. The trigger's postinst code checks /run/systemd/system first.
# It goes where systemd's systemctl would be (no package of the minimal root owns that path):
# apt runs dpkg with PATH=/usr/sbin:/usr/bin:/sbin:/bin (DPkg::Path).
[ ! -e "$root/usr/bin/systemctl" ] || fail "the chroot already has a systemctl"
mkdir -p "$root/run/systemd/system"
cat >"$root/usr/bin/systemctl" <<EOF
#!/bin/sh
echo "systemctl \$*" >>/var/log/systemctl-calls.log
MAINPID=\$(cat /run/chorus-agent.pid)
case "\$*" in
  "is-active --quiet chorus-agent.service") kill -0 "\$MAINPID" 2>/dev/null ;;
  "reload chorus-agent.service") $exec_reload ;;
  *) exit 0 ;;
esac
EOF
chmod 0755 "$root/usr/bin/systemctl"

# Enable ai-ollama (a swappable chorus.ai.provider) and reload.
sed -i 's/^plugins:.*/plugins:\n  ai-ollama: { config: { endpoint: "http:\/\/127.0.0.1:9" } }/' "$root/etc/chorus/chorus.yaml"
offset=$(log_size)
in_root systemctl reload chorus-agent.service
wait_log "$offset" "reload complete" 30 || { cat "$log"; fail "no reload after systemctl reload"; }
curl -fsS "http://127.0.0.1:$port/plugins" | grep -q '"ai-ollama"' || fail "/plugins does not show ai-ollama"
pass "systemctl reload (ExecReload) reloaded the agent; ai-ollama running"

# 5. Upgrade the plugin package: the trigger must reload the agent, which hot-swaps the plugin.
offset=$(log_size)
: >"$root/var/log/systemctl-calls.log"
apt_in_root install "./tmp/upgrade/chorus-plugin-ai-ollama_${version}+test1.deb"
grep -q "Processing triggers for chorus-agent" "$work/apt.log" || { cat "$work/apt.log"; fail "trigger not processed"; }
grep -qx "systemctl reload chorus-agent.service" "$root/var/log/systemctl-calls.log" ||
  fail "the trigger did not call systemctl reload (calls: $(cat "$root/var/log/systemctl-calls.log"))"
wait_log "$offset" "hot-swapped plugin 'ai-ollama'" 30 || { cat "$log"; fail "no hot swap after the upgrade"; }
kill -0 "$agent" || fail "the agent exited during the upgrade"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")" = 200 ] ||
  fail "not ready after the upgrade"
pass "upgrade to $version+test1: trigger -> systemctl reload -> SIGHUP -> hot swap; same pid, still ready"

# 6. Remove the plugin package while the config still enables it.
offset=$(log_size)
: >"$root/var/log/systemctl-calls.log"
apt_in_root remove chorus-plugin-ai-ollama
grep -qx "systemctl reload chorus-agent.service" "$root/var/log/systemctl-calls.log" ||
  fail "removing a plugin package did not reload the agent"
wait_log "$offset" "reload complete" 30 || { cat "$log"; fail "no reload after the removal"; }
wait_log "$offset" "file of running plugin 'ai-ollama' .* is gone" 5 ||
  { cat "$log"; fail "the reload did not say that ai-ollama's file is gone"; }
kill -0 "$agent" || fail "the agent exited when a needed plugin package was removed"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")" = 200 ] ||
  fail "not ready after the removal"
echo "   agent log after the removal:"
tail -c +"$((offset + 1))" "$log" | sed 's/^/   | /'
pass "removing a still-enabled plugin's package: agent reloaded and keeps running"

# 6b. A third-party plugin package: enabled in the config before its file exists (the reload
#     reports it failed), then installed: the trigger's reload loads and starts it.
if [ -n "$thirdparty_deb" ]; then
  sed -i 's/^plugins:.*/plugins:\n  acme.hello: { config: { greeting: packaged } }/' "$root/etc/chorus/chorus.yaml"
  offset=$(log_size)
  in_root systemctl reload chorus-agent.service
  wait_log "$offset" "reload complete" 30 || { cat "$log"; fail "no reload after enabling acme.hello"; }
  tail -c +"$((offset + 1))" "$log" | grep -q "plugin 'acme.hello' failed: no plugin file" ||
    { cat "$log"; fail "enabling a plugin that is not installed was not reported"; }
  offset=$(log_size)
  apt_in_root install "$thirdparty_deb"
  wait_log "$offset" "started plugin 'acme.hello'" 30 || { cat "$log"; fail "acme.hello not started after install"; }
  hello=$(curl -fsS "http://127.0.0.1:$port/acme/hello") || fail "GET /acme/hello failed"
  grep -q '"greeting": *"packaged"' <<<"$hello" || fail "GET /acme/hello answered $hello"
  pass "third-party package installed: trigger -> reload -> acme.hello started; /acme/hello: $hello"
fi

# 7. Stop as systemd would (SIGTERM), then purge everything.
kill -TERM "$agent"
rc=0
wait "$agent" || rc=$?
[ "$rc" = 0 ] || { cat "$log"; fail "agent exit status $rc after SIGTERM"; }
rm -rf "$root/usr/bin/systemctl" "$root/run/systemd" "$root/run/chorus-agent.pid" \
       "$root/var/log/chorus-agent.log" "$root/var/log/systemctl-calls.log"
# shellcheck disable=SC2016  # dpkg-query's own ${field} syntax
mapfile -t ours < <(in_root dpkg-query -W -f='${Package}\n' 'chorus-*' 'libchorus-*' 2>/dev/null)
apt_in_root purge --autoremove "${ours[@]}"
# shellcheck disable=SC2016
in_root dpkg-query -W -f='${Package} ${Status}\n' 'chorus-*' 'libchorus-*' 2>/dev/null |
  grep -v 'not-installed' && fail "packages left after the purge"
snapshot >"$work/after.txt"
# Debian keeps system users on purge (their uid may still own files elsewhere): the account files
# change content, not names; adduser may leave its backups.
left=$(LC_ALL=C comm -13 "$work/before.txt" "$work/after.txt" | grep -vxE '\./etc/(passwd|group|shadow|gshadow)-' || true)
[ -z "$left" ] || fail "left after purge: $left"
gone=$(LC_ALL=C comm -23 "$work/before.txt" "$work/after.txt" || true)
[ -z "$gone" ] || fail "missing after purge (the packages removed files they did not own): $gone"
in_root getent passwd chorus >/dev/null || fail "the system user chorus should be kept"
pass "purge: nothing left but the system user chorus ($(elapsed) s)"

leave "$root"
