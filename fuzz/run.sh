#!/usr/bin/env bash
# Builds the libFuzzer harnesses into build-fuzz/ and runs each for a while (docs/fuzzing.md).
#   fuzz/run.sh [--seconds N] [HARNESS...]    N per harness, default 60; all harnesses by default
# One line per harness; exits non-zero if any harness found a crash, leak, timeout or
# sanitizer report. Logs and reproducers stay in build-fuzz/fuzz-out/<harness>/; the
# committed seeds in fuzz/corpus/ are copied there first and never written to.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build-fuzz
HARNESSES=(frame envelope codec message_bytes manager_store)
seconds=60
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done
[ ${#only[@]} -gt 0 ] && HARNESSES=("${only[@]}")

if [ ! -f "$BUILD/build.ninja" ]; then
  CXX=clang++ meson setup "$BUILD" --buildtype=debugoptimized -Dfuzz=true -Dtests=false \
    -Dbench=false -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
# Only the harnesses and what they link: not the whole project under the sanitizers.
ninja -C "$BUILD" "${HARNESSES[@]/#/fuzz/fuzz_}" >/dev/null

# Readable stacks when llvm-symbolizer is there; leaks count as findings.
symbolizer=$(command -v llvm-symbolizer || ls /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | head -1 || true)
[ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
for h in "${HARNESSES[@]}"; do
  out=$BUILD/fuzz-out/$h
  rm -rf "$out"
  mkdir -p "$out/corpus" "$out/artifacts"
  cp fuzz/corpus/"$h"/* "$out/corpus/"
  seeds=$(ls "$out/corpus" | wc -l)
  # 2 GB: libFuzzer's own default, and what a 2-core CI box can give one harness at a time.
  # A single input taking 10 s is a hang worth reporting.
  if "$BUILD/fuzz/fuzz_$h" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$out/corpus" >"$out/log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log")
    cov=$(grep -o 'cov: [0-9]*' "$out/log" | tail -1 | cut -d' ' -f2)
    printf '%-14s ok     %9s runs in %ss (%s exec/s), corpus %s -> %s inputs, coverage %s\n' \
      "$h" "$runs" "$seconds" "$speed" "$seeds" "$(ls "$out/corpus" | wc -l)" "$cov"
  else
    failed=1
    printf '%-14s FAILED %s; reproducer: %s\n' "$h" \
      "$(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+( [^ ]+)?|runtime error: .*|deadly signal|Timeout' "$out/log" || echo "see log")" \
      "$(ls "$out"/artifacts/* 2>/dev/null | head -1) (log: $out/log)"
  fi
done
exit $failed
