"""One expert-parallel rank (run by test_ep.py): load this rank's experts, run the model, save logits.

Environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (gloo rendezvous), EP_CKPT (checkpoint
folder), EP_OUT (safetensors file rank 0 writes the logits to).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

from quantspec.runtime.loader import load_quantized
from testkit.models import logits, token_batch


def moe_inputs(experts: int, tokens: int = 24, hidden: int = 256) -> tuple[torch.Tensor, ...]:
    """Fixed tokens, top-2 expert ids and routing weights for one MoE layer."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(tokens, hidden, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(experts, generator=gen)[:2] for _ in range(tokens)])
    wt = torch.softmax(torch.randn(tokens, 2, generator=gen), -1).to(torch.bfloat16)
    return x, idx, wt


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world)
    path = os.environ["EP_CKPT"]
    qm = load_quantized(path, "cpu", ep_rank=rank, ep_size=world, progress=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))  # type: ignore[no-untyped-call]
    experts = qm.modules["model.layers.0.mlp.experts"]
    x, idx, wt = moe_inputs(experts.num_experts)
    with torch.no_grad():
        layer = experts(x, idx, wt).to(torch.float32).contiguous()
    model = qm.install(model)
    out = logits(model, token_batch()).to(torch.float32).contiguous()
    local = {name: len(m.local_ids) for name, m in qm.modules.items() if hasattr(m, "local_ids")}
    if rank == 0:
        save_file({"logits": out, "layer": layer, "local_experts": torch.tensor(sorted(local.values()))},
                  os.environ["EP_OUT"])
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
