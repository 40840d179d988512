# numpy arithmetic is typed as Any; every oracle returns a float64 ndarray.
# mypy: disable-error-code="no-any-return"
"""Independent float oracles: dequantize each on-disk layout with the formats.md formula, in numpy
(float64), then matmul. Nothing here imports quantspec.runtime, so a bug in the runtime's unpacking
or scale handling cannot cancel out in the comparison.

Activation quantization that is part of a scheme's contract (W8A8, W4A4, MX) is applied with the
documented formula too, so the remaining difference is the kernel's own precision (FP19 scales,
fp16/bf16 weight formation and output rounding), which docs/runtime.md bounds per scheme.
"""

from __future__ import annotations

import numpy as np
import torch

AWQ_REVERSE_ORDER_4 = [0, 4, 1, 5, 2, 6, 3, 7]


def np64(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 (or int64 for integer tensors) numpy array."""
    if t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        return t.to(torch.int64).numpy()
    return t.to(torch.float64).numpy()


def fields_u32(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Unsigned ``bits``-bit fields of int32 words along the last axis, natural order (32 % bits == 0)."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    pf = 32 // bits
    out = np.stack([(u >> (bits * i)) & ((1 << bits) - 1) for i in range(pf)], axis=-1)
    return out.reshape(*words.shape[:-1], -1)[..., :count]


def bitstream(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Codes of a little-endian bit stream (code i at bits i*b..) along the last axis."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    allbits = ((u[..., :, None] >> np.arange(32)) & 1).reshape(*words.shape[:-1], -1)
    sel = allbits[..., : count * bits].reshape(*words.shape[:-1], count, bits)
    return (sel << np.arange(bits)).sum(axis=-1)


def padded_words(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Codes of "32 // b fields per word, high bits unused" packing."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    pf = 32 // bits
    out = np.stack([(u >> (bits * i)) & ((1 << bits) - 1) for i in range(pf)], axis=-1)
    return out.reshape(*words.shape[:-1], -1)[..., :count]


def dyn_quant(x: np.ndarray, qmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric quantization ``rint(x / (max|x| / qmax))`` in float32 (ops.md 3.2: the kernel
    computes in 32-bit float, and low-precision inputs hit exact .5 ties often)."""
    x32 = x.astype(np.float32)
    s = np.abs(x32).max(axis=1) / np.float32(qmax)
    safe = np.where(s > 0, s, np.float32(1.0))
    q = np.clip(np.rint(x32 / safe[:, None]), -qmax - 1, qmax)
    return q.astype(np.float64), s.astype(np.float64)


# ----------------------------------------------------------------------------- ModelSlim / CT int8


def modelslim_w8a8_static(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``xq = round_half_away(x / input_scale + input_offset)``; ``y = (xq @ W^T + quant_bias) * deq``."""
    deq_t = t["deq_scale"]
    if deq_t.dtype == torch.int64:
        deq = (deq_t.to(torch.int64) & 0xFFFFFFFF).to(torch.int32).view(torch.float32).to(torch.float64).numpy()
    else:
        deq = np64(deq_t)
    s, o = float(np64(t["input_scale"])[0]), float(np64(t["input_offset"])[0])
    v = x * (1.0 / s) + o
    xq = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)
    y = (xq @ np64(t["weight"]).T + np64(t["quant_bias"])) * deq
    return y if bias is None else y + bias


def int8_dynamic(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Per-token int8 activations times per-channel int8 weights."""
    xq, xs = dyn_quant(x, 127.0)
    w = np64(t["weight"]) * np64(t["weight_scale"]).reshape(-1, 1)
    y = (xq * xs[:, None]) @ w.T
    return y if bias is None else y + bias


def ct_w8a8_static(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Static per-tensor int8 activations (rint of x / input_scale) times per-channel weights."""
    s = float(np64(t["input_scale"])[0])
    v = x / s
    xq = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)
    y = (xq * s) @ (np64(t["weight"]) * np64(t["weight_scale"]).reshape(-1, 1)).T
    return y if bias is None else y + bias


def modelslim_w4a4(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None, *, pairs: bool) -> np.ndarray:
    """int4 per-token activations (``max|x| / 7``) times int4 per-channel weights."""
    raw = np64(t["weight"])
    if pairs:
        b = raw & 0xFF
        lo, hi = b & 0xF, b >> 4
        q = np.empty((raw.shape[0] * 2, raw.shape[1]), dtype=np.int64)
        q[0::2], q[1::2] = lo, hi
        q = np.where(q >= 8, q - 16, q)
    else:
        q = raw
    xq, xs = dyn_quant(x, 7.0)
    y = (xq * xs[:, None]) @ (q * np64(t["weight_scale"]).reshape(-1, 1)).T
    return y if bias is None else y + bias


def modelslim_w8a16(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``W = (q - weight_offset) * weight_scale`` per channel."""
    w = (np64(t["weight"]) - np64(t["weight_offset"]).reshape(-1, 1)) * np64(t["weight_scale"]).reshape(-1, 1)
    y = x @ w.T
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------- MX


def e8m0(byte: np.ndarray) -> np.ndarray:
    """E8M0 bytes to ``2^(e - 127)``."""
    return np.ldexp(1.0, byte.astype(np.int64) - 127)


def mx_dequant_weight(t: dict[str, torch.Tensor]) -> np.ndarray:
    """``W[n, k] = fp8(w[n, k]) * 2^(scale[n, k // 32] - 127)``."""
    w = np64(t["weight"])
    sc = e8m0(np64(t["weight_scale"]))
    return w * np.repeat(sc, 32, axis=1)[:, : w.shape[1]]


def mx_quant_act(x: np.ndarray) -> np.ndarray:
    """OCP MX E4M3 activations (block 32 along K, shared exponent floor(log2 amax) - 8)."""
    m, k = x.shape
    nb = -(-k // 32)
    xp = np.zeros((m, nb * 32))
    xp[:, :k] = x
    blocks = xp.reshape(m, nb, 32)
    amax = np.abs(blocks).max(axis=-1)
    _, e = np.frexp(np.where(amax > 0, amax, 1.0))
    scale = np.ldexp(1.0, (e - 1) - 8)
    scaled = np.clip(blocks / scale[..., None], -448, 448)
    q = torch.from_numpy(scaled).to(torch.float32).to(torch.float8_e4m3fn).to(torch.float64).numpy()
    return (q * scale[..., None]).reshape(m, nb * 32)[:, :k]


def mxfp8(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """MX-quantized activations times the MX-dequantized weight."""
    y = mx_quant_act(x) @ mx_dequant_weight(t).T
    return y if bias is None else y + bias


FP4_TABLE = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def fp4_decode_pairs(packed: np.ndarray) -> np.ndarray:
    """uint8 pairs (low nibble = even element) to E2M1 values."""
    b = packed & 0xFF
    codes = np.stack([b & 0xF, b >> 4], axis=-1).reshape(*b.shape[:-1], -1)
    mag = FP4_TABLE[codes & 7]
    return np.where(codes & 8, -mag, mag)


def fp4_round_away(v: np.ndarray) -> np.ndarray:
    """Nearest E2M1 value, ties away from zero, saturating at 6."""
    mag = np.minimum(np.abs(v), 6.0)
    d = np.abs(mag[..., None] - FP4_TABLE)
    best = d.min(axis=-1, keepdims=True)
    idx = np.where(d == best, np.arange(8), -1).max(axis=-1)
    return np.sign(v) * FP4_TABLE[idx]


def mxfp4_dequant_weight(t: dict[str, torch.Tensor]) -> np.ndarray:
    """``W[n, k] = E2M1(code[n, k]) * 2^(scale[n, k // 32] - 127)``."""
    w = fp4_decode_pairs(np64(t["weight"]))
    sc = e8m0(np64(t["weight_scale"]))
    return w * np.repeat(sc, 32, axis=1)[:, : w.shape[1]]


def mxfp4_quant_act(x: np.ndarray) -> np.ndarray:
    """OCP MX E2M1 activations, shared exponent floor(log2 amax) - 2, "round" (half away) mode."""
    m, k = x.shape
    nb = -(-k // 32)
    xp = np.zeros((m, nb * 32))
    xp[:, :k] = x.astype(np.float32)
    blocks = xp.reshape(m, nb, 32)
    amax = np.abs(blocks).max(axis=-1)
    _, e = np.frexp(np.where(amax > 0, amax, 1.0))
    scale = np.ldexp(1.0, (e - 1) - 2)
    q = fp4_round_away(blocks / scale[..., None])
    return (q * scale[..., None]).reshape(m, nb * 32)[:, :k]


def w4a8_mxfp(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """MXFP8 activations times MXFP4 weights."""
    y = mx_quant_act(x) @ mxfp4_dequant_weight(t).T
    return y if bias is None else y + bias


def w4a4_mxfp4(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """MXFP4 activations times MXFP4 weights."""
    y = mxfp4_quant_act(x) @ mxfp4_dequant_weight(t).T
    return y if bias is None else y + bias


def fp8_dynamic(t: dict[str, torch.Tensor], x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Per-token E4M3 activations (``max|x| / 448``) times per-channel E4M3 weights."""
    x32 = x.astype(np.float32)
    s = np.abs(x32).max(axis=1) / np.float32(448.0)
    safe = np.where(s > 0, s, np.float32(1.0))
    xq = torch.from_numpy(np.clip(x32 / safe[:, None], -448, 448)).to(torch.float8_e4m3fn).to(torch.float64)
    w = np64(t["weight"]) * np64(t["weight_scale"]).reshape(-1, 1)
    y = (xq.numpy() * s[:, None].astype(np.float64)) @ w.T
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------- weight-only


def awq_dequant(t: dict[str, torch.Tensor], bits: int, group_size: int) -> np.ndarray:
    """formats.md 2.3/2.5: unpack, undo the interleave, ``W = (Q - Z) * S`` transposed to [N, K]."""
    pf = 32 // bits
    order = list(range(0, pf, 2)) + list(range(1, pf, 2))
    reverse = [order.index(c) for c in range(pf)]

    def unpack(words: np.ndarray) -> np.ndarray:
        f = fields_u32(words, bits, words.shape[1] * pf).reshape(words.shape[0], -1, pf)
        return f[..., reverse].reshape(words.shape[0], -1)

    q, z = unpack(np64(t["qweight"])), unpack(np64(t["qzeros"]))
    s = np64(t["scales"])
    g = np.arange(q.shape[0]) // group_size
    return ((q - z[g]) * s[g]).T


def gptq_dequant(t: dict[str, torch.Tensor], bits: int, group_size: int, *, v1: bool) -> np.ndarray:
    """formats.md 3.3/3.6: ``W[n, k] = S[g(k), n] * (Q[k, n] - Z[g(k), n])``, v1 zeros + 1 per field."""
    qw = np64(t["qweight"])
    n = qw.shape[1]
    k = qw.shape[0] * 32 // bits
    q = bitstream(qw.T, bits, k).T
    z = bitstream(np64(t["qzeros"]), bits, n)
    if v1:
        z = (z + 1) & ((1 << bits) - 1)
    g = np64(t["g_idx"]) if "g_idx" in t else np.arange(k) // group_size
    return (np64(t["scales"])[g] * (q - z[g])).T


def ct_dequant(t: dict[str, torch.Tensor], bits: int, group_size: int, *, dense: bool) -> np.ndarray:
    """formats.md 5.6/5.7: signed codes ``field - 2^(b-1)``, zero points packed along N."""
    n, k = (int(v) for v in np64(t["weight_shape"]))
    half = 1 << (bits - 1)
    unpack = bitstream if dense else padded_words
    q = unpack(np64(t["weight_packed"]), bits, k) - half
    s = np64(t["weight_scale"]).reshape(n, -1)
    g = np.arange(k) // group_size
    zp = np.zeros_like(s)
    if "weight_zero_point" in t:
        zp = unpack(np64(t["weight_zero_point"]).T, bits, n).T - half
    return s[:, g] * (q - zp[:, g])


def weight_only(w: np.ndarray, x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Float activations times a dequantized ``[N, K]`` weight."""
    y = x @ w.T
    return y if bias is None else y + bias
