"""W4A8 MoE through the loader: w13 and w2 with different schemes, and tensor-parallel slices."""

from __future__ import annotations

from pathlib import Path

import torch

from quantspec.runtime.loader import load_quantized
from quantspec.runtime.moe import QuantizedExperts
from quantspec.runtime.moe.groups import Int8DynamicExperts
from quantspec.runtime.moe.groups_int4 import W4A8Experts
from testkit.models import TinyArch, logits, token_batch
from tests.runtime.loader.ckpt import (
    Quantizer,
    fake_quant_reference,
    meta_model,
    w4a8_pairs,
    w8a8_dynamic,
    write_modelslim,
)


def _mixed(module: str) -> tuple[str, Quantizer]:
    """Experts' gate/up W4A8, down W8A8; attention W8A8."""
    if ".experts." in module and not module.endswith("down_proj"):
        return "W4A8_DYNAMIC", lambda w: w4a8_pairs(w, down=False)
    return "W8A8_DYNAMIC", w8a8_dynamic


def _all_w4a8(module: str) -> tuple[str, Quantizer]:
    if ".experts." in module:
        down = module.endswith("down_proj")
        return "W4A8_DYNAMIC", lambda w: w4a8_pairs(w, down=down)
    return "W8A8_DYNAMIC", w8a8_dynamic


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_w13_and_w2_with_different_schemes(tmp_path: Path) -> None:
    ref = write_modelslim(tmp_path, TinyArch.QWEN3_MOE, choose=_mixed)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    experts = qm.modules["model.layers.0.mlp.experts"]
    assert isinstance(experts, QuantizedExperts)
    assert isinstance(experts.w13, W4A8Experts) and isinstance(experts.w2, Int8DynamicExperts)
    assert experts.w13.weight.dtype == torch.int32 and experts.w13.weight_scale.dtype == torch.int64
    fake = fake_quant_reference(qm, ref)
    model = qm.install(meta_model(ref))
    tokens = token_batch()
    # only int8 activation quantization differs (it flips a few top-k choices); a wrong layout is ~1.0
    assert _rel(logits(model, tokens), logits(fake, tokens)) < 0.12


def test_w4a8_tensor_parallel_slices(tmp_path: Path) -> None:
    """Two ranks' partial expert outputs add up to the unsharded output (scale_bias slices of w2)."""
    write_modelslim(tmp_path, TinyArch.QWEN3_MOE, choose=_all_w4a8)
    name = "model.layers.1.mlp.experts"
    full = load_quantized(tmp_path, "cpu", progress=False).modules[name]
    parts = [load_quantized(tmp_path, "cpu", tp_rank=r, tp_size=2, progress=False).modules[name] for r in (0, 1)]
    assert isinstance(parts[0], QuantizedExperts) and isinstance(parts[0].w2, W4A8Experts)
    assert parts[0].w2.k == 128 and parts[0].w2.scale_bias.shape == (4, 256)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 256, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(4, generator=gen)[:2] for _ in range(6)])
    w = torch.softmax(torch.randn(6, 2, generator=gen), -1).to(torch.bfloat16)
    with torch.no_grad():
        want = full(x, idx, w).float()
        got = parts[0](x, idx, w).float() + parts[1](x, idx, w).float()
    assert _rel(got, want) < 0.03
