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
  (sglang_ascend.md 6.1/6.2, vllm_ascend.md 4.7). The int8 antiquant kernel takes per-channel
  scales only (torch_npu_ops.md 4.3), so grouped int8 experts are stored split along K,
  ``[G, E, K/G, N]`` with ``[G, E, N]`` scale/offset, and run one per-channel grouped matmul per
  K-group on the matching activation columns, summed in float32 (G kernel calls instead of one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime.moe.base import ExpertGroup, GroupName, register_moe
from quantspec.runtime.ops.base import Ops
from quantspec.runtime.schemes.base import (
    FLOAT_DTYPES,
    TensorSet,
    bad_tensor,
    channel_scale,
    int8_weight_to_npu,
)
from quantspec.runtime.schemes.weight_only import _DECODERS
from quantspec.vocab import FormatFamily, SchemeId, ZeroPoint


def _cat(projs: Sequence[Tensor], dim: int) -> Tensor:
    return projs[0] if len(projs) == 1 else torch.cat(list(projs), dim)


@register_moe(FormatFamily.UNQUANTIZED, None)
@register_moe(FormatFamily.GGUF, SchemeId.GGUF)
class FloatExperts(ExpertGroup):
    """Float experts: ``weight [N, K]`` per projection, cast to the model dtype."""

    # A plain float grouped matmul: any float model dtype.
    model_dtypes = None
    weight: Tensor

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Concatenate the projections' float weights along N."""
        ws = [TensorSet(p).get("weight", FLOAT_DTYPES, [(n, k)]) for p in projs]
        return {"weight": _cat(ws, 0)}

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """``[E, N, K]`` to the ``[E, K, N]`` operand in the model dtype."""
        w = stacked["weight"]
        self.register_buffer("weight", self.ops.transpose_weight(w.to(self.model_dtype)), persistent=False)

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
            "scale": _cat([channel_scale(ts, "weight_scale", n) for ts in sets], 0),
        }

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """Transpose to ``[E, K, N]`` (NZ when aligned); scales bf16 for bf16 models, else fp32."""
        model_dtype, ops = self.model_dtype, self.ops
        w = stacked["weight"]
        scale_dtype = torch.bfloat16 if model_dtype == torch.bfloat16 else torch.float32
        self.register_buffer("weight", int8_weight_to_npu(ops, w), persistent=False)
        self.register_buffer("weight_scale", stacked["scale"].to(scale_dtype).contiguous(), persistent=False)

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
    """Weight-only int4/int8 experts through the antiquant grouped matmul.

    Act-order (``desc_act``) checkpoints permute K at load: each expert's rows are sorted so that
    its quantization groups are contiguous, and the routed activations are gathered with the same
    per-expert permutation before the matmul. Gate and up may have different permutations, so an
    act-order group runs one grouped matmul per projection (``weight_0``, ``weight_1``...) and
    concatenates the outputs.
    """

    weight: Tensor
    antiquant_scale: Tensor
    antiquant_offset: Tensor | None
    #: Act-order groups: one grouped matmul per projection (0: a single one).
    parts: int = 0

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Decode each projection's layout to codes ``[K, N]``, scale/offset ``[G, N]``; concatenate along N
        (act-order: one set per projection, with its K permutation)."""
        if quant is None:
            raise bad_tensor("qweight", "weight-only experts need a quantization description")
        bits = quant.weight.bits
        decoder = _DECODERS.get(quant.weight.layout)
        if decoder is None or bits not in (4, 8):
            raise bad_tensor("qweight", f"{bits}-bit {quant.weight.layout.value} experts have no NPU grouped kernel")
        parts = [decoder(TensorSet(p), quant, n, k, bits) for p in projs]
        offsets = [None if d.offset is None else d.offset.expand(-1, n) for d in parts]
        if quant.weight.act_order:
            out: dict[str, Tensor | None] = {}
            for i, (d, off) in enumerate(zip(parts, offsets, strict=True)):
                perm = d.perm if d.perm is not None else torch.arange(k)
                out[f"codes{i}"] = (d.codes if d.perm is None else d.codes[d.perm]).to(torch.int8)
                out[f"scale{i}"] = d.scale.expand(-1, n)
                out[f"offset{i}"] = off
                out[f"perm{i}"] = perm
            return out
        if any(d.perm is not None for d in parts):
            raise bad_tensor("g_idx", "non-monotone g_idx, but the description does not declare act-order",
                             hint="set desc_act / act_order in the quantization config")
        scale = _cat([d.scale.expand(-1, n) for d in parts], 1)
        offset = None if all(o is None for o in offsets) else _cat(
            [torch.zeros_like(d.scale.expand(-1, n)) if o is None else o for d, o in zip(parts, offsets, strict=True)],
            1)
        return {"codes": _cat([d.codes for d in parts], 1).to(torch.int8), "scale": scale, "offset": offset}

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """Pack int4 codes 8 per int32 per expert (``[E, K, N/8]``) or keep int8 ``[E, K, N]``."""
        model_dtype, ops = self.model_dtype, self.ops
        if quant is None:
            raise bad_tensor("qweight", "weight-only experts need a quantization description")
        parts = sum(1 for key in stacked if key.startswith("codes") and key != "codes")
        self.parts = parts
        if not parts:
            for key, t in _pack(ops, quant, stacked["codes"], stacked["scale"], stacked.get("offset"),
                                model_dtype=model_dtype).items():
                self.register_buffer(key, t, persistent=False)
            return
        for i in range(parts):
            packed = _pack(ops, quant, stacked[f"codes{i}"], stacked[f"scale{i}"], stacked.get(f"offset{i}"),
                           model_dtype=model_dtype)
            for key, t in packed.items():
                self.register_buffer(f"{key}_{i}", t, persistent=False)
            self.register_buffer(f"perm_{i}", stacked[f"perm{i}"].to(torch.int64), persistent=False)

    def _gmm(self, x: Tensor, group_list: Tensor, suffix: str = "") -> Tensor:
        weight = getattr(self, f"weight{suffix}")
        scale = getattr(self, f"antiquant_scale{suffix}")
        off = getattr(self, f"antiquant_offset{suffix}")
        if weight.dim() == 3:
            return self._antiquant(x, weight, scale, off, group_list)
        # int8 per-group [G, E, K/G, N]: one per-channel matmul per K-group, accumulated in float32
        gs = weight.size(2)
        acc: Tensor | None = None
        for j in range(weight.size(0)):
            part = self._antiquant(x[:, j * gs:(j + 1) * gs].contiguous(), weight[j], scale[j],
                                   None if off is None else off[j], group_list).to(torch.float32)
            acc = part if acc is None else acc + part
        assert acc is not None
        return acc.to(x.dtype)

    def _antiquant(self, x: Tensor, weight: Tensor, scale: Tensor, off: Tensor | None, group_list: Tensor) -> Tensor:
        out: Tensor = self.ops.npu_grouped_matmul(
            [x], [weight], antiquant_scale=[scale], antiquant_offset=None if off is None else [off],
            group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """Antiquant grouped matmul ``x @ ((w + offset) * scale)`` (act-order: per projection, on
        activations gathered with each row's expert permutation)."""
        if not self.parts:
            return self._gmm(x, group_list)
        rows = torch.repeat_interleave(torch.arange(self.experts, device=x.device), group_list.to(x.device))
        rows = torch.cat([rows, rows.new_zeros(x.size(0) - rows.numel())])  # rows past the groups: any expert
        outs = [self._gmm(torch.gather(x, 1, getattr(self, f"perm_{i}")[rows]), group_list, f"_{i}")
                for i in range(self.parts)]
        return torch.cat(outs, dim=-1)


def _pack(ops: Ops, quant: QuantSpec, codes: Tensor, scale: Tensor, offset: Tensor | None, *,
          model_dtype: torch.dtype) -> dict[str, Tensor | None]:
    """Grouped-kernel buffers of stacked codes ``[E, K, N]`` and scale/offset ``[E, G, N]``."""
    e, _, n = codes.shape
    per_group = scale.size(1) > 1
    if quant.weight.bits == 4:
        if n % 8:
            raise bad_tensor("qweight", f"int4 experts need N divisible by 8, got {n}")
        weight = torch.stack([ops.npu_convert_weight_to_int4pack(codes[i].to(torch.int32)) for i in range(e)])
    elif per_group:
        # The int8 antiquant grouped matmul takes per-channel scales only (torch_npu_ops.md 4.3), so
        # K is split into its quantization groups: [G, E, K/G, N] weights and [G, E, N] scale/offset,
        # one per-channel grouped matmul per K-group, summed (see WeightOnlyExperts._gmm).
        g = scale.size(1)
        k = codes.size(1)
        if k % g:
            raise bad_tensor("scales", f"{g} groups do not divide K = {k}")

        def by_group(t: Tensor) -> Tensor:
            return t.transpose(0, 1).to(model_dtype).contiguous()

        return {"weight": codes.reshape(e, g, k // g, n).transpose(0, 1).contiguous(),
                "antiquant_scale": by_group(scale), "antiquant_offset": None if offset is None else by_group(offset)}
    else:
        weight = codes.contiguous()

    def shape(t: Tensor) -> Tensor:
        return (t if per_group else t[:, 0]).to(model_dtype).contiguous()

    return {"weight": weight, "antiquant_scale": shape(scale),
            "antiquant_offset": None if offset is None else shape(offset)}
