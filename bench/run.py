#!/usr/bin/env python3
"""Runs every workload for mproc, Python multiprocessing and the raw baseline, interleaved
(mproc, python, raw, mproc, ...), then prints the table (bench/report.py).

  bench/run.py <release-build-dir> [--quick] [--reps N] [--only W1,W2,...] [--plot] [--out DIR]

RESULT lines go to stdout and to <out>/results.txt (default bench/out); the table to
<out>/table.md. Exits 1 when a system printed nothing for a workload it has.
"""
import argparse
import os
import subprocess
import sys
import time

import report

HERE = os.path.dirname(os.path.abspath(__file__))
PY = [sys.executable]
PIN = ["taskset", "-c", "0"]


def workloads(build):
    """workload -> {system: argv}. A system missing from a workload cannot run it."""
    def mproc(program, name):
        return [os.path.join(build, "bench", program), "--only", name]

    def python(script, name):
        return PY + [os.path.join(HERE, "python", script), "--only", name]

    def raw(name):
        return [os.path.join(build, "bench", "bench_raw"), "--only", name]

    def shm(name):
        return [os.path.join(build, "bench", "bench_shm"), "--only", name]

    table = {}
    for name in ["pingpong", "oneway_single", "oneway_batched", "spawn_first_reply",
                 "bandwidth_1MiB", "bandwidth_64MiB", "idle_rss", "spawn_200", "spawn_1000"]:
        table[name] = {"mproc": mproc("bench_transport", name),
                       "python": python("transport.py", name), "raw": raw(name)}
    # The shared-memory floor of the transport rows.
    for name in ["pingpong", "oneway_single", "oneway_batched", "bandwidth_1MiB",
                 "bandwidth_64MiB"]:
        table[name]["shm"] = shm(name)
    # The same payloads as a new blob per message, and as mproc::bytes (a std::vector the
    # receiver gets a copy of).
    for name in ["bandwidth_1MiB_fresh", "bandwidth_64MiB_fresh", "bandwidth_1MiB_bytes",
                 "bandwidth_64MiB_bytes"]:
        table[name] = {"mproc": mproc("bench_transport", name)}
    # Nodes over loopback TCP (Python's multiprocessing has no remote nodes here); the raw
    # baseline is the same ping-pong over a loopback TCP socket.
    table["tcp_pingpong"] = {"mproc": mproc("bench_transport", "tcp_pingpong"),
                             "raw": raw("tcp_pingpong")}
    table["tcp_oneway"] = {"mproc": mproc("bench_transport", "tcp_oneway")}
    # The same in clear, and bulk transfers both ways: what TLS costs.
    for name in ["tcp_pingpong_plaintext", "tcp_oneway_plaintext", "tcp_bandwidth_64MiB",
                 "tcp_bandwidth_64MiB_plaintext", "tls_records"]:
        table[name] = {"mproc": mproc("bench_transport", name)}
    # The raw ping-pong with a node's threads (bench/hops.cpp): where mproc's round trip
    # would be without its own code.
    for name in ["pingpong_blocking", "pingpong_child_epoll", "pingpong_via_loop",
                 "pingpong_caller_polls"]:
        table[name] = {"raw": [os.path.join(build, "bench", "bench_hops"), "--only", name]}
    # Cross-vCPU wake-ups cost ~60 us here: round trips also run with both ends on one CPU.
    table["pingpong_pinned"] = {s: PIN + argv + ["--label", "pinned"]
                                for s, argv in table["pingpong"].items()}
    # The thread-structure models beside it (no spin on one CPU, as the requester does).
    for name in ["pingpong_blocking", "pingpong_child_epoll", "pingpong_via_loop",
                 "pingpong_caller_polls"]:
        table[name + "_pinned"] = {"raw": PIN + table[name]["raw"] + ["--label", "pinned"]}
    # Python's Pipe is the baseline of both mproc's actor messages and mproc's Pipe.
    table["pipe_pingpong"] = {"mproc": mproc("bench_patterns", "pipe_pingpong")}
    table["pipe_oneway"] = {"mproc": mproc("bench_patterns", "pipe_oneway")}
    table["producer_consumer"] = {"mproc": mproc("bench_patterns", "producer_consumer"),
                                  "python": python("patterns.py", "producer_consumer")}
    table["restart"] = {"mproc": mproc("bench_patterns", "restart"),
                        "python": python("transport.py", "restart"), "raw": raw("restart")}
    for name in ["lock_uncontended", "lock_contended"]:
        table[name] = {"mproc": mproc("bench_patterns", name),
                       "python": python("patterns.py", name)}
    for name in ["pool_ready", "pool_map_auto", "pool_map_chunk1"]:
        table[name] = {"mproc": mproc("bench_pool", name), "python": python("pool.py", name)}
    for name in ["manager_dict_1proc", "manager_dict_4proc"]:
        table[name] = {"mproc": mproc("bench_manager", name),
                       "python": python("manager.py", name)}
    return table


def run_one(argv, extra, out):
    """Runs one program; True when it printed a result and succeeded."""
    try:
        done = subprocess.run(argv + extra, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        print(f"# timed out: {' '.join(argv)}", file=sys.stderr)
        return False
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    for line in lines:
        print(line, flush=True)
        out.write(line + "\n")
    if done.returncode != 0:
        print(f"# failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-2000:]}",
              file=sys.stderr)
    return bool(lines) and done.returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    ap.add_argument("--only", help="workloads, comma-separated")
    ap.add_argument("--plot", action="store_true", help="also write <out>/bench.png")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="where results go")
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    extra = ["--quick"] if args.quick else []
    outdir = args.out
    os.makedirs(outdir, exist_ok=True)
    failed = []
    results = os.path.join(outdir, "results.txt")
    t0 = time.monotonic()
    with open(results, "w") as out:
        only = set(args.only.split(",")) if args.only else None
        for rep in range(reps):
            for name, systems in workloads(args.build).items():
                if only and name not in only:
                    continue
                for system in report.SYSTEMS:
                    if system in systems and not run_one(systems[system], extra, out):
                        failed.append(f"{name}/{system}")
    print(f"# {reps} repetition(s) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    table = report.table(report.parse(open(results)))
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(table)
    print()
    print(table)
    if args.plot:
        print(report.plot(report.parse(open(results)), os.path.join(outdir, "bench.png")))
    if failed:
        print(f"# no result from: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
