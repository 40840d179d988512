"""CPU emulation of the quantize ops: ``npu_trans_quant_param``, ``npu_quantize``,
``npu_dynamic_quant`` and ``npu_dynamic_mx_quant`` (torch_npu_ops.md sections 2.1, 3.1-3.3)."""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.runtime import numerics as nm
from quantspec.runtime.ops.base import DtypeArg, NpuDtype
from quantspec.runtime.ops.checks import check_dim, check_dtype, kernel_error, require

_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


def npu_trans_quant_param(scale: Tensor, offset: Tensor | None = None, round_mode: int = 0) -> Tensor:
    """float32 scale (and optional offset) to int64 words: FP19 bits | bit 46 | 9-bit offset << 37."""
    op = "npu_trans_quant_param"
    check_dtype(op, "scale", scale, (torch.float32,))
    check_dim(op, "scale", scale, (1, 2))
    require(scale.numel() > 0, op, "scale", "must not be empty")
    require(round_mode in (0, 1), op, "round_mode", f"{round_mode} not in (0, 1)")
    f = nm.fp19_round(scale) if round_mode == 1 else scale
    word = (nm.float_bits_to_int64(f) & nm.FP19_MASK) | (1 << 46)
    if offset is None:
        return word
    check_dtype(op, "offset", offset, (torch.float32,))
    check_dim(op, "offset", offset, (1, 2))
    if scale.dim() == 1 and offset.dim() == 1 and offset.numel() != scale.numel():
        require(1 in (scale.numel(), offset.numel()), op, "offset", "1-D lengths must match or be 1")
        length = max(scale.numel(), offset.numel())
        word, offset = word.expand(length), offset.expand(length)
    require(tuple(offset.shape) == tuple(word.shape), op, "offset", f"shape {tuple(offset.shape)} != scale's")
    o = torch.clamp(nm.rint(offset), -256, 255).to(torch.int64)
    out: Tensor = (word & 0x4000FFFFFFFF) | ((o & 0x1FF) << 37)
    return out


def npu_quantize(  # noqa: PLR0917 - torch_npu schema order
    input: Tensor,
    scales: Tensor,
    zero_points: Tensor | None,
    dtype: DtypeArg,
    axis: int = 1,
    div_mode: bool = True,
) -> Tensor:
    """Per-tensor/per-channel static quantization to int8/uint8/int32 or packed int4."""
    op = "npu_quantize"
    check_dtype(op, "self", input, _FLOATS)
    if div_mode:
        check_dtype(op, "scales", scales, (torch.float32, torch.bfloat16))
        require(dtype in (torch.qint8, torch.quint8, torch.int32), op, "dtype", f"{dtype} not qint8/quint8/int32")
        ax = axis % input.dim()
    else:
        check_dtype(op, "scales", scales, (input.dtype,))
        require(dtype in (torch.qint8, torch.quint4x2), op, "dtype", f"{dtype} not qint8/quint4x2")
        ax = input.dim() - 2 if axis == -2 else input.dim() - 1
    n = input.size(ax)
    require(scales.numel() in (1, n), op, "scales", f"needs 1 or {n} elements, got {scales.numel()}")
    require(
        scales.dim() == 1 or sum(s != 1 for s in scales.shape) <= 1,
        op,
        "scales",
        f"shape {tuple(scales.shape)} must be 1-D or all ones except the quant axis",
    )
    bshape = [1] * input.dim()
    bshape[ax] = scales.numel()
    s = scales.reshape(bshape).to(torch.float32)
    z = torch.zeros((), dtype=torch.float32)
    if zero_points is not None:
        allowed = (torch.int8, torch.uint8, torch.int32, torch.bfloat16) if div_mode else (input.dtype,)
        check_dtype(op, "zero_points", zero_points, allowed)
        require(zero_points.numel() == scales.numel(), op, "zero_points", "must have as many elements as scales")
        z = zero_points.reshape(bshape).to(torch.float32)
    x = input.to(torch.float32)
    y = nm.rint(x / s + z) if div_mode else nm.round_half_away(x * s + z)
    if dtype == torch.quint4x2:
        require(input.size(-1) % 8 == 0, op, "self", f"last dim {input.size(-1)} not a multiple of 8 for quint4x2")
        return nm.pack_int4_lsb(nm.saturate(y, -8, 7).to(torch.int32))
    if dtype == torch.quint8:
        return nm.saturate(y, 0, 255).to(torch.uint8)
    if dtype == torch.int32:
        return nm.saturate(y, -(2**31), 2**31 - 1).to(torch.int32)
    return nm.saturate(y, -128, 127).to(torch.int8)


def _dyn_target(dst_type: DtypeArg, dst_type_max: float) -> tuple[str, float]:
    if dst_type is None or dst_type == torch.int8:
        return "int8", 127.0
    if dst_type in (torch.quint4x2, NpuDtype.INT4):
        return "int4", 7.0
    if dst_type in (torch.float8_e4m3fn, NpuDtype.FLOAT8_E4M3FN):
        return "e4m3", dst_type_max or nm.FP8_E4M3_MAX
    if dst_type in (torch.float8_e5m2, NpuDtype.FLOAT8_E5M2):
        return "e5m2", dst_type_max or nm.FP8_E5M2_MAX
    raise kernel_error("npu_dynamic_quant", "dst_type", f"{dst_type} is not int8, quint4x2, int4 or fp8")


def npu_dynamic_quant(
    input: Tensor,
    *,
    smooth_scales: Tensor | None = None,
    group_index: Tensor | None = None,
    dst_type: DtypeArg = None,
    quant_mode: str = "pertoken",
    dst_type_max: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Symmetric dynamic quantization: ``scale = max|v| / DTYPE_MAX``, ``y = rint(v / scale)``."""
    op = "npu_dynamic_quant"
    check_dtype(op, "input", input, (torch.float16, torch.bfloat16))
    require(input.dim() >= 2, op, "input", f"needs at least 2 dims, got {input.dim()}")
    require(quant_mode in ("pertoken", "pertensor"), op, "quant_mode", f"{quant_mode!r} not emulated")
    kind, dmax = _dyn_target(dst_type, dst_type_max)
    h = input.size(-1)
    v = input.to(torch.float32)
    if smooth_scales is not None:
        check_dtype(op, "smooth_scales", smooth_scales, (input.dtype,))
        if group_index is None:
            require(tuple(smooth_scales.shape) == (h,), op, "smooth_scales", f"must be [{h}]")
            v = v * smooth_scales.to(torch.float32)
        else:
            check_dtype(op, "group_index", group_index, (torch.int32,))
            rows = v.reshape(-1, h)
            e = group_index.numel()
            require(tuple(smooth_scales.shape) == (e, h), op, "smooth_scales", f"must be [{e}, {h}]")
            require(int(group_index[-1]) == rows.size(0), op, "group_index", "last value must equal the row count")
            require(bool((group_index[1:] >= group_index[:-1]).all()), op, "group_index", "must be non-decreasing")
            which = torch.bucketize(torch.arange(rows.size(0)), group_index.to(torch.int64), right=True)
            v = (rows * smooth_scales.to(torch.float32)[which]).reshape(v.shape)
    elif group_index is not None:
        raise kernel_error(op, "group_index", "needs smooth_scales")
    if quant_mode == "pertensor":
        amax = v.abs().amax().reshape(1)
        scale = amax / dmax
        q = v / torch.where(scale > 0, scale, torch.ones_like(scale))
    else:
        amax = v.abs().amax(dim=-1)
        scale = amax / dmax
        q = v / torch.where(scale > 0, scale, torch.ones_like(scale)).unsqueeze(-1)
    if kind == "int8":
        return nm.saturate(nm.rint(q), -128, 127).to(torch.int8), scale
    if kind == "int4":
        require(h % 8 == 0, op, "input", f"last dim {h} must be a multiple of 8 for int4 output")
        return nm.pack_int4_lsb(nm.saturate(nm.rint(q), -8, 7).to(torch.int32)), scale
    dt = torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2
    return nm.to_fp8_saturating(q, dt), scale


_MX_EMAX = {"e2m1": 2, "e4m3": 8, "e5m2": 15}


def _mx_target(dst_type: DtypeArg) -> str:
    if dst_type == NpuDtype.FLOAT4_E2M1FN_X2:
        return "e2m1"
    if dst_type in (torch.float8_e4m3fn, NpuDtype.FLOAT8_E4M3FN):
        return "e4m3"
    if dst_type in (torch.float8_e5m2, NpuDtype.FLOAT8_E5M2):
        return "e5m2"
    raise kernel_error("npu_dynamic_mx_quant", "dst_type", f"{dst_type} is not fp4 e2m1, fp8 e4m3fn or e5m2")


def npu_dynamic_mx_quant(
    input: Tensor,
    *,
    axis: int = -1,
    round_mode: str = "rint",
    dst_type: DtypeArg = NpuDtype.FLOAT4_E2M1FN_X2,
    block_size: int = 32,
    scale_alg: int = 0,
    dst_type_max: float = 0.0,
    max_low_bound: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """MX quantization along ``axis``: E8M0 scale per block, scales returned in pairs."""
    op = "npu_dynamic_mx_quant"
    check_dtype(op, "input", input, _FLOATS)
    require(1 <= input.dim() <= 7, op, "input", f"rank {input.dim()} not in 1..7")
    kind = _mx_target(dst_type)
    require(block_size > 0 and block_size % 32 == 0 and block_size <= 1024, op, "block_size", f"{block_size}")
    allowed_rounding = ("rint", "round") if kind == "e2m1" else ("rint",)
    require(round_mode in allowed_rounding, op, "round_mode", f"{round_mode!r} not in {allowed_rounding}")
    require(scale_alg in (0, 1), op, "scale_alg", f"{scale_alg} not emulated (0 and 1 are)")
    require(scale_alg == 0 or kind != "e2m1", op, "scale_alg", "scale_alg=1 is for FP8 outputs only")
    require(max_low_bound == 0.0 or scale_alg == 1, op, "max_low_bound", "must be 0.0 unless scale_alg=1")
    ax = axis % input.dim()
    length = input.size(ax)
    if input.dtype == torch.float32:
        require(block_size == 32 and length >= 32, op, "input", "float32 needs block_size 32 and axis length >= 32")
    if kind == "e2m1":
        require(input.size(-1) % 2 == 0, op, "input", "FP4 output needs an even last dim")
    x = input.to(torch.float32).movedim(ax, -1)
    nb = -(-length // block_size)
    blocks = torch.nn.functional.pad(x, (0, nb * block_size - length)).reshape(*x.shape[:-1], nb, block_size)
    amax = blocks.abs().amax(dim=-1)
    if scale_alg == 0:
        exp = nm.floor_log2(torch.where(amax > 0, amax, torch.ones_like(amax))) - _MX_EMAX[kind]
    else:
        fmax = dst_type_max or (nm.FP8_E4M3_MAX if kind == "e4m3" else nm.FP8_E5M2_MAX)
        s = torch.clamp(amax, min=max_low_bound) / fmax
        s = torch.where(s > 0, s, torch.ones_like(s))
        fl = nm.floor_log2(s)
        exact = torch.ldexp(torch.ones_like(s), fl) == s
        exp = fl + (~exact).to(torch.int32)
    byte = torch.clamp(exp + 127, 0, 255)
    byte = torch.where(amax > 0, byte, torch.zeros_like(byte)).to(torch.uint8)
    scale = nm.decode_e8m0(byte)
    scaled = (blocks / scale.unsqueeze(-1)).reshape(*x.shape[:-1], nb * block_size)[..., :length]
    scaled = scaled.movedim(-1, ax)
    if kind == "e2m1":
        if round_mode == "round":
            # Half away from zero: nudge exact midpoints outwards before the nearest-even encode.
            mag = torch.abs(scaled)
            mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
            at_mid = torch.isin(mag, mids)
            scaled = torch.where(at_mid, scaled * (1 + 2**-20), scaled)
        y = nm.pack_fp4_pairs(nm.encode_e2m1(scaled))
    else:
        y = nm.to_fp8_saturating(scaled, torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2)
    pairs = nm.pair_scales(byte)
    return y, pairs.movedim(-2, ax) if ax != input.dim() - 1 else pairs
