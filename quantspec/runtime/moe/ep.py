"""Expert parallelism on the op layer: one rank's routed experts, the others' reached through
``torch.distributed``.

Each rank holds the experts the plan places on it (vLLM's linear expert map) and a global ->
local id map. Every rank routes all its tokens (the router is replicated); pairs whose expert
lives elsewhere get weight 0 on this rank, so each rank's output is its experts' share of the
combined output, and an all-reduce over the expert-parallel group sums the shares: the same
result as dispatching the tokens to the experts' ranks and combining them back (what the
engines' all-to-all / MC2 dispatch does on the NPU, with less traffic). On the cpu backend the
group is gloo.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from quantspec.runtime.moe.base import QuantizedExperts


class ExpertParallelExperts(nn.Module):
    """The routed experts of one expert-parallel rank (drop-in for a transformers experts module)."""

    global_to_local: Tensor

    def __init__(self, local: QuantizedExperts, *, local_ids: tuple[int, ...], num_experts: int, ep_size: int,
                 group: Any = None) -> None:
        super().__init__()
        self.local = local
        self.local_ids = local_ids
        self.num_experts = num_experts
        self.ep_size = ep_size
        self.group = group
        table = torch.full((num_experts,), -1, dtype=torch.int64)
        table[list(local_ids)] = torch.arange(len(local_ids), dtype=torch.int64)
        self.register_buffer("global_to_local", table, persistent=False)

    def forward(self, hidden_states: Tensor, top_k_index: Tensor, top_k_weights: Tensor) -> Tensor:
        """This rank's experts' share of the MoE output, summed over the expert-parallel ranks."""
        local = self.global_to_local[top_k_index.to(torch.int64)]
        mine = local >= 0
        out: Tensor = self.local(hidden_states, torch.where(mine, local, 0),
                                 torch.where(mine, top_k_weights, torch.zeros_like(top_k_weights)))
        if self.ep_size > 1:
            import torch.distributed as dist

            total = out.to(torch.float32)  # summed in fp32: gloo's reductions are float32-exact
            dist.all_reduce(total, group=self.group)
            out = total.to(out.dtype)
        return out

    def extra_repr(self) -> str:
        return f"local experts {len(self.local_ids)} of {self.num_experts}, ep_size={self.ep_size}"
