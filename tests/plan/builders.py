"""Tiny checkpoints for planner tests: safetensors written by a pure-python writer (zero data).

Only names, dtypes and shapes matter to the planner, so every tensor is zeros and every
model is a few KiB. Each ``build_*`` function writes one fixture folder and returns it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

BITS = {"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "F16": 16, "BF16": 16, "I32": 32, "F32": 32, "I64": 64,
        "F64": 64, "F8_E4M3": 8}
Tensors = dict[str, tuple[str, tuple[int, ...]]]
PD = {"bfloat16": "BF16", "float16": "F16"}


def write_safetensors(path: Path, tensors: Mapping[str, tuple[str, tuple[int, ...]]]) -> Path:
    """Write ``{name: (dtype code, shape)}`` as a safetensors file with zero data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for d in shape:
            count *= d
        size = count * BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.write(b"\0" * offset)
    return path


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON (sorted keys for stable fixtures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- ModelSlim tensor sets

def ms_linear(prefix: str, label: str, n: int, k: int, *, dtype: str = "bfloat16", moe_group: str | None = None,
              ) -> Tensors:
    """Tensors of one ModelSlim-quantized linear (``label`` as in quant_model_description.json)."""
    pd = PD[dtype]
    out: Tensors = {}
    if label == "FLOAT":
        out[f"{prefix}.weight"] = (pd, (n, k))
        return out
    if label in ("W8A8_DYNAMIC", "W8A16"):
        out[f"{prefix}.weight"] = ("I8", (n, k))
        out[f"{prefix}.weight_scale"] = ("F32", (n, 1))
        out[f"{prefix}.weight_offset"] = ("F32", (n, 1))
    elif label == "W8A8":
        out[f"{prefix}.weight"] = ("I8", (n, k))
        out[f"{prefix}.weight_scale"] = (pd, (n, 1))
        out[f"{prefix}.weight_offset"] = (pd, (n, 1))
        out[f"{prefix}.input_scale"] = (pd, (1,))
        out[f"{prefix}.input_offset"] = (pd, (1,))
        out[f"{prefix}.quant_bias"] = ("I32", (n,))
        out[f"{prefix}.deq_scale"] = ("F32" if dtype == "bfloat16" else "I64", (n,))
    elif label == "W4A8_DYNAMIC":  # version 1.0.0: int4 pairs packed along N
        out[f"{prefix}.weight"] = ("I8", (n // 2, k))
        out[f"{prefix}.weight_scale"] = ("F32", (n, 1))
        out[f"{prefix}.weight_offset"] = ("F32", (n, 1))
        out[f"{prefix}.scale_bias"] = ("F32", (n, 16 if moe_group == "w2" else 1))
    elif label == "W8A8_MXFP8":
        out[f"{prefix}.weight"] = ("F8_E4M3", (n, k))
        out[f"{prefix}.weight_scale"] = ("U8", (n, -(-k // 32)))
    else:
        raise ValueError(label)
    return out


def ms_description(tensors: Iterable[str], labels: Mapping[str, str], header: Mapping[str, Any]) -> dict[str, Any]:
    """quant_model_description.json: every tensor gets its module's label (FLOAT by default)."""
    desc: dict[str, Any] = dict(header)
    for name in tensors:
        module = name.rpartition(".")[0]
        desc[name] = labels.get(module, labels.get(name, "FLOAT"))
    return desc


def llama_modules(layers: int, *, hidden: int, inter: int, vocab: int, heads_kv_dim: int | None = None,
                  ) -> list[tuple[str, int, int]]:
    """(module, N, K) of a Llama-like decoder's linears, embedding and lm_head."""
    kv = heads_kv_dim or hidden // 2
    out = [("model.embed_tokens", vocab, hidden)]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [(f"{p}.self_attn.q_proj", hidden, hidden), (f"{p}.self_attn.k_proj", kv, hidden),
                (f"{p}.self_attn.v_proj", kv, hidden), (f"{p}.self_attn.o_proj", hidden, hidden),
                (f"{p}.mlp.gate_proj", inter, hidden), (f"{p}.mlp.up_proj", inter, hidden),
                (f"{p}.mlp.down_proj", hidden, inter)]
    out.append(("lm_head", vocab, hidden))
    return out


def norms(layers: int, hidden: int, dtype: str = "bfloat16") -> Tensors:
    """Norm weights of a Llama-like decoder."""
    pd = PD[dtype]
    out: Tensors = {"model.norm.weight": (pd, (hidden,))}
    for i in range(layers):
        out[f"model.layers.{i}.input_layernorm.weight"] = (pd, (hidden,))
        out[f"model.layers.{i}.post_attention_layernorm.weight"] = (pd, (hidden,))
    return out


def build_modelslim(root: Path, modules: list[tuple[str, int, int]], labels: Mapping[str, str], *,
                    config: Mapping[str, Any], dtype: str = "bfloat16", extra: Tensors | None = None,
                    header: Mapping[str, Any] | None = None, moe_groups: Mapping[str, str] | None = None,
                    shards: int = 1) -> Path:
    """A ModelSlim checkpoint: quant_model_weights shards + index + description + config.json."""
    tensors: Tensors = {}
    for module, n, k in modules:
        tensors.update(ms_linear(module, labels.get(module, "FLOAT"), n, k, dtype=dtype,
                                 moe_group=(moe_groups or {}).get(module)))
    tensors.update(extra or {})
    names = list(tensors)
    weight_map: dict[str, str] = {}
    per = -(-len(names) // shards)
    for s in range(shards):
        fname = f"quant_model_weights-{s:05d}-of-{shards:05d}.safetensors"
        chunk = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        write_safetensors(root / fname, chunk)
        weight_map.update(dict.fromkeys(chunk, fname))
    write_json(root / "quant_model_weights.safetensors.index.json", {"metadata": {}, "weight_map": weight_map})
    write_json(root / "quant_model_description.json",
               ms_description(names, labels, header or {"model_quant_type": "W8A8_DYNAMIC", "version": "1.0.0"}))
    write_json(root / "config.json", dict(config))
    return root
