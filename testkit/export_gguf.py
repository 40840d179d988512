"""GGUF files written by gguf-py (``GGUFWriter`` + ``gguf.quants.quantize``), as convert_hf_to_gguf
and llama-quantize lay them out.

Tensor names come from gguf-py's ``TensorNameMap`` for the architecture (``llama`` for the dense
model, ``qwen3moe`` for Qwen3-MoE); Llama ``q_proj``/``k_proj`` are RoPE-permuted like
``LlamaModel.permute`` (convert_hf_to_gguf's Qwen2/Qwen3 classes write them unpermuted); MoE
experts are stacked into ``blk.N.ffn_{gate,up,down}_exps`` ``[E, N, K]``. Norms and the router
(``ffn_gate_inp``) stay F32 as llama-quantize leaves them. gguf-py can quantize Q4_0, Q4_1, Q5_0,
Q5_1, Q8_0, BF16 and F16 but not the K-quants (dequantize-only in Python); :func:`quantize_q6_k`
encodes Q6_K blocks so one K-quant runs end to end too, with gguf-py's dequantization of the
written bytes as the reference.

A ``config.json`` without ``quantization_config`` is written next to the ``.gguf`` file (as
``--hf-config-path`` supplies it to engines) so the model skeleton can be built from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel

from testkit.export import Exported, linear_modules, module_kind
from testkit.models import TinyArch, checkpoint_state_dict, expert_names

QT = gguf.GGMLQuantizationType
#: Types gguf-py 0.19 can quantize.
GGUF_PY_QUANTIZABLE = (QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.BF16, QT.F16)
#: Types this module can write: gguf-py's, plus Q6_K blocks from :func:`quantize_q6_k`.
QUANTIZABLE = (*GGUF_PY_QUANTIZABLE, QT.Q6_K)
QK_K = 256
_ARCH = {TinyArch.LLAMA: gguf.MODEL_ARCH.LLAMA, TinyArch.QWEN3_MOE: gguf.MODEL_ARCH.QWEN3MOE}
_FILE_TYPE = {QT.Q4_0: 2, QT.Q4_1: 3, QT.Q8_0: 7, QT.Q5_0: 8, QT.Q5_1: 9, QT.F16: 1, QT.BF16: 32, QT.Q6_K: 18}


def permute_qk(w: Tensor, n_head: int) -> Tensor:
    """``LlamaModel.permute``: HF rotate-half rows to ggml's interleaved RoPE rows."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: Tensor, n_head: int) -> Tensor:
    """Inverse of :func:`permute_qk` (what transformers' GGUF loader applies)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope_heads(arch: TinyArch, module: str, n_head: int, n_head_kv: int) -> int:
    """Heads of the Llama Q/K permutation for ``module`` (0: not permuted)."""
    if arch is not TinyArch.LLAMA:
        return 0
    if module.endswith("q_proj"):
        return n_head
    return n_head_kv if module.endswith("k_proj") else 0


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest Q6_K blocks (gguf-py can only dequantize K-quants).

    Per 256-element super-block: 16 sub-blocks of 16 with int8 scales ``sc`` relative to an fp16
    ``d`` (``d = max(absmax_i / 31) / 127``), 6-bit codes ``q + 32``; bytes ``[ql:128][qh:64]
    [scales:16][d:2]`` laid out as formats.md 6.3 and gguf-py's ``Q6_K.dequantize_blocks`` read
    them (low nibbles of elements ``128h + j`` and ``128h + 64 + j`` share ``ql[64h + j]``; the
    two high bits of ``128h + 32t + l`` are bits ``2t`` of ``qh[32h + l]``). Returns uint8
    ``[..., K / 256 * 210]``.
    """
    lead, k = x.shape[:-1], x.shape[-1]
    if k % QK_K:
        raise ValueError(f"Q6_K needs K % {QK_K} == 0, got {k}")
    sub = x.astype(np.float32).reshape(-1, QK_K // 16, 16)
    n = sub.shape[0]
    scale_f = np.abs(sub).max(axis=-1) / 31.0
    d = (scale_f.max(axis=-1, keepdims=True) / 127.0).astype(np.float16)
    d32 = d.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.round(scale_f / d32), 0).clip(-128, 127).astype(np.int8)
        eff = (d32 * sc.astype(np.float32))[..., None]
        q = np.where(eff > 0, np.round(sub / eff), 0).clip(-32, 31).astype(np.int16) + 32
    q8 = q.reshape(n, QK_K).astype(np.uint8)
    low, high = q8 & 0xF, q8 >> 4
    ql = np.empty((n, QK_K // 2), np.uint8)
    qh = np.zeros((n, QK_K // 4), np.uint8)
    for h in range(2):
        ql[:, 64 * h:64 * h + 64] = low[:, 128 * h:128 * h + 64] | (low[:, 128 * h + 64:128 * h + 128] << 4)
        for t in range(4):
            qh[:, 32 * h:32 * h + 32] |= high[:, 128 * h + 32 * t:128 * h + 32 * t + 32] << (2 * t)
    blocks = np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8)], axis=1)
    return blocks.reshape(*lead, (k // QK_K) * blocks.shape[1])


def _quantize(w: Tensor, qtype: QT) -> np.ndarray:
    data = w.detach().to(torch.float32).numpy()
    if qtype is QT.Q6_K:
        return quantize_q6_k(data)
    return gguf.quants.quantize(data, qtype)


def _dequantize(data: np.ndarray, qtype: QT) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(data, qtype))).to(torch.float32)


def export_gguf(
    model: PreTrainedModel, arch: TinyArch, out: Path, qtype: QT, *, embed_type: QT | None = None
) -> Exported:
    """Write ``model.gguf`` with every linear (experts included) and ``output`` in ``qtype``,
    ``token_embd`` in ``embed_type`` (default ``qtype``). ``reference`` holds gguf-py's own
    dequantization of every quantized tensor under HF module names (Q/K un-permuted, experts
    split), i.e. the weights a correct loader must end up with."""
    if qtype not in QUANTIZABLE:
        raise ValueError(f"cannot quantize {qtype.name}: gguf-py quantizes only legacy types and this module adds Q6_K")
    if arch not in _ARCH:
        raise ValueError(f"no GGUF architecture for {arch}")
    cfg = model.config
    state = checkpoint_state_dict(model, arch)
    out.mkdir(parents=True, exist_ok=True)
    arch_name = gguf.MODEL_ARCH_NAMES[_ARCH[arch]]
    names = gguf.get_tensor_name_map(_ARCH[arch], cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(str(out / "model.gguf"), arch_name)
    writer.add_name("quantspec-tiny")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    if arch is TinyArch.QWEN3_MOE:
        writer.add_expert_count(cfg.num_experts)
        writer.add_expert_used_count(cfg.num_experts_per_tok)
        writer.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    writer.add_file_type(_FILE_TYPE[qtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    linears = set(linear_modules(state))
    reference: dict[str, Tensor] = {}
    quantized: list[str] = []
    kept: list[str] = []
    container, gate, up, down = expert_names(arch)
    stacked: dict[str, list[tuple[int, str, Tensor]]] = {}
    for name, t in state.items():
        module = name.removesuffix(".weight")
        kind = module_kind(module) if module in linears or module.endswith("embed_tokens") else "other"
        if kind == "expert":
            pre, _, rest = module.partition(f".{container}.")
            e, proj = rest.split(".")
            hf_stack = f"{pre}.{container}.{ {gate: 'gate_proj', up: 'up_proj', down: 'down_proj'}[proj] }"
            stacked.setdefault(hf_stack.replace(" ", ""), []).append((int(e), module, t))
            continue
        gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise ValueError(f"gguf-py has no {arch_name} name for {name}")
        w = t.detach().to(torch.float32)
        heads = _rope_heads(arch, module, cfg.num_attention_heads, cfg.num_key_value_heads)
        if heads:
            w = permute_qk(w, heads)
        if kind in ("linear", "lm_head", "embedding"):
            qt = embed_type or qtype if kind == "embedding" else qtype
            data = _quantize(w, qt)
            writer.add_tensor(gname, data, raw_dtype=qt)
            deq = _dequantize(data, qt)
            if heads:
                deq = unpermute_qk(deq, heads)
            reference[module] = deq
            quantized.append(module)
        else:
            # norms and the router stay F32
            writer.add_tensor(gname, w.numpy())
            if kind == "router":
                kept.append(module)
    for hf_stack, experts in stacked.items():
        experts.sort()
        gname = names.get_name(f"{hf_stack}.weight", try_suffixes=(".weight",))
        if gname is None:
            raise ValueError(f"gguf-py has no {arch_name} name for {hf_stack}")
        w = torch.stack([t.detach().to(torch.float32) for _, _, t in experts])
        data = _quantize(w, qtype)
        writer.add_tensor(gname, data, raw_dtype=qtype)
        deq = _dequantize(data, qtype)
        for (_, module, _t), d in zip(experts, deq, strict=True):
            reference[module] = d.contiguous()
            quantized.append(module)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    config = cfg.to_dict()
    config["architectures"] = [type(model).__name__]
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return Exported(out, arch, quantized=tuple(quantized), float_linears=tuple(kept), reference=reference)
