"""Time ``load_quantized`` several times in one process (no interpreter or import cost in the figure).

    python bench/bench_load_inprocess.py DIR [--runs 6]

``DIR`` is a checkpoint such as the one ``bench/bench_load.py --dir DIR`` writes. Prints the best
and the median of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    """Load ``DIR`` ``--runs`` times on the cpu backend and print best / median seconds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    from quantspec.runtime.loader import load_quantized

    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        qm = load_quantized(args.dir, "cpu", progress=False)
        times.append(time.perf_counter() - start)
        del qm
    print(f"best {min(times):.3f} s, median {statistics.median(times):.3f} s over {args.runs} loads")


if __name__ == "__main__":
    main()
