"""What the Python side of ./run bench shares: options and RESULT lines (as bench/harness)."""
import statistics
import sys


def arg(name):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


def options():
    return "--quick" in sys.argv, arg("--only")


SUFFIX = "_" + arg("--label") if arg("--label") else ""


def result(workload, metric, value, unit):
    print(f"RESULT python {workload}{SUFFIX} {metric} {value:.3f} {unit}", flush=True)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[int(p * (len(xs) - 1))]


def run(workloads):
    quick, only = options()
    for name, fn in workloads.items():
        if only in (None, name):
            fn(quick)


median = statistics.median
