"""The cpu emulation of ``npu_format_cast`` tags without copying (torch_npu_ops.md 2.2)."""

from __future__ import annotations

import torch

from quantspec.runtime.ops.base import AclFormat
from quantspec.runtime.ops.cpu_layout import get_npu_format, npu_format_cast


def test_cast_is_a_distinct_tagged_alias() -> None:
    w = torch.arange(64 * 32, dtype=torch.int32).to(torch.int8).reshape(64, 32)
    nz = npu_format_cast(w, int(AclFormat.FRACTAL_NZ))
    assert nz is not w and nz.data_ptr() == w.data_ptr()  # no copy of the weight
    assert get_npu_format(nz) == int(AclFormat.FRACTAL_NZ) and get_npu_format(w) == int(AclFormat.ND)
    assert torch.equal(nz, w) and nz.shape == w.shape and nz.stride() == w.stride()
    back = npu_format_cast(nz, int(AclFormat.ND))
    assert get_npu_format(back) == int(AclFormat.ND) and get_npu_format(nz) == int(AclFormat.FRACTAL_NZ)


def test_cast_of_a_transposed_view_keeps_its_strides() -> None:
    w = torch.arange(64 * 32, dtype=torch.int32).to(torch.int8).reshape(64, 32).t()
    nz = npu_format_cast(w, int(AclFormat.FRACTAL_NZ))
    assert nz.stride() == w.stride() and torch.equal(nz, w)
