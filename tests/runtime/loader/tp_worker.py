"""One tensor-parallel rank (run by test_tp.py): load a shard, run modules, reduce, save on rank 0.

Environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (gloo rendezvous), TP_CASES (JSON list
of [checkpoint folder, module name, "column"|"row"|"moe"]), TP_OUT (safetensors file of rank 0).
"""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from quantspec.runtime.loader import load_quantized
from tests.runtime.loader.tp_inputs import inputs_for


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cases: list[list[str]] = json.loads(os.environ["TP_CASES"])
    loaded = {path: load_quantized(path, "cpu", tp_rank=rank, tp_size=world, progress=False)
              for path in dict.fromkeys(c[0] for c in cases)}
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for path, name, how in cases:
            module = loaded[path].modules[name]
            args = inputs_for(how, module, rank, world)
            y = module(*args).to(torch.float32).contiguous()
            if how == "column":
                parts = [torch.empty_like(y) for _ in range(world)]
                dist.all_gather(parts, y)
                y = torch.cat(parts, dim=-1)
            else:
                dist.all_reduce(y)
            out[f"{path}|{name}"] = y
    if rank == 0:
        save_file(out, os.environ["TP_OUT"])
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
