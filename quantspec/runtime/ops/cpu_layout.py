"""CPU emulation of the layout ops: ``npu_format_cast``, ``npu_convert_weight_to_int4pack``, and the
weight transpose that precedes them.

FRACTAL_NZ re-tiles storage but keeps the logical shape and values (torch_npu_ops.md 1.4, 2.2),
so the emulation keeps values and records the format as a tag on the tensor object (§2.2: "identity
on values; keep a side tag"). Views do not inherit the tag, matching the NPU rule that an NZ tensor
must not be viewed or sliced.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.runtime.numerics import pack_int4_lsb
from quantspec.runtime.ops.base import AclFormat, DtypeArg
from quantspec.runtime.ops.checks import check_dim, check_dtype, require

_FORMAT_ATTR = "_quantspec_acl_format"
_SUPPORTED_FORMATS = {int(AclFormat.ND), int(AclFormat.FRACTAL_NZ)}


def get_npu_format(input: Tensor) -> int:
    """The ``acl_format`` tag of a tensor (ND unless :func:`npu_format_cast` produced it)."""
    return int(getattr(input, _FORMAT_ATTR, AclFormat.ND))


def tag_format(t: Tensor, acl_format: int) -> Tensor:
    """Mark ``t`` as stored in ``acl_format`` and return it."""
    setattr(t, _FORMAT_ATTR, int(acl_format))
    return t


def transpose_weight(weight: Tensor) -> Tensor:
    """The ``[..., K, N]`` matmul operand of an ``[..., N, K]`` weight: the transposed view, no copy.

    On the NPU the transpose is made contiguous on the device before the NZ cast; here the kernels'
    emulation reads values by logical index, and a transposed view of a contiguous tensor is a
    layout the kernels accept as well (torch_npu_ops.md 2.4), so copying would only spend host
    memory bandwidth on a re-layout the emulation cannot observe.
    """
    require(weight.dim() >= 2, "transpose_weight", "weight", "needs at least 2 dims")
    return weight.transpose(-1, -2)


def npu_format_cast(
    input: Tensor, acl_format: int, *, customize_dtype: DtypeArg = None, input_dtype: DtypeArg = None
) -> Tensor:
    """A new tensor object with the same values, tagged with ``acl_format`` (ND = 2 or FRACTAL_NZ = 29).

    The result is an alias of ``input`` (same storage, no copy): re-tiling has no observable
    effect on values, and copying every int8 weight cost the loader a full pass over the
    checkpoint. It is a distinct object so that the tag never lands on ``input`` itself (whose
    format stays as it was, as on the NPU, where the cast returns a new tensor). Callers hand
    over freshly repacked tensors and do not write to them afterwards.
    """
    op = "npu_format_cast"
    require(int(acl_format) in _SUPPORTED_FORMATS, op, "acl_format", f"{acl_format} is not ND (2) or FRACTAL_NZ (29)")
    require(input.dim() >= 2 or int(acl_format) == AclFormat.ND, op, "self", "FRACTAL_NZ needs at least 2 dims")
    return tag_format(input.view_as(input), int(acl_format))


def npu_convert_weight_to_int4pack(weight: Tensor, inner_k_tiles: int = 0) -> Tensor:
    """Pack an int32 matrix of values in [-8, 7] into int32 words, 8 per word along the last dim."""
    op = "npu_convert_weight_to_int4pack"
    check_dtype(op, "weight", weight, (torch.int32,))
    check_dim(op, "weight", weight, (2,))
    require(weight.size(-1) % 8 == 0, op, "weight", f"last dim {weight.size(-1)} is not a multiple of 8")
    require(weight.is_contiguous(), op, "weight", "must be contiguous")
    if weight.numel():
        lo_t, hi_t = torch.aminmax(weight)
        lo, hi = int(lo_t), int(hi_t)
        require(lo >= -8 and hi <= 7, op, "weight", f"values must lie in [-8, 7], got [{lo}, {hi}]")
    return pack_int4_lsb(weight)
