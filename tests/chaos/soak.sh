#!/usr/bin/env bash
# The chaos suite over and over: ./run chaos [--minutes N] [--runs N] [--hogs N]
#   --minutes N  keep going for N minutes (default 10)
#   --runs N     or stop after N rounds of the suite, whichever comes first
#   --hogs N     N busy loops compete for the CPUs meanwhile (a loaded machine)
# Each round is `meson test --suite chaos` (tests/chaos/meson.build lists the scenarios);
# the first failing round stops the soak with its log.
set -euo pipefail
build=$1
shift
minutes=10 runs=0 hogs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --hogs) hogs=$2; shift 2 ;;
    *) echo "usage: ./run chaos [--minutes N] [--runs N] [--hogs N]" >&2; exit 2 ;;
  esac
done

hog_pids=()
stop_hogs() { [ ${#hog_pids[@]} -eq 0 ] || kill "${hog_pids[@]}" 2>/dev/null || true; }
trap stop_hogs EXIT
for _ in $(seq 1 "$hogs"); do
  (while :; do :; done) &
  hog_pids+=($!)
done

end=$(( $(date +%s) + minutes * 60 ))
round=0
while [ "$(date +%s)" -lt "$end" ] && { [ "$runs" -eq 0 ] || [ "$round" -lt "$runs" ]; }; do
  round=$((round + 1))
  if ! meson test -C "$build" --suite chaos --no-rebuild --print-errorlogs >"$build/chaos-round.log" 2>&1; then
    cat "$build/chaos-round.log"
    echo "chaos: round $round FAILED (with $hogs CPU hog(s))"
    exit 1
  fi
  echo "chaos: round $round passed ($(grep -c '^ *[0-9]*/[0-9]* .* OK' "$build/chaos-round.log") scenarios)"
done
echo "chaos: $round rounds passed, $hogs CPU hog(s)"
