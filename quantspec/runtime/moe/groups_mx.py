"""MXFP8 expert groups (Ascend 950 / A5): offline ModelSlim ``W8A8_MXFP8`` and online MXFP8.

Per expert: an E4M3 weight ``[N, K]`` and E8M0 block scales (one per 32 along K) in pairs
``[N, K/64, 2]``: read from the checkpoint (offline, ``weight_scale [N, K/32]`` paired) or made
at load by ``npu_dynamic_mx_quant`` of the float weight (online). Stacked, the weight is cast to
FRACTAL_NZ *before* the transpose and kept as strided views ``[E, K, N]`` and
``[E, K/64, N, 2]`` (the kernel needs weight and scale with the same transposition,
sglang_ascend.md 4.2). Forward: ``npu_dynamic_mx_quant`` of the routed rows, then the MX grouped
matmul with ``scale_dtype``/``per_token_scale_dtype`` = torch_npu's float8_e8m0fnu.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.moe.base import ExpertGroup, GroupName, register_moe
from quantspec.runtime.ops.base import AclFormat, Ops
from quantspec.runtime.schemes.base import FLOAT_DTYPES, TensorSet, bad_tensor
from quantspec.runtime.schemes.mxfp8 import E8M0_NAN
from quantspec.vocab import FormatFamily, SchemeId


class _MxExperts(ExpertGroup):
    weight: Tensor
    weight_scale: Tensor

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """NZ cast of ``[E, N, K]``, then strided transposed views of weight and scales."""
        ops = self.ops
        w = stacked["weight"]
        nz = ops.npu_format_cast(w, int(AclFormat.FRACTAL_NZ))
        self.register_buffer("weight", nz.transpose(1, 2), persistent=False)
        self.register_buffer("weight_scale", stacked["scale"].transpose(1, 2), persistent=False)

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``npu_dynamic_mx_quant`` (E4M3) then the MX grouped matmul."""
        qx, xs = self.ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn)
        out: Tensor = self.ops.npu_grouped_matmul(
            [qx], [self.weight], scale=[self.weight_scale], per_token_scale=[xs],
            scale_dtype=self.ops.float8_e8m0fnu, per_token_scale_dtype=self.ops.float8_e8m0fnu,
            output_dtype=self.model_dtype, group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out


@register_moe(FormatFamily.MODELSLIM, SchemeId.W8A8_MXFP8)
class MxFp8Experts(_MxExperts):
    """Offline MXFP8: ``weight`` float8_e4m3fn ``[N, K]``, ``weight_scale`` uint8 ``[N, ceil(K/32)]``."""

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Weights as stored, block scales paired ``[N, K/64, 2]``."""
        ws, ss = [], []
        for p in projs:
            ts = TensorSet(p)
            ws.append(ts.get("weight", (torch.float8_e4m3fn,), [(n, k)]))
            scale = ts.get("weight_scale", (torch.uint8,), [(n, -(-k // 32))])
            if bool((scale == E8M0_NAN).any()):
                raise bad_tensor("weight_scale", "holds the E8M0 NaN byte 0xFF (missing or corrupt scales)")
            ss.append(nm.pair_scales(scale))
        return {"weight": torch.cat(ws, 0), "scale": torch.cat(ss, 0)}


@register_moe(FormatFamily.MXFP8_ONLINE, SchemeId.W8A8_MXFP8)
class OnlineMxFp8Experts(_MxExperts):
    """Online MXFP8: each expert's float ``weight [N, K]`` quantized with ``npu_dynamic_mx_quant``."""

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Quantize along K to E4M3 with paired E8M0 scales."""
        ws, ss = [], []
        for p in projs:
            w = TensorSet(p).get("weight", FLOAT_DTYPES, [(n, k)], finite=True).to(model_dtype)
            qw, scale = ops.npu_dynamic_mx_quant(w, dst_type=torch.float8_e4m3fn)
            ws.append(qw)
            ss.append(scale)
        return {"weight": torch.cat(ws, 0), "scale": torch.cat(ss, 0)}
