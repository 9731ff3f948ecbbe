#!/usr/bin/env bash
# packaging/build-debs.sh OUT_DIR
#
# Builds the chorus-agent binary packages (.deb) from this source tree into OUT_DIR:
#   1. stages a copy of the tree (without .git, build directories and node_modules) in
#      OUT_DIR/stage/chorus-agent-<version>, with packaging/debian/ placed at debian/;
#   2. writes debian/changelog from the CMake project version, the one place the version lives
#      (`project(chorus-agent VERSION x.y.z)` in CMakeLists.txt; chorus-agent --version prints it);
#   3. runs `dpkg-buildpackage -us -uc -b` (tests and benchmarks are not built: the project's own
#      suite runs them).
#
# Environment: CHORUS_DEB_VERSION_SUFFIX (appended to the package version, e.g. "+test1"),
# CHORUS_DEB_JOBS (parallel jobs, default 2), CHORUS_DEB_CCACHE=0 (do not compile through ccache).
#
# When ccache is installed, the compiler runs through it with paths relative to the source root and
# the working directory left out of the hash (CCACHE_BASEDIR, CCACHE_NOHASHDIR), so a build tree of
# this source compiled with the same flags (scripts/setup.sh test configures its test build so) has
# already filled the cache when OUT_DIR is a directory under that build tree: the package build then
# compiles almost nothing. The packages are the same either way, except that the debug information of
# an object taken from the cache names the other build's directory (relative: ./build).
# Needs: dpkg-dev, debhelper and the Build-Depends of packaging/debian/control.
set -euo pipefail

out=${1:?usage: build-debs.sh OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=${CHORUS_DEB_JOBS:-2}

version=$(sed -nE 's/^project\(chorus-agent[[:space:]]+VERSION[[:space:]]+([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' \
            "$root/CMakeLists.txt")
if [ -z "$version" ]; then
  echo "build-debs.sh: no 'project(chorus-agent VERSION x.y.z' in $root/CMakeLists.txt" >&2
  exit 2
fi
deb_version=$version${CHORUS_DEB_VERSION_SUFFIX:-}

stage=$out/stage
src=$stage/chorus-agent-$deb_version
rm -rf "$stage"
mkdir -p "$src"
tar -C "$root" -cf - --exclude=./.git --exclude='./build*' --exclude='./cmake-build-*' \
    --exclude=./.cache --exclude=node_modules --exclude=./packaging/debian . | tar -C "$src" -xf -
cp -a "$root/packaging/debian" "$src/debian"

# A reproducible date: the last commit's, when there is a git checkout.
epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
cat >"$src/debian/changelog" <<EOF
chorus-agent ($deb_version) bookworm; urgency=medium

  * Built from the chorus-agent source tree (CMake project version $version).

 -- CHORUS agent developers <chorus-agent@packages.invalid>  $(date -u -R -d "@$epoch")
EOF

ccache_env=()
if [ "${CHORUS_DEB_CCACHE:-1}" != 0 ] && command -v ccache >/dev/null; then
  # debhelper gives the build a HOME of its own, so the cache directory is named here. CMake takes
  # the launcher from the environment at the first configure (3.17 and later).
  rm -f "$out/ccache-stats.log"
  ccache_env=(CCACHE_DIR="${CCACHE_DIR:-$(ccache --get-config cache_dir)}" CCACHE_BASEDIR="$root"
    CCACHE_NOHASHDIR=true CCACHE_DEPEND=true CCACHE_STATSLOG="$out/ccache-stats.log"
    CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

echo "== dpkg-buildpackage chorus-agent $deb_version (log: $out/build.log)"
if ! (cd "$src" && env "${ccache_env[@]}" DEB_BUILD_OPTIONS="nocheck parallel=$jobs" SOURCE_DATE_EPOCH=$epoch \
        dpkg-buildpackage -us -uc -b -j"$jobs") >"$out/build.log" 2>&1; then
  tail -n 40 "$out/build.log" >&2
  echo "build-debs.sh: dpkg-buildpackage failed; full log: $out/build.log" >&2
  exit 1
fi
if [ ${#ccache_env[@]} -gt 0 ] && [ -s "$out/ccache-stats.log" ]; then
  # "Hits: 170 / 178" and "Misses: 8 / 178": how much of the tree had to be compiled again.
  echo "== ccache: $(env "${ccache_env[@]}" ccache --show-log-stats 2>/dev/null | sed -nE 's/^ *(Hits|Misses): *([0-9]+ \/ *[0-9]+).*/\1 \2/p' | paste -sd, -)"
fi
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mv "$stage"/*.deb "$stage"/*.changes "$stage"/*.buildinfo "$out"/
# The staged tree holds the whole build; keep it only when asked (debugging a package).
[ "${CHORUS_DEB_KEEP_STAGE:-0}" = 1 ] || rm -rf "$stage"
ls -1 "$out"/*.deb
