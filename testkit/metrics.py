"""Comparisons between a quantized model and its float original (logits, weights, module outputs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class LogitStats:
    """Agreement of quantized logits with float logits on the same tokens."""

    #: Mean cosine similarity of the per-token logit vectors.
    cosine: float
    #: ``||L_q - L_f|| / ||L_f||`` over the whole batch.
    rel_err: float
    #: Fraction of tokens whose arg-max agrees.
    top1: float

    def __str__(self) -> str:
        return f"cosine={self.cosine:.5f} rel_err={self.rel_err:.4f} top1={self.top1:.3f}"


def logit_stats(quantized: Tensor, reference: Tensor) -> LogitStats:
    """Compare ``[..., vocab]`` logits (any leading shape, same for both)."""
    q = quantized.reshape(-1, quantized.size(-1)).to(torch.float32)
    r = reference.reshape(-1, reference.size(-1)).to(torch.float32)
    return LogitStats(
        cosine=float(F.cosine_similarity(q, r, dim=-1).mean()),
        rel_err=float((q - r).norm() / r.norm()),
        top1=float((q.argmax(-1) == r.argmax(-1)).to(torch.float32).mean()),
    )


@torch.no_grad()
def effective_weight(module: nn.Module, in_features: int, dtype: torch.dtype) -> Tensor:
    """The ``[N, K]`` weight a linear module applies, probed with the identity (one-hot rows).

    Exact for weight-only schemes and for dynamic symmetric per-token or per-block activation
    quantization (a one-hot row quantizes to the top code with a scale that maps it back to
    1.0); up to the output dtype's rounding. A bias would be added to every row, so probe
    bias-free layers only.
    """
    out: Tensor = module(torch.eye(in_features, dtype=dtype))
    return out.to(torch.float32).t().contiguous()


def max_rel_diff(a: Tensor, b: Tensor) -> float:
    """``max|a - b| / max|b|``."""
    b32 = b.to(torch.float32)
    return float((a.to(torch.float32) - b32).abs().max() / b32.abs().max().clamp_min(1e-12))


@torch.no_grad()
def expert_output(experts: nn.Module, x: Tensor, expert: int) -> Tensor:
    """Output of one expert of an experts module (transformers v5 interface) on every token of ``x``."""
    index = torch.full((x.size(0), 1), expert, dtype=torch.int64)
    weights = torch.ones(x.size(0), 1, dtype=x.dtype)
    out: Tensor = experts(x, index, weights)
    return out.to(torch.float32)


def swiglu_reference(x: Tensor, gate: Tensor, up: Tensor, down: Tensor) -> Tensor:
    """``down(silu(gate x) * up x)`` in float32 with ``[N, K]`` weights."""
    x32 = x.to(torch.float32)
    h = F.silu(x32 @ gate.to(torch.float32).t()) * (x32 @ up.to(torch.float32).t())
    return h @ down.to(torch.float32).t()
