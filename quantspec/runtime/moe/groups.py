"""Expert groups for float experts, int8 W8A8 dynamic and weight-only W4A16 / W8A16.

* float (unquantized MoE such as an MTP layer; GGUF experts dequantized at load): weights
  ``[E, K, N]`` in the model dtype, float grouped matmul.
* W8A8 dynamic (ModelSlim ``W8A8_DYNAMIC``, compressed-tensors int W8A8 dynamic): int8
  ``[E, K, N]`` (FRACTAL_NZ), per-channel scales ``[E, N]`` (bf16 for bf16 models, fp32 for
  fp16 ones), per-token ``npu_dynamic_quant`` then ``scale`` + ``per_token_scale``
  (sglang_ascend.md 4.2, vllm_ascend.md 4.3).
* weight-only (AWQ, GPTQ, auto-round, compressed-tensors ``pack-quantized``): every layout is
  decoded by the linear scheme's decoder to signed codes; int4 is packed 8 per int32
  (``npu_convert_weight_to_int4pack``) to ``[E, K, N/8]``, int8 kept ``[E, K, N]``;
  ``antiquant_scale``/``antiquant_offset`` ``[E, G, N]`` (or ``[E, N]`` per channel) so that the
  kernel's ``(w + offset) * scale`` equals the format's ``(q - zero) * scale``
  (sglang_ascend.md 6.1/6.2, vllm_ascend.md 4.7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime.moe.base import ExpertGroup, GroupName, register_moe
from quantspec.runtime.ops.base import AclFormat, Ops
from quantspec.runtime.schemes.base import TensorSet, bad_tensor, check_model_dtype, nz_aligned_int8
from quantspec.runtime.schemes.weight_only import _DECODERS
from quantspec.vocab import FormatFamily, SchemeId, ZeroPoint

_FLOAT = (torch.float16, torch.bfloat16, torch.float32)


def _channel(ts: TensorSet, key: str, n: int) -> Tensor:
    return ts.get(key, _FLOAT, [(n, 1), (n,)], finite=True).reshape(n).to(torch.float32)


def _cat(projs: Sequence[Tensor], dim: int) -> Tensor:
    return projs[0] if len(projs) == 1 else torch.cat(list(projs), dim)


def _nz(ops: Ops, w: Tensor) -> Tensor:
    """``[E, K, N]`` int8 weights to FRACTAL_NZ when aligned (the grouped kernels prefer NZ)."""
    return ops.npu_format_cast(w, int(AclFormat.FRACTAL_NZ)) if nz_aligned_int8(w.size(1), w.size(2)) else w


@register_moe(FormatFamily.UNQUANTIZED, None)
@register_moe(FormatFamily.GGUF, SchemeId.GGUF)
class FloatExperts(ExpertGroup):
    """Float experts: ``weight [N, K]`` per projection, cast to the model dtype."""

    weight: Tensor

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Concatenate the projections' float weights along N."""
        ws = [TensorSet(p).get("weight", _FLOAT, [(n, k)]) for p in projs]
        return {"weight": _cat(ws, 0)}

    @classmethod
    def finish(
        cls, stacked: dict[str, Tensor], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> Self:
        """``[E, N, K]`` to contiguous ``[E, K, N]`` in the model dtype."""
        w = stacked["weight"]
        self = cls(experts=w.size(0), n=n, k=k, model_dtype=model_dtype, ops=ops)
        self.register_buffer("weight", w.to(model_dtype).transpose(1, 2).contiguous(), persistent=False)
        return self

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """Float grouped matmul."""
        out: Tensor = self.ops.npu_grouped_matmul(
            [x], [self.weight], group_list=group_list, group_list_type=1, group_type=0, split_item=2
        )[0]
        return out


@register_moe(FormatFamily.MODELSLIM, SchemeId.W8A8_DYNAMIC)
@register_moe(FormatFamily.COMPRESSED_TENSORS, SchemeId.W8A8_DYNAMIC)
class Int8DynamicExperts(ExpertGroup):
    """W8A8 dynamic experts: ``weight`` int8 ``[N, K]``, ``weight_scale [N, 1]`` per projection."""

    weight: Tensor
    weight_scale: Tensor

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """int8 weights and float32 scales, projections concatenated along N."""
        sets = [TensorSet(p) for p in projs]
        if any(ts.has("weight_zero_point") for ts in sets) or (
                quant is not None and quant.weight.zero_point not in (ZeroPoint.NONE, ZeroPoint.FLOAT_OFFSET)):
            raise bad_tensor("weight_zero_point", "asymmetric int8 weights are not supported by W8A8 dynamic MoE")
        return {
            "weight": _cat([ts.get("weight", (torch.int8,), [(n, k)]) for ts in sets], 0),
            "scale": _cat([_channel(ts, "weight_scale", n) for ts in sets], 0),
        }

    @classmethod
    def finish(
        cls, stacked: dict[str, Tensor], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> Self:
        """Transpose to ``[E, K, N]`` (NZ when aligned); scales bf16 for bf16 models, else fp32."""
        check_model_dtype(model_dtype)
        w = stacked["weight"]
        self = cls(experts=w.size(0), n=n, k=k, model_dtype=model_dtype, ops=ops)
        scale_dtype = torch.bfloat16 if model_dtype == torch.bfloat16 else torch.float32
        self.register_buffer("weight", _nz(ops, w.transpose(1, 2).contiguous()), persistent=False)
        self.register_buffer("weight_scale", stacked["scale"].to(scale_dtype).contiguous(), persistent=False)
        return self

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``npu_dynamic_quant`` then the per-token int8 grouped matmul."""
        xq, xs = self.ops.npu_dynamic_quant(x)
        out: Tensor = self.ops.npu_grouped_matmul(
            [xq], [self.weight], scale=[self.weight_scale], per_token_scale=[xs], output_dtype=self.model_dtype,
            group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out


@register_moe(FormatFamily.AWQ, SchemeId.W4A16)
@register_moe(FormatFamily.GPTQ, SchemeId.W4A16)
@register_moe(FormatFamily.GPTQ, SchemeId.W8A16)
@register_moe(FormatFamily.AUTO_ROUND, SchemeId.W4A16)
@register_moe(FormatFamily.AUTO_ROUND, SchemeId.W8A16)
@register_moe(FormatFamily.COMPRESSED_TENSORS, SchemeId.W4A16)
class WeightOnlyExperts(ExpertGroup):
    """Weight-only int4/int8 experts through the antiquant grouped matmul."""

    weight: Tensor
    antiquant_scale: Tensor
    antiquant_offset: Tensor | None

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Decode each projection's layout to codes ``[K, N]``, scale/offset ``[G, N]``; concatenate along N."""
        if quant is None:
            raise bad_tensor("qweight", "weight-only experts need a quantization description")
        bits = quant.weight.bits
        decoder = _DECODERS.get(quant.weight.layout)
        if decoder is None or bits not in (4, 8):
            raise bad_tensor("qweight", f"{bits}-bit {quant.weight.layout.value} experts have no NPU grouped kernel")
        parts = [decoder(TensorSet(p), quant, n, k, bits) for p in projs]
        if any(d.perm is not None for d in parts):
            raise bad_tensor("g_idx", "act-order (non-monotone g_idx) experts are not supported by the grouped "
                             "kernel", hint="re-quantize without desc_act / act_order")
        scale = _cat([d.scale.expand(-1, n) for d in parts], 1)
        offsets = [d.offset for d in parts]
        offset = None if all(o is None for o in offsets) else _cat(
            [torch.zeros_like(d.scale.expand(-1, n)) if o is None else o.expand(-1, n) for d, o in zip(
                parts, offsets, strict=True)], 1)
        return {"codes": _cat([d.codes for d in parts], 1).to(torch.int8), "scale": scale, "offset": offset}

    @classmethod
    def finish(
        cls, stacked: dict[str, Tensor], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> Self:
        """Pack int4 codes 8 per int32 per expert (``[E, K, N/8]``) or keep int8 ``[E, K, N]``."""
        check_model_dtype(model_dtype)
        assert quant is not None
        codes = stacked["codes"]
        e = codes.size(0)
        per_group = stacked["scale"].size(1) > 1
        if quant.weight.bits == 4:
            if n % 8:
                raise bad_tensor("qweight", f"int4 experts need N divisible by 8, got {n}")
            weight = torch.stack([ops.npu_convert_weight_to_int4pack(codes[i].to(torch.int32)) for i in range(e)])
        else:
            if per_group:
                raise bad_tensor("scales", "int8 weight-only grouped matmul supports per-channel scales only",
                                 hint="use per-channel (group_size -1) int8 or int4 weights for MoE")
            weight = codes.contiguous()
        self = cls(experts=e, n=n, k=k, model_dtype=model_dtype, ops=ops)

        def shape(t: Tensor) -> Tensor:
            return (t if per_group else t[:, 0]).to(model_dtype).contiguous()

        off = stacked.get("offset")
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("antiquant_scale", shape(stacked["scale"]), persistent=False)
        self.register_buffer("antiquant_offset", None if off is None else shape(off), persistent=False)
        return self

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """Antiquant grouped matmul ``x @ ((w + offset) * scale)``."""
        off = None if self.antiquant_offset is None else [self.antiquant_offset]
        out: Tensor = self.ops.npu_grouped_matmul(
            [x], [self.weight], antiquant_scale=[self.antiquant_scale], antiquant_offset=off,
            group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out
