"""Tiny checkpoints for the loader tests, written with the runtime writers and safetensors."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor
from transformers import AutoModelForCausalLM, PreTrainedModel

from testkit import writers as W
from testkit.models import TinyArch, build_float_model, checkpoint_state_dict

Quantizer = Callable[[Tensor], dict[str, Tensor]]


def is_quantized_linear(name: str, t: Tensor) -> bool:
    """Linear weights a producer quantizes: 2-D, not embeddings, lm_head or routers."""
    return (name.endswith(".weight") and t.dim() == 2 and "embed" not in name and "lm_head" not in name
            and not name.endswith("gate.weight"))


def w8a8_dynamic(w: Tensor) -> dict[str, Tensor]:
    """ModelSlim W8A8_DYNAMIC tensors of a bf16 model."""
    return W.modelslim_w8a8_dynamic(w, model_dtype=torch.bfloat16)


def write_modelslim(out: Path, arch: TinyArch, label: str = "W8A8_DYNAMIC",
                    quantize: Quantizer = w8a8_dynamic, *, seed: int = 0,
                    choose: Callable[[str], tuple[str, Quantizer]] | None = None) -> PreTrainedModel:
    """A ModelSlim checkpoint of a tiny ``arch`` model; returns the float model it came from.

    ``choose(module)`` may pick a (label, quantizer) per module (mixed checkpoints).
    """
    model = build_float_model(arch, seed=seed)
    tensors: dict[str, Tensor] = {}
    desc: dict[str, str] = {"model_quant_type": label, "version": "1.0.0"}
    for name, t in checkpoint_state_dict(model, arch).items():
        module = name.rsplit(".", 1)[0]
        if is_quantized_linear(name, t):
            lab, fn = choose(module) if choose else (label, quantize)
            for suffix, q in fn(t).items():
                tensors[f"{module}.{suffix}"] = q.contiguous()
                desc[f"{module}.{suffix}"] = lab
        else:
            tensors[name] = t.contiguous()
            desc[name] = "FLOAT"
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"))
    (out / "quant_model_description.json").write_text(json.dumps(desc))
    model.config.save_pretrained(out)
    return model


def write_gptq(out: Path, arch: TinyArch, *, group_size: int = 128, seed: int = 0) -> PreTrainedModel:
    """A GPTQ (4-bit, symmetric, v1) checkpoint of a tiny ``arch`` model."""
    model = build_float_model(arch, seed=seed)
    tensors: dict[str, Tensor] = {}
    for name, t in checkpoint_state_dict(model, arch).items():
        module = name.rsplit(".", 1)[0]
        if is_quantized_linear(name, t):
            for suffix, q in W.gptq(t, bits=4, group_size=group_size, sym=True).items():
                tensors[f"{module}.{suffix}"] = q.contiguous()
        else:
            tensors[name] = t.contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"))
    model.config.quantization_config = {"quant_method": "gptq", "bits": 4, "group_size": group_size,
                                        "desc_act": False, "sym": True, "lm_head": False,
                                        "dynamic": {r"-:.*mlp\.gate$": {}}}
    model.config.save_pretrained(out)
    return model


def write_float(out: Path, arch: TinyArch, *, seed: int = 0) -> PreTrainedModel:
    """An unquantized checkpoint (per-expert MoE tensors, as producers write them)."""
    model = build_float_model(arch, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint_state_dict(model, arch).items()},
              str(out / "model.safetensors"))
    model.config.save_pretrained(out)
    return model


def meta_model(model: PreTrainedModel) -> PreTrainedModel:
    """An empty model of the same architecture on the meta device."""
    with torch.device("meta"):
        empty: PreTrainedModel = AutoModelForCausalLM.from_config(model.config)  # type: ignore[no-untyped-call]
    return empty


@torch.no_grad()
def fake_quant_reference(qm: object, ref: PreTrainedModel) -> PreTrainedModel:
    """``ref`` with every weight replaced by what the loaded modules compute (weights only).

    A linear's effective weight is its output on the identity matrix; an experts group's is its
    output on one identity block per expert. Comparing the installed model with this reference
    isolates the loader's plumbing from quantization error (activation quantization remains).
    """
    from quantspec.runtime.moe import QuantizedExperts
    from quantspec.runtime.schemes import LinearScheme

    model = copy.deepcopy(ref)
    params = dict(model.named_parameters())
    for name, mod in qm.modules.items():  # type: ignore[attr-defined]
        target = name.replace(".block_sparse_moe.", ".mlp.")
        if isinstance(mod, LinearScheme):
            eye = torch.eye(mod.in_features, dtype=torch.bfloat16)
            params[f"{target}.weight"].copy_(mod.forward_2d(eye).t())
        elif isinstance(mod, QuantizedExperts):
            for group, pname in ((mod.w13, "gate_up_proj"), (mod.w2, "down_proj")):
                e, k = group.experts, group.k
                eye = torch.eye(k, dtype=torch.bfloat16).repeat(e, 1)
                out = group(eye, torch.full((e,), k, dtype=torch.int64))
                params[f"{target}.{pname}"].copy_(out.reshape(e, k, -1).transpose(1, 2))
    return model


def w4a8_pairs(w: Tensor, *, down: bool) -> dict[str, Tensor]:
    """ModelSlim W4A8_DYNAMIC ``version 1.0.0``: int4 pairs along N and the precomputed scale_bias
    (``[N, 1]``; ``down_proj``: ``[N, 16]``, one column per tensor-parallel slice of K)."""
    from quantspec.runtime import numerics as nm

    t = W.modelslim_w4a4_dynamic(w, pairs=True)
    q = nm.unpack_int4_pairs(t["weight"], dim=0).to(torch.float32)
    s = t["weight_scale"].to(torch.float32)
    if down:
        t["scale_bias"] = 8.0 * (q.reshape(q.size(0), 16, -1) * s.unsqueeze(-1)).sum(-1)
    else:
        t["scale_bias"] = 8.0 * (q * s).sum(1, keepdim=True)
    return t


def llama_w8a8(path: Path) -> PreTrainedModel:
    """Maker of the shared ModelSlim W8A8_DYNAMIC Llama checkpoint."""
    return write_modelslim(path, TinyArch.LLAMA)


def qwen3_w8a8(path: Path) -> PreTrainedModel:
    """Maker of the shared ModelSlim W8A8_DYNAMIC Qwen3-MoE checkpoint."""
    return write_modelslim(path, TinyArch.QWEN3_MOE)


def _static(w: Tensor) -> dict[str, Tensor]:
    """ModelSlim W8A8 (static) tensors with a bias folded into quant_bias and a non-zero input offset."""
    bias = torch.randn(w.size(0), generator=torch.Generator().manual_seed(w.size(0)))
    return W.modelslim_w8a8_static(w, model_dtype=torch.bfloat16, input_scale=4 / 127, input_offset=3, bias=bias)


def mixed_choice(module: str) -> tuple[str, Quantizer]:
    """MLP modules W8A8 static, the rest W8A8_DYNAMIC."""
    return ("W8A8", _static) if ".mlp." in module else ("W8A8_DYNAMIC", w8a8_dynamic)


def llama_mixed(path: Path) -> PreTrainedModel:
    """Maker of the shared mixed (W8A8 static MLP, W8A8_DYNAMIC attention) Llama checkpoint."""
    return write_modelslim(path, TinyArch.LLAMA, choose=mixed_choice)


def add_c8_kv_cache(path: Path, layers: int) -> None:
    """Add ModelSlim C8 KV-cache scales/offsets (per KV channel) to a checkpoint in place."""
    from safetensors.torch import load_file

    sd = load_file(str(path / "model.safetensors"))
    desc = json.loads((path / "quant_model_description.json").read_text())
    desc["kv_cache_type"] = "C8"
    for i in range(layers):
        for proj in ("k_proj", "v_proj"):
            for key, value in (("kv_cache_scale", torch.full((128,), 0.02)), ("kv_cache_offset", torch.zeros(128))):
                name = f"model.layers.{i}.self_attn.{proj}.{key}"
                sd[name] = value.to(torch.bfloat16)
                desc[name] = "W8A8_DYNAMIC"
    save_file(sd, str(path / "model.safetensors"))
    (path / "quant_model_description.json").write_text(json.dumps(desc))


def llama_static(path: Path) -> PreTrainedModel:
    """Maker of a Llama checkpoint with W8A8 static MLP layers (no bias; input offset 3, so
    quant_bias carries the offset correction) and W8A8_DYNAMIC attention."""

    def static(w: Tensor) -> dict[str, Tensor]:
        return W.modelslim_w8a8_static(w, model_dtype=torch.bfloat16, input_scale=6 / 127, input_offset=3)

    return write_modelslim(path, TinyArch.LLAMA,
                           choose=lambda m: ("W8A8", static) if ".mlp." in m else ("W8A8_DYNAMIC", w8a8_dynamic))
