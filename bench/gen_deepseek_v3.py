"""Generate a DeepSeek-V3-sized ModelSlim checkpoint for the planner benchmark.

Real tensor names and counts (61 decoder layers, the first 3 dense, 256 routed experts and
one shared expert per MoE layer, MLA attention, the MTP layer 61, ModelSlim
``quant_model_weights-*.safetensors`` shards with an index and a per-tensor
``quant_model_description.json``), but tiny dimensions: only headers are read by the
planner, so data is zeros and the folder is a few tens of MiB.

Quantization: W8A8_DYNAMIC attention, dense MLPs, shared experts and expert down projections;
W4A8_DYNAMIC (int4 pairs, version 1.0.0) expert gate/up projections (w13); FLOAT embeddings,
lm_head, norms, routers and the whole MTP layer (it runs unquantized on NPU).

    python bench/gen_deepseek_v3.py /tmp/quantspec-bench/deepseek-v3
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

LAYERS, DENSE, EXPERTS, MTP = 61, 3, 256, 61
H, INTER, MOE_INTER, VOCAB, Q_LORA, KV_LORA, ROPE = 64, 128, 16, 256, 64, 32, 16
SHARDS = 64
BITS = {"I8": 8, "BF16": 16, "F32": 32}


def _linear(tensors: dict[str, tuple[str, tuple[int, ...]]], labels: dict[str, str], prefix: str, label: str,
            *, n: int, k: int) -> None:
    if label == "FLOAT":
        added = {f"{prefix}.weight": ("BF16", (n, k))}
    else:
        # W4A8_DYNAMIC (version 1.0.0) packs int4 pairs along N; W8A8_DYNAMIC stores int8 [N, K].
        rows = n // 2 if label == "W4A8_DYNAMIC" else n
        added = {f"{prefix}.weight": ("I8", (rows, k)), f"{prefix}.weight_scale": ("F32", (n, 1)),
                 f"{prefix}.weight_offset": ("F32", (n, 1))}
    tensors.update(added)
    labels.update(dict.fromkeys(added, label))


def tensors_and_labels() -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """Every tensor (dtype code, shape) and its ModelSlim label."""
    t: dict[str, tuple[str, tuple[int, ...]]] = {}
    labels: dict[str, str] = {}

    def lin(prefix: str, label: str, n: int, k: int) -> None:
        _linear(t, labels, prefix, label, n=n, k=k)

    def norm(name: str, dim: int) -> None:
        t[name] = ("BF16", (dim,))
        labels[name] = "FLOAT"

    lin("model.embed_tokens", "FLOAT", VOCAB, H)
    for i in range(LAYERS + 1):
        p = f"model.layers.{i}"
        q = "FLOAT" if i == MTP else "W8A8_DYNAMIC"
        norm(f"{p}.input_layernorm.weight", H)
        norm(f"{p}.post_attention_layernorm.weight", H)
        lin(f"{p}.self_attn.q_a_proj", q, Q_LORA, H)
        norm(f"{p}.self_attn.q_a_layernorm.weight", Q_LORA)
        lin(f"{p}.self_attn.q_b_proj", q, 2 * H, Q_LORA)
        lin(f"{p}.self_attn.kv_a_proj_with_mqa", q, KV_LORA + ROPE, H)
        norm(f"{p}.self_attn.kv_a_layernorm.weight", KV_LORA)
        lin(f"{p}.self_attn.kv_b_proj", q, 2 * H, KV_LORA)
        lin(f"{p}.self_attn.o_proj", q, H, H)
        if i < DENSE:
            for proj, n, k in (("gate_proj", INTER, H), ("up_proj", INTER, H), ("down_proj", H, INTER)):
                lin(f"{p}.mlp.{proj}", q, n, k)
            continue
        lin(f"{p}.mlp.gate", "FLOAT", EXPERTS, H)
        t[f"{p}.mlp.gate.e_score_correction_bias"] = ("F32", (EXPERTS,))
        labels[f"{p}.mlp.gate.e_score_correction_bias"] = "FLOAT"
        for e in range(EXPERTS):
            ep = f"{p}.mlp.experts.{e}"
            lin(f"{ep}.gate_proj", "FLOAT" if i == MTP else "W4A8_DYNAMIC", MOE_INTER, H)
            lin(f"{ep}.up_proj", "FLOAT" if i == MTP else "W4A8_DYNAMIC", MOE_INTER, H)
            lin(f"{ep}.down_proj", q, H, MOE_INTER)
        for proj, n, k in (("gate_proj", MOE_INTER, H), ("up_proj", MOE_INTER, H), ("down_proj", H, MOE_INTER)):
            lin(f"{p}.mlp.shared_experts.{proj}", q, n, k)
        if i == MTP:
            lin(f"{p}.embed_tokens", "FLOAT", VOCAB, H)
            lin(f"{p}.eh_proj", "FLOAT", H, 2 * H)
            lin(f"{p}.shared_head.head", "FLOAT", VOCAB, H)
            for nm in ("enorm", "hnorm", "shared_head.norm"):
                norm(f"{p}.{nm}.weight", H)
    norm("model.norm.weight", H)
    lin("lm_head", "FLOAT", VOCAB, H)
    return t, labels


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """A safetensors file with zero data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, (dtype, shape) in tensors.items():
        size = BITS[dtype] // 8
        for d in shape:
            size *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + size]}
        off += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + off)  # sparse zeros


def generate(out: Path) -> int:
    """Write the checkpoint; returns the number of tensors."""
    out.mkdir(parents=True, exist_ok=True)
    tensors, labels = tensors_and_labels()
    names = list(tensors)
    per = -(-len(names) // SHARDS)
    weight_map: dict[str, str] = {}
    for s in range(SHARDS):
        fname = f"quant_model_weights-{s + 1:05d}-of-{SHARDS:05d}.safetensors"
        chunk = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        write_safetensors(out / fname, chunk)
        weight_map.update(dict.fromkeys(chunk, fname))
    (out / "quant_model_weights.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    desc = {"model_quant_type": "W8A8_DYNAMIC", "version": "1.0.0", "group_size": 0, **labels}
    (out / "quant_model_description.json").write_text(json.dumps(desc, indent=2))
    config = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "torch_dtype": "bfloat16",
              "hidden_size": H, "intermediate_size": INTER, "moe_intermediate_size": MOE_INTER,
              "num_hidden_layers": LAYERS, "first_k_dense_replace": DENSE, "n_routed_experts": EXPERTS,
              "n_shared_experts": 1, "num_nextn_predict_layers": 1, "q_lora_rank": Q_LORA,
              "kv_lora_rank": KV_LORA, "qk_rope_head_dim": ROPE, "vocab_size": VOCAB}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return len(names)


def main() -> None:
    """CLI: generate into the given folder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", default=Path("/tmp/quantspec-bench/deepseek-v3"))
    args = parser.parse_args()
    n = generate(args.out)
    print(f"wrote {n} tensors in {SHARDS} shards to {args.out}")


if __name__ == "__main__":
    main()
