"""MXFP8 (W8A8_MXFP8, Ascend 950): offline ModelSlim checkpoints and online quantization.

Both end in the same NPU form (sglang_ascend.md 3.4, 7.3): an E4M3 weight as the transposed
view ``[K, N]`` of ``[N, K]`` and E8M0 scales in pairs as the transposed view ``[K/64, N, 2]``
of ``[N, K/64, 2]`` (the kernel wants weight and scale with the same transposition). Forward
quantizes activations with ``npu_dynamic_mx_quant`` and runs the MX ``npu_quant_matmul``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.ops.base import DtypeArg
from quantspec.runtime.schemes.base import LinearScheme, TensorSet, bad_tensor, buffers, float_bias
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, SchemeId

#: E8M0 byte that the engines use as a "never loaded" sentinel (and OCP's NaN).
E8M0_NAN = 0xFF


def e8m0_block_scales(ts: TensorSet, n: int, k: int) -> Tensor:
    """The E8M0 ``weight_scale`` uint8 ``[N, ceil(K/32)]`` of an MX checkpoint, refused if it holds 0xFF."""
    scale = ts.get("weight_scale", (torch.uint8,), [(n, -(-k // 32))])
    if bool((scale == E8M0_NAN).any()):
        raise bad_tensor("weight_scale", "holds the E8M0 NaN byte 0xFF (missing or corrupt scales)")
    return scale


def mx_quant_matmul(
    layer: LinearScheme,
    weight_scale: Tensor,
    qx: Tensor,
    xs: Tensor,
    output_dtype: torch.dtype,
    *,
    group_sizes: list[int],
    x1_dtype: DtypeArg = None,
    x2_dtype: DtypeArg = None,
) -> Tensor:
    """The MX ``npu_quant_matmul`` of quantized activations ``qx`` (E8M0 scales ``xs``) with the
    layer's weight and bias and its E8M0 ``weight_scale`` (shared by the MXFP8 and MXFP4 schemes)."""
    ops = layer.ops
    return ops.npu_quant_matmul(
        qx,
        layer.weight,
        weight_scale,
        scale_dtype=ops.float8_e8m0fnu,
        pertoken_scale=xs,
        pertoken_scale_dtype=ops.float8_e8m0fnu,
        bias=layer.bias,
        output_dtype=output_dtype,
        x1_dtype=x1_dtype,
        x2_dtype=x2_dtype,
        group_sizes=group_sizes,
    )


class _MxFp8Base(LinearScheme):
    weight_scale: Tensor

    def _install(self, weight_nk: Tensor, scale_pairs: Tensor, bias: Tensor | None) -> None:
        buffers(self, weight=weight_nk.t(), weight_scale=scale_pairs.transpose(0, 1), bias=bias)

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_mx_quant`` (E4M3) then the MX ``npu_quant_matmul``."""
        qx, xs = self.ops.npu_dynamic_mx_quant(x, dst_type=torch.float8_e4m3fn)
        return mx_quant_matmul(self, self.weight_scale, qx, xs, x.dtype, group_sizes=[1, 1, 32])


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A8_MXFP8)
class ModelSlimMxFp8(_MxFp8Base):
    """Offline MXFP8: ``weight`` float8_e4m3fn ``[N, K]``, ``weight_scale`` uint8 ``[N, ceil(K/32)]``."""

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Pair the block scales and keep transposed views (no copy of the payload)."""
        n, k = self.out_features, self.in_features
        weight = ts.get("weight", (torch.float8_e4m3fn,), [(n, k)])
        scale = e8m0_block_scales(ts, n, k)
        # E4M3FN has no inf; NaN is S.1111.111, tested on the bytes to avoid a float copy.
        if bool(((weight.view(torch.uint8) & 0x7F) == 0x7F).any()):
            raise bad_tensor("weight", "holds NaN values")
        self._install(weight, nm.pair_scales(scale).contiguous(), float_bias(bias, ts, n, torch.float32))


@register_linear(FormatFamily.MXFP8_ONLINE, SchemeId.W8A8_MXFP8)
class OnlineMxFp8(_MxFp8Base):
    """Online MXFP8: a float ``weight [N, K]`` quantized with ``npu_dynamic_mx_quant`` at load."""

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Quantize the weight along K (E4M3, scales in pairs ``[N, K/64, 2]``)."""
        n, k = self.out_features, self.in_features
        weight = ts.get("weight", (torch.float16, torch.bfloat16, torch.float32), [(n, k)], finite=True)
        if weight.dtype == torch.float32:
            weight = weight.to(self.model_dtype)
        qw, scale = self.ops.npu_dynamic_mx_quant(weight, dst_type=torch.float8_e4m3fn)
        self._install(qw, scale, float_bias(bias, ts, n, torch.float32))
