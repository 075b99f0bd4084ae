"""Python multiprocessing's patterns, the same workloads as bench/patterns.cpp:
  producer_consumer  5 producer and 5 consumer processes, 100,000 items per producer through
                     one Queue, timed from the first start to the last join
  lock_uncontended   acquire + release of a Lock nobody else uses
  lock_contended     two processes adding one at a time to a shared Value under one Lock

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


def lock_uncontended(quick):
    n = 100_000 if quick else 1_000_000
    lock = mp.Lock()
    t0 = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    result("lock_uncontended", "throughput", n / (time.perf_counter() - t0), "pairs/s")


def lock_adder(lock, counter, n):
    for _ in range(n):
        lock.acquire()
        counter.value += 1
        lock.release()


def lock_contended(quick):
    n = 20_000 if quick else 200_000
    lock = mp.Lock()
    counter = mp.Value("q", 0, lock=False)
    t0 = time.perf_counter()
    adders = [mp.Process(target=lock_adder, args=(lock, counter, n)) for _ in range(2)]
    for p in adders:
        p.start()
    for p in adders:
        p.join()
    secs = time.perf_counter() - t0
    assert counter.value == 2 * n, counter.value
    result("lock_contended", "throughput", 2 * n / secs, "increments/s")


if __name__ == "__main__":
    run({"producer_consumer": producer_consumer, "lock_uncontended": lock_uncontended,
         "lock_contended": lock_contended})
