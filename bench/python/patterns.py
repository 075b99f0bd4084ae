"""Python multiprocessing's Queue, the same workload as bench/patterns.cpp's producer_consumer:
5 producer and 5 consumer processes, 100,000 items per producer, timed from the first start
to the last join.

Prints "RESULT python <workload> <metric> <value> <unit>" lines.
  python3 bench/python/patterns.py [--quick] [--only NAME]
"""
import multiprocessing as mp
import time

from common import result, run


def producer(q, ident, n):
    for i in range(n):
        q.put((i, ident))


def consumer(q):
    while q.get() is not None:
        pass


def producer_consumer(quick):
    n = 10_000 if quick else 100_000
    t0 = time.perf_counter()
    q = mp.Queue()
    producers = [mp.Process(target=producer, args=(q, p, n)) for p in range(5)]
    consumers = [mp.Process(target=consumer, args=(q,)) for _ in range(5)]
    for p in producers + consumers:
        p.start()
    for p in producers:
        p.join()
    for _ in consumers:
        q.put(None)
    for c in consumers:
        c.join()
    result("producer_consumer", "throughput", 5 * n / (time.perf_counter() - t0), "items/s")


if __name__ == "__main__":
    run({"producer_consumer": producer_consumer})
