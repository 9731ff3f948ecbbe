#!/usr/bin/env bash
# Starts a new chorus-agent plugin from the plugin template.
#
#   new-plugin.sh [--namespace NS] [--vendor NAME] ID [DEST]
#
# ID is the plugin id ([a-z0-9][a-z0-9._-]*, at most 64 characters); the plugin file will be
# chorus-ID.so. DEST is the new folder: by default plugins/ID of the chorus-agent tree when this script
# runs from one (scripts/new-plugin.sh), else ./ID. The folder must not exist yet.
#
# In the template, @PLUGIN_ID@ becomes the id, @PLUGIN_NAME@ the id as a C identifier (dots and
# dashes as underscores: targets, metrics, fuzzers), @PLUGIN_CLASS@ a class name, @PLUGIN_NAMESPACE@
# the C++ namespace and @PLUGIN_VENDOR@ the vendor. In-tree ids (no dot) get namespace chorus::<name>
# and vendor CHORUS; "acme.hello-world" gets acme::hello_world and vendor acme.
#
# The template is plugin-api/template in the source tree; the SDK installs it, with this script, in
# <prefix>/share/chorus/plugin-template (libchorus-plugin-dev: /usr/share/chorus/plugin-template).
set -euo pipefail

usage() {
  echo "usage: $0 [--namespace NS] [--vendor NAME] ID [DEST]" >&2
  exit 2
}
namespace=""
vendor=""
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) [ $# -ge 2 ] || usage; namespace=$2; shift 2 ;;
    --vendor) [ $# -ge 2 ] || usage; vendor=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] && [ $# -le 2 ] || usage
id=$1

here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/../plugin-api/template/CMakeLists.txt" ]; then  # scripts/ of the source tree
  template=$(cd "$here/../plugin-api/template" && pwd)
  default_dest=$(cd "$here/.." && pwd)/plugins/$id
elif [ -f "$here/CMakeLists.txt" ] && [ -d "$here/src" ]; then  # installed inside the template
  template=$here
  default_dest=$PWD/$id
else
  echo "new-plugin.sh: cannot find the plugin template next to $0" >&2
  exit 2
fi
dest=${2:-$default_dest}

if ! [[ $id =~ ^[a-z0-9][a-z0-9._-]*$ ]] || [ ${#id} -gt 64 ]; then
  echo "new-plugin.sh: '$id' is not a plugin id ([a-z0-9][a-z0-9._-]*, at most 64 characters)" >&2
  exit 2
fi
if [ -e "$dest" ]; then
  echo "new-plugin.sh: $dest exists already" >&2
  exit 1
fi

name=${id//[.-]/_}
if [[ $id == *.* ]]; then  # vendor.plugin
  head=${id%%.*}
  tail=${id#*.}
  default_namespace=${head//-/_}::${tail//[.-]/_}
  default_vendor=$head
  class_words=${tail//[.-]/_}
else
  default_namespace=chorus::$name
  default_vendor=CHORUS
  class_words=$name
fi
namespace=${namespace:-$default_namespace}
vendor=${vendor:-$default_vendor}
if ! [[ $namespace =~ ^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$ ]]; then
  echo "new-plugin.sh: '$namespace' is not a C++ namespace" >&2
  exit 2
fi
# hello_world -> HelloWorldPlugin; a leading digit gets a prefix to stay an identifier.
class=""
IFS=_ read -ra words <<< "$class_words"
for w in "${words[@]}"; do class+=${w^}; done
[[ $class =~ ^[A-Za-z_] ]] || class=P$class
class+=Plugin

substitute() {
  sed -e "s/@PLUGIN_ID@/$id/g" -e "s/@PLUGIN_NAME@/$name/g" -e "s/@PLUGIN_CLASS@/$class/g" \
      -e "s/@PLUGIN_NAMESPACE@/$namespace/g" -e "s/@PLUGIN_VENDOR@/$vendor/g"
}

mkdir -p "$dest"
(cd "$template" && find . -type f ! -name new-plugin.sh | LC_ALL=C sort) | while read -r rel; do
  out=$dest/$(substitute <<< "${rel#./}")
  mkdir -p "$(dirname "$out")"
  substitute < "$template/$rel" > "$out"
done
echo "new-plugin.sh: created $dest (plugin $id, namespace $namespace)"
if [ "$dest" = "$default_dest" ] && [ "$template" != "$here" ]; then
  echo "next: add a 'Package: chorus-plugin-$id' stanza to packaging/debian/control (see docs/packaging.md)"
fi
