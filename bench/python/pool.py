"""Python's multiprocessing.Pool, the same workloads as bench/pool.cpp.

Prints "RESULT python <workload> <metric> <value> <unit>" lines.
  python3 bench/python/pool.py [--quick] [--only NAME]
"""
import multiprocessing as mp
import time

from common import median, result, run


def square(x):
    return x * x


def nap(ms):
    time.sleep(ms / 1000)


def pool_ready(quick):
    ms = []
    for _ in range(1 if quick else 5):
        t0 = time.perf_counter()
        with mp.Pool(4) as pool:
            pool.map(nap, [50] * 4, chunksize=1)
            ms.append((time.perf_counter() - t0) * 1e3 - 50)
    result("pool_ready", "median", median(ms), "ms")


def map_squares(quick, workload, chunksize):
    xs = range(100_000 if quick else 1_000_000)
    with mp.Pool() as pool:
        pool.map(nap, [20] * pool._processes, chunksize=1)
        t0 = time.perf_counter()
        out = pool.map(square, xs, chunksize)
        s = time.perf_counter() - t0
    assert len(out) == len(xs) and out[-1] == xs[-1] ** 2
    result(workload, "throughput", len(xs) / s, "items/s")


WORKLOADS = {
    "pool_ready": pool_ready,
    "pool_map_auto": lambda quick: map_squares(quick, "pool_map_auto", None),
    "pool_map_chunk1": lambda quick: map_squares(quick, "pool_map_chunk1", 1),
}

if __name__ == "__main__":
    run(WORKLOADS)
