"""Expert groups with int4 weights and quantized activations: W4A8 dynamic and W4A4 dynamic.

Both store int4 weights 8 per int32 along N, ``[E, K, N/8]`` (``npu_convert_weight_to_int4pack``
per expert; equal to vLLM-Ascend's ``view(int32)`` of int4x2 bytes along N), and per-channel
scales as int64 words holding the fp32 bits (the grouped kernel's "uint64 scale" format,
sglang_ascend.md 4.2, vllm_ascend.md 4.6.1).

* **W4A8** (ModelSlim int4x2 ``version 1.0.0`` or one int4 per byte, compressed-tensors int or
  pack-quantized): int8 per-token activations; ``bias = scale_bias [E, N]`` float32. ModelSlim
  stores ``scale_bias`` (``w13`` ``[N, 1]``; ``w2`` ``[N, 16]``, 16 tensor-parallel slices summed
  here after the loader kept this rank's ones); otherwise it is computed as
  ``8 * sum_k(w * scale)`` (the aclnn A8W4 offset term). Grouped weights (``group_size > 0``)
  fold ``weight_scale * weight_scale_second`` (through fp16, as the references do) into
  ``[E, K/G, N]`` words.
  compressed-tensors in SGLang's layout (``NPUCompressedTensorsW4A8Int8DynamicMoE``) stores
  ModelSlim's int4 pairs with ``weight_offset`` and ``scale_bias``; its ``activation_use_clip``
  variant stores ``weight_scale`` as int64 words (fp32 bits), and a float ``bias [N]`` that is the
  scale bias as it stands (SGLang assigns ``w13_bias``/``w2_bias`` to the scale-bias slots). Its
  ``alpha`` is read and not applied: SGLang registers ``w2_alpha`` and never uses it.
* **W4A4** (ModelSlim): int4 per-token activations (``npu_dynamic_quant(dst_type=quint4x2)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.moe.base import ExpertGroup, GroupName, register_moe
from quantspec.runtime.ops.base import Ops
from quantspec.runtime.schemes.base import FLOAT_DTYPES, TensorSet, bad_tensor, channel_scale, check_finite
from quantspec.runtime.schemes.weight_only import _ct_packed
from quantspec.vocab import FormatFamily, Layout, SchemeId


def _codes(ts: TensorSet, quant: QuantSpec, n: int, k: int) -> Tensor:
    """Signed int4 values ``[N, K]`` (int8) of one projection, whatever the storage."""
    layout = quant.weight.layout
    if layout == Layout.MODELSLIM_INT4X2:
        return nm.unpack_int4_pairs(ts.get("weight", (torch.int8,), [(n // 2, k)]), dim=0)
    if layout == Layout.CT_PACKED:
        return _ct_packed(ts, quant, n, k, 4).codes.t().to(torch.int8)
    w = ts.get("weight", (torch.int8,), [(n, k)])
    lo, hi = int(w.min()), int(w.max())
    if lo < -8 or hi > 7:
        raise bad_tensor("weight", f"int4 values must lie in [-8, 7], got [{lo}, {hi}]")
    return w


def _scale(ts: TensorSet, quant: QuantSpec, n: int, k: int) -> Tensor:
    """float32 scale ``[N, G]`` (G = 1 per channel), folding ModelSlim's second-level scale."""
    gs = quant.weight.group_size if quant.weight.group_size and quant.weight.group_size > 0 else k
    ng = k // gs
    if quant.weight.layout == Layout.CT_PACKED:
        return _ct_packed(ts, quant, n, k, 4).scale.t().expand(n, -1).to(torch.float32)
    raw = ts.get("weight_scale", (*FLOAT_DTYPES, torch.int64), [(n, 1), (n,), (n, ng)])
    if raw.dtype == torch.int64:  # the clip variant: fp32 bits in int64 words
        raw = nm.int64_to_float_bits(raw)
    check_finite(ts.name("weight_scale"), raw)
    s = raw.reshape(n, -1).to(torch.float32)
    for key in ("weight_offset", "weight_offset_second"):
        off = ts.optional(key, (*FLOAT_DTYPES, torch.int64), None)
        if off is not None and bool((off != 0).any()):
            raise bad_tensor(key, "non-zero offsets (asymmetric int4 weights) are not supported by the A8W4 kernel",
                             hint="W4A8_DYNAMIC weights are symmetric; re-export with w_sym=True")
    if ts.has("weight_scale_second"):
        # msModelSlim's old API: scale = weight_scale [N, 1] x weight_scale_second [N, K/G].
        second = ts.get("weight_scale_second", FLOAT_DTYPES, [(n, ng)], finite=True).to(torch.float32)
        s = (s * second).to(torch.float16).to(torch.float32)
    return s


def _int64_bits(s: Tensor) -> Tensor:
    """float32 scales as int64 words holding their bits (the grouped kernel's uint64 format)."""
    return nm.float_bits_to_int64(s.to(torch.float32).contiguous())


def _pack_experts(ops: Ops, codes: Tensor) -> Tensor:
    """``[E, N, K]`` int4 values to ``[E, K, N/8]`` int32 words."""
    return torch.stack([ops.npu_convert_weight_to_int4pack(c.t().contiguous().to(torch.int32)) for c in codes])


@register_moe(FormatFamily.MODELSLIM, SchemeId.W4A8_DYNAMIC)
@register_moe(FormatFamily.COMPRESSED_TENSORS, SchemeId.W4A8_DYNAMIC)
class W4A8Experts(ExpertGroup):
    """A8W4 grouped matmul: int8 activations, int4 weights, int64 scales, ``scale_bias``."""

    weight: Tensor
    weight_scale: Tensor
    scale_bias: Tensor

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """int4 values ``[N, K]``, scales ``[N, G]`` and the per-channel ``scale_bias [N]``."""
        if quant is None:
            raise bad_tensor("weight", "W4A8 experts need a quantization description")
        codes, scales, biases = [], [], []
        for p in projs:
            ts = TensorSet(p)
            c, s = _codes(ts, quant, n, k), _scale(ts, quant, n, k)
            if quant.activation is not None and quant.activation.clip:
                bias = ts.get("bias", FLOAT_DTYPES, [(n,)], finite=True).to(torch.float32)
                ts.optional("alpha", FLOAT_DTYPES, [(1,)])  # read (its shape checked), not applied: see above
            elif ts.has("scale_bias"):
                sb = ts.get("scale_bias", FLOAT_DTYPES, None, finite=True)
                if sb.dim() != 2 or sb.size(0) != n:
                    raise bad_tensor("scale_bias", f"shape {tuple(sb.shape)} is not ({n}, slices)")
                bias = sb.to(torch.float32).sum(dim=1)  # w2: this rank's TP slices
            else:
                g = s.size(1)
                per = c.to(torch.float32).reshape(n, g, k // g).sum(-1)
                bias = 8.0 * (per * s).sum(-1)
            codes.append(c)
            scales.append(s)
            biases.append(bias)
        return {"codes": torch.cat(codes, 0), "scale": torch.cat(scales, 0), "bias": torch.cat(biases, 0)}

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """Pack weights ``[E, K, N/8]``, scales to int64 ``[E, G, N]`` (``[E, 1, N]`` per channel, as both
        engines pass it: the A8W4 kernel takes only the 3-D form)."""
        n, ops = self.n, self.ops
        codes = stacked["codes"]
        if n % 8:
            raise bad_tensor("weight", f"int4 experts need N divisible by 8, got {n}")
        scale = stacked["scale"].transpose(1, 2)  # [E, G, N]
        self.register_buffer("weight", _pack_experts(ops, codes), persistent=False)
        self.register_buffer("weight_scale", _int64_bits(scale), persistent=False)
        self.register_buffer("scale_bias", stacked["bias"].to(torch.float32).contiguous(), persistent=False)

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``npu_dynamic_quant`` (int8) then the A8W4 grouped matmul."""
        xq, xs = self.ops.npu_dynamic_quant(x)
        out: Tensor = self.ops.npu_grouped_matmul(
            [xq], [self.weight], scale=[self.weight_scale], bias=[self.scale_bias], per_token_scale=[xs],
            output_dtype=self.model_dtype, group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out


@register_moe(FormatFamily.MODELSLIM, SchemeId.W4A4_DYNAMIC)
class W4A4Experts(ExpertGroup):
    """A4W4 grouped matmul: int4 activations and weights, int64 per-channel scales."""

    weight: Tensor
    weight_scale: Tensor

    @classmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """int4 values ``[N, K]`` and per-channel scales ``[N]``."""
        if quant is None:
            raise bad_tensor("weight", "W4A4 experts need a quantization description")
        if k % 8:
            raise bad_tensor("weight", f"int4 activations need K divisible by 8, got {k}")
        sets = [TensorSet(p) for p in projs]
        codes = torch.cat([_codes(ts, quant, n, k) for ts in sets], 0)
        scale = torch.cat([channel_scale(ts, "weight_scale", n) for ts in sets], 0)
        return {"codes": codes, "scale": scale}

    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """Pack weights ``[E, K, N/8]``; scales to int64 ``[E, N]``."""
        n, ops = self.n, self.ops
        codes = stacked["codes"]
        if n % 8:
            raise bad_tensor("weight", f"int4 experts need N divisible by 8, got {n}")
        self.register_buffer("weight", _pack_experts(ops, codes), persistent=False)
        self.register_buffer("weight_scale", _int64_bits(stacked["scale"]), persistent=False)

    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``npu_dynamic_quant(dst_type=quint4x2)`` then the A4W4 grouped matmul."""
        xq, xs = self.ops.npu_dynamic_quant(x, dst_type=torch.quint4x2)
        out: Tensor = self.ops.npu_grouped_matmul(
            [xq], [self.weight], scale=[self.weight_scale], per_token_scale=[xs], output_dtype=self.model_dtype,
            group_list=group_list, group_list_type=1, group_type=0, split_item=2,
        )[0]
        return out
