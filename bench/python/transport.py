"""Python multiprocessing's Pipe and Process, the same workloads as bench/transport.cpp.

Prints "RESULT python <workload> <metric> <value> <unit>" lines.
  python3 bench/python/transport.py [--quick] [--only NAME]
"""
import multiprocessing as mp
import os
import resource
import signal
import time

from common import median, percentile, result, run


def echo(conn):
    try:
        while True:
            conn.send(conn.recv())
    except EOFError:
        pass


def counter(conn):
    n = 0
    while True:
        x = conn.recv()
        if x is None:
            break
        n += len(x) if isinstance(x, list) else 1
    conn.send(n)


def measurer(conn):
    try:
        while True:
            conn.send(len(conn.recv_bytes()))
    except EOFError:
        pass


def hello(conn):
    conn.send(1)


def child(target, ctx=mp):
    here, there = ctx.Pipe()
    p = ctx.Process(target=target, args=(there,))
    p.start()
    there.close()
    return p, here


def end(p, conn):
    conn.close()
    p.kill()
    p.join()


def pingpong(quick):
    p, conn = child(echo)
    for _ in range(1000):
        conn.send(1)
        conn.recv()
    rtt = []
    for _ in range(2000 if quick else 20000):
        t0 = time.perf_counter()
        conn.send(1)
        conn.recv()
        rtt.append((time.perf_counter() - t0) * 1e6)
    result("pingpong", "p50", percentile(rtt, 0.5), "us")
    result("pingpong", "p99", percentile(rtt, 0.99), "us")
    end(p, conn)


def oneway(quick, workload, batch):
    p, conn = child(counter)
    n = 100_000 if quick else 1_000_000
    t0 = time.perf_counter()
    if batch == 1:
        for _ in range(n):
            conn.send(1)
    else:
        for _ in range(0, n, batch):
            conn.send([1] * batch)
    conn.send(None)
    assert conn.recv() == n
    result(workload, "throughput", n / (time.perf_counter() - t0), "msg/s")
    end(p, conn)


def spawn_first_reply(quick):
    ctx = mp.get_context("spawn")
    ms = []
    for _ in range(3 if quick else 10):
        t0 = time.perf_counter()
        p, conn = child(hello, ctx)
        conn.recv()
        ms.append((time.perf_counter() - t0) * 1e3)
        p.join()
    result("spawn_first_reply", "median", median(ms), "ms")


def bandwidth(quick, workload, mib, n):
    p, conn = child(measurer)
    data = b"b" * (mib << 20)
    mibs = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.send_bytes(data)
        assert conn.recv() == len(data)
        mibs.append(mib / (time.perf_counter() - t0))
    result(workload, "median", median(mibs), "MiB/s")
    end(p, conn)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def idle_rss(quick):
    ctx = mp.get_context("spawn")
    mib = []
    for _ in range(1 if quick else 5):
        p, conn = child(echo, ctx)
        conn.send(1)
        conn.recv()
        time.sleep(0.1)
        mib.append(rss_mib(p.pid))
        end(p, conn)
    result("idle_rss", "median", median(mib), "MiB")


def spawn_n(workload, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4 * n + 256)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    t0 = time.perf_counter()
    children = [child(hello) for _ in range(n)]
    for p, conn in children:
        conn.recv()
    for p, conn in children:
        p.join()
        conn.close()
    result(workload, "total", time.perf_counter() - t0, "s")


def restart(quick):
    """What a Python program does by hand: notice the death, start a new Process."""
    p, conn = child(echo)
    ms = []
    for _ in range(5 if quick else 20):
        t0 = time.perf_counter()
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        conn.close()
        p, conn = child(echo)
        conn.send(1)
        conn.recv()
        ms.append((time.perf_counter() - t0) * 1e3)
    result("restart", "median", median(ms), "ms")
    end(p, conn)


if __name__ == "__main__":
    run({
        "pingpong": pingpong,
        "oneway_single": lambda q: oneway(q, "oneway_single", 1),
        "oneway_batched": lambda q: oneway(q, "oneway_batched", 100),
        "spawn_first_reply": spawn_first_reply,
        "bandwidth_1MiB": lambda q: bandwidth(q, "bandwidth_1MiB", 1, 20 if q else 200),
        "bandwidth_64MiB": lambda q: bandwidth(q, "bandwidth_64MiB", 64, 2 if q else 5),
        "idle_rss": idle_rss,
        "spawn_200": lambda q: spawn_n("spawn_200", 20 if q else 200),
        "spawn_1000": lambda q: spawn_n("spawn_1000", 50 if q else 1000),
        "restart": restart,
    })
