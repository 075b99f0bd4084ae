"""Python multiprocessing's Manager, the same workloads as bench/manager.cpp:
  manager_dict_1proc  d[k] = i then d[k] over 100 keys, from the main process
  manager_dict_4proc  the same from 4 processes at once on one dict, timed from the first
                      start to the last join

Prints "RESULT python <workload> <metric> <value> <unit>" lines.
  python3 bench/python/manager.py [--quick] [--only NAME]
"""
import multiprocessing as mp
import sys
import time

from common import result, run


def set_get(d, n, prefix="k"):
    for i in range(n):
        key = f"{prefix}{i % 100}"
        d[key] = i
        if d[key] != i:
            sys.exit(2)


def worker(d, n, ident):
    set_get(d, n, f"k{ident}-")


def manager_dict_1proc(quick):
    n = 2_000 if quick else 50_000
    with mp.Manager() as m:
        d = m.dict()
        set_get(d, 200)
        t0 = time.perf_counter()
        set_get(d, n)
        result("manager_dict_1proc", "throughput", n / (time.perf_counter() - t0), "pairs/s")


def manager_dict_4proc(quick):
    n = 1_000 if quick else 20_000
    with mp.Manager() as m:
        d = m.dict()
        t0 = time.perf_counter()
        ps = [mp.Process(target=worker, args=(d, n, i)) for i in range(4)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        assert all(p.exitcode == 0 for p in ps)
        result("manager_dict_4proc", "throughput", 4 * n / (time.perf_counter() - t0), "pairs/s")


if __name__ == "__main__":
    run({"manager_dict_1proc": manager_dict_1proc, "manager_dict_4proc": manager_dict_4proc})
