"""Bad checkpoint tensors give clear quantspec errors naming the tensor, never raw torch errors."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch

from quantspec.errors import Code, InvalidCheckpoint, KernelArgumentError, QuantspecError
from quantspec.runtime.ops import get_ops
from quantspec.runtime.schemes import linear_scheme_for
from testkit import writers as wr
from testkit.scheme_cases import CASES, Case

_BY_ID = {c.id: c for c in CASES}
W = torch.randn(24, 96, generator=torch.Generator().manual_seed(0)) * 0.05


def _build(
    case: Case, tensors: Mapping[str, torch.Tensor], n: int = 24, k: int = 96, dtype: torch.dtype = torch.bfloat16
) -> object:
    return linear_scheme_for(case.family, case.scheme).from_checkpoint(
        tensors, case.quant, out_features=n, in_features=k, model_dtype=dtype, ops=get_ops("cpu")
    )


def _expect(case: Case, tensors: Mapping[str, torch.Tensor], name: str, **kw: object) -> QuantspecError:
    with pytest.raises(InvalidCheckpoint) as exc:
        _build(case, tensors, **kw)  # type: ignore[arg-type]
    assert exc.value.code == Code.RUNTIME_BAD_TENSOR
    assert name in str(exc.value)
    return exc.value


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize(
    ("case_id", "scale_key"),
    [
        ("gptq-v1-w4-g32-asym", "scales"),
        ("awq-w4-g32", "scales"),
        ("ct-pack-w4-g32-asym", "weight_scale"),
        ("modelslim-w8a8-dynamic", "weight_scale"),
        ("modelslim-w8a16", "weight_scale"),
        ("modelslim-w4a4-int4", "weight_scale"),
        ("modelslim-w8a8-fp8-dynamic", "weight_scale"),
    ],
)
def test_nonfinite_scales_are_rejected(case_id: str, scale_key: str, bad: float) -> None:
    case = _BY_ID[case_id]
    n, k = case.shapes[0]
    t = dict(case.write(torch.randn(n, k) * 0.05, torch.bfloat16))
    s = t[scale_key].clone()
    s.view(-1)[0] = bad
    t[scale_key] = s
    err = _expect(case, t, scale_key, n=n, k=k)
    assert "NaN or infinite" in str(err)


def test_missing_tensor_is_named() -> None:
    case = _BY_ID["gptq-v1-w4-g32-asym"]
    t = dict(case.write(W, torch.bfloat16))
    del t["qzeros"]
    _expect(case, t, "qzeros")


@pytest.mark.parametrize(
    ("case_id", "key", "mutate"),
    [
        ("modelslim-w8a8-dynamic", "weight", lambda t: t.to(torch.int32)),
        ("modelslim-w8a8-dynamic", "weight", lambda t: t[:, :-1]),
        ("gptq-v1-w4-g32-asym", "qweight", lambda t: t.to(torch.int64)),
        ("gptq-v1-w4-g32-asym", "scales", lambda t: t[:-1]),
        ("awq-w4-g32", "qzeros", lambda t: t[:, :1]),
        ("ct-pack-w4-g32-sym", "weight_packed", lambda t: t[:, :-1]),
        ("modelslim-mxfp8", "weight", lambda t: t.to(torch.bfloat16)),
        ("modelslim-w8a8-static", "deq_scale", lambda t: t.to(torch.int64)),
    ],
)
def test_wrong_dtype_or_shape_is_named(case_id: str, key: str, mutate: object) -> None:
    case = _BY_ID[case_id]
    n, k = case.shapes[0]
    t = dict(case.write(torch.randn(n, k) * 0.05, torch.bfloat16))
    t[key] = mutate(t[key])  # type: ignore[operator]
    _expect(case, t, key, n=n, k=k)


def test_group_size_not_dividing_k() -> None:
    case = _BY_ID["gptq-v1-w4-g32-asym"]
    t = wr.gptq(torch.randn(24, 96) * 0.05, group_size=32)
    _expect(case, t, "group size 32 does not divide in_features 80", n=24, k=80)


def test_group_size_the_kernel_refuses_is_a_kernel_argument_error() -> None:
    case = _BY_ID["ct-pack-w4-g32-sym"]
    quant = case.quant.model_copy(update={"weight": case.quant.weight.model_copy(update={"group_size": 16})})
    t = wr.ct_pack_quantized(torch.randn(24, 96) * 0.05, group_size=16)
    layer = linear_scheme_for(case.family, case.scheme).from_checkpoint(
        t, quant, out_features=24, in_features=96, model_dtype=torch.bfloat16, ops=get_ops("cpu")
    )
    with pytest.raises(KernelArgumentError, match="antiquant_group_size"):
        layer(torch.randn(2, 96).to(torch.bfloat16))


def test_act_order_groups_must_be_balanced() -> None:
    case = _BY_ID["gptq-v1-w4-actorder"]
    t = dict(case.write(torch.randn(24, 96) * 0.05, torch.bfloat16))
    g = t["g_idx"].clone()
    g[g == 0] = 1  # group 1 now has 64 members, group 0 none
    t["g_idx"] = g
    _expect(case, t, "g_idx", n=24, k=96)


def test_mx_nan_scale_byte_and_unsupported_model_dtype() -> None:
    case = _BY_ID["modelslim-mxfp8"]
    t = dict(case.write(torch.randn(20, 96), torch.bfloat16))
    t["weight_scale"] = t["weight_scale"].clone()
    t["weight_scale"][0, 0] = 0xFF
    _expect(case, t, "weight_scale", n=20, k=96)
    with pytest.raises(InvalidCheckpoint, match="model dtype"):
        _build(
            _BY_ID["modelslim-w8a8-dynamic"],
            _BY_ID["modelslim-w8a8-dynamic"].write(W, torch.bfloat16),
            dtype=torch.float32,
        )


def test_int4_values_out_of_range() -> None:
    case = _BY_ID["modelslim-w4a4-int4"]
    t = dict(case.write(torch.randn(24, 40), torch.bfloat16))
    t["weight"] = t["weight"].clone()
    t["weight"][0, 0] = 9
    _expect(case, t, "weight", n=24, k=40)


def test_wrong_input_width() -> None:
    case = _BY_ID["modelslim-w8a8-dynamic"]
    layer = _build(case, case.write(torch.randn(40, 48), torch.bfloat16), n=40, k=48)
    with pytest.raises(InvalidCheckpoint, match="in_features"):
        layer(torch.randn(2, 47))  # type: ignore[operator]
