"""ModelSlim W8A8FP8_DYNAMIC (Ascend 950): E4M3 weights, per-token dynamic E4M3 activations
(vllm_ascend.md 4.9). No NZ cast (only int8 activations get one); the bias is added after the
matmul, as vLLM-Ascend does to avoid an fp8+bias kernel issue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime.ops.base import Ops
from quantspec.runtime.schemes.base import LinearScheme, TensorSet, buffers, check_model_dtype, float_bias
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, SchemeId

_FLOAT = (torch.float16, torch.bfloat16, torch.float32)


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A8_FP8_DYNAMIC)
class ModelSlimW8A8Fp8Dynamic(LinearScheme):
    """``weight`` float8_e4m3fn ``[N, K]``, ``weight_scale`` ``[N, 1]`` (``weight_offset`` unused)."""

    weight_scale: Tensor

    @classmethod
    def from_checkpoint(
        cls,
        tensors: Mapping[str, Tensor],
        quant: QuantSpec,
        *,
        out_features: int,
        in_features: int,
        model_dtype: torch.dtype,
        ops: Ops,
        bias: Tensor | None = None,
    ) -> Self:
        """Keep the weight as a transposed view ``[K, N]``; scales as float32 ``[N]``."""
        check_model_dtype(model_dtype)
        n, k = out_features, in_features
        ts = TensorSet(tensors)
        weight = ts.get("weight", (torch.float8_e4m3fn,), [(n, k)])
        scale = ts.get("weight_scale", _FLOAT, [(n, 1), (n,)], finite=True).reshape(n).to(torch.float32)
        self = cls(in_features=k, out_features=n, model_dtype=model_dtype, ops=ops)
        buffers(self, weight=weight.t(), weight_scale=scale.contiguous(), bias=float_bias(bias, ts, n, torch.float32))
        return self

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_quant(dst_type=float8_e4m3fn)`` then ``npu_quant_matmul``; bias after."""
        xq, xs = self.ops.npu_dynamic_quant(x, dst_type=torch.float8_e4m3fn)
        y = self.ops.npu_quant_matmul(xq, self.weight, self.weight_scale, pertoken_scale=xs, output_dtype=x.dtype)
        return y if self.bias is None else (y.to(torch.float32) + self.bias).to(x.dtype)
