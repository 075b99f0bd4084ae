#!/usr/bin/env python3
"""`mproc ps` and `mproc top` against a running demo, checked from outside.

Starts the producer-consumer demo with enough items to run for a while, then checks that
`mproc ps` lists it, and that its text, JSON, DOT and PNG show the processes the kernel says
the demo has (their pids read from /proc, not from mproc); that `mproc top` refreshes with
rates; that SIGKILLing the demo's root leaves a socket that `mproc ps` skips and the next
root removes. Usage: mproc_ps.py MPROC DEMO HELLO (paths of the built programs).
"""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time

MPROC, DEMO, HELLO = sys.argv[1:4]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def mproc(*args, timeout=30):
    return subprocess.run([MPROC, *args], capture_output=True, text=True, timeout=timeout)


def kernel_children(pid):
    """The pids whose parent is `pid`, from /proc (every thread's children list)."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out.update(int(p) for p in f.read().split())
    return out


def state_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def wait_until(what, predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"FAIL timed out waiting for {what}")


def running_children(snapshot):
    return {c["pid"] for c in snapshot["children"] if c["state"] == "running"}


run_dir = tempfile.mkdtemp(prefix="mproc-ps-test-")
os.environ["XDG_RUNTIME_DIR"] = run_dir  # this test's roots only, and nothing left behind
sock_dir = os.path.join(run_dir, "mproc")
demo = subprocess.Popen([DEMO, "--items", "10000000"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
try:
    root = demo.pid
    # The roots of this user: the demo, once its socket is there.
    wait_until("the demo's socket", lambda: os.path.exists(f"{sock_dir}/{root}.sock"))
    listing = mproc("ps")
    check(listing.returncode == 0 and re.search(rf"^{root}\s+MainProcess", listing.stdout, re.M),
          f"mproc ps lists the root {root}: {listing.stdout.strip()!r}")

    def snapshot():
        r = mproc("ps", str(root), "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    # Ten processes: five producers, five consumers, all started.
    snap = wait_until("10 running children",
                      lambda: (s := snapshot()) and len(running_children(s)) == 10 and s)
    real = kernel_children(root)
    shown = running_children(snap)
    # The kernel's list also holds the fork server; every process mproc shows is a real child.
    check(shown <= real, f"every pid shown is a child of the root: {sorted(shown)} in {sorted(real)}")
    check(len(real - shown) == 1, f"only the fork server is not shown: {sorted(real - shown)}")
    check(snap["pid"] == root and snap["role"] == "root", "the snapshot is the root's")
    names = sorted(c["name"] for c in snap["children"])
    check(names == sorted([f"producer-{i}" for i in range(5)]
                          + [f"consumers/consumer-{i}" for i in range(5)]),
          f"the children's names: {names}")
    for c in snap["children"]:
        check(c["node"]["pid"] == c["pid"] and c["node"]["role"] == "child",
              f"child {c['pid']} answered for itself")
    queues = [o for o in snap["objects"] if o["kind"] == "queue"]
    check(len(queues) == 1 and queues[0]["accepted"] > 0, f"the demo's queue: {queues}")
    sups = [o for o in snap["objects"] if o["kind"] == "supervisor"]
    check(len(sups) == 1 and {c["pid"] for c in sups[0]["children"]} <= shown,
          "the consumers' supervisor names running children")

    text = mproc("ps", str(root))
    check(text.returncode == 0, "mproc ps PID succeeds")
    for pid in shown:
        check(re.search(rf"[├└]── \S+ \(pid {pid}\)", text.stdout) is not None,
              f"the text tree shows pid {pid}")

    dot = mproc("ps", str(root), "--dot")
    check(dot.stdout.startswith("digraph mproc {"), "--dot prints a graph")
    boxes = {int(m[2]): m[1] for m in re.finditer(r'^  (n\d+) \[shape=box.*label="[^"]*\\npid (\d+) ',
                                                  dot.stdout, re.M)}
    check(set(boxes) == shown | {root}, f"the graph has a box per process: {sorted(boxes)}")
    for pid in shown:
        check(f"{boxes.get(root)} -> {boxes.get(pid)};" in dot.stdout,
              f"the graph has the edge root -> {pid}")

    png = os.path.join(run_dir, "tree.png")
    r = mproc("ps", str(root), "--png", png)
    check(r.returncode == 0, f"--png succeeds: {r.stderr.strip()}")
    with open(png, "rb") as f:
        head = f.read(8)
    check(head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 1000, "--png draws a PNG")

    top = mproc("top", str(root), "--count", "3", "--interval", "0.3")
    screens = top.stdout.count("mproc top: ")
    check(top.returncode == 0 and screens == 3, f"mproc top refreshed 3 times ({screens})")
    last = top.stdout.split("mproc top: ")[-1]
    check(re.search(r"put +\d+/s", last) is not None, f"top shows the queue's rate: {last!r}")

    # A stopped root makes the command time out, not hang; it is still a root (not stale).
    os.kill(root, signal.SIGSTOP)
    try:
        r = mproc("ps", str(root), "--timeout", "1")
        check(r.returncode == 1 and "in time" in r.stderr, f"a stopped root times out: {r.stderr.strip()!r}")
        r = mproc("ps", "--timeout", "1")
        check(r.returncode == 0 and "in time" in r.stderr, f"the listing goes on: {r.stderr.strip()!r}")
    finally:
        os.kill(root, signal.SIGCONT)
    check(mproc("ps", str(root)).returncode == 0, "resumed, it answers again")

    st = os.stat(f"{sock_dir}/{root}.sock")
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, "the socket is 0600")
    check(stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700, "its directory is 0700")

    # SIGKILL from outside: the socket stays behind, unlisted, until the next root starts.
    demo.send_signal(signal.SIGKILL)
    demo.wait()
    wait_until("the demo's children to go", lambda: all(state_of(p) is None for p in real))
    check(os.path.exists(f"{sock_dir}/{root}.sock"), "a killed root's socket stays")
    listing = mproc("ps")
    check(str(root) not in listing.stdout, f"mproc ps skips it: {listing.stdout.strip()!r}")
    r = mproc("ps", str(root))
    check(r.returncode == 1 and "no mproc root" in r.stderr, f"asking it fails: {r.stderr.strip()!r}")
    hello = subprocess.run([HELLO], capture_output=True, text=True, timeout=60)
    check(hello.returncode == 0, "another root runs")
    check(not os.path.exists(f"{sock_dir}/{root}.sock"), "and removed the dead root's socket")

    # Asked again and again while its consumers are SIGKILLed every 30 ms: every answer
    # comes, the demo loses nothing, and asking never gets in the way of its end.
    killed = subprocess.Popen([DEMO, "--items", "300000", "--kill-every", "30"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_until("the killed demo's socket",
               lambda: os.path.exists(f"{sock_dir}/{killed.pid}.sock") or killed.poll() is not None)
    asked = answered = 0
    while killed.poll() is None:
        r = mproc("ps", str(killed.pid), "--json")
        asked += 1
        if r.returncode == 0 and json.loads(r.stdout)["pid"] == killed.pid:
            answered += 1
        elif killed.poll() is None and os.path.exists(f"{sock_dir}/{killed.pid}.sock"):
            # Not ending (its socket goes first when it ends): the ask must have been answered.
            check(False, f"an ask during the kills failed: {r.stderr.strip()!r}")
    out = killed.communicate()[0]
    check(killed.returncode == 0 and "lost=0" in out, f"the killed demo lost nothing: {out.strip()[-120:]!r}")
    check(answered >= 1, f"{answered} of {asked} asks during the kills answered")
    check(os.listdir(sock_dir) == [], f"nothing is left: {os.listdir(sock_dir)}")
finally:
    if demo.poll() is None:
        demo.kill()
        demo.wait()
    subprocess.run(["rm", "-rf", run_dir])

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
