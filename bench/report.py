#!/usr/bin/env python3
"""The table (and plot) of ./run bench from RESULT lines.

  bench/report.py [results.txt] [--plot out.png]

Each cell is the median over repetitions with min–max; ratios are of medians, taken from the
same run. A target is a ratio against Python or raw (or an absolute bound); a missed one
shows as missed.
"""
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# raw: fork + socketpair (or loopback TCP); shm: fork + shared-memory rings with futexes.
SYSTEMS = ("mproc", "python", "raw", "shm")

# Where a workload's baseline is another workload's figure, because it is the same program:
# Python's Pipe and the raw socket are the baseline of mproc's actor messages and of its Pipe;
# Python's bytes over a Pipe that of mproc's blob (bandwidth_*, *_fresh) and bytes (*_bytes) rows.
BASELINE_OF = {"pipe_pingpong": "pingpong", "pipe_oneway": "oneway_single",
               "bandwidth_1MiB_fresh": "bandwidth_1MiB",
               "bandwidth_64MiB_fresh": "bandwidth_64MiB",
               "bandwidth_1MiB_bytes": "bandwidth_1MiB",
               "bandwidth_64MiB_bytes": "bandwidth_64MiB"}

# (workload, metric) -> [(against, op, bound)]: against is "python", "raw", "shm", "abs", or
# "row:W", mproc's own figure for workload W (the same metric).
# The local fast path's targets (issue "Local fast path"), then spawn, pool and memory.
TARGETS = {
    ("pingpong", "p50"): [("raw", "<=", 1.3), ("python", "<=", 0.5)],
    ("pingpong_pinned", "p50"): [("raw", "<=", 1.3), ("python", "<=", 0.5)],
    ("pipe_pingpong", "p50"): [("raw", "<=", 1.5), ("python", "<=", 0.5)],
    ("oneway_single", "throughput"): [("python", ">=", 10), ("raw", ">=", 5)],
    ("oneway_batched", "throughput"): [("python", ">=", 3), ("shm", ">=", 0.3)],
    ("bandwidth_64MiB", "median"): [("raw", ">=", 2), ("python", ">=", 5)],
    ("bandwidth_1MiB", "median"): [("raw", ">=", 0.8)],
    # The same bounds for a new blob per message: the figures above send one blob again and
    # again, which a receiver reads through the mapping it already has.
    ("bandwidth_64MiB_fresh", "median"): [("raw", ">=", 2), ("python", ">=", 5)],
    ("bandwidth_1MiB_fresh", "median"): [("raw", ">=", 0.8)],
    ("producer_consumer", "throughput"): [("python", ">=", 25)],
    # Encryption (issue "Strangers"): TLS costs at most 15 % on a round trip, and sealing
    # plus opening on one core stays above 1 GiB/s.
    ("tcp_pingpong", "p50"): [("raw", "<=", 1.3), ("row:tcp_pingpong_plaintext", "<=", 1.15)],
    ("tls_records", "median"): [("abs", ">=", 1024)],
    ("pool_map_auto", "throughput"): [("python", ">=", 6)],
    ("pool_map_chunk1", "throughput"): [("python", ">=", 50)],
    # Manager (issue "Manager and subprocess"): the same dict operations as Python's.
    ("manager_dict_1proc", "throughput"): [("python", ">=", 5)],
    ("manager_dict_4proc", "throughput"): [("python", ">=", 5)],
    # Start methods (issue "Start methods: a fork server"), with the default, forkserver.
    ("spawn_first_reply", "median"): [("abs", "<=", 1.0), ("raw", "<=", 8)],
    ("pool_ready", "median"): [("python", "<=", 0.1)],
    ("restart", "median"): [("raw", "<=", 2)],
    ("spawn_200", "total"): [("raw", "<=", 5), ("python", "<=", 0.3)],
    ("spawn_1000", "total"): [("raw", "<=", 5)],
    ("idle_rss", "median"): [("abs", "<=", 6.2), ("python", "<=", 0.5)],
}


def parse(lines):
    """{(workload, metric): {system: [values]}}, and units, in first-seen order."""
    data = collections.OrderedDict()
    units = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 6 or parts[0] != "RESULT":
            continue
        _, system, workload, metric, value, unit = parts
        data.setdefault((workload, metric), {}).setdefault(system, []).append(float(value))
        units[(workload, metric)] = unit
    return data, units


def values(data, key, system):
    got = data.get(key, {}).get(system)
    if got or system == "mproc" or key[0] not in BASELINE_OF:
        return got
    return data.get((BASELINE_OF[key[0]], key[1]), {}).get(system)


def fmt(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(xs):
    if not xs:
        return "—"
    m = statistics.median(xs)
    return fmt(m) if len(xs) == 1 else f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})"


def check(op, value, bound):
    return value <= bound if op == "<=" else value >= bound


def ratio(data, key, against):
    if against.startswith("row:"):
        a, b = values(data, key, "mproc"), values(data, (against[4:], key[1]), "mproc")
    else:
        a, b = values(data, key, "mproc"), values(data, key, against)
    if not a or not b:
        return None
    return statistics.median(a) / statistics.median(b)


def verdict(data, key):
    targets = TARGETS.get(key, [])
    texts, met = [], []
    for against, op, bound in targets:
        if against == "abs":
            xs = values(data, key, "mproc")
            got = statistics.median(xs) if xs else None
            texts.append(f"{op} {fmt(bound)}")
        else:
            got = ratio(data, key, against)
            texts.append(f"{op} {bound:g}× {against.removeprefix('row:')}")
        met.append("?" if got is None else ("met" if check(op, got, bound) else "**missed**"))
    return ", ".join(texts), ", ".join(met)


def table(parsed):
    data, units = parsed
    against = SYSTEMS[1:]
    rows = ["| workload | metric | " + " | ".join(SYSTEMS) + " | "
            + " | ".join(f"mproc/{s}" for s in against) + " | target | met? |",
            "|" + " --- |" * (2 + len(SYSTEMS) + len(against) + 2)]
    for key in data:
        workload, metric = key
        ratios = [ratio(data, key, s) for s in against]
        target, met = verdict(data, key)
        rows.append("| " + " | ".join([
            workload, f"{metric} ({units[key]})",
            *(cell(values(data, key, s)) for s in SYSTEMS),
            *("—" if r is None else f"{r:.2f}×" for r in ratios),
            target or "", met or ""]) + " |")
    notes = ["", "Cells: median (min–max) over the repetitions. — : that system has no such "
             "workload (raw has no pool or queue, shm only the transport rows; Python's Pipe "
             "is the baseline of mproc's Pipe rows)."]
    return "\n".join(rows + notes) + "\n"


def plot(parsed, png):
    """A bar chart of mproc/python and mproc/raw per workload (gnuplot, log scale)."""
    data, units = parsed
    if shutil.which("gnuplot") is None:
        return "gnuplot is not installed: ./run bench --plot installs it (gnuplot-nox)"
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        for key in data:
            r_py, r_raw = ratio(data, key, "python"), ratio(data, key, "raw")
            if r_py is None and r_raw is None:
                continue
            label = f"{key[0]}:{key[1]}"
            f.write(f'"{label}" {r_py or "NaN"} {r_raw or "NaN"}\n')
        dat = f.name
    script = f"""
set terminal pngcairo size 1400,700 noenhanced
set output '{png}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set grid ytics
set ylabel 'mproc / baseline (median; >1: mproc larger)'
set xtics rotate by -40
set title 'mproc against Python multiprocessing and a raw socketpair'
plot '{dat}' using 2:xtic(1) title 'mproc/python', '' using 3 title 'mproc/raw', 1 notitle lc rgb 'black'
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(dat)
    return f"wrote {png}"


if __name__ == "__main__":
    args = sys.argv[1:]
    png = None
    if "--plot" in args:
        png = args[args.index("--plot") + 1]
        del args[args.index("--plot"):args.index("--plot") + 2]
    path = args[0] if args else os.path.join(os.path.dirname(__file__), "out", "results.txt")
    parsed = parse(open(path))
    print(table(parsed), end="")
    if png:
        print(plot(parsed, png))
