#!/usr/bin/env python3
"""Runs a program and SIGKILLs random descendants of it from outside, every N ms.

    chaos.py [--every MS] [--max-kills N] [--match REGEX] [--timeout S] [--expect REGEX] [--exit CODES]
             [--seed N] -- PROGRAM ARGS...

A kill comes from this process, at a moment the program does not choose, as `kill -9` from a
shell would. Targets are the program's descendants (never the program itself) whose command
line or kernel name (comm) matches --match (mproc children carry their process name in argv[3]
when exec'd, e.g. "consumers/consumer-2", and its last part as comm, e.g. "consumer-2").

It fails (exit 1, with the reason on stderr) when
- the program runs longer than --timeout (a hang): the whole tree is then killed;
- the program's exit code is not one of --exit (default 0), or a signal ended it;
- its output does not match --expect;
- fewer than --min-kills kills landed (the targets were not found);
- a descendant stays a zombie for more than 3 s while the program runs (not reaped);
- any descendant outlives the program by more than 5 s (an orphan), or is a zombie then.
This process is a child subreaper (PR_SET_CHILD_SUBREAPER), so orphans come to it, are
seen, and are reaped: it leaves nothing behind either way.
"""
import argparse
import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
ORPHAN_GRACE_S = 5.0
ZOMBIE_GRACE_S = 3.0  # a killed child is reaped by its parent's I/O loop within milliseconds


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("chaos: prctl(PR_SET_CHILD_SUBREAPER) failed")


def process_table():
    """pid -> (ppid, state, cmdline and comm) for every process we can read."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        table[int(name)] = (int(rest[1]), rest[0], cmdline + " comm=" + comm)
    return table


def descendants(root, table=None):
    table = table or process_table()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return [(pid, table[pid]) for pid in out]


def kill_tree(root):
    for pid, _ in descendants(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def reap_orphans():
    """Reaps every ended child of ours (orphans reparented to us); returns how many."""
    n = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        n += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=float, default=50, help="ms between kills")
    ap.add_argument("--match", default=".", help="regex on the target's command line and comm")
    ap.add_argument("--timeout", type=float, default=60, help="s before the run is a hang")
    ap.add_argument("--min-kills", type=int, default=0,
                    help="fail unless at least this many kills landed (a run that killed "
                         "nothing proved nothing)")
    ap.add_argument("--max-kills", type=int, default=0,
                    help="stop killing after this many (0: never), for a program whose work "
                         "must get done between two kills: on a slow or shared CPU it could "
                         "otherwise never finish one piece, a livelock of the test's making")
    ap.add_argument("--expect", default=None, help="regex the program's output must match")
    ap.add_argument("--exit", default="0", help="accepted exit codes, comma-separated")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        ap.error("no program given")
    rng = random.Random(a.seed)
    match = re.compile(a.match)
    accepted = {int(x) for x in a.exit.split(",")}

    become_subreaper()
    out = tempfile.TemporaryFile()
    prog = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    start = time.monotonic()
    kills, failures = 0, []
    zombie_since = {}  # pid -> when first seen as a zombie
    while prog.poll() is None:
        if time.monotonic() - start > a.timeout:
            failures.append(f"hang: still running after {a.timeout:g} s")
            if os.environ.get("CHAOS_STACKS"):  # where it hangs, for whoever debugs it
                subprocess.run(["gdb", "-p", str(prog.pid), "-batch", "-ex",
                                "thread apply all bt"], stdout=sys.stderr, stderr=sys.stderr)
            kill_tree(prog.pid)
            prog.kill()
            break
        time.sleep(a.every / 1000.0)
        tree = descendants(prog.pid)
        now = time.monotonic()
        zombies = {pid for pid, (_, st, _) in tree if st == "Z"}
        zombie_since = {pid: zombie_since.get(pid, now) for pid in zombies}
        stale = [pid for pid, t in zombie_since.items() if now - t > ZOMBIE_GRACE_S]
        if stale and not any("zombie" in f for f in failures):
            failures.append(f"zombie(s) not reaped for {ZOMBIE_GRACE_S:g} s: {stale}")
        targets = [pid for pid, (_, st, cmd) in tree if st != "Z" and match.search(cmd)]
        if a.max_kills and kills >= a.max_kills:
            continue
        if targets and prog.poll() is None:
            try:
                os.kill(rng.choice(targets), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
    code = prog.wait()
    elapsed = time.monotonic() - start

    # Children die with their parent (PR_SET_PDEATHSIG, EOF on the link), not instantly.
    deadline = time.monotonic() + ORPHAN_GRACE_S
    me = os.getpid()
    while True:
        reap_orphans()
        left = descendants(me)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        failures.append("left behind: " + "; ".join(
            f"pid {pid} state {st} [{cmd.strip()}]" for pid, (_, st, cmd) in left))
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        reap_orphans()

    out.seek(0)
    text = out.read().decode(errors="replace")
    if code not in accepted:
        what = f"signal {-code}" if code < 0 else f"exit code {code}"
        failures.append(f"ended with {what}, expected exit code in {sorted(accepted)}")
    if kills < a.min_kills:
        failures.append(f"{kills} kills, fewer than --min-kills {a.min_kills}: no target matched "
                        f"{a.match!r}?")
    if a.expect and not re.search(a.expect, text, re.M):
        failures.append(f"output does not match {a.expect!r}")
    print(f"chaos: {' '.join(command)}: {kills} kills, exit {code}, {elapsed:.1f} s")
    if failures:
        tail = "\n".join(text.splitlines()[-30:])
        print(f"--- last lines of its output ---\n{tail}\n---", file=sys.stderr)
        for f in failures:
            print(f"chaos: FAILED: {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
