"""MXFP4 weights on Ascend 950: W4A8_MXFP (FP8 activations) and W4A4_MXFP4 (FP4 activations).

Disk (both): ``weight`` uint8 ``[N, K/2]`` (two E2M1 codes per byte, low nibble = even k) and
``weight_scale`` uint8 ``[N, ceil(K/32)]`` E8M0. Post-load follows sglang_ascend.md 3.5/3.6:
W4A8 casts the weight to FRACTAL_NZ (``customize_dtype=float8_e4m3fn``,
``input_dtype=float4_e2m1fn_x2``) before the transpose, W4A4 keeps ND; both keep transposed views
``[K/2, N]`` and scales ``[K/64, N, 2]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.ops.base import AclFormat
from quantspec.runtime.schemes.base import LinearScheme, TensorSet, bad_tensor, buffers, float_bias
from quantspec.runtime.schemes.mxfp8 import e8m0_block_scales, mx_quant_matmul
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, SchemeId


class _MxFp4Base(LinearScheme):
    weight_scale: Tensor
    #: Whether the weight is cast to FRACTAL_NZ before the transpose (W4A8).
    nz: bool = False

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Check the payload and scales, pair the scales, keep transposed views."""
        n, k = self.out_features, self.in_features
        if k % 2:
            raise bad_tensor("weight", f"FP4 weights need an even in_features, got {k}")
        weight = ts.get("weight", (torch.uint8,), [(n, k // 2)])
        scale = e8m0_block_scales(ts, n, k)
        if self.nz:
            weight = self.ops.npu_format_cast(
                weight,
                int(AclFormat.FRACTAL_NZ),
                customize_dtype=torch.float8_e4m3fn,
                input_dtype=self.ops.float4_e2m1fn_x2,
            )
        buffers(
            self,
            weight=weight.transpose(-1, -2),
            weight_scale=nm.pair_scales(scale).contiguous().transpose(0, 1),
            bias=float_bias(bias, ts, n, torch.float32),
        )


@register_linear(FormatFamily.MODELSLIM, SchemeId.W4A8_MXFP)
class ModelSlimW4A8Mxfp(_MxFp4Base):
    """W4A8_MXFP: MXFP8 activations times MXFP4 weights (``group_sizes=[0, 0, 32]``)."""

    nz = True

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_mx_quant`` (E4M3) then ``npu_quant_matmul`` with an FP4 ``x2``."""
        qx, xs = self.ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn)
        fp4 = self.ops.float4_e2m1fn_x2
        return mx_quant_matmul(self, self.weight_scale, qx, xs, x.dtype, group_sizes=[0, 0, 32], x2_dtype=fp4)


@register_linear(FormatFamily.MODELSLIM, SchemeId.W4A4_MXFP4)
class ModelSlimW4A4Mxfp4(_MxFp4Base):
    """W4A4_MXFP4: MXFP4 activations (``round_mode="round"``) times MXFP4 weights."""

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_mx_quant`` (FP4) then ``npu_quant_matmul`` with FP4 operands."""
        qx, xs = self.ops.npu_dynamic_mx_quant(x, dst_type=self.ops.float4_e2m1fn_x2, round_mode="round")
        fp4 = self.ops.float4_e2m1fn_x2
        return mx_quant_matmul(
            self, self.weight_scale, qx, xs, x.dtype, group_sizes=[1, 1, 32], x1_dtype=fp4, x2_dtype=fp4
        )
