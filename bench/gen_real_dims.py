"""Generate header-only ModelSlim checkpoints at real dimensions for the per-rank memory figures.

Real names, shapes and dtypes (every header and the description), sparse data (each shard is
truncated to its full size, so the planner's offset checks hold and the disk holds only headers):

* ``deepseek-v3-w8a8``: DeepSeek-V3 (61 layers, 3 dense, 256 routed + 1 shared expert, MLA),
  W8A8_DYNAMIC everywhere but embeddings, lm_head, norms and routers (no MTP layer);
* ``deepseek-v3-w4a8``: the same with W4A8_DYNAMIC routed experts (int4 pairs, version 1.0.0);
* ``qwen3-235b-a22b-w8a8``: Qwen3-235B-A22B (94 layers, 128 experts, GQA 64/4);
* ``qwen3-32b-w8a8``: Qwen3-32B dense (64 layers, GQA 64/8).

    python bench/gen_real_dims.py OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import struct
from collections.abc import Iterator
from pathlib import Path

BYTES = {"I8": 1, "BF16": 2, "F32": 4}
Tensors = dict[str, tuple[str, tuple[int, ...]]]


def linear(t: Tensors, labels: dict[str, str], prefix: str, label: str, *, n: int, k: int) -> None:
    """One linear in ModelSlim's layout (FLOAT: a bf16 weight)."""
    if label == "FLOAT":
        added: Tensors = {f"{prefix}.weight": ("BF16", (n, k))}
    else:
        rows = n // 2 if label == "W4A8_DYNAMIC" else n
        added = {f"{prefix}.weight": ("I8", (rows, k)), f"{prefix}.weight_scale": ("F32", (n, 1)),
                 f"{prefix}.weight_offset": ("F32", (n, 1))}
        if label == "W4A8_DYNAMIC":
            added[f"{prefix}.scale_bias"] = ("F32", (n, 16 if prefix.endswith("down_proj") else 1))
    t.update(added)
    labels.update(dict.fromkeys(added, label))


def deepseek_v3(expert_label: str) -> tuple[Tensors, dict[str, str], dict[str, object]]:
    """DeepSeek-V3 at its real dimensions."""
    h, vocab, layers, dense = 7168, 129280, 61, 3
    t: Tensors = {}
    lab: dict[str, str] = {}
    linear(t, lab, "model.embed_tokens", "FLOAT", n=vocab, k=h)
    linear(t, lab, "lm_head", "FLOAT", n=vocab, k=h)
    t["model.norm.weight"] = ("BF16", (h,))
    for i in range(layers):
        p = f"model.layers.{i}"
        for name, n, k in (("q_a_proj", 1536, h), ("q_b_proj", 128 * 192, 1536), ("kv_a_proj_with_mqa", 576, h),
                           ("kv_b_proj", 128 * 256, 512), ("o_proj", h, 128 * 128)):
            linear(t, lab, f"{p}.self_attn.{name}", "W8A8_DYNAMIC", n=n, k=k)
        for name, d in (("input_layernorm", h), ("post_attention_layernorm", h), ("self_attn.q_a_layernorm", 1536),
                        ("self_attn.kv_a_layernorm", 512)):
            t[f"{p}.{name}.weight"] = ("BF16", (d,))
        if i < dense:
            for name, n, k in (("gate_proj", 18432, h), ("up_proj", 18432, h), ("down_proj", h, 18432)):
                linear(t, lab, f"{p}.mlp.{name}", "W8A8_DYNAMIC", n=n, k=k)
            continue
        for e in range(256):
            for name, n, k in (("gate_proj", 2048, h), ("up_proj", 2048, h), ("down_proj", h, 2048)):
                label = "W8A8_DYNAMIC" if name == "down_proj" and expert_label == "W4A8_DYNAMIC" else expert_label
                linear(t, lab, f"{p}.mlp.experts.{e}.{name}", label, n=n, k=k)
        for name, n, k in (("gate_proj", 2048, h), ("up_proj", 2048, h), ("down_proj", h, 2048)):
            linear(t, lab, f"{p}.mlp.shared_experts.{name}", "W8A8_DYNAMIC", n=n, k=k)
        linear(t, lab, f"{p}.mlp.gate", "FLOAT", n=256, k=h)
        t[f"{p}.mlp.gate.e_score_correction_bias"] = ("F32", (256,))
    config = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "torch_dtype": "bfloat16",
              "hidden_size": h, "num_hidden_layers": layers, "n_routed_experts": 256, "num_experts_per_tok": 8,
              "moe_intermediate_size": 2048, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "q_lora_rank": 1536,
              "num_attention_heads": 128, "first_k_dense_replace": dense, "vocab_size": vocab}
    return t, lab, config


def qwen3(*, layers: int, h: int, heads: int, kv: int, inter: int, experts: int, moe_inter: int,
          model_type: str) -> tuple[Tensors, dict[str, str], dict[str, object]]:
    """A Qwen3 dense or MoE model at the given dimensions (head_dim 128, vocab 151936)."""
    vocab, hd = 151936, 128
    t: Tensors = {}
    lab: dict[str, str] = {}
    linear(t, lab, "model.embed_tokens", "FLOAT", n=vocab, k=h)
    linear(t, lab, "lm_head", "FLOAT", n=vocab, k=h)
    t["model.norm.weight"] = ("BF16", (h,))
    for i in range(layers):
        p = f"model.layers.{i}"
        for name, n, k in (("q_proj", heads * hd, h), ("k_proj", kv * hd, h), ("v_proj", kv * hd, h),
                           ("o_proj", h, heads * hd)):
            linear(t, lab, f"{p}.self_attn.{name}", "W8A8_DYNAMIC", n=n, k=k)
        for name, d in (("input_layernorm", h), ("post_attention_layernorm", h), ("self_attn.q_norm", hd),
                        ("self_attn.k_norm", hd)):
            t[f"{p}.{name}.weight"] = ("BF16", (d,))
        if not experts:
            for name, n, k in (("gate_proj", inter, h), ("up_proj", inter, h), ("down_proj", h, inter)):
                linear(t, lab, f"{p}.mlp.{name}", "W8A8_DYNAMIC", n=n, k=k)
            continue
        for e in range(experts):
            for name, n, k in (("gate_proj", moe_inter, h), ("up_proj", moe_inter, h), ("down_proj", h, moe_inter)):
                linear(t, lab, f"{p}.mlp.experts.{e}.{name}", "W8A8_DYNAMIC", n=n, k=k)
        linear(t, lab, f"{p}.mlp.gate", "FLOAT", n=experts, k=h)
    config: dict[str, object] = {"model_type": model_type, "torch_dtype": "bfloat16", "hidden_size": h,
                                 "num_hidden_layers": layers, "num_attention_heads": heads,
                                 "num_key_value_heads": kv, "head_dim": hd, "vocab_size": vocab}
    if experts:
        config.update(num_experts=experts, moe_intermediate_size=moe_inter, num_experts_per_tok=8)
    return t, lab, config


def _chunks(names: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(names), size):
        yield names[i:i + size]


def write(root: Path, tensors: Tensors, labels: dict[str, str], config: dict[str, object]) -> None:
    """ModelSlim shards (sparse data), index, description and config.json."""
    root.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    chunks = list(_chunks(names, 1500))
    weight_map: dict[str, str] = {}
    for s, chunk in enumerate(chunks):
        fname = f"quant_model_weights-{s + 1:05d}-of-{len(chunks):05d}.safetensors"
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for n in chunk:
            dtype, shape = tensors[n]
            size = BYTES[dtype]
            for d in shape:
                size *= d
            header[n] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with (root / fname).open("wb") as fh:
            fh.write(struct.pack("<Q", len(raw)) + raw)
            fh.truncate(8 + len(raw) + offset)  # sparse: no data blocks on disk
        weight_map.update(dict.fromkeys(chunk, fname))
    (root / "quant_model_weights.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    desc = {"model_quant_type": "W8A8_DYNAMIC", "version": "1.0.0", **labels}
    (root / "quant_model_description.json").write_text(json.dumps(desc))
    (root / "config.json").write_text(json.dumps(config))


def main() -> None:
    """Write the four checkpoints under OUT_DIR."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    write(out / "deepseek-v3-w8a8", *deepseek_v3("W8A8_DYNAMIC"))
    write(out / "deepseek-v3-w4a8", *deepseek_v3("W4A8_DYNAMIC"))
    write(out / "qwen3-235b-a22b-w8a8", *qwen3(layers=94, h=4096, heads=64, kv=4, inter=12288, experts=128,
                                               moe_inter=1536, model_type="qwen3_moe"))
    write(out / "qwen3-32b-w8a8", *qwen3(layers=64, h=5120, heads=64, kv=8, inter=25600, experts=0, moe_inter=0,
                                         model_type="qwen3"))


if __name__ == "__main__":
    main()
