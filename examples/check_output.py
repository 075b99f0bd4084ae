#!/usr/bin/env python3
"""Runs an example and checks that it exits with 0 and prints exactly the given lines."""
import argparse
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--line", action="append", default=[], help="an expected line of stdout")
    ap.add_argument("--any-order", action="store_true", help="the lines may come in any order")
    ap.add_argument("--timeout", type=float, default=50)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    run = subprocess.run(command, stdout=subprocess.PIPE, timeout=args.timeout, text=True)
    got = run.stdout.splitlines()
    want = list(args.line)
    if args.any_order:
        got, want = sorted(got), sorted(want)
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        print(f"exit code {run.returncode}, expected 0", file=sys.stderr)
        return 1
    if got != want:
        print(f"printed {got!r}, expected {want!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
