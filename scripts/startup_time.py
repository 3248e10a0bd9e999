"""Measure nnshell's start-up cost: ``nnshell -c quit`` against a bare ``python -c pass``.

Prints the medians of N runs of each and the difference (target: under 0.5 s). No timing
assertion lives in the tests; this script is the measurement.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def _median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Run both commands ``--runs`` times and print the medians and the overhead."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    bare = _median_seconds([sys.executable, "-c", "pass"], args.runs)
    shell = _median_seconds([sys.executable, "-m", "nnshell", "-c", "quit"], args.runs)
    print(f"python -c pass      : {bare * 1000:7.1f} ms (median of {args.runs})")
    print(f"nnshell -c quit     : {shell * 1000:7.1f} ms (median of {args.runs})")
    print(f"start-up overhead   : {(shell - bare) * 1000:7.1f} ms (target < 500 ms)")


if __name__ == "__main__":
    main()
