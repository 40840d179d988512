"""GGUF linear: every GGML type is dequantized to the model dtype at load, then a float linear
(what SGLang's Ascend GGUF kernel does, sglang_ascend.md 6.5: no memory saving on the NPU)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from quantspec.description import QuantSpec
from quantspec.runtime.schemes.base import (
    LinearScheme,
    TensorSet,
    bad_tensor,
    buffers,
    check_finite,
    float_bias,
)
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, SchemeId


@register_linear(FormatFamily.GGUF, SchemeId.GGUF)
class GgufLinear(LinearScheme):
    """``weight``: raw GGML bytes ``[N, row_bytes]`` (uint8) of type ``quant.weight.ggml_type``,
    or a typed F32/F16/BF16 ``[N, K]`` tensor. Dequantized once at load."""

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Dequantize (bit-identical to gguf-py), check the shape, cast to the model dtype."""
        n, k = self.out_features, self.in_features
        raw = ts.get("weight", (torch.uint8, torch.float16, torch.bfloat16, torch.float32))
        if raw.dtype == torch.uint8:
            if quant.weight.ggml_type is None:
                raise bad_tensor("weight", "raw GGML bytes need quant.weight.ggml_type")
            # imported here: registering this scheme must not import gguf-py for every other load
            from quantspec.runtime.gguf_dequant import dequantize, ggml_type

            w = dequantize(raw, ggml_type(quant.weight.ggml_type))
        else:
            w = raw.to(torch.float32)
        if tuple(w.shape) != (n, k):
            raise bad_tensor("weight", f"dequantized shape {tuple(w.shape)} != ({n}, {k})")
        check_finite("weight", w)
        buffers(self, weight=w.to(self.model_dtype), bias=float_bias(bias, ts, n, self.model_dtype))

    def forward_2d(self, x: Tensor) -> Tensor:
        """Plain float linear on the dequantized weight."""
        return F.linear(x, self.weight, self.bias)
