"""Weight-only int4/int8 schemes (W4A16, W8A16) for AWQ, GPTQ, auto-round and compressed-tensors.

Every layout is decoded at load into the same NPU form (sglang_ascend.md 6.1, 6.2): signed codes
``q - 2^(b-1)`` as a ``[K, N]`` matrix (int4 repacked with ``npu_convert_weight_to_int4pack``, int8
kept), ``antiquant_scale [G, N]`` and ``antiquant_offset = 2^(b-1) - zero`` so that the kernel's
``(w + offset) * scale`` equals the format's ``(q - zero) * scale``. Act-order GPTQ (non-monotone
``g_idx``) is handled by permuting K at load and the activations at forward.

Layout and zero convention come from ``quant.weight`` (formats.md 1.3, 4.2):

=========================  ==================  =======================================
packing                    ``layout``          ``zero_point``
=========================  ==================  =======================================
GPTQ v1, auto_round:gptq   ``GPTQ``            ``MINUS_ONE`` (stored zero + 1, per field)
GPTQ v2, auto_round(,:gptqmodel)  ``GPTQ``     ``TRUE``
GPTQ symmetric             ``GPTQ``            ``NONE``: implicit zero 2^(b-1), qzeros ignored
AWQ GEMM, auto_round:awq   ``AWQ_GEMM``        ``TRUE`` (interleaved fields)
compressed-tensors packed  ``CT_PACKED``       ``NONE`` or ``SIGNED`` (packed along N)
=========================  ==================  =======================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.runtime import numerics as nm
from quantspec.runtime.schemes.base import (
    LinearScheme,
    TensorSet,
    bad_tensor,
    buffers,
    float_bias,
)
from quantspec.runtime.schemes.registry import register_linear
from quantspec.vocab import FormatFamily, Layout, SchemeId, ZeroPoint

_SCALE = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class Decoded:
    """A layout decoded to signed codes ``[K, N]`` (int32), float32 scales/offsets ``[G, N]``."""

    codes: Tensor
    scale: Tensor
    offset: Tensor | None
    group_size: int
    perm: Tensor | None


def _group_size(quant: QuantSpec, k: int) -> int:
    gs = quant.weight.group_size
    if gs is None or gs <= 0:
        return k
    if k % gs:
        raise bad_tensor("scales", f"group size {gs} does not divide in_features {k}")
    return gs


def _act_order(g_idx: Tensor | None, gs: int, k: int, name: str) -> Tensor | None:
    """The K permutation that makes groups contiguous, or None when ``g_idx`` is trivial."""
    trivial = torch.arange(k, dtype=torch.int64) // gs
    if g_idx is None or torch.equal(g_idx.to(torch.int64), trivial):
        return None
    g = g_idx.to(torch.int64)
    if int(g.min()) < 0 or int(g.max()) >= k // gs:
        raise bad_tensor(name, f"group indices must lie in [0, {k // gs}), got [{int(g.min())}, {int(g.max())}]")
    perm = torch.sort(g, stable=True).indices
    if not torch.equal(g[perm], trivial):
        raise bad_tensor(name, f"every group must have exactly {gs} members to be run on the NPU kernel")
    return perm


def _gptq(ts: TensorSet, quant: QuantSpec, n: int, k: int, bits: int) -> Decoded:
    gs = _group_size(quant, k)
    ng = k // gs
    qweight = ts.get("qweight", (torch.int32,), [(nm.packed_words(k, bits, dense=True), n)])
    scales = ts.get("scales", _SCALE, [(ng, n)], finite=True).to(torch.float32)
    half = 1 << (bits - 1)
    codes = nm.unpack_bits_rows(qweight, bits, k)
    zp = quant.weight.zero_point
    if zp == ZeroPoint.NONE:
        zeros = None
    else:
        qzeros = ts.get("qzeros", (torch.int32,), [(ng, nm.packed_words(n, bits, dense=True))])
        zeros = nm.unpack_bits(qzeros, bits, n)
        if zp == ZeroPoint.MINUS_ONE:
            # v1 stores zero - 1; add one per field after unpacking, never on the packed word.
            zeros = (zeros + 1) & ((1 << bits) - 1)
    g_idx = ts.optional("g_idx", (torch.int32, torch.int64), [(k,)])
    perm = _act_order(g_idx, gs, k, "g_idx")
    offset = None if zeros is None else (half - zeros).to(torch.float32)
    return Decoded(codes - half, scales, offset, gs, perm)


def _awq(ts: TensorSet, quant: QuantSpec, n: int, k: int, bits: int) -> Decoded:
    gs = _group_size(quant, k)
    ng = k // gs
    pf = 32 // bits
    if n % pf:
        raise bad_tensor("qweight", f"AWQ needs out_features divisible by {pf}, got {n}")
    qweight = ts.get("qweight", (torch.int32,), [(k, n // pf)])
    qzeros = ts.get("qzeros", (torch.int32,), [(ng, n // pf)])
    scales = ts.get("scales", _SCALE, [(ng, n)], finite=True).to(torch.float32)
    half = 1 << (bits - 1)
    codes = nm.unpack_awq(qweight, bits)
    zeros = nm.unpack_awq(qzeros, bits)
    return Decoded(codes - half, scales, (half - zeros).to(torch.float32), gs, None)


def _ct_packed(ts: TensorSet, quant: QuantSpec, n: int, k: int, bits: int) -> Decoded:
    gs = _group_size(quant, k)
    ng = k // gs
    dense_w, padded_w = nm.packed_words(k, bits, dense=True), nm.packed_words(k, bits, dense=False)
    packed = ts.get("weight_packed", (torch.int32,), {(n, dense_w), (n, padded_w)})
    # The word count tells the packing version: >= 0.18 dense stream, < 0.18 padded words.
    dense = packed.size(1) == dense_w
    # weight_shape holds the unsharded shape, so it is not compared with a tensor-parallel shard.
    half = 1 << (bits - 1)
    codes = nm.unpack_bits(packed, bits, k, dense=dense).t() - half
    scale_shapes = [(n, ng), (1,)] + ([(n,)] if ng == 1 else [])
    w_scale = ts.get("weight_scale", _SCALE, scale_shapes, finite=True).to(torch.float32)
    scale = w_scale.reshape(1, 1) if w_scale.numel() == 1 and n > 1 else w_scale.reshape(n, ng).t()
    offset = None
    if ts.has("weight_zero_point"):
        zp_words = nm.packed_words(n, bits, dense=dense)
        zpt = ts.get("weight_zero_point", (torch.int32,), [(zp_words, ng)])
        zeros = nm.unpack_bits(zpt.t().contiguous(), bits, n, dense=dense) - half
        offset = (-zeros).to(torch.float32)
    g_idx = ts.optional("weight_g_idx", (torch.int32, torch.int64), [(k,)])
    return Decoded(codes, scale, offset, gs, _act_order(g_idx, gs, k, "weight_g_idx"))


_DECODERS = {Layout.GPTQ: _gptq, Layout.AWQ_GEMM: _awq, Layout.CT_PACKED: _ct_packed}


@register_linear(FormatFamily.AWQ, SchemeId.W4A16)
@register_linear(FormatFamily.AWQ, SchemeId.W8A16)
@register_linear(FormatFamily.GPTQ, SchemeId.W4A16)
@register_linear(FormatFamily.GPTQ, SchemeId.W8A16)
@register_linear(FormatFamily.AUTO_ROUND, SchemeId.W4A16)
@register_linear(FormatFamily.AUTO_ROUND, SchemeId.W8A16)
@register_linear(FormatFamily.COMPRESSED_TENSORS, SchemeId.W4A16)
@register_linear(FormatFamily.COMPRESSED_TENSORS, SchemeId.W8A16)
class WeightOnlyLinear(LinearScheme):
    """Weight-only int4/int8 linear through ``npu_weight_quant_batchmatmul``.

    ``quant.weight.layout`` selects the decoder (GPTQ, AWQ GEMM, compressed-tensors packed),
    ``quant.weight.bits`` must be 4 or 8, ``quant.weight.group_size`` (None/-1: per channel)
    must divide K.
    """

    antiquant_scale: Tensor
    antiquant_offset: Tensor | None
    perm: Tensor | None
    group_size: int

    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Decode the layout, repack to NPU int4x8 (4-bit) or int8 ``[K, N]``."""
        n, k = self.out_features, self.in_features
        bits = quant.weight.bits
        if bits not in (4, 8):
            raise bad_tensor("qweight", f"{bits}-bit weights have no NPU weight-only kernel (4 and 8 do)")
        decoder = _DECODERS.get(quant.weight.layout)
        if decoder is None:
            raise bad_tensor("weight", f"layout {quant.weight.layout.value} is not a weight-only packed layout")
        d = decoder(ts, quant, n, k, bits)
        codes = d.codes if d.perm is None else d.codes[d.perm]
        if bits == 4:
            if n % 8:
                raise bad_tensor("weight", f"int4 weights need out_features divisible by 8, got {n}")
            weight = self.ops.npu_convert_weight_to_int4pack(codes.to(torch.int32).contiguous())
        else:
            weight = codes.to(torch.int8).contiguous()
        per_group = d.scale.size(0) > 1
        scale = d.scale if per_group else d.scale.reshape(-1)
        offset = None if d.offset is None else (d.offset if per_group else d.offset.reshape(-1))
        self.group_size = d.group_size if per_group else 0
        bias_dtype = torch.float16 if self.model_dtype == torch.float16 else torch.float32
        buffers(
            self,
            weight=weight,
            antiquant_scale=scale.to(self.model_dtype).contiguous(),
            antiquant_offset=None if offset is None else offset.to(self.model_dtype).contiguous(),
            perm=d.perm,
            bias=float_bias(bias, ts, n, bias_dtype),
        )

    def forward_2d(self, x: Tensor) -> Tensor:
        """Permute K for act-order, then ``npu_weight_quant_batchmatmul``."""
        if self.perm is not None:
            x = x[:, self.perm]
        return self.ops.npu_weight_quant_batchmatmul(
            x,
            self.weight,
            antiquant_scale=self.antiquant_scale,
            antiquant_offset=self.antiquant_offset,
            bias=self.bias,
            antiquant_group_size=self.group_size,
        )
