"""Per-rank memory figures of the real-dimension checkpoints (``bench/gen_real_dims.py``).

    python bench/memory_figures.py DIR [--max-tokens 32768]

Prints one Markdown row per (model, target, tp, ep): the largest rank's weights, KV cache,
total against the device, and the verdict.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import quantspec

GIB = 2**30


def main() -> None:
    """Plan every model on 8 and 16 A2 (910B3) and A3 devices, with and without expert parallelism."""
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--max-tokens", type=int, default=32768)
    args = parser.parse_args()
    print("| model | target | tp | ep | weights / rank | KV / rank | total / rank (of device) | verdict | plan s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in ("deepseek-v3-w8a8", "deepseek-v3-w4a8", "qwen3-235b-a22b-w8a8", "qwen3-32b-w8a8"):
        moe = "32b" not in model
        for target, device in (("a2", "910B3"), ("a3", None)):
            for n in (8, 16):
                for ep in ((1, n) if moe else (1,)):
                    start = time.perf_counter()
                    p = quantspec.plan(args.dir / model, target=target, tp=n, ep=ep, device=device,
                                       max_tokens=args.max_tokens, allow_untested=True)
                    elapsed = time.perf_counter() - start
                    m = p.memory
                    assert m is not None
                    worst = max(m.ranks, key=lambda r: r.total)
                    verdict = {True: "fits", False: "**does not fit**", None: "not judged"}[m.fits]
                    cap = f"{m.capacity / GIB:.0f}" if m.capacity else "?"
                    print(f"| {model} | {target} | {n} | {ep} | {worst.weights / GIB:.1f} GiB | "
                          f"{worst.kv_cache / GIB:.1f} GiB | {worst.total / GIB:.1f} GiB ({cap}) | {verdict} | "
                          f"{elapsed:.2f} |")


if __name__ == "__main__":
    main()
