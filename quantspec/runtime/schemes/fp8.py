"""ModelSlim W8A8FP8_DYNAMIC (Ascend 950): E4M3 weights, per-token dynamic E4M3 activations
(vllm_ascend.md 4.9). No NZ cast (only int8 activations get one); the bias is added after the
matmul, as vLLM-Ascend does to avoid an fp8+bias kernel issue."""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime.schemes.base import LinearScheme, TensorSet, buffers, channel_scale, float_bias
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, SchemeId


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A8_FP8_DYNAMIC)
class ModelSlimW8A8Fp8Dynamic(LinearScheme):
    """``weight`` float8_e4m3fn ``[N, K]``, ``weight_scale`` ``[N, 1]`` (``weight_offset`` unused)."""

    weight_scale: Tensor

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Keep the weight as a transposed view ``[K, N]``; scales as float32 ``[N]``."""
        n, k = self.out_features, self.in_features
        weight = ts.get("weight", (torch.float8_e4m3fn,), [(n, k)])
        scale = channel_scale(ts, "weight_scale", n)
        buffers(self, weight=weight.t(), weight_scale=scale.contiguous(), bias=float_bias(bias, ts, n, torch.float32))

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_quant(dst_type=float8_e4m3fn)`` then ``npu_quant_matmul``; bias after."""
        xq, xs = self.ops.npu_dynamic_quant(x, dst_type=torch.float8_e4m3fn)
        y = self.ops.npu_quant_matmul(xq, self.weight, self.weight_scale, pertoken_scale=xs, output_dtype=x.dtype)
        return self._bias_after(y, x.dtype)


@register_linear(FormatFamily.COMPRESSED_TENSORS, SchemeId.W8A8_FP8_DYNAMIC)
class CompressedTensorsW8A8Fp8Dynamic(ModelSlimW8A8Fp8Dynamic):
    """compressed-tensors ``float-quantized`` FP8 dynamic (llm-compressor's ``FP8_DYNAMIC``):
    ``weight`` float8_e4m3fn ``[N, K]``, ``weight_scale`` ``[N, 1]``, per-token E4M3 activations;
    vLLM-Ascend routes it to the same kernels under its internal name ``W8A8FP8_DYNAMIC``."""
