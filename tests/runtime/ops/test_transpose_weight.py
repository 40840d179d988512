"""``transpose_weight``: a view on the cpu emulation, a contiguous copy on the npu backend, and the
matmul kernels give the same result for both layouts (torch_npu_ops.md 2.4)."""

from __future__ import annotations

import types

import pytest
import torch

from quantspec.errors import KernelArgumentError
from quantspec.runtime.ops import CpuOps
from quantspec.runtime.ops.checks import is_transposed_view
from quantspec.runtime.ops.npu import NpuOps


def _int8(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(-127, 128, shape, dtype=torch.int8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(96, 64), (3, 48, 32)])
def test_cpu_gives_the_transposed_view(shape: tuple[int, ...]) -> None:
    w = _int8(*shape)
    kn = CpuOps().transpose_weight(w)
    assert kn.data_ptr() == w.data_ptr() and is_transposed_view(kn)  # no host copy
    assert torch.equal(kn, w.transpose(-1, -2))


def test_npu_makes_it_contiguous() -> None:
    w = _int8(96, 64)
    fake = types.SimpleNamespace(float8_e8m0fnu=293, float4_e2m1fn_x2=296, int4=285)  # no op is called
    kn = NpuOps(fake).transpose_weight(w)  # type: ignore[arg-type]
    assert kn.is_contiguous() and kn.shape == (64, 96) and torch.equal(kn, w.t())


def test_a_vector_is_refused() -> None:
    with pytest.raises(KernelArgumentError, match="transpose_weight"):
        CpuOps().transpose_weight(torch.zeros(4, dtype=torch.int8))


def test_quant_matmul_is_layout_blind() -> None:
    ops = CpuOps()
    w, x = _int8(64, 96), _int8(5, 96, seed=1)
    scale = torch.rand(64, generator=torch.Generator().manual_seed(2)) * 0.01
    tok = torch.rand(5, generator=torch.Generator().manual_seed(3))
    outs = [ops.npu_quant_matmul(x, kn, scale, pertoken_scale=tok, output_dtype=torch.bfloat16)
            for kn in (ops.transpose_weight(w), w.t().contiguous())]
    assert torch.equal(outs[0], outs[1])


def test_grouped_matmul_is_layout_blind() -> None:
    ops = CpuOps()
    w, x = _int8(2, 64, 96), _int8(6, 96, seed=1)
    scale = torch.rand(2, 64, generator=torch.Generator().manual_seed(2)) * 0.01
    tok = torch.rand(6, generator=torch.Generator().manual_seed(3))
    counts = torch.tensor([4, 2])
    outs = [ops.npu_grouped_matmul([x], [kn], scale=[scale], per_token_scale=[tok], output_dtype=torch.bfloat16,
                                   group_list=counts, group_list_type=1, group_type=0, split_item=2)[0]
            for kn in (ops.transpose_weight(w), w.transpose(1, 2).contiguous())]
    assert torch.equal(outs[0], outs[1])
