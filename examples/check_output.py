#!/usr/bin/env python3
"""Runs an example and checks that it exits with 0 and prints exactly the given lines.

Each expected line is either literal (--line) or a regular expression the whole line must
match (--match, for pids and other values that differ per run), in the order given. With
--differ NAME, what the group (?P<NAME>...) captured in the matched lines must all differ
(the pids of a parent and of its child, say)."""
import argparse
import re
import subprocess
import sys


class Expected(argparse.Action):
    """Keeps --line and --match in the order they were given."""

    def __call__(self, parser, namespace, value, option_string=None):
        kind = "re" if option_string == "--match" else "line"
        namespace.expected = (namespace.expected or []) + [(kind, value)]


def matches(got, want):
    kind, value = want
    return re.fullmatch(value, got) is not None if kind == "re" else got == value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--line", action=Expected, dest="expected", help="an expected line of stdout")
    ap.add_argument("--match", action=Expected, dest="expected",
                    help="a regular expression an expected line of stdout matches")
    ap.add_argument("--any-order", action="store_true", help="the lines may come in any order")
    ap.add_argument("--differ", metavar="NAME",
                    help="the values the --match group NAME captured must all differ")
    ap.add_argument("--timeout", type=float, default=50)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    run = subprocess.run(command, stdout=subprocess.PIPE, timeout=args.timeout, text=True)
    got = run.stdout.splitlines()
    want = list(args.expected or [])
    if args.any_order:  # literal lines only
        got, want = sorted(got), sorted(want, key=lambda w: w[1])
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        print(f"exit code {run.returncode}, expected 0", file=sys.stderr)
        return 1
    if len(got) != len(want) or not all(matches(g, w) for g, w in zip(got, want)):
        print(f"printed {got!r}, expected {[w[1] for w in want]!r}", file=sys.stderr)
        return 1
    if args.differ:
        captured = [m.group(args.differ) for g, (kind, value) in zip(got, want) if kind == "re"
                    for m in [re.fullmatch(value, g)] if args.differ in m.groupdict()]
        if len(captured) < 2 or len(set(captured)) != len(captured):
            print(f"{args.differ} values {captured!r} do not all differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
