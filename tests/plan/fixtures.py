"""Golden-plan fixtures: tiny checkpoints with the real tensor names, dtypes and shapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.plan.builders import (
    PD,
    Tensors,
    build_modelslim,
    llama_modules,
    norms,
    write_json,
    write_safetensors,
)

H, INTER, V = 64, 128, 256
LLAMA = {"model_type": "llama", "torch_dtype": "bfloat16", "num_hidden_layers": 2, "hidden_size": H}


def _quantized(mods: list[tuple[str, int, int]], label: str) -> dict[str, str]:
    return {m: label for m, _, _ in mods if m not in ("model.embed_tokens", "lm_head")}


def dense_w8a8_dynamic(root: Path) -> Path:
    """Llama-like, every linear W8A8_DYNAMIC; embedding and lm_head FLOAT."""
    mods = llama_modules(2, hidden=H, inter=INTER, vocab=V)
    return build_modelslim(root, mods, _quantized(mods, "W8A8_DYNAMIC"), config=LLAMA, extra=norms(2, H), shards=2)


def w8a8_static(dtype: str) -> Callable[[Path], Path]:
    """W8A8 static: deq_scale is int64 for fp16 models and float32 for bf16 models."""
    def build(root: Path) -> Path:
        mods = llama_modules(1, hidden=H, inter=INTER, vocab=V)
        return build_modelslim(root, mods, _quantized(mods, "W8A8"), dtype=dtype,
                               config={**LLAMA, "num_hidden_layers": 1, "torch_dtype": dtype},
                               extra=norms(1, H, dtype), header={"model_quant_type": "W8A8"})
    return build


def quantized_embedding(root: Path) -> Path:
    """W8A8_DYNAMIC including the embedding: rejected (no embedding row for ModelSlim)."""
    mods = llama_modules(1, hidden=H, inter=INTER, vocab=V)
    labels = {**_quantized(mods, "W8A8_DYNAMIC"), "model.embed_tokens": "W8A8_DYNAMIC"}
    return build_modelslim(root, mods, labels, config={**LLAMA, "num_hidden_layers": 1}, extra=norms(1, H))


def shard_mismatch(root: Path) -> Path:
    """q_proj W8A8 static while k_proj / v_proj are W8A8_DYNAMIC."""
    mods = llama_modules(1, hidden=H, inter=INTER, vocab=V)
    labels = {**_quantized(mods, "W8A8_DYNAMIC"), "model.layers.0.self_attn.q_proj": "W8A8"}
    return build_modelslim(root, mods, labels, config={**LLAMA, "num_hidden_layers": 1}, extra=norms(1, H))


def mxfp8(root: Path) -> Path:
    """ModelSlim W8A8_MXFP8 linears (A5 only)."""
    mods = llama_modules(1, hidden=H, inter=INTER, vocab=V)
    return build_modelslim(root, mods, _quantized(mods, "W8A8_MXFP8"), config={**LLAMA, "num_hidden_layers": 1},
                           extra=norms(1, H), header={"model_quant_type": "W8A8_MXFP8", "group_size": 32})


# ---------------------------------------------------------------- MoE (ModelSlim)

def _moe_layer(p: str, experts: int, moe_inter: int, *, labels: dict[str, str], label_of: Callable[[int, str], str],
               groups: dict[str, str]) -> list[tuple[str, int, int]]:
    mods: list[tuple[str, int, int]] = []
    for e in range(experts):
        for proj, n, k in (("gate_proj", moe_inter, H), ("up_proj", moe_inter, H), ("down_proj", H, moe_inter)):
            name = f"{p}.mlp.experts.{e}.{proj}"
            mods.append((name, n, k))
            labels[name] = label_of(e, proj)
            groups[name] = "w2" if proj == "down_proj" else "w13"
    return mods


def deepseek_moe(root: Path) -> Path:
    """DeepSeek-like: MLA attention, layer 0 dense, layers 1-2 MoE (W4A8 w13, W8A8 w2), FLOAT MTP layer 3."""
    experts, moe_inter, q_lora, kv_dim = 4, 32, 64, 48
    mods: list[tuple[str, int, int]] = [("model.embed_tokens", V, H)]
    labels: dict[str, str] = {}
    groups: dict[str, str] = {}
    extra: Tensors = {"model.norm.weight": ("BF16", (H,))}
    for i in range(4):
        p = f"model.layers.{i}"
        mtp = i == 3
        attn = [(f"{p}.self_attn.q_a_proj", q_lora, H), (f"{p}.self_attn.q_b_proj", 2 * H, q_lora),
                (f"{p}.self_attn.kv_a_proj_with_mqa", kv_dim, H), (f"{p}.self_attn.kv_b_proj", 2 * H, 32),
                (f"{p}.self_attn.o_proj", H, H)]
        mods += attn
        for m, _, _ in attn:
            labels[m] = "FLOAT" if mtp else "W8A8_DYNAMIC"
        for nm, dim in (("input_layernorm", H), ("post_attention_layernorm", H), ("self_attn.q_a_layernorm", q_lora),
                        ("self_attn.kv_a_layernorm", 32)):
            extra[f"{p}.{nm}.weight"] = ("BF16", (dim,))
        if i == 0:
            dense = [(f"{p}.mlp.gate_proj", INTER, H), (f"{p}.mlp.up_proj", INTER, H), (f"{p}.mlp.down_proj", H, INTER)]
            mods += dense
            labels.update({m: "W8A8_DYNAMIC" for m, _, _ in dense})
            continue
        mods += _moe_layer(p, experts, moe_inter, labels=labels, label_of=(lambda e, proj: "FLOAT") if mtp else
                           (lambda e, proj: "W8A8_DYNAMIC" if proj == "down_proj" else "W4A8_DYNAMIC"), groups=groups)
        shared = [(f"{p}.mlp.shared_experts.gate_proj", moe_inter, H),
                  (f"{p}.mlp.shared_experts.up_proj", moe_inter, H),
                  (f"{p}.mlp.shared_experts.down_proj", H, moe_inter), (f"{p}.mlp.gate", experts, H)]
        mods += shared
        labels.update({m: "FLOAT" if mtp or m.endswith("mlp.gate") else "W8A8_DYNAMIC" for m, _, _ in shared})
        extra[f"{p}.mlp.gate.e_score_correction_bias"] = ("F32", (experts,))
        if mtp:
            mods += [(f"{p}.eh_proj", H, 2 * H), (f"{p}.shared_head.head", V, H), (f"{p}.embed_tokens", V, H)]
            for nm in ("enorm", "hnorm", "shared_head.norm"):
                extra[f"{p}.{nm}.weight"] = ("BF16", (H,))
    mods.append(("lm_head", V, H))
    config = {"model_type": "deepseek_v3", "torch_dtype": "bfloat16", "num_hidden_layers": 3, "hidden_size": H,
              "n_routed_experts": experts, "first_k_dense_replace": 1, "num_nextn_predict_layers": 1,
              "moe_intermediate_size": moe_inter, "q_lora_rank": q_lora, "kv_lora_rank": 32}
    return build_modelslim(root, mods, labels, config=config, extra=extra, moe_groups=groups, shards=3,
                           header={"model_quant_type": "W8A8_DYNAMIC", "version": "1.0.0", "group_size": 0})


def expert_mismatch(root: Path) -> Path:
    """Qwen3-MoE-like: every expert W8A8_DYNAMIC except expert 2, exported as W8A8 static."""
    mods: list[tuple[str, int, int]] = [("model.embed_tokens", V, H)]
    labels: dict[str, str] = {}
    p = "model.layers.0"
    attn = [(f"{p}.self_attn.{x}_proj", H, H) for x in "qkvo"]
    mods += attn
    labels.update({m: "W8A8_DYNAMIC" for m, _, _ in attn})
    mods += _moe_layer(p, 4, 32, labels=labels, label_of=lambda e, proj: "W8A8" if e == 2 else "W8A8_DYNAMIC",
                      groups={})
    mods += [(f"{p}.mlp.gate", 4, H), ("lm_head", V, H)]
    config = {"model_type": "qwen3_moe", "torch_dtype": "bfloat16", "num_hidden_layers": 1, "num_experts": 4}
    return build_modelslim(root, mods, labels, config=config, extra=norms(1, H))


# ---------------------------------------------------------------- HF-style formats

def _hf(root: Path, tensors: Tensors, qcfg: dict[str, Any] | None, config: dict[str, Any]) -> Path:
    write_safetensors(root / "model.safetensors", tensors)
    write_json(root / "config.json", {**config, **({"quantization_config": qcfg} if qcfg else {})})
    return root


def _float(name: str, n: int, k: int, dtype: str = "bfloat16") -> Tensors:
    return {f"{name}.weight": (PD[dtype], (n, k))}


def _gptq(prefix: str, n: int, k: int, group: int) -> Tensors:
    ng = k // group
    return {f"{prefix}.qweight": ("I32", (k // 8, n)), f"{prefix}.qzeros": ("I32", (ng, n // 8)),
            f"{prefix}.scales": ("F16", (ng, n)), f"{prefix}.g_idx": ("I32", (k,))}


def _awq(prefix: str, n: int, k: int, group: int) -> Tensors:
    ng = k // group
    return {f"{prefix}.qweight": ("I32", (k, n // 8)), f"{prefix}.qzeros": ("I32", (ng, n // 8)),
            f"{prefix}.scales": ("F16", (ng, n))}


def _packed(prefix: str, n: int, k: int, group: int) -> Tensors:
    return {f"{prefix}.weight_packed": ("I32", (n, k // 8)), f"{prefix}.weight_scale": ("BF16", (n, k // group)),
            f"{prefix}.weight_shape": ("I64", (2,))}


def _weight_only(root: Path, writer: Callable[[str, int, int, int], Tensors], qcfg: dict[str, Any], *, hidden: int,
                 inter: int, group: int) -> Path:
    tensors: Tensors = {}
    for m, n, k in llama_modules(1, hidden=hidden, inter=inter, vocab=V):
        tensors.update(_float(m, n, k, "float16") if m in ("model.embed_tokens", "lm_head") else writer(m, n, k, group))
    tensors.update(norms(1, hidden, "float16"))
    config = {"model_type": "llama", "torch_dtype": "float16", "num_hidden_layers": 1, "hidden_size": hidden}
    return _hf(root, tensors, qcfg, config)


def gptq_act_order(root: Path) -> Path:
    """GPTQ 4-bit g128 with desc_act: accepted with a K-permutation warning."""
    qcfg = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": True}
    return _weight_only(root, _gptq, qcfg, hidden=256, inter=512, group=128)


def awq_g64(root: Path) -> Path:
    """AWQ GEMM 4-bit group 64."""
    qcfg = {"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemm", "zero_point": True}
    return _weight_only(root, _awq, qcfg, hidden=128, inter=256, group=64)


def ct_w4a16_moe(root: Path) -> Path:
    """compressed-tensors W4A16 (pack-quantized, group 32) experts; attention, router and lm_head ignored."""
    tensors: Tensors = {}
    p = "model.layers.0"
    for m, n, k in [("model.embed_tokens", V, H), *((f"{p}.self_attn.{x}_proj", H, H) for x in "qkvo"),
                    (f"{p}.mlp.gate", 4, H), ("lm_head", V, H)]:
        tensors.update(_float(m, n, k))
    for e in range(4):
        for proj, n, k in (("gate_proj", 64, H), ("up_proj", 64, H), ("down_proj", H, 64)):
            tensors.update(_packed(f"{p}.mlp.experts.{e}.{proj}", n, k, 32))
    tensors.update(norms(1, H))
    qcfg = {"quant_method": "compressed-tensors", "format": "pack-quantized",
            "ignore": ["lm_head", "re:.*mlp\\.gate$", "re:.*self_attn\\..*"],
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32}}}}
    config = {"model_type": "qwen3_moe", "torch_dtype": "bfloat16", "num_hidden_layers": 1, "num_experts": 4}
    return _hf(root, tensors, qcfg, config)


def gguf_llama(root: Path) -> Path:
    """A GGUF llama block: Q8_0 embedding and attention, Q4_0 MLP, F32 norms."""
    import gguf
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(root / "model.gguf"), "llama")
    w.add_block_count(1)

    def q(name: str, shape: tuple[int, int], qt: gguf.GGMLQuantizationType) -> None:
        data = gguf.quants.quantize(np.zeros(shape, np.float32), qt)
        w.add_tensor(name, data, raw_dtype=qt)

    q("token_embd.weight", (V, H), gguf.GGMLQuantizationType.Q8_0)
    for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
        q(f"blk.0.{t}.weight", (H, H), gguf.GGMLQuantizationType.Q8_0)
    q("blk.0.ffn_gate.weight", (INTER, H), gguf.GGMLQuantizationType.Q4_0)
    q("blk.0.ffn_up.weight", (INTER, H), gguf.GGMLQuantizationType.Q4_0)
    q("blk.0.ffn_down.weight", (H, INTER), gguf.GGMLQuantizationType.Q4_0)
    for t in ("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"):
        w.add_tensor(t, np.ones(H, np.float32))
    q("output.weight", (V, H), gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return root


def wan_pipeline(root: Path) -> Path:
    """A Diffusers pipeline: a ModelSlim W8A8_DYNAMIC transformer and a float text encoder."""
    write_json(root / "model_index.json", {"_class_name": "WanPipeline",
                                           "transformer": ["diffusers", "WanTransformer3DModel"],
                                           "text_encoder": ["transformers", "UMT5EncoderModel"],
                                           "scheduler": ["diffusers", "UniPCMultistepScheduler"]})
    (root / "scheduler").mkdir(parents=True)
    write_json(root / "scheduler" / "scheduler_config.json", {"_class_name": "UniPCMultistepScheduler"})
    mods = []
    for b in range(2):
        mods += [(f"blocks.{b}.attn1.{x}", H, H) for x in ("to_q", "to_k", "to_v", "to_out.0")]
        mods += [(f"blocks.{b}.ffn.net.0.proj", INTER, H), (f"blocks.{b}.ffn.net.2", H, INTER)]
    mods.append(("proj_out", H, H))
    labels = {m: "W8A8_DYNAMIC" for m, _, _ in mods if m != "proj_out"}
    build_modelslim(root / "transformer", mods, labels,
                    config={"_class_name": "WanTransformer3DModel", "_diffusers_version": "0.35.0"},
                    extra={"scale_shift_table": ("BF16", (1, 2, H))})
    enc: Tensors = {"shared.weight": ("BF16", (V, H)),
                    "encoder.block.0.layer.0.SelfAttention.q.weight": ("BF16", (H, H)),
                    "encoder.final_layer_norm.weight": ("BF16", (H,))}
    _hf(root / "text_encoder", enc, None, {"model_type": "umt5", "torch_dtype": "bfloat16"})
    return root


#: name -> (builder, plan kwargs). Golden files are tests/golden/plan/<name>.json.
FIXTURES: dict[str, tuple[Callable[[Path], Path], dict[str, Any]]] = {
    "dense_w8a8_dynamic_a3": (dense_w8a8_dynamic, {"target": "a3"}),
    "w8a8_static_fp16_a2": (w8a8_static("float16"), {"target": "a2"}),
    "w8a8_static_bf16_a2": (w8a8_static("bfloat16"), {"target": "a2"}),
    "deepseek_moe_a3": (deepseek_moe, {"target": "a3"}),
    "expert_mismatch_a3": (expert_mismatch, {"target": "a3"}),
    "shard_mismatch_a3": (shard_mismatch, {"target": "a3"}),
    "mxfp8_a3": (mxfp8, {"target": "a3"}),
    "mxfp8_a5_allow_untested": (mxfp8, {"target": "a5", "allow_untested": True}),
    "gptq_act_order_a2": (gptq_act_order, {"target": "a2"}),
    "awq_g64_a2": (awq_g64, {"target": "a2"}),
    "ct_w4a16_moe_a3": (ct_w4a16_moe, {"target": "a3"}),
    "gguf_a3": (gguf_llama, {"target": "a3"}),
    "quantized_embedding_a3": (quantized_embedding, {"target": "a3"}),
    "wan_pipeline_a3": (wan_pipeline, {"target": "a3"}),
}
