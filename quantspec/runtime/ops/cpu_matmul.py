"""CPU emulation of ``npu_quant_matmul`` and ``npu_weight_quant_batchmatmul`` (ops.md 4.1, 4.2).

Integer products are accumulated exactly (float64 holds every int8 x int8 sum below 2^53), the
dequantization runs in float32 as the kernels do, then the result is cast (int8 outputs with
round-half-even and saturation). Float32 scales are FP19-truncated where the NPU converts them
implicitly (ops.md 1.7).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from quantspec.runtime import numerics as nm
from quantspec.runtime.ops.base import DtypeArg, NpuDtype
from quantspec.runtime.ops.checks import check_dim, check_dtype, is_transposed_view, require

_QMM = "npu_quant_matmul"
_WQBMM = "npu_weight_quant_batchmatmul"
_OUT_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


def _unpack_int4_logical(t: Tensor, op: str, arg: str) -> Tensor:
    """Logical int8 matrix of an int32 int4x8 tensor: unpack along storage, then transpose back."""
    if is_transposed_view(t):
        return nm.unpack_int4_lsb(t.transpose(-1, -2)).transpose(-1, -2)
    require(t.is_contiguous(), op, arg, "int4x8 tensors must be contiguous or a transposed contiguous view")
    return nm.unpack_int4_lsb(t)


def _unpack_fp4_logical(t: Tensor, op: str, arg: str) -> Tensor:
    if is_transposed_view(t):
        return nm.decode_e2m1(nm.unpack_fp4_pairs(t.transpose(-1, -2))).transpose(-1, -2)
    require(t.is_contiguous(), op, arg, "FP4 tensors must be contiguous or a transposed contiguous view")
    return nm.decode_e2m1(nm.unpack_fp4_pairs(t))


def _decode_scale(scale: Tensor, implicit_fp19: bool) -> tuple[Tensor, Tensor | None]:
    """Dequant scale as float32 plus the int64 word's 9-bit offset (if any)."""
    if scale.dtype == torch.int64:
        s = nm.fp19_truncate(nm.int64_to_float_bits(scale))
        off = (scale >> 37) & 0x1FF
        off = torch.where(off >= 256, off - 512, off).to(torch.float32)
        return s, off
    s = scale.to(torch.float32)
    return (nm.fp19_truncate(s) if implicit_fp19 else s), None


def _check_bias(bias: Tensor, n: int, out_rank: int, allowed: Sequence[torch.dtype]) -> None:
    check_dtype(_QMM, "bias", bias, allowed)
    shapes = [(n,)] + ([(1, n)] if out_rank == 2 else []) + ([(bias.size(0), 1, n)] if out_rank == 3 else [])
    require(tuple(bias.shape) in shapes, _QMM, "bias", f"shape {tuple(bias.shape)} not in {shapes}")


def _e8m0_expand(scale: Tensor, k: int, *, rows_first: bool) -> Tensor:
    """Pairs of E8M0 bytes to a float32 multiplier per element along K."""
    flat = scale.reshape(scale.size(0), -1) if rows_first else scale.permute(1, 0, 2).reshape(scale.size(1), -1)
    return nm.decode_e8m0(flat).repeat_interleave(32, dim=-1)[..., :k]


def _mx_matmul(
    a: Tensor,
    b: Tensor,
    x2: Tensor,
    scale: Tensor,
    *,
    pertoken_scale: Tensor | None,
    bias: Tensor | None,
    out_dtype: torch.dtype,
    scale_dtype: DtypeArg,
    pertoken_scale_dtype: DtypeArg,
    group_sizes: Sequence[int] | None,
) -> Tensor:
    """MX matmul on decoded operands ``a [M, K]``, ``b [K, N]`` (``x2`` gives the transposition)."""
    check_dim(_QMM, "x1", a, (2,))
    check_dim(_QMM, "x2", b, (2,))
    require(scale_dtype == NpuDtype.FLOAT8_E8M0FNU, _QMM, "scale_dtype", "uint8 MX scales need float8_e8m0fnu")
    require(pertoken_scale is not None, _QMM, "pertoken_scale", "MX matmul needs the activation scales")
    assert pertoken_scale is not None
    check_dtype(_QMM, "pertoken_scale", pertoken_scale, (torch.uint8,))
    require(
        pertoken_scale_dtype == NpuDtype.FLOAT8_E8M0FNU,
        _QMM,
        "pertoken_scale_dtype",
        "uint8 MX scales need float8_e8m0fnu",
    )
    require(
        group_sizes is None or tuple(group_sizes) in ((1, 1, 32), (0, 0, 32)),
        _QMM,
        "group_sizes",
        f"{group_sizes} is not [1, 1, 32] or [0, 0, 32] for MX",
    )
    require(out_dtype in _OUT_FLOATS, _QMM, "output_dtype", f"{out_dtype} not fp16/bf16/fp32 for MX")
    m, k = a.shape
    require(b.size(0) == k, _QMM, "x2", f"K mismatch: x1 has {k}, x2 has {b.size(0)}")
    n = b.size(1)
    kb = -(-k // 64)
    check_dtype(_QMM, "scale", scale, (torch.uint8,))
    require(tuple(pertoken_scale.shape) == (m, kb, 2), _QMM, "pertoken_scale", f"must be ({m}, {kb}, 2)")
    require(tuple(scale.shape) == (kb, n, 2), _QMM, "scale", f"shape {tuple(scale.shape)} is not ({kb}, {n}, 2)")
    scale_t = scale.stride(0) < scale.stride(1)
    require(
        scale_t == is_transposed_view(x2) or n == 1 or kb == 1,
        _QMM,
        "scale",
        "x2 and scale must have the same transposition",
    )
    xa = a * _e8m0_expand(pertoken_scale, k, rows_first=True)
    wb = b * _e8m0_expand(scale, k, rows_first=False).t()
    out = xa @ wb
    if bias is not None:
        check_dtype(_QMM, "bias", bias, (torch.float32,))
        require(tuple(bias.shape) == (n,), _QMM, "bias", f"must be ({n},)")
        out = out + bias
    return out.to(out_dtype)


def _float_operand(t: Tensor, dtype_arg: DtypeArg, arg: str) -> tuple[Tensor, bool]:
    """Logical float32 value of an FP8 or packed-FP4 (uint8 + ``*_dtype``) operand."""
    if t.dtype == torch.uint8:
        require(
            dtype_arg == NpuDtype.FLOAT4_E2M1FN_X2,
            _QMM,
            f"{arg}_dtype",
            "uint8 operands need float4_e2m1fn_x2 as their logical dtype",
        )
        return _unpack_fp4_logical(t, _QMM, arg), True
    check_dtype(_QMM, arg, t, (torch.float8_e4m3fn, torch.float8_e5m2))
    return t.to(torch.float32), False


def _float_matmul(
    x1: Tensor,
    x2: Tensor,
    scale: Tensor,
    *,
    pertoken_scale: Tensor | None,
    bias: Tensor | None,
    output_dtype: DtypeArg,
    x1_dtype: DtypeArg,
    x2_dtype: DtypeArg,
    scale_dtype: DtypeArg,
    pertoken_scale_dtype: DtypeArg,
    group_sizes: Sequence[int] | None,
) -> Tensor:
    """950 float modes: FP8 per-channel/per-token, and MX (FP8 or FP4 operands, E8M0 scales)."""
    a, _ = _float_operand(x1, x1_dtype, "x1")
    b, _ = _float_operand(x2, x2_dtype, "x2")
    out_dtype = output_dtype if isinstance(output_dtype, torch.dtype) else torch.bfloat16
    if scale.dtype == torch.uint8:
        return _mx_matmul(
            a,
            b,
            x2,
            scale,
            pertoken_scale=pertoken_scale,
            bias=bias,
            out_dtype=out_dtype,
            scale_dtype=scale_dtype,
            pertoken_scale_dtype=pertoken_scale_dtype,
            group_sizes=group_sizes,
        )
    require(torch.uint8 not in (x1.dtype, x2.dtype), _QMM, "scale", "FP4 operands need E8M0 scales")
    check_dtype(_QMM, "scale", scale, (torch.float32, torch.int64))
    n = b.size(-1)
    require(tuple(scale.shape) in ((1,), (n,)), _QMM, "scale", f"shape {tuple(scale.shape)} not (1,) or ({n},)")
    require(out_dtype in _OUT_FLOATS, _QMM, "output_dtype", f"{out_dtype} not fp16/bf16/fp32")
    if pertoken_scale is not None:
        check_dtype(_QMM, "pertoken_scale", pertoken_scale, (torch.float32,))
        require(tuple(pertoken_scale.shape) == (a.size(-2),), _QMM, "pertoken_scale", f"must be ({a.size(-2)},)")
    if bias is not None:
        _check_bias(bias, n, max(a.dim(), b.dim()), (torch.float32, torch.bfloat16, torch.float16))
    acc = torch.matmul(a, b)
    return _dequant(
        acc, scale, offset=None, pertoken_scale=pertoken_scale, bias=bias, out_dtype=out_dtype, implicit_fp19=False
    )


def npu_quant_matmul(
    x1: Tensor,
    x2: Tensor,
    scale: Tensor,
    *,
    offset: Tensor | None = None,
    pertoken_scale: Tensor | None = None,
    bias: Tensor | None = None,
    output_dtype: DtypeArg = None,
    x1_dtype: DtypeArg = None,
    x2_dtype: DtypeArg = None,
    pertoken_scale_dtype: DtypeArg = None,
    scale_dtype: DtypeArg = None,
    group_sizes: Sequence[int] | None = None,
    y_scale: Tensor | None = None,
) -> Tensor:
    """Quantized matmul: int8 x int8, int4x8 x int4x8 (A4W4), FP8 per-channel, MXFP8 and MXFP4."""
    require(y_scale is None, _QMM, "y_scale", "the A8W4 float mode is not emulated")
    fp8 = (torch.float8_e4m3fn, torch.float8_e5m2)
    if x1.dtype in (*fp8, torch.uint8) or x2.dtype in (*fp8, torch.uint8):
        return _float_matmul(
            x1,
            x2,
            scale,
            pertoken_scale=pertoken_scale,
            bias=bias,
            output_dtype=output_dtype,
            x1_dtype=x1_dtype,
            x2_dtype=x2_dtype,
            scale_dtype=scale_dtype,
            pertoken_scale_dtype=pertoken_scale_dtype,
            group_sizes=group_sizes,
        )
    check_dtype(_QMM, "x1", x1, (torch.int8, torch.int32))
    check_dtype(_QMM, "x2", x2, (x1.dtype,))
    require(2 <= x1.dim() <= 6, _QMM, "x1", f"rank {x1.dim()} not in 2..6")
    require(2 <= x2.dim() <= 6, _QMM, "x2", f"rank {x2.dim()} not in 2..6")
    a4w4 = x1.dtype == torch.int32
    if a4w4:
        check_dim(_QMM, "x1", x1, (2,))
        check_dim(_QMM, "x2", x2, (2,))
        require(x1.is_contiguous(), _QMM, "x1", "int4x8 activations must be contiguous")
        a = nm.unpack_int4_lsb(x1).to(torch.float64)
        b = _unpack_int4_logical(x2, _QMM, "x2").to(torch.float64)
        require(offset is None, _QMM, "offset", "the per-group asymmetric A4W4 mode is not emulated")
    else:
        a, b = x1.to(torch.float64), x2.to(torch.float64)
    require(a.size(-1) == b.size(-2), _QMM, "x2", f"K mismatch: x1 has {a.size(-1)}, x2 has {b.size(-2)}")
    require(x1.size(-1) <= 65535 and x2.size(-1) <= 65535, _QMM, "x1", "last dims must be <= 65535")
    n = b.size(-1)
    out_dtype = output_dtype if isinstance(output_dtype, torch.dtype) else torch.int8
    require(
        output_dtype is None or isinstance(output_dtype, torch.dtype), _QMM, "output_dtype", "must be a torch dtype"
    )
    require(
        out_dtype in (torch.int8, torch.float16, torch.bfloat16, torch.int32),
        _QMM,
        "output_dtype",
        f"{out_dtype} not int8/fp16/bf16/int32",
    )
    require(tuple(scale.shape) in ((1,), (n,)), _QMM, "scale", f"shape {tuple(scale.shape)} not (1,) or ({n},)")
    if pertoken_scale is not None:
        check_dtype(_QMM, "pertoken_scale", pertoken_scale, (torch.float32,))
        m = a.size(-2)
        require(tuple(pertoken_scale.shape) == (m,), _QMM, "pertoken_scale", f"must be ({m},)")
    out_rank = max(a.dim(), b.dim())
    # The allowed combinations of the A2/A3 table (ops.md 4.1).
    if a4w4:
        require(bias is None, _QMM, "bias", "A4W4 takes no bias")
        if pertoken_scale is None:
            check_dtype(_QMM, "scale", scale, (torch.int64, torch.float32))
            require(out_dtype == torch.float16, _QMM, "output_dtype", "A4W4 without pertoken outputs float16")
        else:
            check_dtype(_QMM, "scale", scale, (torch.float32,))
            require(out_dtype in (torch.float16, torch.bfloat16), _QMM, "output_dtype", "A4W4 outputs fp16/bf16")
    elif out_dtype == torch.int32:
        check_dtype(_QMM, "scale", scale, (torch.float32, torch.bfloat16))
        require(pertoken_scale is None, _QMM, "pertoken_scale", "not allowed with int32 output")
        if bias is not None:
            _check_bias(bias, n, out_rank, (torch.int32,))
    elif out_dtype == torch.bfloat16:
        check_dtype(_QMM, "scale", scale, (torch.float32, torch.bfloat16))
        if bias is not None:
            _check_bias(bias, n, out_rank, (torch.int32, torch.bfloat16, torch.float32))
    elif out_dtype == torch.float16:
        if pertoken_scale is not None:
            check_dtype(_QMM, "scale", scale, (torch.float32,))
            if bias is not None:
                _check_bias(bias, n, out_rank, (torch.int32, torch.float16, torch.float32))
        else:
            check_dtype(_QMM, "scale", scale, (torch.int64, torch.float32))
            if bias is not None:
                _check_bias(bias, n, out_rank, (torch.int32,))
    else:
        check_dtype(_QMM, "scale", scale, (torch.int64, torch.float32))
        require(pertoken_scale is None, _QMM, "pertoken_scale", "not allowed with int8 output")
        if bias is not None:
            _check_bias(bias, n, out_rank, (torch.int32,))
    if offset is not None:
        require(out_dtype == torch.int8, _QMM, "offset", "only allowed with int8 output")
        check_dtype(_QMM, "offset", offset, (torch.float32,))
        require(tuple(offset.shape) in ((1,), (n,)), _QMM, "offset", f"shape {tuple(offset.shape)}")
    acc = torch.matmul(a, b)
    if bias is not None and bias.dtype == torch.int32:
        acc = acc + bias.to(torch.float64)
        bias = None
    if out_dtype == torch.int32:
        return acc.to(torch.int32)
    implicit = pertoken_scale is None and out_dtype in (torch.int8, torch.float16)
    return _dequant(
        acc.to(torch.float32),
        scale,
        offset=offset,
        pertoken_scale=pertoken_scale,
        bias=bias,
        out_dtype=out_dtype,
        implicit_fp19=implicit,
    )


def _dequant(
    acc: Tensor,
    scale: Tensor,
    *,
    offset: Tensor | None,
    pertoken_scale: Tensor | None,
    bias: Tensor | None,
    out_dtype: torch.dtype,
    implicit_fp19: bool,
) -> Tensor:
    s, word_offset = _decode_scale(scale, implicit_fp19)
    out = acc.to(torch.float32) * s
    if pertoken_scale is not None:
        out = out * pertoken_scale.to(torch.float32).unsqueeze(-1)
    if out_dtype == torch.int8:
        if offset is not None:
            out = out + offset.to(torch.float32)
        elif word_offset is not None:
            out = out + word_offset
        return nm.saturate(nm.rint(out), -128, 127).to(torch.int8)
    if bias is not None:
        out = out + bias.to(torch.float32)
    return out.to(out_dtype)


def _logical_weight(weight: Tensor, k: int) -> Tensor:
    """Logical int8 ``(K, N)`` of an int8 or int4x8 weight (contiguous or transposed view)."""
    if weight.dtype == torch.int8:
        return weight
    if is_transposed_view(weight):
        return nm.unpack_int4_lsb(weight.transpose(0, 1)).transpose(0, 1)[:k]
    require(weight.is_contiguous(), _WQBMM, "weight", "int32 weights must be contiguous or a transposed view")
    return nm.unpack_int4_lsb(weight)


def npu_weight_quant_batchmatmul(  # noqa: PLR0917 - torch_npu schema order
    x: Tensor,
    weight: Tensor,
    antiquant_scale: Tensor,
    antiquant_offset: Tensor | None = None,
    quant_scale: Tensor | None = None,
    quant_offset: Tensor | None = None,
    bias: Tensor | None = None,
    antiquant_group_size: int = 0,
    inner_precise: int = 0,
    weight_dtype: DtypeArg = None,
) -> Tensor:
    """Weight-only matmul: ``W = (w + offset) * scale`` formed in x's dtype, fp32 accumulation."""
    op = _WQBMM
    check_dtype(op, "x", x, (torch.float16, torch.bfloat16))
    check_dim(op, "x", x, (2,))
    check_dtype(op, "weight", weight, (torch.int8, torch.int32))
    check_dim(op, "weight", weight, (2,))
    require(weight_dtype is None, op, "weight_dtype", "4-bit uint8 carriers are not emulated")
    m, k = x.shape
    require(1 <= k <= 65535, op, "x", f"K = {k} not in [1, 65535]")
    w = _logical_weight(weight, k)
    require(w.size(0) == k, op, "weight", f"logical K {w.size(0)} does not match x's K {k}")
    n = w.size(1)
    require(1 <= n <= 65535, op, "weight", f"N = {n} not in [1, 65535]")
    gs = antiquant_group_size
    require(
        gs == 0 or (gs % 32 == 0 and 32 <= gs <= k - 1),
        op,
        "antiquant_group_size",
        f"{gs} is neither 0 nor a multiple of 32 in [32, K-1 = {k - 1}]",
    )
    require(inner_precise in (0, 1), op, "inner_precise", f"{inner_precise} not in (0, 1)")
    int64_mode = antiquant_scale.dtype == torch.int64
    if int64_mode:
        require(
            x.dtype == torch.float16 and weight.dtype == torch.int8 and is_transposed_view(weight),
            op,
            "antiquant_scale",
            "int64 scales need fp16 x and a transposed int8 weight",
        )
        require(gs == 0 and quant_scale is None, op, "antiquant_scale", "int64 scales are per-channel only")
        require(
            1 <= m <= 96 and k % 64 == 0 and n % 64 == 0,
            op,
            "antiquant_scale",
            "int64 scales need M in [1, 96] and K, N multiples of 64",
        )
    else:
        check_dtype(op, "antiquant_scale", antiquant_scale, (x.dtype,))
    ng = -(-k // gs) if gs else 0
    shapes = [(ng, n)] if gs else [(1,), (1, 1), (n,), (1, n)]
    require(
        tuple(antiquant_scale.shape) in shapes,
        op,
        "antiquant_scale",
        f"shape {tuple(antiquant_scale.shape)} not in {shapes}",
    )
    if antiquant_offset is not None:
        check_dtype(op, "antiquant_offset", antiquant_offset, (torch.int32,) if int64_mode else (x.dtype,))
        require(antiquant_offset.shape == antiquant_scale.shape, op, "antiquant_offset", "must match the scale")
    if bias is not None:
        check_dtype(op, "bias", bias, (torch.float16,) if x.dtype == torch.float16 else (torch.float32,))
        require(tuple(bias.shape) in ((n,), (1, n)), op, "bias", f"shape {tuple(bias.shape)} not ({n},) or (1, {n})")
        require(bias.is_contiguous(), op, "bias", "must be contiguous")
    if quant_offset is not None:
        require(quant_scale is not None, op, "quant_offset", "needs quant_scale")
    if int64_mode:
        scale = nm.fp19_truncate(nm.int64_to_float_bits(antiquant_scale)).reshape(-1, n)
        off = antiquant_offset.to(torch.float32).reshape(-1, n) if antiquant_offset is not None else None
        wf = w.to(torch.float32)
        dq = ((wf + off) if off is not None else wf) * scale
    else:
        scale = antiquant_scale.reshape(-1, n)
        off = antiquant_offset.reshape(-1, n) if antiquant_offset is not None else None
        if gs:
            scale = scale.repeat_interleave(gs, dim=0)[:k]
            off = off.repeat_interleave(gs, dim=0)[:k] if off is not None else None
        # The golden forms the dequantized weight in the activation dtype, then accumulates in fp32.
        wx = w.to(x.dtype)
        dq = ((wx + off) if off is not None else wx) * scale
    y = x.to(torch.float32) @ dq.to(torch.float32)
    if bias is not None:
        y = y + bias.reshape(n).to(torch.float32)
    if quant_scale is None:
        return y.to(x.dtype)
    check_dtype(op, "quant_scale", quant_scale, (torch.float32, torch.int64))
    require(tuple(quant_scale.shape) in ((1,), (n,), (1, n)), op, "quant_scale", "shape not (1,), (N,) or (1, N)")
    qs, _ = _decode_scale(quant_scale.reshape(-1), implicit_fp19=True)
    y = y * qs
    if quant_offset is not None:
        check_dtype(op, "quant_offset", quant_offset, (torch.float32,))
        require(quant_offset.shape == quant_scale.shape, op, "quant_offset", "must match quant_scale")
        y = y + quant_offset.reshape(-1)
    return nm.saturate(nm.rint(y), -128, 127).to(torch.int8)
