#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, libs/*/fuzz/, plugins/*/fuzz/; each declared with
# chorus_fuzzer) and runs each one briefly on a copy of its seed corpus.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS_PER_TARGET [FUZZER...]
#
# BUILD_DIR is a build tree of its own (clang, -fsanitize=fuzzer-no-link,address,undefined for all of
# chorus_host_core): do not point it at a regular or CHORUS_SANITIZE build. Only the fuzz targets are
# built. FUZZER names pick a subset (the names in all_fuzzers below; default all).
# Fuzzers run $CHORUS_JOBS (default 2) at a time. New corpus entries go to a temporary directory that
# is deleted afterwards, never into the repository; logs and crash reproducers are kept under
# BUILD_DIR/fuzz-out/<timestamp>/<fuzzer>/. Exit status 1 if any fuzzer crashed (sanitizer report,
# uncaught exception, broken invariant, timeout of one input, out of memory or a leak), with the
# fuzzer's name and the reproducer printed; re-run one with BUILD_DIR/fuzz/<fuzzer>_fuzz <reproducer>.
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR SECONDS_PER_TARGET [FUZZER...]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
[[ $2 =~ ^[1-9][0-9]*$ ]] || usage

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "$1")
seconds=$2
shift 2
jobs=${CHORUS_JOBS:-2}
# Each fuzzer's seed corpus; the target is <name>_fuzz, built into BUILD_DIR/fuzz/.
declare -A corpus_of=(
  [config]=tests/fuzz/corpus/config [semver]=tests/fuzz/corpus/semver
  [json_schema]=tests/fuzz/corpus/json_schema [descriptor]=tests/fuzz/corpus/descriptor
  [http_server]=tests/fuzz/corpus/http_server [shhh]=tests/fuzz/corpus/shhh
  [backbeat_beatframe]=plugins/backbeat/fuzz/corpus/beatframe
  [ai_ndjson]=libs/ai-common/fuzz/corpus/ai_ndjson [ai_sse]=libs/ai-common/fuzz/corpus/ai_sse
  [ai_ollama_json]=libs/ai-common/fuzz/corpus/ai_ndjson [ai_openai_json]=libs/ai-common/fuzz/corpus/ai_sse
  [p2p_varint]=libs/p2p-wire/fuzz/corpus/p2p_varint [p2p_multiaddr]=libs/p2p-wire/fuzz/corpus/p2p_multiaddr
  [p2p_multistream]=libs/p2p-wire/fuzz/corpus/p2p_multistream [p2p_identify]=libs/p2p-wire/fuzz/corpus/p2p_identify
  [p2p_noise]=plugins/p2p/fuzz/noise/corpus/p2p_noise [p2p_yamux]=plugins/p2p/fuzz/yamux/corpus/p2p_yamux
  [mdns_packet]=plugins/mdns/fuzz/corpus/mdns_packet)
all_fuzzers=(config semver json_schema descriptor http_server shhh backbeat_beatframe ai_ndjson ai_sse ai_ollama_json
  ai_openai_json p2p_varint p2p_multiaddr p2p_multistream p2p_identify p2p_noise p2p_yamux mdns_packet)
# Fuzzers of other plugins and libraries (e.g. made from plugin-api/template) are found by their seed
# corpus, <folder>/fuzz/corpus/<fuzzer>/, for a target <fuzzer>_fuzz.
for dir in "$root"/plugins/*/fuzz/corpus/*/ "$root"/libs/*/fuzz/corpus/*/; do
  [ -d "$dir" ] || continue
  name=$(basename "$dir")
  [ -n "${corpus_of[$name]:-}" ] && continue
  [[ " ${all_fuzzers[*]} " == *" $name "* ]] && continue
  rel=${dir#"$root"/}
  rel=${rel%/}
  [[ " ${corpus_of[*]} " == *" $rel "* ]] && continue  # a listed fuzzer's corpus under another name
  corpus_of[$name]=$rel
  all_fuzzers+=("$name")
done
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=("${all_fuzzers[@]}")
for f in "${fuzzers[@]}"; do
  [[ " ${all_fuzzers[*]} " == *" $f "* ]] || { echo "fuzz.sh: unknown fuzzer '$f' (have: ${all_fuzzers[*]})" >&2; exit 2; }
done

# ---- toolchain: clang with the libFuzzer and sanitizer runtimes (Debian: clang libclang-rt-14-dev)
if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang/clang++ not found; install clang and libclang-rt-14-dev (scripts/setup.sh test does)" >&2
  exit 2
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t) { return 0; }\n' \
  > "$probe/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2> "$probe/err"; then
  cat "$probe/err" >&2
  echo "fuzz.sh: clang++ cannot link a libFuzzer target; install libclang-rt-14-dev (scripts/setup.sh test does)" >&2
  exit 2
fi

# ---- configure and build only the fuzz targets
if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^CHORUS_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "fuzz.sh: $build is a build tree without CHORUS_FUZZ=ON; give a directory of its own" >&2
  exit 2
fi
echo "== fuzz: configuring $build"
# RelWithDebInfo with the optimisation and debug level OSS-Fuzz uses: -O1 and line tables (enough
# for the symbolised stack of a crash). Measured: host/src/http_server.cpp, the heaviest file of the
# fuzz build, takes 19 % less compile time than with -O2 -g; the small p2p-wire files the same.
fuzz_config_flags="-O1 -gline-tables-only -DNDEBUG"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="$fuzz_config_flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$fuzz_config_flags" \
  -DCHORUS_FUZZ=ON -DCHORUS_BUILD_TESTS=ON -DCHORUS_BUILD_BENCH=OFF -DCHORUS_SANITIZE=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  > "$probe/configure.log" 2>&1 || { cat "$probe/configure.log" >&2; exit 1; }
# Every fuzzer above is part of every CHORUS_FUZZ build; one that is missing is a build bug.
known_targets=$(ninja -C "$build" -t targets all 2>/dev/null || true)
for f in "${fuzzers[@]}"; do
  grep -q "^${f}_fuzz:" <<< "$known_targets" || { echo "fuzz.sh: ${f}_fuzz is not a target of $build" >&2; exit 1; }
done
targets=()
for f in "${fuzzers[@]}"; do targets+=("${f}_fuzz"); done
echo "== fuzz: building ${targets[*]}"
start=$SECONDS
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
echo "== fuzz: build took $((SECONDS - start)) s"

# ---- run
out="$build/fuzz-out/$(date +%Y%m%d-%H%M%S)"
work=$(mktemp -d)
trap 'rm -rf "$probe" "$work"' EXIT
mkdir -p "$out"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi

run_one() {  # fuzzer
  local name=$1 dir="$out/$1" corpus="$work/$1"
  mkdir -p "$dir/artifacts" "$corpus"
  cp -R "$root/${corpus_of[$name]}/." "$corpus/"
  local rc=0 extra=()
  # The HTTP server frees a connection's memory on its own thread after the exchange, so nearly every
  # input looks unbalanced to libFuzzer's per-input leak check, which then runs LeakSanitizer each
  # time and cuts throughput five-fold. Leaks there would be reachable server state anyway.
  [ "$name" = http_server ] && extra+=(-detect_leaks=0)
  "$build/fuzz/${name}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "${extra[@]}" \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$corpus" > "$dir/log" 2>&1 || rc=$?
  echo "$rc" > "$dir/rc"
}

echo "== fuzz: running ${#fuzzers[@]} fuzzers for ${seconds} s each, $jobs at a time (logs in $out)"
for f in "${fuzzers[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$f" &
done
wait

status=0
for f in "${fuzzers[@]}"; do
  dir="$out/$f"
  rc=$(cat "$dir/rc" 2>/dev/null || echo "?")
  # "#123456 DONE cov: 1234 ft: 5678 corp: 90/12Kb lim: 4096 exec/s: 4115 rss: 80Mb"
  last=$(grep -E '^#[0-9]+' "$dir/log" | tail -n 1 || true)
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$dir/log" | tail -n 1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$dir/log" | tail -n 1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<< "$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<< "$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<< "$last")
  if [ "$rc" = 0 ]; then
    printf '  %-12s ok     %9s execs  %6s exec/s  cov %-5s ft %-6s corpus %s\n' \
      "$f" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  else
    status=1
    repro=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$dir/log" | tail -n 1)
    what=$(grep -m1 -E 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant violated|terminate called|uncaught exception' "$dir/log" || true)
    echo "  $f CRASHED (exit $rc): ${what:-see log}"
    echo "    reproducer: ${repro:-none written (see log)}"
    echo "    log:        $dir/log"
    echo "    re-run:     $build/fuzz/${f}_fuzz ${repro:-<reproducer>}"
  fi
done
[ $status -eq 0 ] && echo "== fuzz: no crashes" || echo "== fuzz: FAILED"
exit $status
