"""CPU emulation of the MoE ops: ``npu_grouped_matmul`` (single-tensor, grouped along M),
``npu_swiglu``, ``npu_moe_init_routing_v2`` (dropless) and ``npu_moe_finalize_routing``
(torch_npu_ops.md 4.3, 5.1, 5.5, 5.6)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from quantspec.runtime import numerics as nm
from quantspec.runtime.ops.base import DtypeArg
from quantspec.runtime.ops.checks import check_dim, check_dtype, is_transposed_view, kernel_error, require
from quantspec.runtime.ops.cpu_matmul import _decode_scale
from quantspec.runtime.ops.cpu_moe_modes import grouped_mxfp4_matmul, grouped_quant_matmul, quant_mode

_GMM = "npu_grouped_matmul"


def _group_bounds(group_list: Tensor, group_list_type: int, groups: int, rows: int) -> list[tuple[int, int]]:
    check_dtype(_GMM, "group_list", group_list, (torch.int64,))
    require(group_list_type in (0, 1), _GMM, "group_list_type", f"{group_list_type} not emulated (0, 1 are)")
    check_shape_len = group_list.numel() == groups
    require(check_shape_len, _GMM, "group_list", f"needs {groups} entries, got {group_list.numel()}")
    ends = group_list.cumsum(0) if group_list_type == 1 else group_list
    require(bool((ends[1:] >= ends[:-1]).all()) if groups > 1 else True, _GMM, "group_list", "must be non-decreasing")
    require(int(ends[-1]) <= rows, _GMM, "group_list", f"covers {int(ends[-1])} rows but x has {rows}")
    starts = [0, *ends[:-1].tolist()]
    return list(zip(starts, ends.tolist(), strict=True))


def npu_grouped_matmul(
    x: Sequence[Tensor],
    weight: Sequence[Tensor],
    *,
    bias: Sequence[Tensor] | None = None,
    scale: Sequence[Tensor] | None = None,
    offset: Sequence[Tensor] | None = None,
    antiquant_scale: Sequence[Tensor] | None = None,
    antiquant_offset: Sequence[Tensor] | None = None,
    per_token_scale: Sequence[Tensor] | None = None,
    group_list: Tensor | None = None,
    activation_input: Sequence[Tensor] | None = None,
    activation_quant_scale: Sequence[Tensor] | None = None,
    activation_quant_offset: Sequence[Tensor] | None = None,
    split_item: int = 0,
    group_type: int | None = None,
    group_list_type: int = 0,
    act_type: int = 0,
    tuning_config: Sequence[int] | None = None,
    output_dtype: DtypeArg = None,
    x_dtype: DtypeArg = None,
    weight_dtype: DtypeArg = None,
    scale_dtype: DtypeArg = None,
    per_token_scale_dtype: DtypeArg = None,
) -> list[Tensor]:
    """Grouped matmul, single x ``[M, K]`` / single weight ``[E, K, N]`` / grouped along M.

    Modes: float, int8 per-channel/per-token (``scale`` int64/bf16/fp32, ``per_token_scale``),
    int8 without scale (int32 out), and weight-only (``antiquant_scale``/``antiquant_offset`` with
    an int8 or int4x8 weight, per-channel ``[E, N]`` or per-group ``[E, G, N]``).
    """
    require(len(x) == 1 and len(weight) == 1, _GMM, "x", "only the single-x / single-weight scenario is emulated")
    for name, val in (
        ("offset", offset),
        ("activation_input", activation_input),
        ("activation_quant_scale", activation_quant_scale),
        ("activation_quant_offset", activation_quant_offset),
    ):
        require(val is None, _GMM, name, "reserved; pass None")
    require(act_type == 0, _GMM, "act_type", "fused activations are not emulated")
    mode = quant_mode(x[0], weight[0], scale_dtype, x_dtype, weight_dtype)
    if mode is not None:  # A8W4, A4W4, MX and MXFP4 modes: cpu_moe_modes.py
        require(group_list is not None and group_type == 0, _GMM, "group_type", "must be passed explicitly as 0")
        assert group_list is not None
        bounds = _group_bounds(group_list, group_list_type, weight[0].size(0), x[0].size(0))
        if mode == "mxfp4":
            return [grouped_mxfp4_matmul(
                x[0], weight[0], bounds, scale=scale, antiquant_scale=antiquant_scale,
                antiquant_offset=antiquant_offset, bias=bias, per_token_scale=per_token_scale,
                output_dtype=output_dtype, x_dtype=x_dtype, weight_dtype=weight_dtype, scale_dtype=scale_dtype,
                per_token_scale_dtype=per_token_scale_dtype)]
        require(x_dtype is None and weight_dtype is None, _GMM, "x_dtype", "HiFloat8/FP4 E1M2 inputs are not emulated")
        require(antiquant_scale is None and antiquant_offset is None, _GMM, "antiquant_scale",
                f"the {mode} mode takes no antiquant scale/offset")
        return [grouped_quant_matmul(
            mode, x[0], weight[0], bounds, scale=scale, bias=bias, per_token_scale=per_token_scale,
            output_dtype=output_dtype, scale_dtype=scale_dtype, per_token_scale_dtype=per_token_scale_dtype)]
    require(
        x_dtype is None and weight_dtype is None and scale_dtype is None and per_token_scale_dtype is None,
        _GMM,
        "x_dtype",
        "950 FP8/FP4/MX grouped modes are not emulated",
    )
    require(split_item in (0, 1, 2, 3), _GMM, "split_item", f"{split_item} not in 0..3")
    require(group_list is not None, _GMM, "group_list", "required for the grouped scenario")
    require(group_type == 0, _GMM, "group_type", "must be passed explicitly as 0 (group along M)")
    assert group_list is not None
    xt, wt = x[0], weight[0]
    check_dim(_GMM, "x", xt, (2,))
    check_dim(_GMM, "weight", wt, (3,))
    m, k = xt.shape
    e = wt.size(0)
    if wt.dtype == torch.int32:
        if is_transposed_view(wt):
            wl = nm.unpack_int4_lsb(wt.transpose(-1, -2)).transpose(-1, -2)
        else:
            wl = nm.unpack_int4_lsb(wt)
    else:
        wl = wt
    require(wl.size(1) == k, _GMM, "weight", f"K mismatch: x has {k}, weight has {wl.size(1)}")
    require(k < 65536 and wl.size(2) < 65536, _GMM, "weight", "inner dims must be < 65536")
    n = wl.size(2)
    bounds = _group_bounds(group_list, group_list_type, e, m)
    quant = xt.dtype == torch.int8
    weight_only = antiquant_scale is not None
    if quant:
        check_dtype(_GMM, "weight", wt, (torch.int8,))
    elif weight_only:
        check_dtype(_GMM, "x", xt, (torch.float16, torch.bfloat16))
        check_dtype(_GMM, "weight", wt, (torch.int8, torch.int32))
    else:
        check_dtype(_GMM, "x", xt, (torch.float16, torch.bfloat16, torch.float32))
        check_dtype(_GMM, "weight", wt, (xt.dtype,))
    if quant:
        if scale is None:
            out_dtype = torch.int32
        else:
            check_dtype(_GMM, "scale", scale[0], (torch.int64, torch.bfloat16, torch.float32))
            require(tuple(scale[0].shape) == (e, n), _GMM, "scale", f"must be ({e}, {n})")
            default = {torch.int64: torch.int8, torch.bfloat16: torch.bfloat16, torch.float32: torch.float16}
            out_dtype = output_dtype if isinstance(output_dtype, torch.dtype) else default[scale[0].dtype]
    else:
        out_dtype = xt.dtype
    if per_token_scale is not None:
        require(quant and scale is not None, _GMM, "per_token_scale", "needs int8 x and scale")
        check_dtype(_GMM, "per_token_scale", per_token_scale[0], (torch.float32,))
        require(tuple(per_token_scale[0].shape) == (m,), _GMM, "per_token_scale", f"must be ({m},)")
    if bias is not None:
        want = (torch.int32,) if quant else ((torch.float32,) if xt.dtype == torch.bfloat16 else (xt.dtype,))
        check_dtype(_GMM, "bias", bias[0], want)
        require(tuple(bias[0].shape) == (e, n), _GMM, "bias", f"must be ({e}, {n})")
    dq_w: Tensor | None = None
    if weight_only:
        assert antiquant_scale is not None
        sc = antiquant_scale[0]
        check_dtype(_GMM, "antiquant_scale", sc, (xt.dtype,))
        require(
            sc.dim() in (2, 3) and sc.size(0) == e and sc.size(-1) == n,
            _GMM,
            "antiquant_scale",
            f"shape {tuple(sc.shape)} not ({e}, {n}) or ({e}, G, {n})",
        )
        if sc.dim() == 3:
            require(wt.dtype == torch.int32, _GMM, "antiquant_scale",
                    "per-group antiquant scales need int4 weights (int8 weight-only is per-channel only)")
            require(k % sc.size(1) == 0, _GMM, "antiquant_scale", f"G = {sc.size(1)} does not divide K = {k}")
            sc = sc.repeat_interleave(k // sc.size(1), dim=1)
        else:
            sc = sc.unsqueeze(1)
        wx = wl.to(xt.dtype)
        if antiquant_offset is not None:
            off = antiquant_offset[0]
            check_dtype(_GMM, "antiquant_offset", off, (xt.dtype,))
            require(off.shape == antiquant_scale[0].shape, _GMM, "antiquant_offset", "must match antiquant_scale")
            off = off.repeat_interleave(k // off.size(1), dim=1) if off.dim() == 3 else off.unsqueeze(1)
            wx = wx + off
        dq_w = (wx * sc).to(torch.float32)
    out = torch.zeros(m, n, dtype=torch.float32)
    for g, (lo, hi) in enumerate(bounds):
        if hi <= lo:
            continue
        if quant:
            acc = xt[lo:hi].to(torch.float64) @ wl[g].to(torch.float64)
            if bias is not None:
                acc = acc + bias[0][g].to(torch.float64)
            if scale is None:
                out[lo:hi] = acc.to(torch.float32)
                continue
            implicit = per_token_scale is None and out_dtype in (torch.int8, torch.float16)
            s, _ = _decode_scale(scale[0][g], implicit)
            part = acc.to(torch.float32) * s
            if per_token_scale is not None:
                part = part * per_token_scale[0][lo:hi].unsqueeze(-1)
            out[lo:hi] = part
        else:
            w_g = dq_w[g] if dq_w is not None else wl[g].to(torch.float32)
            part = xt[lo:hi].to(torch.float32) @ w_g
            if bias is not None:
                part = part + bias[0][g].to(torch.float32)
            out[lo:hi] = part
    if out_dtype == torch.int32:
        result = out.to(torch.float64).round().to(torch.int32)
    elif out_dtype == torch.int8:
        result = nm.saturate(nm.rint(out), -128, 127).to(torch.int8)
    else:
        assert isinstance(out_dtype, torch.dtype)
        result = out.to(out_dtype)
    return [result]


def npu_swiglu(input: Tensor, dim: int = -1) -> Tensor:
    """``silu(A) * B`` with ``A, B`` the two halves of ``input`` along ``dim``."""
    op = "npu_swiglu"
    check_dtype(op, "self", input, (torch.float16, torch.bfloat16, torch.float32))
    require(1 <= input.dim() <= 8, op, "self", f"rank {input.dim()} not in 1..8")
    require(input.size(dim) % 2 == 0, op, "self", f"size {input.size(dim)} along dim {dim} is odd")
    a, b = input.to(torch.float32).chunk(2, dim=dim)
    return (torch.nn.functional.silu(a) * b).to(input.dtype)


def npu_moe_init_routing_v2(
    x: Tensor,
    expert_idx: Tensor,
    *,
    scale: Tensor | None = None,
    offset: Tensor | None = None,
    active_num: int = -1,
    expert_capacity: int = -1,
    expert_num: int = -1,
    drop_pad_mode: int = 0,
    expert_tokens_num_type: int = 0,
    expert_tokens_num_flag: bool = False,
    quant_mode: int = -1,
    active_expert_range: Sequence[int] = (),
    row_idx_type: int = 0,
    x_dtype: DtypeArg = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dropless routing: stable sort of (token, choice) pairs by expert, row-major flat index."""
    op = "npu_moe_init_routing_v2"
    check_dtype(op, "x", x, (torch.float16, torch.bfloat16, torch.float32))
    check_dim(op, "x", x, (2,))
    check_dtype(op, "expert_idx", expert_idx, (torch.int32,))
    check_dim(op, "expert_idx", expert_idx, (2,))
    require(expert_idx.size(0) == x.size(0), op, "expert_idx", "needs one row per token")
    require(drop_pad_mode == 0, op, "drop_pad_mode", "only dropless (0) is emulated")
    require(quant_mode in (-1, 0, 1), op, "quant_mode", f"{quant_mode} not emulated (-1, 0, 1 are)")
    require(row_idx_type in (0, 1), op, "row_idx_type", f"{row_idx_type} not in (0, 1)")
    require(x_dtype is None, op, "x_dtype", "950 input dtypes are not emulated")
    n, k = expert_idx.shape
    h = x.size(1)
    if active_expert_range:
        require(len(active_expert_range) == 2, op, "active_expert_range", "needs [start, end)")
        start, end = int(active_expert_range[0]), int(active_expert_range[1])
    else:
        require(expert_num > 0, op, "expert_num", "needs expert_num or active_expert_range")
        start, end = 0, expert_num
    flat = expert_idx.reshape(-1).to(torch.int64)
    valid = (flat >= start) & (flat < end)
    key = torch.where(valid, flat, torch.full_like(flat, 2**62))
    order = torch.sort(key, stable=True).indices
    avail = int(valid.sum())
    total = n * k
    rows = total if active_num in (-1, 0) else min(active_num, total)
    n_out = avail if active_num in (-1, 0) else min(active_num, avail)
    if row_idx_type == 1:
        row_idx = order.to(torch.int32)
    else:
        row_idx = torch.full((total,), -1, dtype=torch.int32)
        row_idx[order[:avail]] = torch.arange(avail, dtype=torch.int32)
    src_tok = order[:n_out] // k
    gathered = torch.zeros(rows, h, dtype=torch.float32)
    gathered[:n_out] = x[src_tok].to(torch.float32)
    expanded_scale = torch.zeros(rows, dtype=torch.float32)
    if quant_mode == 1:
        if scale is not None:
            check_dtype(op, "scale", scale, (torch.float32, x.dtype))
            require(
                scale.shape[-1] == h and scale.size(0) in (1, end - start),
                op,
                "scale",
                f"smooth scales must be [1, {h}] or [{end - start}, {h}]",
            )
            which = (flat[order[:n_out]] - start) if scale.size(0) > 1 else torch.zeros(n_out, dtype=torch.int64)
            gathered[:n_out] = gathered[:n_out] * scale.to(torch.float32)[which]
        amax = gathered.abs().amax(dim=-1)
        expanded_scale = amax / 127.0
        safe = torch.where(expanded_scale > 0, expanded_scale, torch.ones_like(expanded_scale))
        expanded_x = nm.saturate(nm.rint(gathered / safe.unsqueeze(-1)), -128, 127).to(torch.int8)
    elif quant_mode == 0:
        require(scale is not None and offset is not None, op, "scale", "static quant needs scale and offset (1,)")
        assert scale is not None and offset is not None
        y = gathered * scale.reshape(-1)[0].to(torch.float32) + offset.reshape(-1)[0].to(torch.float32)
        expanded_x = nm.saturate(nm.rint(y), -128, 127).to(torch.int8)
    else:
        expanded_x = gathered.to(x.dtype)
        if scale is not None:
            check_dtype(op, "scale", scale, (torch.float32,))
            require(tuple(scale.shape) == (n,), op, "scale", f"must be ({n},) without quantization")
            expanded_scale[:n_out] = scale[src_tok]
    counts = torch.bincount(flat[valid] - start, minlength=end - start).to(torch.int64)
    if not expert_tokens_num_flag:
        tokens = torch.zeros(0, dtype=torch.int64)
    elif expert_tokens_num_type == 0:
        tokens = counts.cumsum(0)
    elif expert_tokens_num_type == 1:
        tokens = counts
    elif expert_tokens_num_type == 2:
        nz = torch.nonzero(counts).flatten()
        tokens = torch.zeros(end - start, 2, dtype=torch.int64)
        tokens[: nz.numel(), 0] = nz + start
        tokens[: nz.numel(), 1] = counts[nz]
    else:
        raise kernel_error(op, "expert_tokens_num_type", f"{expert_tokens_num_type} not in 0..2")
    return expanded_x, row_idx, tokens, expanded_scale


def npu_moe_finalize_routing(  # noqa: PLR0917 - torch_npu schema order
    expanded_permuted_rows: Tensor,
    skip1: Tensor | None,
    skip2: Tensor | None,
    bias: Tensor | None,
    scales: Tensor | None,
    expanded_src_to_dst_row: Tensor,
    export_for_source_row: Tensor | None,
    drop_pad_mode: int = 0,
    k: int = 1,
) -> Tensor:
    """``out[i] = skip1 + skip2 + sum_j scales[i, j] * (rows[dst(i, j)] + bias[expert(i, j)])``."""
    op = "npu_moe_finalize_routing"
    rows = expanded_permuted_rows
    check_dtype(op, "expanded_permuted_rows", rows, (torch.float16, torch.bfloat16, torch.float32))
    require(drop_pad_mode in (0, 1, 2, 3), op, "drop_pad_mode", f"{drop_pad_mode} not in 0..3")
    check_dtype(op, "expanded_src_to_dst_row", expanded_src_to_dst_row, (torch.int32,))
    h = rows.size(-1)
    flat_rows = rows.reshape(-1, h).to(torch.float32)
    if scales is not None:
        check_dim(op, "scales", scales, (2,))
        n, kk = scales.shape
    else:
        kk = k
        n = expanded_src_to_dst_row.numel() // kk
    require(expanded_src_to_dst_row.numel() == n * kk, op, "expanded_src_to_dst_row", f"needs {n * kk} entries")
    if skip2 is not None:
        require(skip1 is not None, op, "skip2", "needs skip1")
    out = torch.zeros(n, h, dtype=torch.float32)
    for name, skip in (("skip1", skip1), ("skip2", skip2)):
        if skip is not None:
            require(tuple(skip.shape) == (n, h), op, name, f"must be ({n}, {h})")
            out = out + skip.to(torch.float32)
    idx = expanded_src_to_dst_row.to(torch.int64)
    # Modes 0/1 index column-major (j*N + i), modes 2/3 row-major (i*K + j).
    dst = idx.reshape(kk, n).t() if drop_pad_mode in (0, 1) else idx.reshape(n, kk)
    safe = torch.where(dst >= 0, dst, torch.zeros_like(dst))
    picked = flat_rows[safe] * (dst >= 0).unsqueeze(-1)
    if bias is not None:
        require(export_for_source_row is not None, op, "export_for_source_row", "needed with bias")
        assert export_for_source_row is not None
        picked = picked + bias.to(torch.float32)[export_for_source_row.to(torch.int64)]
    if scales is not None:
        picked = picked * scales.to(torch.float32).unsqueeze(-1)
    return (out + picked.sum(dim=1)).to(rows.dtype)
