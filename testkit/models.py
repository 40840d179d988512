"""Tiny transformers models with seeded random weights, for end-to-end tests, demos and benchmarks.

The dimensions satisfy every kernel constraint of the support matrix at once, so that one
float model can be exported in every format: K and N are multiples of 64 (MX blocks of 32
consumed in pairs), of 32 (GGUF legacy blocks, AWQ/GPTQ words, NZ alignment) and of 128
(group size 128 with ``32 <= G < K`` for the AWQ kernel path). Embeddings and ``lm_head`` are
untied so that each producer's choice for the head is visible in the checkpoint.

:func:`checkpoint_state_dict` gives the tensors under the names a producer writes on disk:
transformers v5 keeps MoE experts as fused 3-D parameters (``mlp.experts.gate_up_proj
[E, 2I, H]`` with gate first, ``down_proj [E, H, I]``), while every producer library of the
matrix quantizes per-expert 2-D modules, so experts are split here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, cast

import torch
from torch import Tensor, nn
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    MixtralConfig,
    PretrainedConfig,
    PreTrainedModel,
    Qwen3MoeConfig,
)


class TinyArch(StrEnum):
    """Architectures of the tiny models."""

    LLAMA = "llama"
    QWEN3_MOE = "qwen3_moe"
    MIXTRAL = "mixtral"


#: Hidden size, dense intermediate size, MoE intermediate size, vocabulary.
HIDDEN = 256
INTERMEDIATE = 512
MOE_INTERMEDIATE = 256
VOCAB = 512
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 64
EXPERTS = 4
TOP_K = 2

_COMMON: dict[str, Any] = {
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "head_dim": HEAD_DIM,
    "vocab_size": VOCAB,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
    "rms_norm_eps": 1e-6,
    # Larger than the usual 0.02 so that logits are not all near zero: the bounds of the
    # end-to-end tests then compare a meaningful signal, not rounding noise.
    "initializer_range": 0.05,
}


def tiny_config(arch: TinyArch, dtype: torch.dtype = torch.bfloat16) -> PretrainedConfig:
    """The configuration of a tiny model of ``arch`` stored in ``dtype``."""
    dtype_name = str(dtype).removeprefix("torch.")
    cfg: PretrainedConfig
    match arch:
        case TinyArch.LLAMA:
            cfg = LlamaConfig(intermediate_size=INTERMEDIATE, **_COMMON)
        case TinyArch.QWEN3_MOE:
            cfg = Qwen3MoeConfig(
                intermediate_size=INTERMEDIATE,
                moe_intermediate_size=MOE_INTERMEDIATE,
                num_experts=EXPERTS,
                num_experts_per_tok=TOP_K,
                norm_topk_prob=True,
                decoder_sparse_step=1,
                mlp_only_layers=[],
                **_COMMON,
            )
        case TinyArch.MIXTRAL:
            cfg = MixtralConfig(
                intermediate_size=MOE_INTERMEDIATE,
                num_local_experts=EXPERTS,
                num_experts_per_tok=TOP_K,
                **_COMMON,
            )
    cfg.dtype = dtype_name
    return cfg


def build_float_model(arch: TinyArch, *, seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> PreTrainedModel:
    """A tiny causal LM of ``arch`` with seeded random weights, in ``dtype``, in eval mode.

    Norm weights are randomised too (transformers initialises them to one), so that a loader
    that drops or misplaces a norm changes the logits.
    """
    cfg = tiny_config(arch, dtype)
    torch.manual_seed(seed)
    model = cast(PreTrainedModel, AutoModelForCausalLM.from_config(cfg, dtype=torch.float32))  # type: ignore[no-untyped-call]
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=gen))
            elif "experts" in name or name.endswith("mlp.gate.weight"):
                # Fused 3-D experts and the router are left zero/empty by some v5 initialisers.
                param.copy_(cfg.initializer_range * torch.randn(param.shape, generator=gen))
    # nn.Module.to: transformers' typed wrapper of .to() does not accept a bare dtype.
    nn.Module.to(model, dtype)
    # from_config(dtype=float32) recorded float32; config.json must name the stored dtype.
    model.config.dtype = dtype
    model.train(False)
    return model


_FUSED_GATE_UP = re.compile(r"^(?P<pre>.+\.)mlp\.experts\.gate_up_proj$")
_FUSED_DOWN = re.compile(r"^(?P<pre>.+\.)mlp\.experts\.down_proj$")
_MIXTRAL_ROUTER = re.compile(r"^(?P<pre>.+\.)mlp\.gate\.weight$")


def expert_names(arch: TinyArch) -> tuple[str, str, str, str]:
    """``(container, gate, up, down)`` module names of one expert in the on-disk checkpoint."""
    if arch is TinyArch.MIXTRAL:
        return "block_sparse_moe.experts", "w1", "w3", "w2"
    return "mlp.experts", "gate_proj", "up_proj", "down_proj"


def checkpoint_state_dict(model: PreTrainedModel, arch: TinyArch) -> dict[str, Tensor]:
    """The float tensors under the names producers write on disk (per-expert 2-D MoE weights).

    Mixtral's v5 ``mlp`` block is written under its checkpoint name ``block_sparse_moe``
    (router ``block_sparse_moe.gate``, experts ``w1``/``w3``/``w2``).
    """
    container, gate, up, down = expert_names(arch)
    out: dict[str, Tensor] = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().contiguous()
        if m := _FUSED_GATE_UP.match(name):
            inter = t.size(1) // 2
            for e in range(t.size(0)):
                out[f"{m['pre']}{container}.{e}.{gate}.weight"] = t[e, :inter].contiguous()
                out[f"{m['pre']}{container}.{e}.{up}.weight"] = t[e, inter:].contiguous()
        elif m := _FUSED_DOWN.match(name):
            for e in range(t.size(0)):
                out[f"{m['pre']}{container}.{e}.{down}.weight"] = t[e].contiguous()
        elif arch is TinyArch.MIXTRAL and (m := _MIXTRAL_ROUTER.match(name)):
            out[f"{m['pre']}block_sparse_moe.gate.weight"] = t
        else:
            out[name] = t
    return out


def token_batch(*, batch: int = 2, seq: int = 16, seed: int = 1234) -> Tensor:
    """A fixed ``[batch, seq]`` batch of token ids for logit comparisons."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch, seq), generator=gen)


@torch.no_grad()
def logits(model: PreTrainedModel, tokens: Tensor) -> Tensor:
    """``[batch, seq, vocab]`` float32 logits of ``model`` on ``tokens`` (no KV cache)."""
    out: Tensor = model(input_ids=tokens, use_cache=False).logits
    return out.to(torch.float32)
