"""Deterministic inputs of the tensor-parallel test, full or this rank's K slice."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def full_input(features: int) -> Tensor:
    """``[5, features]`` activations, the same in every process."""
    return torch.randn(5, features, generator=torch.Generator().manual_seed(features)).to(torch.bfloat16)


def routing(experts: int) -> tuple[Tensor, Tensor]:
    """Fixed top-2 routing of 5 tokens."""
    gen = torch.Generator().manual_seed(7)
    idx = torch.stack([torch.randperm(experts, generator=gen)[:2] for _ in range(5)])
    return idx, torch.softmax(torch.randn(5, 2, generator=gen), -1).to(torch.bfloat16)


def inputs_for(how: str, module: nn.Module, rank: int, world: int) -> tuple[Tensor, ...]:
    """Arguments of ``module`` on ``rank``: row-parallel layers take their K slice of the input."""
    if how == "moe":
        hidden = int(module.hidden_dim)  # type: ignore[arg-type]
        return (full_input(hidden), *routing(int(module.num_experts)))  # type: ignore[arg-type]
    k = int(module.in_features)  # type: ignore[arg-type]
    if how == "row":
        return (full_input(k * world)[:, rank * k:(rank + 1) * k],)
    return (full_input(k),)
