#!/usr/bin/env bash
# tests/template/generate.sh WORK_DIR (ctest: template.generate; the environment comes from
# tests/template/CMakeLists.txt). See there for what it proves.
set -euo pipefail
work=${1:?usage: generate.sh WORK_DIR}
id=acme.template-check  # a vendor id with a dash: namespace acme::template_check

rm -rf "$work"
mkdir -p "$work"
echo "== installing the SDK of $CHORUS_BUILD_DIR into $work/sdk"
"$CHORUS_CMAKE" --install "$CHORUS_BUILD_DIR" --component sdk --prefix "$work/sdk" >/dev/null
generator=$work/sdk/share/chorus/plugin-template/new-plugin.sh
[ -x "$generator" ] || { echo "FAIL: the SDK did not install $generator" >&2; exit 1; }

echo "== generating $id from the installed template and from the source tree"
"$generator" "$id" "$work/plugin"
"$CHORUS_SOURCE_DIR/scripts/new-plugin.sh" "$id" "$work/from-source" >/dev/null
diff -r "$work/plugin" "$work/from-source" || { echo "FAIL: installed and source templates differ" >&2; exit 1; }
if grep -rn '@PLUGIN_[A-Z]*@' "$work/plugin"; then echo "FAIL: placeholders left (above)" >&2; exit 1; fi

echo "== building it against the installed SDK"
"$CHORUS_CMAKE" -S "$work/plugin" -B "$work/build" -G "$CHORUS_CMAKE_GENERATOR" \
  -DCMAKE_MAKE_PROGRAM="$CHORUS_MAKE_PROGRAM" -DCMAKE_CXX_COMPILER="$CHORUS_CXX" \
  -DCMAKE_CXX_FLAGS="${CHORUS_SANITIZE_FLAGS:-}" -DCMAKE_PREFIX_PATH="$work/sdk" \
  -DCHORUS_AGENT_BIN="$CHORUS_AGENT_BIN" -DCHORUS_HARNESS_DIR="$CHORUS_SOURCE_DIR/tests/integration" >/dev/null
"$CHORUS_CMAKE" --build "$work/build" -j "${CHORUS_JOBS:-2}"
so=$work/build/chorus-$id.so
[ -f "$so" ] || so=$(find "$work/build" -name "chorus-$id.so" | head -n1)
[ -n "$so" ] && [ -f "$so" ] || { echo "FAIL: no chorus-$id.so built" >&2; exit 1; }

echo "== running its tests (unit tests on FakeHost, integration test in $CHORUS_AGENT_BIN)"
export CHORUS_SANITIZE
"$CHORUS_CTEST" --test-dir "$work/build" --output-on-failure --no-tests=error | tee "$work/ctest.log"
# Every test must have run: a skipped integration test would leave the template unproven.
if grep -E '\*\*\*Skipped|Not Run' "$work/ctest.log"; then
  echo "FAIL: a test of the generated plugin did not run (above)" >&2
  exit 1
fi
grep -q "$id.integration" "$work/ctest.log" || { echo "FAIL: the integration test is not registered" >&2; exit 1; }
echo "ok: $id generated, built against the installed SDK, unit and integration tests passed"
