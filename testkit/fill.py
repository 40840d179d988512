"""Give a metadata-only fixture checkpoint plausible tensor data, so that it can also be loaded.

The planner fixtures (``tests/plan/fixtures.py``) write zeros: enough for planning, refused at load
(all-zero scales). :func:`fill_plausible` rewrites every safetensors file in place with seeded
values of each tensor's dtype and shape: small positive floats (weights and scales), int4-range
int8 codes, random packed words, valid group indices, E8M0 exponents near 2^0, zero offsets, and
kept ``weight_shape`` entries.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _fill(name: str, t: torch.Tensor, tensors: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    if name.endswith("weight_shape") or t.numel() == 0:
        return t
    if "offset" in name.rpartition(".")[2]:  # zero points of symmetric schemes (A8W4 refuses others)
        return torch.zeros_like(t)
    if name.endswith("g_idx"):
        module = name.rpartition(".")[0]
        scales = tensors.get(f"{module}.scales", tensors.get(f"{module}.weight_scale"))
        ng = scales.shape[0] if scales is not None and name.endswith(".g_idx") else (
            scales.shape[-1] if scales is not None else 1)
        k = t.numel()
        idx = torch.arange(k, dtype=torch.int64) // max(1, k // max(1, ng))
        return idx[torch.randperm(k, generator=gen)].to(t.dtype)
    if t.is_floating_point():
        return (0.01 + 0.04 * torch.rand(t.shape, generator=gen)).to(t.dtype)
    if t.dtype == torch.int8:
        return torch.randint(-8, 8, t.shape, generator=gen, dtype=torch.int8)
    if t.dtype == torch.uint8:
        lo, hi = (120, 130) if name.endswith("scale") else (0, 256)
        return torch.randint(lo, hi, t.shape, generator=gen, dtype=torch.int32).to(torch.uint8)
    if t.dtype == torch.int32:
        return torch.randint(-(2**31), 2**31 - 1, t.shape, generator=gen, dtype=torch.int64).to(torch.int32)
    if t.dtype == torch.int64:  # deq_scale words: the fp32 bits of small positive scales
        bits = (0.001 + 0.01 * torch.rand(t.shape, generator=gen)).view(torch.int32)
        return bits.to(torch.int64) & 0xFFFFFFFF
    return t


def fill_plausible(folder: Path, seed: int = 0) -> None:
    """Rewrite every ``*.safetensors`` under ``folder`` (recursively) with plausible data."""
    gen = torch.Generator().manual_seed(seed)
    for path in sorted(Path(folder).rglob("*.safetensors")):
        tensors = load_file(str(path))
        filled = {n: _fill(n, t, tensors, gen).contiguous() for n, t in tensors.items()}
        save_file(filled, str(path), metadata={"format": "pt"})
