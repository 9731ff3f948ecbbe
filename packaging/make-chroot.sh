#!/usr/bin/env bash
# packaging/make-chroot.sh CACHE_DIR
#
# Makes sure CACHE_DIR/bookworm-minbase.tar holds a clean Debian 12 root file system (debootstrap
# --variant=minbase, apt sources set to this machine's Debian mirror) and prints the tarball's path.
# The tarball is built once and reused; each test extracts a fresh copy, so every run starts clean.
# Delete the tarball (or set CHORUS_CHROOT_REFRESH=1) to rebuild it.
#
# Needs root (debootstrap, chroot) and the network to reach the Debian mirror.
set -euo pipefail

cache=${1:?usage: make-chroot.sh CACHE_DIR}
tarball=$cache/bookworm-minbase.tar
mkdir -p "$cache"

if [ -s "$tarball" ] && [ "${CHORUS_CHROOT_REFRESH:-0}" != 1 ]; then
  echo "$tarball"
  exit 0
fi

# The machine's configured mirror for the main archive: the first deb822 URIs line of a stanza whose
# Suites include bookworm, else a one-line "deb URL bookworm" entry, else the default redirector.
mirror_for() {  # suite-regex
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && ok && deb) { print uri; exit } uri = ""; ok = 0; deb = 0; next }
      /^URIs:/   { uri = $2 }
      /^Types:/  { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i ~ "^" want "$") ok = 1 }
      END { if (uri != "" && ok && deb) print uri }' "$f" | head -n1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '$1 == "deb" { u = ($2 ~ /^\[/) ? $3 : $2; s = ($2 ~ /^\[/) ? $4 : $3;
                          if (s ~ "^" want "$") { print u; exit } }' "$f"
  done
}
main_mirror=$(mirror_for bookworm | head -n1)
main_mirror=${main_mirror:-http://deb.debian.org/debian}
security_mirror=$(mirror_for bookworm-security | head -n1)
security_mirror=${security_mirror:-${main_mirror%/debian}/debian-security}

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
echo "== debootstrap bookworm (minbase) from $main_mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$main_mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
cat >"$root/etc/apt/sources.list" <<EOF
deb $main_mirror bookworm main
deb $main_mirror bookworm-updates main
deb $security_mirror bookworm-security main
EOF
# Package lists inside the tarball: a run only refreshes them when an install fails (see the test).
chroot "$root" apt-get update -qq >&2
chroot "$root" apt-get clean
tar -C "$root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$tarball"
