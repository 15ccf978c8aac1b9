#!/usr/bin/env python3
"""How much slower this machine runs the first work after an idle pause.

compare.sh pauses between its phases, so the first requests of the send phase find the server,
the client and their CPUs idle. This script times a fixed piece of work (SHA-256 of 100 KB,
C code) right after sleeping for a pause, and again straight after, and prints the medians.
On a machine without a penalty both columns are about equal. Where the first column grows with
the pause, the first round of a benchmark phase pays it once for every thread that wakes up:
read send p99 (the 6th slowest of 600 messages, which is the first round) with that in mind.
See docs/performance.md.

    python3 bench/wakeup.py [--repeat 5] [--json FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time

PAUSES = (0.0, 0.05, 0.2, 1.0, 3.0)
DATA = b"x" * 20_000


def work() -> float:
    """Milliseconds to hash 5 × 20 KB."""
    started = time.perf_counter()
    for _ in range(5):
        hashlib.sha256(DATA).digest()
    return (time.perf_counter() - started) * 1000


def measure(repeat: int) -> dict[float, tuple[float, float]]:
    """For each pause: the median time of the first and of the second run after it."""
    for _ in range(50):
        work()
    result = {}
    for pause in PAUSES:
        first, second = [], []
        for _ in range(repeat):
            time.sleep(pause)
            first.append(work())
            second.append(work())
        result[pause] = (statistics.median(first), statistics.median(second))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="pauses of each length (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the medians as JSON")
    args = parser.parse_args()
    result = measure(args.repeat)
    print(f"{'pause':>8}  {'first run':>10}  {'second run':>10}")
    for pause, (first, second) in result.items():
        print(f"{pause:7.2f}s  {first:8.3f}ms  {second:8.3f}ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"pause_s": list(result), "first_ms": [f for f, _ in result.values()],
                       "second_ms": [s for _, s in result.values()]}, out, indent=1)


if __name__ == "__main__":
    main()
