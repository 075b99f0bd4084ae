#!/usr/bin/env bash
# Runs every benchmark program of a release build directory.
#   bench/run_all.sh <build-dir> [--quick]
# Prints RESULT lines. Round trips also run pinned to one CPU (taskset), since a wake-up
# across this VM's two vCPUs costs ~60 us and dominates small round trips. Python's side of
# a comparison runs right after mproc's, with the same parameters (bench/python/).
set -euo pipefail
build=$1
shift
here=$(dirname "$0")
"$build/bench/bench_transport" "$@"
taskset -c 0 "$build/bench/bench_transport" --label pinned "$@"
"$build/bench/bench_patterns" "$@"
taskset -c 0 "$build/bench/bench_patterns" --only pipe_pingpong --label pinned "$@"
for workload in pool_ready pool_map_auto pool_map_chunk1; do
  "$build/bench/bench_pool" --only "$workload" "$@"
  python3 "$here/python/pool.py" --only "$workload" "$@"
done
