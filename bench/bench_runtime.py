"""Runtime benchmarks: repack throughput per format and GGUF dequantization speed.

Run: ``.venv/bin/python bench/bench_runtime.py [--n 4096 --k 4096 --repeat 3 --gguf-rows 4096]``;
GGUF only: ``--only gguf --gguf-rows 1024 --rounds 5 [--threads 2] [--types Q4_0 IQ3_S]``.
Prints markdown tables (recorded in docs/benchmarks.md, section "Runtime"):

* repack: ``from_checkpoint`` on the ``cpu`` backend (decode + repack to the NPU layout) per format,
  in GB/s of checkpoint bytes, next to a plain copy (``clone``) of the same tensors in the same run;
* GGUF: :func:`quantspec.runtime.gguf_dequant.dequantize` against ``gguf.quants.dequantize`` per
  type, with the speed-up and a bit-identity check of the outputs.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gq

from quantspec.runtime.gguf_dequant import SUPPORTED_TYPES, compile_policy, dequantize
from quantspec.runtime.ops import get_ops
from quantspec.runtime.schemes import linear_scheme_for
from testkit.scheme_cases import CASES


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _clone_all(tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [t.clone() for t in tensors.values()]


def bench_repack(n: int, k: int, repeat: int) -> list[str]:
    """One row per scheme case: checkpoint GB, repack GB/s, copy GB/s."""
    rows = [
        "| format (case) | checkpoint MB | repack GB/s | plain copy GB/s | copy / repack |",
        "|---|---|---|---|---|",
    ]
    ops = get_ops("cpu")
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(0)) * 0.05
    for case in CASES:
        tensors = case.write(w, torch.bfloat16)
        nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
        cls = linear_scheme_for(case.family, case.scheme)

        repack = functools.partial(
            cls.from_checkpoint,
            tensors,
            case.quant,
            out_features=n,
            in_features=k,
            model_dtype=torch.bfloat16,
            ops=ops,
        )
        copy = functools.partial(_clone_all, tensors)
        t_repack, t_copy = best_of(repack, repeat), best_of(copy, repeat)
        rows.append(
            f"| {case.id} | {nbytes / 1e6:.1f} | {nbytes / t_repack / 1e9:.2f} | {nbytes / t_copy / 1e9:.2f} "
            f"| {t_repack / t_copy:.0f}x |"
        )
    return rows


def _gguf_data(qtype: GGMLQuantizationType, rows: int, k: int) -> np.ndarray:
    w = (np.random.default_rng(0).standard_normal((rows, k)) * 0.05).astype(np.float32)
    try:
        return np.ascontiguousarray(gq.quantize(w, qtype)).view(np.uint8).reshape(rows, -1)
    except NotImplementedError:
        # Dequantize-only types: random blocks with finite fp16 scales give the same work.
        _, ts = GGML_QUANT_SIZES[qtype]
        blocks = k // GGML_QUANT_SIZES[qtype][0]
        raw = np.random.default_rng(1).integers(0, 256, size=(rows, blocks, ts), dtype=np.uint8)
        if qtype.name not in ("IQ1_M", "NVFP4", "MXFP4", "Q2_K", "Q3_K", "Q6_K", "TQ1_0", "TQ2_0"):
            raw[..., 0:2] = np.full((rows, blocks), 0.01, dtype=np.float16)[..., None].view(np.uint8)
        return raw.reshape(rows, blocks * ts)


def bench_gguf(rows: int, k: int, repeat: int, rounds: int = 1, types: list[str] | None = None) -> list[str]:
    """One row per GGML type: raw MB, gguf-py / eager / compiled ms (best of ``repeat`` per round,
    median over ``rounds``), the median of the per-round speed-ups (gguf-py and ours timed back to
    back, so the ratio survives load changes better than the absolute times), identical?, policy."""
    out = [
        "| type | raw MB | gguf-py ms | eager ms | compiled ms (compile s) | speed-up compiled (range) "
        "| speed-up eager | identical | compile policy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for qtype in SUPPORTED_TYPES:
        if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            continue
        if types and qtype.name not in types:
            continue
        raw = _gguf_data(qtype, rows, k)
        raw_t = torch.from_numpy(raw)
        ref = gq.dequantize(raw, qtype)
        t0 = time.perf_counter()
        got_c = dequantize(raw_t, qtype, compile=True).numpy()
        t_compile = time.perf_counter() - t0
        got_e = dequantize(raw_t, qtype, compile=False).numpy()
        same = np.array_equal(got_c, ref, equal_nan=True) and np.array_equal(got_e, ref, equal_nan=True)
        t_np, t_e, t_c = [], [], []
        for _ in range(rounds):
            t_np.append(best_of(lambda: gq.dequantize(raw, qtype), repeat))  # noqa: B023
            t_e.append(best_of(lambda: dequantize(raw_t, qtype, compile=False), repeat))  # noqa: B023
            t_c.append(best_of(lambda: dequantize(raw_t, qtype, compile=True), repeat))  # noqa: B023
        sp_c = [a / b for a, b in zip(t_np, t_c, strict=True)]
        sp_e = [a / b for a, b in zip(t_np, t_e, strict=True)]
        out.append(
            f"| {qtype.name} | {raw.nbytes / 1e6:.1f} | {statistics.median(t_np) * 1e3:.1f} "
            f"| {statistics.median(t_e) * 1e3:.1f} | {statistics.median(t_c) * 1e3:.2f} ({t_compile:.0f}) "
            f"| {statistics.median(sp_c):.1f}x ({min(sp_c):.1f}-{max(sp_c):.1f}) | {statistics.median(sp_e):.1f}x "
            f"| {'yes' if same else 'NO'} | {compile_policy(qtype)} |"
        )
    return out


def main() -> None:
    """Run both benchmarks and print markdown."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4096, help="out_features of the repack layer")
    p.add_argument("--k", type=int, default=4096, help="in_features of the repack layer")
    p.add_argument("--gguf-rows", type=int, default=4096)
    p.add_argument("--gguf-k", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=["repack", "gguf"], default=None)
    p.add_argument("--rounds", type=int, default=1, help="GGUF: timing rounds per type (medians are reported)")
    p.add_argument("--types", nargs="*", default=None, help="GGUF: only these type names")
    p.add_argument("--threads", type=int, default=1, help="torch threads (gguf-py's numpy is single-threaded)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # gguf-py on random blocks
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    if a.only != "gguf":
        print(f"\n### Repack ({a.n} x {a.k}, bf16 model, cpu backend)\n")
        print("\n".join(bench_repack(a.n, a.k, a.repeat)))
    if a.only != "repack":
        print(f"\n### GGUF dequantization ({a.gguf_rows} x {a.gguf_k})\n")
        print("\n".join(bench_gguf(a.gguf_rows, a.gguf_k, a.repeat, a.rounds, a.types)))


if __name__ == "__main__":
    main()
