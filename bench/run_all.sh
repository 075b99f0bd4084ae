#!/usr/bin/env bash
# Runs every benchmark program of a release build directory.
#   bench/run_all.sh <build-dir> [--quick]
# Prints RESULT lines. Round trips also run pinned to one CPU (taskset), since a wake-up
# across this VM's two vCPUs costs ~60 us and dominates small round trips.
set -euo pipefail
build=$1
shift
"$build/bench/bench_transport" "$@"
taskset -c 0 "$build/bench/bench_transport" --label pinned "$@"
"$build/bench/bench_patterns" "$@"
taskset -c 0 "$build/bench/bench_patterns" --only pipe_pingpong --label pinned "$@"
