"""ModelSlim int schemes (W8A8 static/dynamic, W4A4 dynamic, W8A16) and the compressed-tensors
W8A8 int8 schemes that engines route to the same kernels (sglang_ascend.md 3.1-3.3, 6.4;
vllm_ascend.md 4.1, 4.2, 4.5)."""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.schemes.base import (
    FLOAT_DTYPES,
    LinearScheme,
    TensorSet,
    bad_tensor,
    buffers,
    channel_scale,
    check_finite,
    float_bias,
    input_scale,
    int8_weight_to_npu,
)
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, Layout, SchemeId, ZeroPoint


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A8_STATIC)
class ModelSlimW8A8Static(LinearScheme):
    """Static per-tensor int8 activations, per-channel int8 weights, ``deq_scale`` dequant.

    Tensors: ``weight`` int8 ``[N, K]``, ``input_scale``/``input_offset`` ``[1]``, ``deq_scale``
    ``[N]`` (for fp16 models int64 words holding the float32 bits, sign-extended; float32 for bf16
    ones; the FP19 truncation is the kernel's), ``quant_bias`` int32 ``[N]`` (omit it on
    tensor-parallel ranks > 0 of a row-parallel layer: it is added once).
    ``weight_scale``/``weight_offset`` (v0 exports only) are folded into ``deq_scale`` and unused.
    ``quant_bias = round(bias / deq_scale - input_offset * sum_k q)`` already holds the float bias,
    so a ``bias`` tensor beside it (v1 writes one) is never added again: both engines pass only
    ``quant_bias`` to the kernel.
    """

    deq_scale: Tensor
    quant_bias: Tensor | None
    input_scale_reciprocal: Tensor
    input_offset: Tensor

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Transpose the weight to ``[K, N]`` (NZ when aligned), expand the input quant params."""
        n, k = self.out_features, self.in_features
        weight = ts.get("weight", (torch.int8,), [(n, k)])
        deq_dtype = torch.int64 if self.model_dtype == torch.float16 else torch.float32
        deq = ts.get("deq_scale", (deq_dtype,), [(n,), (n, 1)]).reshape(n)
        check_finite("deq_scale", nm.int64_to_float_bits(deq) if deq.dtype == torch.int64 else deq)
        in_scale = input_scale(ts)
        in_offset = ts.get("input_offset", (*FLOAT_DTYPES, torch.int8), [(1,), ()], finite=True).reshape(1)
        quant_bias = ts.optional("quant_bias", (torch.int32,), [(n,)])
        buffers(
            self,
            weight=int8_weight_to_npu(self.ops, weight),
            deq_scale=deq.contiguous(),
            quant_bias=quant_bias,
            input_scale_reciprocal=(1.0 / in_scale.to(torch.float32)).repeat(k).to(self.model_dtype),
            input_offset=in_offset.to(torch.float32).repeat(k).to(self.model_dtype),
            bias=None,
        )

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_quantize`` (multiply mode) then ``npu_quant_matmul`` with ``deq_scale`` and ``quant_bias``."""
        xq = self.ops.npu_quantize(x, self.input_scale_reciprocal, self.input_offset, torch.qint8, -1, False)
        return self.ops.npu_quant_matmul(xq, self.weight, self.deq_scale, bias=self.quant_bias, output_dtype=x.dtype)


class _Int8Dynamic(LinearScheme):
    """Per-token dynamic int8 activations, symmetric per-channel int8 weights."""

    weight_scale: Tensor

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Transpose the weight to ``[K, N]`` (NZ when aligned); scales as float32 ``[N]``."""
        n, k = self.out_features, self.in_features
        # ModelSlim writes a float weight_offset (zeros) that engines load and ignore (sglang_ascend.md 3.2).
        if ts.has("weight_zero_point") or quant.weight.zero_point not in (ZeroPoint.NONE, ZeroPoint.FLOAT_OFFSET):
            raise bad_tensor("weight_zero_point", "asymmetric int8 weights are not supported by W8A8 dynamic")
        weight = ts.get("weight", (torch.int8,), [(n, k)])
        buffers(
            self,
            weight=int8_weight_to_npu(self.ops, weight),
            weight_scale=channel_scale(ts, "weight_scale", n).contiguous(),
            bias=float_bias(bias, ts, n, torch.float32),
        )

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_quant`` then ``npu_quant_matmul`` with the per-token scale."""
        xq, xs = self.ops.npu_dynamic_quant(x)
        return self.ops.npu_quant_matmul(
            xq, self.weight, self.weight_scale, pertoken_scale=xs, bias=self.bias, output_dtype=x.dtype
        )


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A8_DYNAMIC)
class ModelSlimW8A8Dynamic(_Int8Dynamic):
    """ModelSlim ``W8A8_DYNAMIC``: ``weight`` int8 ``[N, K]``, ``weight_scale`` ``[N, 1]``
    (``weight_offset`` is loaded by engines but unused: the weights are symmetric)."""


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A8_MIX)
class ModelSlimW8A8Mix(_Int8Dynamic):
    """ModelSlim ``W8A8_MIX`` (msModelSlim pdmix): the W8A8 static tensors plus ``weight_scale``.

    vLLM-Ascend's ``AscendW8A8PDMixLinearMethod`` runs the static kernel (``quant_bias``,
    ``deq_scale``) only on a disaggregated decode node and per-token dynamic int8 with
    ``weight_scale`` everywhere else; this is that dynamic path (the float bias is added by the
    kernel; the static tensors are not read)."""


@register_linear(FormatFamily.COMPRESSED_TENSORS, SchemeId.W8A8_DYNAMIC)
class CompressedTensorsW8A8Dynamic(_Int8Dynamic):
    """compressed-tensors int-quantized W8A8 with dynamic per-token activations:
    ``weight`` int8 ``[N, K]``, ``weight_scale`` ``[N, 1]``."""


@register_linear(FormatFamily.COMPRESSED_TENSORS, SchemeId.W8A8_STATIC)
class CompressedTensorsW8A8Static(LinearScheme):
    """compressed-tensors static per-tensor W8A8, run on the ModelSlim static kernel.

    ``deq_scale = input_scale * weight_scale`` (vllm_ascend.md 4.1); the float bias is added after
    the matmul because fp16 outputs without per-token scales take only an int32 bias.
    """

    deq_scale: Tensor
    input_scale_reciprocal: Tensor
    input_offset: Tensor

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Fold the input scale into a float32 ``deq_scale``; zero point from ``input_zero_point``."""
        n, k = self.out_features, self.in_features
        weight = ts.get("weight", (torch.int8,), [(n, k)])
        w_scale = ts.get("weight_scale", FLOAT_DTYPES, [(n, 1), (n,), (1,)], finite=True).reshape(-1).to(torch.float32)
        in_scale = input_scale(ts).to(torch.float32)
        zp = ts.optional("input_zero_point", (torch.int8, torch.int32), [(1,), ()])
        buffers(
            self,
            weight=int8_weight_to_npu(self.ops, weight),
            deq_scale=(in_scale * w_scale).expand(n).contiguous(),
            input_scale_reciprocal=(1.0 / in_scale).repeat(k).to(self.model_dtype),
            input_offset=(zp.to(torch.float32).reshape(1) if zp is not None else torch.zeros(1))
            .repeat(k)
            .to(self.model_dtype),
            bias=float_bias(bias, ts, n, torch.float32),
        )

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_quantize`` then ``npu_quant_matmul``, float bias added after."""
        xq = self.ops.npu_quantize(x, self.input_scale_reciprocal, self.input_offset, torch.qint8, -1, False)
        y = self.ops.npu_quant_matmul(xq, self.weight, self.deq_scale, output_dtype=x.dtype)
        return self._bias_after(y, x.dtype)


@register_linear(FormatFamily.MODELSLIM, SchemeId.W4A4_DYNAMIC)
class ModelSlimW4A4Dynamic(LinearScheme):
    """ModelSlim ``W4A4_DYNAMIC``: int4 weights, per-token int4 activations.

    Two storage variants of ``weight``: one signed int4 per int8 byte, ``[N, K]``
    (``Layout.MODELSLIM_INT4``), or int4 pairs per byte along N, ``[N/2, K]``, low nibble = even
    row (``Layout.MODELSLIM_INT4X2``). K and N must be multiples of 8.
    """

    weight_scale: Tensor

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Repack to int32 ``[K, N/8]`` (``npu_convert_weight_to_int4pack`` or a byte view)."""
        n, k = self.out_features, self.in_features
        if n % 8 or k % 8:
            raise bad_tensor("weight", f"W4A4 needs K and N multiples of 8, got K={k}, N={n}")
        pairs = quant.weight.layout == Layout.MODELSLIM_INT4X2
        if pairs:
            weight = ts.get("weight", (torch.int8,), [(n // 2, k)])
            # Bytes hold rows (2j, 2j+1) of column k; [K, N/2] bytes read as int32 are NPU int4x8.
            packed = weight.t().contiguous().view(torch.int32)
        else:
            weight = ts.get("weight", (torch.int8,), [(n, k)])
            lo_t, hi_t = torch.aminmax(weight)
            lo, hi = int(lo_t), int(hi_t)
            if lo < -8 or hi > 7:
                raise bad_tensor("weight", f"int4 values must lie in [-8, 7], got [{lo}, {hi}]")
            packed = self.ops.npu_convert_weight_to_int4pack(weight.t().contiguous().to(torch.int32))
        buffers(
            self,
            weight=packed,
            weight_scale=channel_scale(ts, "weight_scale", n).contiguous(),
            bias=float_bias(bias, ts, n, torch.float32),
        )

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_dynamic_quant(dst_type=quint4x2)`` then A4W4 ``npu_quant_matmul``; bias after."""
        xq, xs = self.ops.npu_dynamic_quant(x, dst_type=torch.quint4x2)
        y = self.ops.npu_quant_matmul(xq, self.weight, self.weight_scale, pertoken_scale=xs, output_dtype=x.dtype)
        return self._bias_after(y, x.dtype)


@register_linear(FormatFamily.MODELSLIM, SchemeId.W8A16)
class ModelSlimW8A16(LinearScheme):
    """ModelSlim ``W8A16``: asymmetric per-channel int8 weights, float activations.

    Dequant is ``(q - weight_offset) * weight_scale`` (``ZeroPoint.FLOAT_OFFSET``), so the kernel's
    ``antiquant_offset`` is ``-weight_offset``. vLLM-Ascend passes ``weight_offset`` unnegated;
    see docs/runtime.md for this open question.
    """

    antiquant_scale: Tensor
    antiquant_offset: Tensor

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Transpose the weight to ``[K, N]`` (NZ when aligned); scale/offset in the model dtype."""
        n, k = self.out_features, self.in_features
        weight = ts.get("weight", (torch.int8,), [(n, k)])
        offset = channel_scale(ts, "weight_offset", n) if ts.has("weight_offset") else torch.zeros(n)
        bias_dtype = torch.float16 if self.model_dtype == torch.float16 else torch.float32
        buffers(
            self,
            weight=int8_weight_to_npu(self.ops, weight),
            antiquant_scale=channel_scale(ts, "weight_scale", n).to(self.model_dtype),
            antiquant_offset=(-offset).to(self.model_dtype),
            bias=float_bias(bias, ts, n, bias_dtype),
        )

    def forward_2d(self, x: Tensor) -> Tensor:
        """``npu_weight_quant_batchmatmul`` per channel."""
        return self.ops.npu_weight_quant_batchmatmul(
            x, self.weight, antiquant_scale=self.antiquant_scale, antiquant_offset=self.antiquant_offset, bias=self.bias
        )
