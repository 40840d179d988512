"""MXFP4 expert groups (Ascend 950 / A5): ModelSlim ``W4A8_MXFP`` and ``W4A4_MXFP4``.

Per expert (sglang_ascend.md 4.1): ``weight`` uint8 ``[N, K/2]`` (two E2M1 codes per byte along
K, low nibble = even k) and ``weight_scale`` uint8 ``[N, ceil(K/32)]`` E8M0; K must be even with
an even number of 32-blocks. Stacked (sglang_ascend.md 4.2, ``_NPUPackedMXFP4MoEMethod``): the
scales are paired ``[E, N, K/64, 2]``; W4A8 casts the weight to FRACTAL_NZ with
``customize_dtype=float8_e4m3fn, input_dtype=float4_e2m1fn_x2`` before the transpose, W4A4 keeps
it ND (the 950 full-quant grouped mode takes ND weights, torch_npu_ops.md 4.3); both keep strided
views ``[E, K/2, N]`` and ``[E, K/64, N, 2]`` (same transposition for weight and scale).

Forward (sglang_ascend.md 4.3, vllm_ascend.md 4.10), grouped along M:

* **W4A8**: ``npu_dynamic_mx_quant`` to E4M3, then ``npu_grouped_matmul`` with the weight scales
  as ``antiquant_scale``, ``per_token_scale_dtype=float8_e8m0fnu``, ``x_dtype=float8_e4m3fn``,
  ``weight_dtype=float4_e2m1fn_x2``;
* **W4A4**: ``npu_dynamic_mx_quant`` to packed FP4 (``round_mode="round"``, as the linear
  scheme), then ``npu_grouped_matmul`` with ``scale``/``per_token_scale`` and both scale dtypes
  float8_e8m0fnu, ``x_dtype=weight_dtype=float4_e2m1fn_x2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.moe.base import ExpertGroup, GroupName, register_moe
from quantspec.runtime.ops.base import AclFormat, Ops
from quantspec.runtime.schemes.base import TensorSet, bad_tensor
from quantspec.runtime.schemes.mxfp8 import E8M0_NAN
from quantspec.vocab import FormatFamily, SchemeId


class _MxFp4Experts(ExpertGroup):
    """Packed MXFP4 weights and paired E8M0 scales of every expert; the forward is per scheme."""

    weight: Tensor
    weight_scale: Tensor
    #: Whether the stacked weight is cast to FRACTAL_NZ (FP4 in an E4M3 container) before the transpose.
    nz: ClassVar[bool] = False

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Packed weights as stored ``[N, K/2]`` and block scales paired ``[N, K/64, 2]``."""
        blocks = -(-k // 32)
        if k % 2 or blocks % 2:
            raise bad_tensor("weight", f"MXFP4 experts need K even with an even number of 32-blocks, got K = {k}")
        ws, ss = [], []
        for p in projs:
            ts = TensorSet(p)
            ws.append(ts.get("weight", (torch.uint8,), [(n, k // 2)]))
            scale = ts.get("weight_scale", (torch.uint8,), [(n, blocks)])
            if bool((scale == E8M0_NAN).any()):
                raise bad_tensor("weight_scale", "holds the E8M0 NaN byte 0xFF (missing or corrupt scales)")
            ss.append(nm.pair_scales(scale))
        return {"weight": torch.cat(ws, 0), "scale": torch.cat(ss, 0)}

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """Optional NZ cast of ``[E, N, K/2]``, then strided transposed views of weight and scales."""
        ops = self.ops
        w = stacked["weight"]
        if self.nz:
            w = ops.npu_format_cast(w, int(AclFormat.FRACTAL_NZ), customize_dtype=torch.float8_e4m3fn,
                                    input_dtype=ops.float4_e2m1fn_x2)
        self.register_buffer("weight", w.transpose(1, 2), persistent=False)
        self.register_buffer("weight_scale", stacked["scale"].transpose(1, 2), persistent=False)


@register_moe(FormatFamily.MODELSLIM, SchemeId.W4A8_MXFP)
class MxFp4W4A8Experts(_MxFp4Experts):
    """W4A8_MXFP experts: MXFP8 activations times MXFP4 weights (FP8 x FP4 grouped matmul)."""

    nz = True

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``npu_dynamic_mx_quant`` (E4M3) then the FP8 x FP4 grouped matmul (weight scales as antiquant)."""
        ops = self.ops
        qx, xs = ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn)
        out: Tensor = ops.npu_grouped_matmul(
            [qx], [self.weight], antiquant_scale=[self.weight_scale], per_token_scale=[xs],
            per_token_scale_dtype=ops.float8_e8m0fnu, x_dtype=torch.float8_e4m3fn,
            weight_dtype=ops.float4_e2m1fn_x2, output_dtype=self.model_dtype, group_list=group_list,
            group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out


@register_moe(FormatFamily.MODELSLIM, SchemeId.W4A4_MXFP4)
class MxFp4W4A4Experts(_MxFp4Experts):
    """W4A4_MXFP4 experts: MXFP4 activations times MXFP4 weights (FP4 x FP4 grouped matmul)."""

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``npu_dynamic_mx_quant`` (packed FP4, round half away) then the FP4 x FP4 grouped matmul."""
        ops = self.ops
        qx, xs = ops.npu_dynamic_mx_quant(x, dst_type=ops.float4_e2m1fn_x2, round_mode="round")
        out: Tensor = ops.npu_grouped_matmul(
            [qx], [self.weight], scale=[self.weight_scale], per_token_scale=[xs],
            scale_dtype=ops.float8_e8m0fnu, per_token_scale_dtype=ops.float8_e8m0fnu,
            x_dtype=ops.float4_e2m1fn_x2, weight_dtype=ops.float4_e2m1fn_x2, output_dtype=self.model_dtype,
            group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out
