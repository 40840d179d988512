"""CPU emulation of the quantized-activation grouped-matmul modes of ``npu_grouped_matmul``
(torch_npu_ops.md 4.3), single x / single weight / grouped along M:

* **A8W4** (A2/A3): int8 ``x``, int4x8 weight ``[E, K, N/8]`` (int32), ``scale`` int64
  ``[E, G, N]`` (``G = 1`` per channel; aclnnGroupedMatmulV5 requires the 3-D
  ``[g, quantGroupNum, n]``, and both engines keep the per-channel scale ``[E, 1, N]``) holding fp32
  bits in the low 32 bits; per-group scales only with groups of 256 along K and ``K <= 18432``
  (the documented A8W4 limits); the mandatory float32 ``bias [E, N]`` (``8 * sum_k w * scale``)
  and ``per_token_scale``: per the aclnn formula ``((x - 8) @ w * scale + bias) * per_token_scale``
  (the shift cancels with the bias);
* **A4W4** (A2/A3): int4x8 ``x [M, K/8]``, int4x8 weight, int64 ``scale [E, N]``:
  ``x @ (w * scale) * per_token_scale``;
* **MX** (A5): float8_e4m3fn ``x`` and weight ``[E, K, N]`` with E8M0 scales in pairs,
  ``per_token_scale [M, K/64, 2]`` and ``scale [E, K/64, N, 2]`` (uint8 with
  ``scale_dtype``/``per_token_scale_dtype`` = float8_e8m0fnu): the MX block formula per group;
* **MXFP4** (A5): packed FP4 weight (uint8, two E2M1 codes per byte along the storage-contiguous
  axis, ``weight_dtype=float4_e2m1fn_x2``; the MoE weight is the transposed view ``[E, K/2, N]``
  of ``[E, N, K/2]``) with either packed FP4 ``x [M, K/2]`` (``x_dtype=float4_e2m1fn_x2``, weight
  scales as ``scale`` with ``scale_dtype`` e8m0: W4A4) or float8_e4m3fn ``x [M, K]``
  (``x_dtype=float8_e4m3fn``, weight scales as ``antiquant_scale``: W4A8), per sglang_ascend.md
  4.3 / vllm_ascend.md 4.10; same block formula, K even with an even number of 32-blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from quantspec.runtime import numerics as nm
from quantspec.runtime.ops.base import DtypeArg, NpuDtype
from quantspec.runtime.ops.checks import check_dim, check_dtype, is_transposed_view, require
from quantspec.runtime.ops.cpu_matmul import _unpack_fp4_logical

_GMM = "npu_grouped_matmul"
#: aclnnGroupedMatmulV5 / WeightNz: A8W4 per-group quantization only at quantGroupSize 256, K <= 18432.
A8W4_GROUP = 256
A8W4_MAX_K = 18432
_OUT = (torch.float16, torch.bfloat16, torch.float32)


def quant_mode(
    x: Tensor, weight: Tensor, scale_dtype: DtypeArg, x_dtype: DtypeArg = None, weight_dtype: DtypeArg = None
) -> str | None:
    """Which of the modes above a call is, or None for the modes of ``cpu_moe``."""
    if NpuDtype.FLOAT4_E2M1FN_X2 in (x_dtype, weight_dtype):
        return "mxfp4"
    if x.dtype == torch.int8 and weight.dtype == torch.int32:
        return "a8w4"
    if x.dtype == torch.int32 and weight.dtype == torch.int32:
        return "a4w4"
    if x.dtype == torch.float8_e4m3fn or scale_dtype == NpuDtype.FLOAT8_E8M0FNU:
        return "mx"
    return None


def _int4(t: Tensor) -> Tensor:
    """Logical int values of an int4x8 tensor packed along its last storage dim."""
    if is_transposed_view(t):
        return nm.unpack_int4_lsb(t.transpose(-1, -2)).transpose(-1, -2)
    return nm.unpack_int4_lsb(t)


def _bits_scale(scale: Tensor, e: int, n: int) -> Tensor:
    """int64 words with fp32 bits in the low half -> float32 ``[E, G, N]``."""
    check_dtype(_GMM, "scale", scale, (torch.int64,))
    s = scale.reshape(e, 1, n) if scale.dim() == 2 else scale
    require(s.dim() == 3 and s.size(0) == e and s.size(2) == n, _GMM, "scale",
            f"shape {tuple(scale.shape)} not ({e}, {n}), ({e}, 1, {n}) or ({e}, G, {n})")
    return nm.int64_to_float_bits(s & 0xFFFFFFFF)


def grouped_quant_matmul(
    mode: str,
    xt: Tensor,
    wt: Tensor,
    bounds: list[tuple[int, int]],
    *,
    scale: Sequence[Tensor] | None,
    bias: Sequence[Tensor] | None,
    per_token_scale: Sequence[Tensor] | None,
    output_dtype: DtypeArg,
    scale_dtype: DtypeArg,
    per_token_scale_dtype: DtypeArg,
) -> Tensor:
    """One of the modes above; ``bounds`` are the row ranges of the groups."""
    require(scale is not None and per_token_scale is not None, _GMM, "scale", f"{mode} needs scale and per_token_scale")
    assert scale is not None and per_token_scale is not None
    out_dtype = output_dtype if isinstance(output_dtype, torch.dtype) else torch.bfloat16
    require(out_dtype in _OUT, _GMM, "output_dtype", f"{out_dtype} is not fp16/bf16/fp32")
    check_dim(_GMM, "weight", wt, (3,))
    e = wt.size(0)
    pts = per_token_scale[0]
    if mode == "mx":
        return _mx(xt, wt, bounds, scale[0], pts, bias=bias, out_dtype=out_dtype, scale_dtype=scale_dtype,
                   pts_dtype=per_token_scale_dtype)
    check_dtype(_GMM, "per_token_scale", pts, (torch.float32,))
    w = _int4(wt).to(torch.float64)  # [E, K, N]
    a = _int4(xt) if mode == "a4w4" else xt
    m, k = a.shape
    n = w.size(2)
    require(w.size(1) == k, _GMM, "weight", f"K mismatch: x has {k}, weight has {w.size(1)}")
    require(tuple(pts.shape) == (m,), _GMM, "per_token_scale", f"must be ({m},)")
    s = _bits_scale(scale[0], e, n).to(torch.float64)  # [E, G, N]
    g = s.size(1)
    require(k % g == 0, _GMM, "scale", f"G = {g} does not divide K = {k}")
    if mode == "a8w4":
        require(scale[0].dim() == 3, _GMM, "scale", f"A8W4 needs a 3-D [E, G, N] scale, got {tuple(scale[0].shape)}")
        require(g == 1 or (k // g == A8W4_GROUP and k <= A8W4_MAX_K), _GMM, "scale",
                f"A8W4 per-group scales need groups of {A8W4_GROUP} along K and K <= {A8W4_MAX_K} "
                f"(got groups of {k // g}, K = {k})")
        require(bias is not None, _GMM, "bias", "A8W4 needs the offline bias 8 * sum_k(w * scale)")
        assert bias is not None
        check_dtype(_GMM, "bias", bias[0], (torch.float32,))
        require(tuple(bias[0].shape) == (e, n), _GMM, "bias", f"must be ({e}, {n})")
    else:
        require(bias is None, _GMM, "bias", "A4W4 takes no bias")
        require(g == 1, _GMM, "scale", "A4W4 scales are per channel")
    out = torch.zeros(m, n, dtype=torch.float64)
    for grp, (lo, hi) in enumerate(bounds):
        if hi <= lo:
            continue
        xs = a[lo:hi].to(torch.float64) - (8.0 if mode == "a8w4" else 0.0)
        acc = sum(
            (xs[:, j * (k // g):(j + 1) * (k // g)] @ w[grp, j * (k // g):(j + 1) * (k // g)]) * s[grp, j]
            for j in range(g)
        )
        part = torch.as_tensor(acc, dtype=torch.float64)
        if mode == "a8w4":
            assert bias is not None
            part = part + bias[0][grp].to(torch.float64)
        out[lo:hi] = part * pts[lo:hi].to(torch.float64).unsqueeze(-1)
    return out.to(out_dtype)


def _mx(
    xt: Tensor, wt: Tensor, bounds: list[tuple[int, int]], scale: Tensor, pts: Tensor, *,
    bias: Sequence[Tensor] | None, out_dtype: torch.dtype, scale_dtype: DtypeArg, pts_dtype: DtypeArg,
) -> Tensor:
    require(scale_dtype == NpuDtype.FLOAT8_E8M0FNU and pts_dtype == NpuDtype.FLOAT8_E8M0FNU, _GMM, "scale_dtype",
            "MX scales need scale_dtype and per_token_scale_dtype float8_e8m0fnu")
    check_dtype(_GMM, "x", xt, (torch.float8_e4m3fn,))
    check_dtype(_GMM, "weight", wt, (torch.float8_e4m3fn,))
    check_dtype(_GMM, "scale", scale, (torch.uint8,))
    check_dtype(_GMM, "per_token_scale", pts, (torch.uint8,))
    require(bias is None, _GMM, "bias", "the MX grouped mode takes no bias here")
    return _mx_blocks(xt.to(torch.float32), wt.to(torch.float32), bounds, scale, pts, out_dtype=out_dtype)


def _mx_blocks(
    xv: Tensor, wv: Tensor, bounds: list[tuple[int, int]], scale: Tensor, pts: Tensor, *, out_dtype: torch.dtype,
    scale_arg: str = "scale",
) -> Tensor:
    """The MX block formula per group on logical float32 ``x [M, K]`` and weight ``[E, K, N]``."""
    m, k = xv.shape
    e, k2, n = wv.shape
    kb = -(-k // 64)
    require(k2 == k, _GMM, "weight", f"K mismatch: x has {k}, weight has {k2}")
    require(tuple(pts.shape) == (m, kb, 2), _GMM, "per_token_scale", f"must be ({m}, {kb}, 2)")
    require(tuple(scale.shape) == (e, kb, n, 2), _GMM, scale_arg, f"must be ({e}, {kb}, {n}, 2)")
    xa = xv * nm.decode_e8m0(pts.reshape(m, -1)).repeat_interleave(32, -1)[:, :k]
    # scale [E, K/64, N, 2] -> per (k, n) multiplier [E, K, N]
    ws = nm.decode_e8m0(scale.permute(0, 2, 1, 3).reshape(e, n, -1)).repeat_interleave(32, -1)[..., :k]
    wb = wv * ws.transpose(1, 2)
    out = torch.zeros(m, n, dtype=torch.float32)
    for grp, (lo, hi) in enumerate(bounds):
        if hi > lo:
            out[lo:hi] = xa[lo:hi] @ wb[grp]
    return out.to(out_dtype)


def grouped_mxfp4_matmul(
    xt: Tensor,
    wt: Tensor,
    bounds: list[tuple[int, int]],
    *,
    scale: Sequence[Tensor] | None,
    antiquant_scale: Sequence[Tensor] | None,
    antiquant_offset: Sequence[Tensor] | None,
    bias: Sequence[Tensor] | None,
    per_token_scale: Sequence[Tensor] | None,
    output_dtype: DtypeArg,
    x_dtype: DtypeArg,
    weight_dtype: DtypeArg,
    scale_dtype: DtypeArg,
    per_token_scale_dtype: DtypeArg,
) -> Tensor:
    """The MXFP4 mode: FP4 x FP4 (W4A4) or FP8 x FP4 (W4A8) with E8M0 block scales, per group."""
    e8m0, fp4 = NpuDtype.FLOAT8_E8M0FNU, NpuDtype.FLOAT4_E2M1FN_X2
    require(weight_dtype == fp4, _GMM, "weight_dtype", "FP4 grouped modes need weight_dtype float4_e2m1fn_x2")
    check_dtype(_GMM, "weight", wt, (torch.uint8,))
    check_dim(_GMM, "weight", wt, (3,))
    require(bias is None, _GMM, "bias", "the MXFP4 grouped mode takes no bias here")
    require(antiquant_offset is None, _GMM, "antiquant_offset", "MX weights are symmetric; pass None")
    require(per_token_scale is not None, _GMM, "per_token_scale", "MXFP4 needs the activations' E8M0 scales")
    require(per_token_scale_dtype == e8m0, _GMM, "per_token_scale_dtype", "must be float8_e8m0fnu")
    out_dtype = output_dtype if isinstance(output_dtype, torch.dtype) else torch.bfloat16
    require(out_dtype in _OUT, _GMM, "output_dtype", f"{out_dtype} is not fp16/bf16/fp32")
    assert per_token_scale is not None
    pts = per_token_scale[0]
    check_dtype(_GMM, "per_token_scale", pts, (torch.uint8,))
    check_dim(_GMM, "x", xt, (2,))
    if x_dtype == fp4:  # W4A4: both operands packed FP4, the weight scales in `scale`
        require(scale is not None and antiquant_scale is None, _GMM, "scale",
                "FP4 x FP4 takes the weight's E8M0 scales as scale (antiquant_scale None)")
        require(scale_dtype == e8m0, _GMM, "scale_dtype", "must be float8_e8m0fnu")
        check_dtype(_GMM, "x", xt, (torch.uint8,))
        require(xt.is_contiguous(), _GMM, "x", "packed FP4 x must be contiguous")
        assert scale is not None
        xv, ws, arg = _unpack_fp4_logical(xt, _GMM, "x"), scale[0], "scale"
    else:  # W4A8: FP8 activations, the weight scales in `antiquant_scale`
        require(x_dtype == torch.float8_e4m3fn, _GMM, "x_dtype",
                f"{x_dtype} is not float8_e4m3fn or float4_e2m1fn_x2")
        require(antiquant_scale is not None and scale is None, _GMM, "antiquant_scale",
                "FP8 x FP4 takes the weight's E8M0 scales as antiquant_scale (scale None)")
        require(scale_dtype is None, _GMM, "scale_dtype", "FP8 x FP4 takes no scale_dtype")
        check_dtype(_GMM, "x", xt, (torch.float8_e4m3fn,))
        assert antiquant_scale is not None
        xv, ws, arg = xt.to(torch.float32), antiquant_scale[0], "antiquant_scale"
    check_dtype(_GMM, arg, ws, (torch.uint8,))
    k = xv.size(1)
    require(k % 2 == 0 and -(-k // 32) % 2 == 0, _GMM, "x", f"K = {k} must be even with an even number of 32-blocks")
    wv = _unpack_fp4_logical(wt, _GMM, "weight")  # [E, K, N]
    return _mx_blocks(xv, wv, bounds, ws, pts, out_dtype=out_dtype, scale_arg=arg)
