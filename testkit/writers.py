"""Writers: quantize a float ``[N, K]`` weight into each on-disk layout.

Each function returns the checkpoint tensors of ONE module, keyed by suffix, exactly as the
producer would store them (formats.md; sglang_ascend.md 3; vllm_ascend.md 4). They are used by the
tests and by end-to-end tests that build tiny checkpoints; the quantizers are round-to-nearest
(no calibration), which is all a layout test needs.
"""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import Tensor

from quantspec.runtime import numerics as nm


class AutoRoundPacking(StrEnum):
    """auto-round ``packing_format`` values with an int layout (formats.md 4.2)."""

    AUTO_GPTQ = "auto_round:auto_gptq"
    AUTO_ROUND = "auto_round"
    GPTQMODEL = "auto_round:gptqmodel"
    AUTO_AWQ = "auto_round:auto_awq"


def _f32(w: Tensor) -> Tensor:
    return w.detach().to(torch.float32)


def _channel_absmax(w: Tensor, qmax: float) -> Tensor:
    return torch.clamp(w.abs().amax(dim=1, keepdim=True), min=1e-8) / qmax


def deq_scale_to_int64(deq: Tensor) -> Tensor:
    """msModelSlim's int64 ``deq_scale`` (``deqscale2int64``): the float32 bits read as int32, sign-extended.

    The file holds the exact float32; the FP19 truncation happens inside the kernel."""
    return deq.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)


def modelslim_w8a8_static(
    w: Tensor,
    *,
    model_dtype: torch.dtype,
    input_scale: float,
    input_offset: int = 0,
    bias: Tensor | None = None,
    v0: bool = False,
) -> dict[str, Tensor]:
    """ModelSlim ``W8A8`` as msModelSlim's v1 saver writes it (``on_w8a8_static``): int8 ``weight``,
    ``deq_scale = input_scale * weight_scale`` (sign-extended int64 bits for fp16 models, float32 for
    bf16), ``quant_bias = round(bias / deq - input_offset * sum_k q)`` (the float bias folded in),
    float32 ``input_scale``/``input_offset`` and, when the layer has one, the float ``bias`` too.
    ``v0`` adds the ``weight_scale``/``weight_offset`` the older exporter writes."""
    wf = _f32(w)
    n = wf.size(0)
    ws = _channel_absmax(wf, 127.0)
    q = torch.clamp(torch.round(wf / ws), -128, 127).to(torch.int8)
    deq = (torch.tensor(input_scale, dtype=torch.float32) * ws.reshape(n)).to(torch.float32)
    b = torch.zeros(n) if bias is None else _f32(bias)
    quant_bias = torch.round(b / deq - input_offset * q.to(torch.float32).sum(dim=1))
    out = {
        "weight": q,
        "input_scale": torch.tensor([input_scale], dtype=torch.float32),
        "input_offset": torch.tensor([float(input_offset)], dtype=torch.float32),
        "quant_bias": quant_bias.to(torch.int32),
        "deq_scale": deq_scale_to_int64(deq) if model_dtype == torch.float16 else deq,
    }
    if bias is not None:
        out["bias"] = _f32(bias)
    if v0:
        out["weight_scale"] = ws.to(model_dtype)
        out["weight_offset"] = torch.zeros(n, 1, dtype=model_dtype)
    return out


def modelslim_w8a8_mix(w: Tensor, *, model_dtype: torch.dtype, input_scale: float, input_offset: int = 0,
                       bias: Tensor | None = None) -> dict[str, Tensor]:
    """ModelSlim ``W8A8_MIX`` (pdmix, ``on_w8a8_pd_mix``): the W8A8 static tensors plus float32
    ``weight_scale``/``weight_offset`` ``[N, 1]`` for the dynamic path."""
    out = modelslim_w8a8_static(w, model_dtype=model_dtype, input_scale=input_scale, input_offset=input_offset,
                                bias=bias)
    ws = _channel_absmax(_f32(w), 127.0)
    out["weight_scale"] = ws
    out["weight_offset"] = torch.zeros_like(ws)
    return out


def modelslim_w8a8_dynamic(w: Tensor, *, model_dtype: torch.dtype) -> dict[str, Tensor]:
    """ModelSlim ``W8A8_DYNAMIC``: symmetric per-channel int8 weight."""
    wf = _f32(w)
    ws = _channel_absmax(wf, 127.0)
    q = torch.clamp(torch.round(wf / ws), -128, 127).to(torch.int8)
    # msModelSlim's v1 saver writes float32 scales whatever the model dtype.
    return {"weight": q, "weight_scale": ws, "weight_offset": torch.zeros_like(ws)}


def modelslim_w4a4_dynamic(w: Tensor, *, pairs: bool = False) -> dict[str, Tensor]:
    """ModelSlim ``W4A4_DYNAMIC``: int4 per channel, one per int8 byte ``[N, K]`` or, with
    ``pairs``, two per byte along N ``[N/2, K]`` (low nibble = even row)."""
    wf = _f32(w)
    ws = _channel_absmax(wf, 7.0)
    q = torch.clamp(torch.round(wf / ws), -8, 7).to(torch.int8)
    weight = nm.pack_int4_pairs(q, dim=0) if pairs else q
    return {"weight": weight, "weight_scale": ws, "weight_offset": torch.zeros_like(ws)}


def modelslim_w8a16(w: Tensor, *, model_dtype: torch.dtype) -> dict[str, Tensor]:
    """ModelSlim ``W8A16`` (asymmetric): ``q = rint(w / s) + o``, dequant ``(q - o) * s``."""
    wf = _f32(w)
    lo, hi = wf.amin(dim=1, keepdim=True), wf.amax(dim=1, keepdim=True)
    s = torch.clamp(hi - lo, min=1e-8) / 255.0
    o = -128.0 - torch.round(lo / s)
    q = torch.clamp(torch.round(wf / s) + o, -128, 127).to(torch.int8)
    return {"weight": q, "weight_scale": s, "weight_offset": o}


def mx_quantize_fp8(w: Tensor) -> tuple[Tensor, Tensor]:
    """OCP MX E4M3 along the last dim: ``(fp8 payload, E8M0 bytes [..., ceil(K/32)])``."""
    wf = _f32(w)
    k = wf.size(-1)
    nb = -(-k // 32)
    blocks = torch.nn.functional.pad(wf, (0, nb * 32 - k)).reshape(*wf.shape[:-1], nb, 32)
    amax = blocks.abs().amax(dim=-1)
    exp = nm.floor_log2(torch.where(amax > 0, amax, torch.ones_like(amax))) - 8
    byte = torch.where(amax > 0, torch.clamp(exp + 127, 0, 254), torch.zeros_like(exp)).to(torch.uint8)
    scaled = blocks / nm.decode_e8m0(byte).unsqueeze(-1)
    payload = nm.to_fp8_saturating(scaled.reshape(*wf.shape[:-1], nb * 32)[..., :k], torch.float8_e4m3fn)
    return payload, byte


def modelslim_w8a8_mxfp8(w: Tensor) -> dict[str, Tensor]:
    """ModelSlim ``W8A8_MXFP8``: ``weight`` float8_e4m3fn ``[N, K]``, ``weight_scale`` uint8 ``[N, K/32]``."""
    payload, byte = mx_quantize_fp8(w)
    return {"weight": payload, "weight_scale": byte}


def mx_quantize_fp4(w: Tensor) -> tuple[Tensor, Tensor]:
    """OCP MX E2M1 along the last dim: ``(uint8 pairs [..., K/2], E8M0 bytes [..., ceil(K/32)])``."""
    wf = _f32(w)
    k = wf.size(-1)
    nb = -(-k // 32)
    blocks = torch.nn.functional.pad(wf, (0, nb * 32 - k)).reshape(*wf.shape[:-1], nb, 32)
    amax = blocks.abs().amax(dim=-1)
    exp = nm.floor_log2(torch.where(amax > 0, amax, torch.ones_like(amax))) - 2
    byte = torch.where(amax > 0, torch.clamp(exp + 127, 0, 254), torch.zeros_like(exp)).to(torch.uint8)
    scaled = (blocks / nm.decode_e8m0(byte).unsqueeze(-1)).reshape(*wf.shape[:-1], nb * 32)[..., :k]
    return nm.pack_fp4_pairs(nm.encode_e2m1(scaled)), byte


def modelslim_mxfp4(w: Tensor) -> dict[str, Tensor]:
    """ModelSlim ``W4A4_MXFP4`` / ``W4A8_MXFP``: ``weight`` uint8 ``[N, K/2]``, ``weight_scale`` ``[N, K/32]``."""
    payload, byte = mx_quantize_fp4(w)
    return {"weight": payload, "weight_scale": byte}


def modelslim_w8a8_fp8_dynamic(w: Tensor, *, model_dtype: torch.dtype) -> dict[str, Tensor]:
    """ModelSlim ``WFP8AFP8_DYNAMIC``: E4M3 ``weight [N, K]``, float32 ``weight_scale``/``weight_offset [N, 1]``."""
    wf = _f32(w)
    ws = _channel_absmax(wf, nm.FP8_E4M3_MAX)
    return {
        "weight": nm.to_fp8_saturating(wf / ws, torch.float8_e4m3fn),
        "weight_scale": ws,
        "weight_offset": torch.zeros_like(ws),
    }


def _groups(wf: Tensor, group_size: int) -> tuple[Tensor, int]:
    n, k = wf.shape
    gs = k if group_size <= 0 else group_size
    if k % gs:
        raise ValueError(f"group size {gs} does not divide K = {k}")
    return wf.reshape(n, k // gs, gs), gs


def _asym_params(g: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Unsigned asymmetric scale/zero per group (AutoAWQ / GPTQ minmax)."""
    maxq = (1 << bits) - 1
    lo = torch.clamp(g.amin(dim=-1), max=0.0)
    hi = torch.clamp(g.amax(dim=-1), min=0.0)
    s = torch.clamp(hi - lo, min=1e-5) / maxq
    z = torch.clamp(torch.round(-lo / s), 0, maxq)
    return s, z


def _sym_params(g: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Unsigned symmetric GPTQ params: ``s = 2 absmax / (2^b - 1)``, zero ``2^(b-1)``."""
    s = torch.clamp(2 * g.abs().amax(dim=-1), min=1e-5) / ((1 << bits) - 1)
    return s, torch.full_like(s, float(1 << (bits - 1)))


def _quantize_unsigned(wf: Tensor, bits: int, group_size: int, sym: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Codes ``[N, K]``, scales ``[N, ng]`` (fp16-representable) and zeros ``[N, ng]``."""
    g, _ = _groups(wf, group_size)
    s, z = _sym_params(g, bits) if sym else _asym_params(g, bits)
    s = s.to(torch.float16).to(torch.float32)
    q = torch.clamp(torch.round(g / s.unsqueeze(-1)) + z.unsqueeze(-1), 0, (1 << bits) - 1)
    return q.reshape(wf.shape).to(torch.int64), s, z.to(torch.int64)


def awq_gemm(w: Tensor, *, bits: int = 4, group_size: int = 128, sym: bool = False) -> dict[str, Tensor]:
    """AWQ GEMM: ``qweight [K, N/pf]``, ``qzeros [K/G, N/pf]`` (true zeros) in the AWQ interleave,
    ``scales`` fp16 ``[K/G, N]``. ``sym`` stores the constant zero ``2^(b-1)`` (auto-round export)."""
    q, s, z = _quantize_unsigned(_f32(w), bits, group_size, sym)
    return {
        "qweight": nm.pack_awq(q.t().contiguous(), bits),
        "qzeros": nm.pack_awq(z.t().contiguous(), bits),
        "scales": s.t().contiguous().to(torch.float16),
    }


def gptq(
    w: Tensor,
    *,
    bits: int = 4,
    group_size: int = 128,
    sym: bool = True,
    v1: bool = True,
    act_order: bool = False,
    write_g_idx: bool = True,
    seed: int = 0,
) -> dict[str, Tensor]:
    """GPTQ: ``qweight [K*b/32, N]`` packed along K, ``qzeros [ng, N*b/32]`` (v1 stores zero - 1,
    field by field), ``scales`` fp16 ``[ng, N]``, ``g_idx [K]``. ``act_order`` forms the groups in
    a random column order and records it in a non-monotone ``g_idx`` (formats.md 3.4)."""
    wf = _f32(w)
    k = wf.size(1)
    gs = k if group_size <= 0 else group_size
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed)) if act_order else torch.arange(k)
    q_p, s, z = _quantize_unsigned(wf[:, perm], bits, gs, sym)
    q = torch.empty_like(q_p)
    q[:, perm] = q_p
    g_idx = torch.empty(k, dtype=torch.int32)
    g_idx[perm] = (torch.arange(k) // gs).to(torch.int32)
    stored_z = (z - 1) & ((1 << bits) - 1) if v1 else z
    out = {
        "qweight": nm.pack_bits(q.contiguous(), bits).t().contiguous(),
        "qzeros": nm.pack_bits(stored_z.t().contiguous(), bits),
        "scales": s.t().contiguous().to(torch.float16),
    }
    if write_g_idx or act_order:
        out["g_idx"] = g_idx
    return out


def auto_round(
    w: Tensor, packing: AutoRoundPacking, *, bits: int = 4, group_size: int = 128, sym: bool = True
) -> dict[str, Tensor]:
    """auto-round int export in each ``packing_format`` (formats.md 4.2)."""
    if packing == AutoRoundPacking.AUTO_AWQ:
        return awq_gemm(w, bits=bits, group_size=group_size, sym=sym)
    v1 = packing == AutoRoundPacking.AUTO_GPTQ
    return gptq(w, bits=bits, group_size=group_size, sym=sym, v1=v1, write_g_idx=packing == AutoRoundPacking.GPTQMODEL)


def ct_pack_quantized(
    w: Tensor,
    *,
    bits: int = 4,
    group_size: int = 128,
    sym: bool = True,
    dense: bool = True,
    model_dtype: torch.dtype = torch.bfloat16,
) -> dict[str, Tensor]:
    """compressed-tensors ``pack-quantized``: signed codes stored ``+2^(b-1)``, ``weight_packed
    [N, words]`` (``dense``: >= 0.18 bit stream, else < 0.18 padded words), ``weight_scale
    [N, ng]``, asymmetric ``weight_zero_point [words(N), ng]`` packed along N, ``weight_shape``."""
    wf = _f32(w)
    n, k = wf.shape
    g, _ = _groups(wf, group_size)
    half, qmax = 1 << (bits - 1), (1 << (bits - 1)) - 1
    if sym:
        s = torch.clamp(g.abs().amax(dim=-1), min=1e-8) / (((1 << bits) - 1) / 2)
        zp = torch.zeros_like(s)
    else:
        lo = torch.clamp(g.amin(dim=-1), max=0.0)
        hi = torch.clamp(g.amax(dim=-1), min=0.0)
        s = torch.clamp(hi - lo, min=1e-8) / ((1 << bits) - 1)
        zp = torch.clamp(torch.round(-half - lo / s), -half, qmax)
    s = s.to(model_dtype).to(torch.float32)
    q = torch.clamp(torch.round(g / s.unsqueeze(-1)) + zp.unsqueeze(-1), -half, qmax).reshape(n, k)
    out = {
        "weight_packed": nm.pack_bits((q + half).to(torch.int64), bits, dense=dense),
        "weight_scale": s.to(model_dtype),
        "weight_shape": torch.tensor([n, k], dtype=torch.int64),
    }
    if not sym:
        zp_u = (zp + half).to(torch.int64).t().contiguous()
        out["weight_zero_point"] = nm.pack_bits(zp_u, bits, dense=dense).t().contiguous()
    return out


def ct_int8(w: Tensor, *, input_scale: float | None = None) -> dict[str, Tensor]:
    """compressed-tensors ``int-quantized`` W8A8: int8 ``weight``, float32 ``weight_scale [N, 1]``,
    plus ``input_scale [1]`` for static activations."""
    wf = _f32(w)
    ws = _channel_absmax(wf, 127.0)
    out = {"weight": torch.clamp(torch.round(wf / ws), -128, 127).to(torch.int8), "weight_scale": ws}
    if input_scale is not None:
        out["input_scale"] = torch.tensor([input_scale], dtype=torch.float32)
    return out
