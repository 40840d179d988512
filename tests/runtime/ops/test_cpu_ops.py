"""The cpu backend against the torch_npu contract (torch_npu_ops.md): math, encodings, argument checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from quantspec.errors import Code, KernelArgumentError
from quantspec.runtime import numerics as nm
from quantspec.runtime.ops import AclFormat, NpuDtype, get_ops

ops = get_ops("cpu")
g = torch.Generator().manual_seed(0)


def _i8(*shape: int) -> torch.Tensor:
    return torch.randint(-128, 128, shape, generator=g, dtype=torch.int8)


def _raises(op: str, arg: str) -> Any:
    return pytest.raises(KernelArgumentError, match=rf"{op}: argument '{arg}'")


# ----------------------------------------------------------------------------- trans_quant_param


def test_trans_quant_param_bits() -> None:
    s = torch.tensor([0.1, 3.0], dtype=torch.float32)
    out = ops.npu_trans_quant_param(s)
    assert out.dtype == torch.int64 and out.shape == (2,)
    raw = s.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    assert torch.equal(out, (raw & 0xFFFFE000) | (1 << 46))
    with_off = ops.npu_trans_quant_param(s, torch.tensor([-3.0, 300.0]))
    assert int((with_off[0] >> 37) & 0x1FF) == (-3) & 0x1FF
    assert int((with_off[1] >> 37) & 0x1FF) == 255  # clamped to [-256, 255]
    assert ops.npu_trans_quant_param(torch.ones(1, 4)).shape == (1, 4)
    with _raises("npu_trans_quant_param", "scale"):
        ops.npu_trans_quant_param(torch.ones(3, dtype=torch.float16))


# ----------------------------------------------------------------------------- quant_matmul int8


def test_quant_matmul_fp19_is_implicit_only_without_pertoken() -> None:
    x1, x2 = _i8(5, 32), _i8(32, 24)
    scale = torch.rand(24, generator=g) * 1e-3 + 1e-4
    acc = x1.to(torch.float64) @ x2.to(torch.float64)
    fp16 = ops.npu_quant_matmul(x1, x2, scale, output_dtype=torch.float16)
    assert torch.equal(fp16, (acc.float() * nm.fp19_truncate(scale)).to(torch.float16))
    # The same scale as an int64 trans_quant_param word gives the same result.
    word = ops.npu_trans_quant_param(scale)
    assert torch.equal(ops.npu_quant_matmul(x1, x2, word, output_dtype=torch.float16), fp16)
    pt = torch.rand(5, generator=g)
    bf16 = ops.npu_quant_matmul(x1, x2, scale, pertoken_scale=pt, output_dtype=torch.bfloat16)
    assert torch.equal(bf16, (acc.float() * scale * pt[:, None]).to(torch.bfloat16))


def test_quant_matmul_int8_output_rounds_half_even_and_saturates() -> None:
    x1 = torch.tensor([[1, 1]], dtype=torch.int8)
    x2 = torch.tensor([[1, 100], [1, 100]], dtype=torch.int8)
    # acc = [2, 200]; scale 1.25 -> [2.5, 250] -> rint 2, saturate 127.
    out = ops.npu_quant_matmul(x1, x2, torch.tensor([1.25]))
    assert out.dtype == torch.int8 and out.tolist() == [[2, 127]]
    out = ops.npu_quant_matmul(x1, x2, torch.tensor([1.25]), offset=torch.tensor([-3.0]))
    assert out.tolist() == [[-0, 127]] or out.tolist() == [[0, 127]]


def test_quant_matmul_int32_bias_and_transposed_weight() -> None:
    x1, w = _i8(3, 16), _i8(8, 16)
    bias = torch.randint(-100, 100, (8,), generator=g, dtype=torch.int32)
    a = ops.npu_quant_matmul(x1, w.t(), torch.ones(1), bias=bias, output_dtype=torch.int32)
    b = ops.npu_quant_matmul(x1, w.t().contiguous(), torch.ones(1), bias=bias, output_dtype=torch.int32)
    assert torch.equal(a, b)
    assert torch.equal(a, (x1.to(torch.int64) @ w.t().to(torch.int64) + bias).to(torch.int32))


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"scale": torch.ones(4, dtype=torch.bfloat16), "output_dtype": torch.float16}, "scale"),
        ({"scale": torch.ones(4), "bias": torch.ones(4, dtype=torch.float16), "output_dtype": torch.float16}, "bias"),
        ({"scale": torch.ones(4), "pertoken_scale": torch.ones(3), "output_dtype": torch.int8}, "pertoken_scale"),
        ({"scale": torch.ones(5)}, "scale"),
        ({"scale": torch.ones(4), "offset": torch.ones(1), "output_dtype": torch.float16}, "offset"),
    ],
)
def test_quant_matmul_rejects_forbidden_combinations(kwargs: dict[str, object], arg: str) -> None:
    scale = kwargs.pop("scale")
    assert isinstance(scale, torch.Tensor)
    with _raises("npu_quant_matmul", arg) as exc:
        ops.npu_quant_matmul(_i8(3, 8), _i8(8, 4), scale, **kwargs)  # type: ignore[arg-type]
    assert exc.value.code == Code.KERNEL_ARGUMENT


def test_quant_matmul_shape_and_dtype_errors() -> None:
    with _raises("npu_quant_matmul", "x2"):
        ops.npu_quant_matmul(_i8(3, 8), _i8(9, 4), torch.ones(1))
    with _raises("npu_quant_matmul", "x1"):
        ops.npu_quant_matmul(torch.ones(3, 8), _i8(8, 4), torch.ones(1))


def test_a4w4_storage_order() -> None:
    x = torch.randint(-8, 8, (4, 16), generator=g, dtype=torch.int32)
    w = torch.randint(-8, 8, (24, 16), generator=g, dtype=torch.int32)  # [N, K]
    x1 = nm.pack_int4_lsb(x)
    w_t = nm.pack_int4_lsb(w).t()  # transposed view of [N, K/8]
    w_kn = ops.npu_convert_weight_to_int4pack(w.t().contiguous())  # contiguous [K, N/8]
    s, pt = torch.rand(24, generator=g), torch.rand(4, generator=g)
    a = ops.npu_quant_matmul(x1, w_t, s, pertoken_scale=pt, output_dtype=torch.float16)
    b = ops.npu_quant_matmul(x1, w_kn, s, pertoken_scale=pt, output_dtype=torch.float16)
    ref = ((x.double() @ w.double().t()).float() * s * pt[:, None]).to(torch.float16)
    assert torch.equal(a, b) and torch.equal(a, ref)
    with _raises("npu_quant_matmul", "bias"):
        ops.npu_quant_matmul(x1, w_kn, s, pertoken_scale=pt, bias=torch.ones(24), output_dtype=torch.float16)


# ----------------------------------------------------------------------------- quantize ops


def test_npu_quantize_round_modes() -> None:
    x = torch.tensor([[2.5, -2.5, 0.5, 300.0]], dtype=torch.float32)
    mul = ops.npu_quantize(x, torch.ones(1), None, torch.qint8, -1, False)
    assert mul.tolist() == [[3, -3, 1, 127]]  # "round": half away from zero, saturating
    div = ops.npu_quantize(x, torch.ones(1), None, torch.qint8, -1, True)
    assert div.tolist() == [[2, -2, 0, 127]]  # rint
    packed = ops.npu_quantize(
        torch.arange(-4, 4, dtype=torch.float32).reshape(1, 8), torch.ones(1), None, torch.quint4x2, -1, False
    )
    assert packed.dtype == torch.int32 and nm.unpack_int4_lsb(packed).tolist() == [list(range(-4, 4))]
    with _raises("npu_quantize", "scales"):
        ops.npu_quantize(x, torch.ones(3), None, torch.qint8, -1, False)


def test_dynamic_quant_int8_int4_and_smooth_groups() -> None:
    x = torch.randn(6, 16, generator=g).to(torch.float16)
    y, s = ops.npu_dynamic_quant(x)
    xf = x.float()
    assert torch.equal(s, xf.abs().amax(1) / 127)
    assert torch.equal(y, torch.round(xf / s[:, None]).clamp(-128, 127).to(torch.int8))
    y4, s4 = ops.npu_dynamic_quant(x, dst_type=torch.quint4x2)
    assert y4.shape == (6, 2) and torch.equal(s4, xf.abs().amax(1) / 7)
    assert int(nm.unpack_int4_lsb(y4).abs().max()) <= 8
    smooth = torch.rand(2, 16, generator=g).to(torch.float16) + 0.5
    gi = torch.tensor([2, 6], dtype=torch.int32)
    _, sg = ops.npu_dynamic_quant(x, smooth_scales=smooth, group_index=gi)
    v = torch.cat([xf[:2] * smooth[0].float(), xf[2:] * smooth[1].float()])
    assert torch.equal(sg, v.abs().amax(1) / 127)
    with _raises("npu_dynamic_quant", "input"):
        ops.npu_dynamic_quant(torch.ones(4, 4))


def test_dynamic_mx_quant_worked_example_and_layout() -> None:
    """aclnn DynamicMxQuant example: [0, 8, 64, 512], e4m3fn, alg 1 -> scale bytes [128, 0]."""
    x = torch.tensor([[0.0, 8.0, 64.0, 512.0]], dtype=torch.bfloat16)
    y, s = ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn, scale_alg=1)
    assert s.tolist() == [[[128, 0]]]
    assert y.view(torch.uint8).tolist() == [[0, 72, 96, 120]]
    # OCP alg 0, odd number of blocks (3) -> 2 pairs with a zero pad byte.
    x = torch.randn(5, 96, generator=g).to(torch.bfloat16)
    y, s = ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn)
    assert y.dtype == torch.float8_e4m3fn and s.shape == (5, 2, 2) and int(s[0, 1, 1]) == 0
    amax = x.float().reshape(5, 3, 32).abs().amax(-1)
    assert torch.equal(s.reshape(5, 4)[:, :3].to(torch.int32), nm.floor_log2(amax) - 8 + 127)
    fp4, s4 = ops.npu_dynamic_mx_quant(x, dst_type=NpuDtype.FLOAT4_E2M1FN_X2)
    assert fp4.dtype == torch.uint8 and fp4.shape == (5, 48) and s4.shape == (5, 2, 2)
    _, sa = ops.npu_dynamic_mx_quant(x.t().contiguous(), axis=0, dst_type=torch.float8_e4m3fn)
    assert sa.shape == (2, 5, 2) and torch.equal(sa.permute(1, 0, 2), s)
    with _raises("npu_dynamic_mx_quant", "round_mode"):
        ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn, round_mode="floor")


def test_mx_matmul_transposition_must_match() -> None:
    x = torch.randn(3, 128, generator=g).to(torch.bfloat16)
    w = torch.randn(16, 128, generator=g).to(torch.bfloat16)
    qx, xs = ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn)
    qw, ws = ops.npu_dynamic_mx_quant(w, dst_type=torch.float8_e4m3fn)
    kw = {
        "scale_dtype": ops.float8_e8m0fnu,
        "pertoken_scale": xs,
        "pertoken_scale_dtype": ops.float8_e8m0fnu,
        "output_dtype": torch.bfloat16,
        "group_sizes": [1, 1, 32],
    }
    y = ops.npu_quant_matmul(qx, qw.t(), ws.transpose(0, 1), **kw)  # type: ignore[arg-type]
    assert y.shape == (3, 16)
    with _raises("npu_quant_matmul", "scale"):
        ops.npu_quant_matmul(qx, qw.t(), ws.transpose(0, 1).contiguous(), **kw)  # type: ignore[arg-type]
    with _raises("npu_quant_matmul", "scale_dtype"):
        ops.npu_quant_matmul(qx, qw.t(), ws.transpose(0, 1), **{**kw, "scale_dtype": None})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- weight-only matmul


def test_weight_quant_batchmatmul_per_group_and_int4() -> None:
    x = torch.randn(3, 64, generator=g).to(torch.float16)
    w = torch.randint(-8, 8, (64, 16), generator=g, dtype=torch.int32)
    sc = (torch.rand(2, 16, generator=g) * 0.1).to(torch.float16)
    off = torch.randint(-2, 3, (2, 16), generator=g).to(torch.float16)
    packed = ops.npu_convert_weight_to_int4pack(w)
    y4 = ops.npu_weight_quant_batchmatmul(x, packed, sc, off, antiquant_group_size=32)
    y8 = ops.npu_weight_quant_batchmatmul(x, w.to(torch.int8), sc, off, antiquant_group_size=32)
    dq = (w.to(torch.float16) + off.repeat_interleave(32, 0)) * sc.repeat_interleave(32, 0)
    assert torch.equal(y4, y8) and torch.equal(y4, (x.float() @ dq.float()).to(torch.float16))
    with _raises("npu_weight_quant_batchmatmul", "antiquant_group_size"):
        ops.npu_weight_quant_batchmatmul(x, packed, sc, off, antiquant_group_size=16)
    with _raises("npu_weight_quant_batchmatmul", "antiquant_scale"):
        ops.npu_weight_quant_batchmatmul(x, packed, sc.float(), None, antiquant_group_size=32)
    with _raises("npu_weight_quant_batchmatmul", "bias"):
        ops.npu_weight_quant_batchmatmul(
            x.to(torch.bfloat16),
            packed,
            sc.to(torch.bfloat16),
            bias=torch.ones(16, dtype=torch.bfloat16),
            antiquant_group_size=32,
        )


# ----------------------------------------------------------------------------- layout


def test_format_cast_is_a_value_preserving_tag() -> None:
    w = _i8(32, 64)
    nz = ops.npu_format_cast(w, int(AclFormat.FRACTAL_NZ))
    assert ops.get_npu_format(nz) == 29 and ops.get_npu_format(w) == 2 and torch.equal(nz, w)
    assert ops.get_npu_format(nz.t()) == 2  # views are not NZ
    with _raises("npu_format_cast", "acl_format"):
        ops.npu_format_cast(w, 3)
    with _raises("npu_convert_weight_to_int4pack", "weight"):
        ops.npu_convert_weight_to_int4pack(torch.full((2, 8), 9, dtype=torch.int32))
    with _raises("npu_convert_weight_to_int4pack", "weight"):
        ops.npu_convert_weight_to_int4pack(torch.zeros(2, 12, dtype=torch.int32))


# ----------------------------------------------------------------------------- MoE


def test_grouped_matmul_modes() -> None:
    m, k, n, e = 10, 32, 8, 3
    counts = torch.tensor([4, 0, 6])
    x = torch.randn(m, k, generator=g).to(torch.bfloat16)
    w = torch.randn(e, k, n, generator=g).to(torch.bfloat16)
    (y,) = ops.npu_grouped_matmul([x], [w], group_list=counts, group_list_type=1, group_type=0, split_item=2)
    (y0,) = ops.npu_grouped_matmul([x], [w], group_list=counts.cumsum(0), group_list_type=0, group_type=0, split_item=2)
    ref = torch.cat([x[:4].float() @ w[0].float(), x[4:].float() @ w[2].float()]).to(torch.bfloat16)
    assert torch.equal(y, ref) and torch.equal(y0, ref)
    xq, xs = ops.npu_dynamic_quant(x)
    wq = torch.randint(-128, 128, (e, k, n), generator=g, dtype=torch.int8)
    ws = torch.rand(e, n, generator=g)
    (yq,) = ops.npu_grouped_matmul(
        [xq],
        [wq],
        scale=[ws],
        per_token_scale=[xs],
        group_list=counts,
        group_list_type=1,
        group_type=0,
        split_item=2,
        output_dtype=torch.bfloat16,
    )
    acc = torch.cat([xq[:4].double() @ wq[0].double(), xq[4:].double() @ wq[2].double()]).float()
    sc = torch.cat([ws[0].expand(4, n), ws[2].expand(6, n)])
    assert torch.equal(yq, (acc * sc * xs[:, None]).to(torch.bfloat16))
    with _raises("npu_grouped_matmul", "group_type"):
        ops.npu_grouped_matmul([x], [w], group_list=counts, group_list_type=1)


def test_moe_routing_round_trip() -> None:
    n, h, e, topk = 7, 16, 4, 2
    x = torch.randn(n, h, generator=g)
    ids = torch.stack([torch.randperm(e, generator=g)[:topk] for _ in range(n)]).to(torch.int32)
    weights = torch.rand(n, topk, generator=g)
    ex, row_idx, counts, _ = ops.npu_moe_init_routing_v2(
        x,
        ids,
        active_num=n * topk,
        expert_num=e,
        expert_tokens_num_type=1,
        expert_tokens_num_flag=True,
        active_expert_range=[0, e],
    )
    assert int(counts.sum()) == n * topk
    scales = torch.arange(1, e + 1, dtype=torch.float32)
    # "Expert" e multiplies its rows by (e + 1): rows are sorted by expert, counts give the blocks.
    per_row = torch.repeat_interleave(scales, counts)
    out = ops.npu_moe_finalize_routing(ex * per_row[:, None], None, None, None, weights, row_idx, ids, drop_pad_mode=2)
    ref = (weights[..., None] * (scales[ids.long()][..., None] * x[:, None, :])).sum(1)
    torch.testing.assert_close(out, ref)
    a = torch.randn(3, 8, generator=g)
    assert torch.equal(ops.npu_swiglu(a), torch.nn.functional.silu(a[:, :4]) * a[:, 4:])
    with _raises("npu_swiglu", "self"):
        ops.npu_swiglu(torch.ones(3, 5))


def _a8w4_call(scale_shape: tuple[int, ...], k: int) -> None:
    import torch

    from quantspec.runtime import numerics as nm
    from quantspec.runtime.ops import get_ops

    ops, n, e = get_ops("cpu"), 16, 1
    x = torch.randint(-8, 8, (4, k), dtype=torch.int8)
    w = torch.stack([ops.npu_convert_weight_to_int4pack(torch.zeros(k, n, dtype=torch.int32))])
    scale = nm.float_bits_to_int64(torch.full(scale_shape, 0.01))
    ops.npu_grouped_matmul([x], [w], scale=[scale], bias=[torch.zeros(e, n)], per_token_scale=[torch.ones(4)],
                           output_dtype=torch.bfloat16, group_list=torch.tensor([4]), group_list_type=1,
                           group_type=0, split_item=2)


def test_a8w4_takes_3d_scales_and_groups_of_256_only() -> None:
    from quantspec.errors import QuantspecError

    _a8w4_call((1, 1, 16), 512)  # per channel, 3-D
    _a8w4_call((1, 2, 16), 512)  # groups of 256
    with pytest.raises(QuantspecError, match="A8W4 needs a 3-D"):
        _a8w4_call((1, 16), 512)
    with pytest.raises(QuantspecError, match="groups of 256 along K"):
        _a8w4_call((1, 8, 16), 512)
