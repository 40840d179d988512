"""Bit-level numerics shared by the CPU op emulation, the schemes and the writers.

Everything here is pure torch on integer or float tensors, vectorised, and documented against
``shared/reference/torch_npu_ops.md`` (op side) and ``shared/reference/formats.md`` (disk side):

* integer rounding: round-half-to-even (``rint``) and round-half-away (``round``), with saturation;
* 4-bit packing: NPU int4 (8 signed nibbles per int32, LSB first) and FP4 E2M1 pairs (low nibble =
  even element);
* generic b-bit packing of unsigned codes into int32 words, in the two layouts producers use
  (a dense little-endian bit stream, and "padded" words of ``32 // b`` fields), plus the AWQ
  interleave;
* scale encodings: FP19 truncation (``npu_trans_quant_param``) and E8M0 exponent bytes (MX).
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

# Byte-level fast paths view int32 words as their four bytes, which is LSB-first only here.
_LITTLE_ENDIAN = sys.byteorder == "little"

#: AutoAWQ's field order for 4-bit words: field i holds logical column ``8j + AWQ_ORDER_4[i]``.
AWQ_ORDER_4: tuple[int, ...] = (0, 2, 4, 6, 1, 3, 5, 7)
#: Mask that clears the 13 low mantissa bits of a float32 (sign + 8 exponent + 10 mantissa kept).
FP19_MASK = 0xFFFFE000
#: Magnitudes of the eight FP4 E2M1 codes (bit 3 is the sign).
FP4_E2M1_VALUES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
FP8_E4M3_MAX = 448.0
FP8_E5M2_MAX = 57344.0
FP4_E2M1_MAX = 6.0


# ----------------------------------------------------------------------------- rounding


def rint(x: Tensor) -> Tensor:
    """Round half to even (the NPU's default "rint" mode)."""
    return torch.round(x)


def round_half_away(x: Tensor) -> Tensor:
    """Round half away from zero (CANN's "round" mode, used by ``npu_quantize(div_mode=False)``)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def saturate(x: Tensor, lo: float, hi: float) -> Tensor:
    """Clamp to ``[lo, hi]`` (integer outputs saturate instead of wrapping)."""
    return torch.clamp(x, lo, hi)


def _to_int32_wrapping(words: Tensor) -> Tensor:
    """Reinterpret unsigned 32-bit values held in int64 as int32 (two's complement)."""
    words = words & 0xFFFFFFFF
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


# ----------------------------------------------------------------------------- NPU int4


def _bytes_as_words(b: Tensor) -> Tensor:
    """uint8 ``[..., 4W]`` reinterpreted as int32 ``[..., W]`` (flattened first: dtype views need
    element strides, which size-1 dims do not guarantee)."""
    return b.contiguous().reshape(-1).view(torch.int32).reshape(*b.shape[:-1], b.shape[-1] // 4)


def _words_as_bytes(w: Tensor) -> Tensor:
    """int32 ``[..., W]`` reinterpreted as uint8 ``[..., 4W]``."""
    return w.to(torch.int32).contiguous().reshape(-1).view(torch.uint8).reshape(*w.shape[:-1], w.shape[-1] * 4)


_M8 = 0x00FF00FF00FF00FF
_M16 = 0x0000FFFF0000FFFF
_M4 = 0x0F0F0F0F0F0F0F0F


def _compress_nibbles(nib: Tensor) -> Tensor:
    """Values in [0, 15] ``[..., 8W]`` to int32 words ``[..., W]``, element 8j + t at bits 4t.

    Works on 64-bit lanes (8 values per int64) with three shift-or-mask steps instead of strided
    byte gathers, which torch does not vectorise.
    """
    *lead, last = nib.shape
    x = nib.to(torch.uint8).contiguous().reshape(-1).view(torch.int64)
    y = (x | (x >> 4)) & _M8
    z = (y | (y >> 8)) & _M16
    w = z | (z >> 16)
    # The low 32 bits of each little-endian int64 lane are the word (high bits are dropped).
    return w.view(torch.int32)[0::2].reshape(*lead, last // 8).contiguous()


def _spread_nibbles(words: Tensor) -> Tensor:
    """Inverse of :func:`_compress_nibbles`: int32 ``[..., W]`` to uint8 values ``[..., 8W]``."""
    *lead, nw = words.shape
    w = words.to(torch.int32).contiguous().reshape(-1).to(torch.int64) & 0xFFFFFFFF
    z = (w | (w << 16)) & _M16
    y = (z | (z << 8)) & _M8
    x = (y | (y << 4)) & _M4
    return x.view(torch.uint8).reshape(*lead, nw * 8)


def _nibble_bytes(nib: Tensor) -> Tensor:
    """Values in [0, 15] ``[..., 2L]`` to bytes ``[..., L]``: element 2i low nibble."""
    *lead, last = nib.shape
    pairs = nib.to(torch.uint8).reshape(*lead, last // 2, 2)
    return pairs[..., 0] | (pairs[..., 1] << 4)


def _byte_nibbles(b: Tensor) -> Tensor:
    """Inverse of :func:`_nibble_bytes`: uint8 ``[..., L]`` to values in [0, 15] ``[..., 2L]`` (uint8)."""
    return torch.stack((b & 0xF, b >> 4), dim=-1).reshape(*b.shape[:-1], b.shape[-1] * 2)


def pack_int4_lsb(values: Tensor) -> Tensor:
    """Pack signed int4 values (in [-8, 7]) 8 per int32 along the last dim, LSB first.

    Element ``8j + t`` lands in bits ``[4t, 4t + 4)`` of word ``j`` (torch_npu_ops.md 1.5).
    The last dim must be a multiple of 8.
    """
    *lead, last = values.shape
    if _LITTLE_ENDIAN:
        return _compress_nibbles(values.to(torch.int8) & 0xF)
    nib = (values.to(torch.int64) & 0xF).reshape(*lead, last // 8, 8)
    shifts = torch.arange(0, 32, 4, dtype=torch.int64)
    return _to_int32_wrapping((nib << shifts).sum(dim=-1))


def unpack_int4_lsb(words: Tensor) -> Tensor:
    """Inverse of :func:`pack_int4_lsb`: int32 ``[..., J]`` to int8 ``[..., 8J]`` in [-8, 7]."""
    if _LITTLE_ENDIAN:
        nib = _spread_nibbles(words).view(torch.int8)
        return (nib ^ 8) - 8
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    nib32 = (words.to(torch.int32).unsqueeze(-1) >> shifts) & 0xF
    signed = torch.where(nib32 >= 8, nib32 - 16, nib32).to(torch.int8)
    return signed.reshape(*words.shape[:-1], words.shape[-1] * 8)


def pack_int4_pairs(values: Tensor, dim: int = -1) -> Tensor:
    """Pack signed int4 values two per int8 byte along ``dim``: even element in the low nibble."""
    v = values.movedim(dim, -1).to(torch.int16) & 0xF
    lo, hi = v[..., 0::2], v[..., 1::2]
    byte = lo | (hi << 4)
    byte = torch.where(byte >= 128, byte - 256, byte).to(torch.int8)
    return byte.movedim(-1, dim)


def unpack_int4_pairs(packed: Tensor, dim: int = -1) -> Tensor:
    """Inverse of :func:`pack_int4_pairs` (int8 bytes to signed int4 values as int8)."""
    b = packed.movedim(dim, -1).to(torch.int16) & 0xFF
    lo, hi = b & 0xF, b >> 4
    both = torch.stack([lo, hi], dim=-1).reshape(*b.shape[:-1], b.shape[-1] * 2)
    return torch.where(both >= 8, both - 16, both).to(torch.int8).movedim(-1, dim)


# ----------------------------------------------------------------------------- b-bit words


def packed_words(count: int, bits: int, *, dense: bool) -> int:
    """Number of int32 words holding ``count`` codes of ``bits`` bits in either layout."""
    if dense:
        return -(-count * bits // 32)
    return -(-count // (32 // bits))


def pack_bits(codes: Tensor, bits: int, *, dense: bool = True) -> Tensor:
    """Pack unsigned ``bits``-bit codes along the last dim into int32 words.

    ``dense=True``: a little-endian bit stream, code i at bits ``[i*b, i*b + b)`` of the row's
    word array (fields may straddle words; GPTQ 3-bit and compressed-tensors >= 0.18).
    ``dense=False``: ``32 // b`` codes per word at shifts ``b*i``, high bits unused
    (compressed-tensors < 0.18). Both agree when ``32 % b == 0``.
    """
    *lead, count = codes.shape
    if _LITTLE_ENDIAN and bits in (4, 8):
        # Byte-level fast path: 8-bit codes are bytes, 4-bit codes nibble pairs, words little-endian.
        pf = 32 // bits
        words = packed_words(count, bits, dense=False)
        c8 = torch.nn.functional.pad(codes.to(torch.int32) & ((1 << bits) - 1), (0, words * pf - count))
        if bits == 4:
            return _compress_nibbles(c8)
        return _bytes_as_words(c8.to(torch.uint8)).reshape(*lead, words)
    c = codes.to(torch.int64) & ((1 << bits) - 1)
    if 32 % bits == 0 or not dense:
        pf = 32 // bits
        words = packed_words(count, bits, dense=False)
        c = torch.nn.functional.pad(c, (0, words * pf - count))
        shifts = torch.arange(pf, dtype=torch.int64) * bits
        return _to_int32_wrapping((c.reshape(*lead, words, pf) << shifts).sum(dim=-1))
    # Straddling fields: expand to a bit array, then regroup 32 bits per word.
    bitpos = torch.arange(bits, dtype=torch.int64)
    stream = ((c.unsqueeze(-1) >> bitpos) & 1).reshape(*lead, count * bits)
    words = packed_words(count, bits, dense=True)
    stream = torch.nn.functional.pad(stream, (0, words * 32 - count * bits))
    shifts = torch.arange(32, dtype=torch.int64)
    return _to_int32_wrapping((stream.reshape(*lead, words, 32) << shifts).sum(dim=-1))


def unpack_bits(words: Tensor, bits: int, count: int, *, dense: bool = True) -> Tensor:
    """Inverse of :func:`pack_bits`: int32 words to ``count`` unsigned codes (int32)."""
    *lead, nwords = words.shape
    if _LITTLE_ENDIAN and bits in (4, 8):
        fields = _words_as_bytes(words) if bits == 8 else _spread_nibbles(words)
        return fields[..., :count].to(torch.int32)
    w = words.to(torch.int64) & 0xFFFFFFFF
    mask = (1 << bits) - 1
    if 32 % bits == 0 or not dense:
        pf = 32 // bits
        shifts = torch.arange(pf, dtype=torch.int64) * bits
        fields = ((w.unsqueeze(-1) >> shifts) & mask).reshape(*lead, nwords * pf)
        return fields[..., :count].to(torch.int32)
    shifts = torch.arange(32, dtype=torch.int64)
    stream = ((w.unsqueeze(-1) >> shifts) & 1).reshape(*lead, nwords * 32)[..., : count * bits]
    bitpos = torch.arange(bits, dtype=torch.int64)
    return (stream.reshape(*lead, count, bits) << bitpos).sum(dim=-1).to(torch.int32)


def unpack_bits_rows(words: Tensor, bits: int, count: int) -> Tensor:
    """Unpack codes packed along dim 0 (GPTQ ``qweight [K*b/32, N]``) to ``[count, N]`` int32.

    Equivalent to ``unpack_bits(words.t(), bits, count).t()``, without transposing the words.
    """
    if _LITTLE_ENDIAN and bits in (4, 8):
        rows, n = words.shape
        fields = _words_as_bytes(words) if bits == 8 else _spread_nibbles(words)
        fields = fields.reshape(rows, n, 32 // bits)  # field order within each word
        return fields.permute(0, 2, 1).reshape(-1, n)[:count].to(torch.int32)
    return unpack_bits(words.t(), bits, count).t()


def awq_order(bits: int) -> tuple[int, ...]:
    """AWQ GEMM field order for ``bits``: even columns first, then odd ones.

    4-bit is AutoAWQ's ``[0, 2, 4, 6, 1, 3, 5, 7]``; 8-bit gives ``[0, 2, 1, 3]``, the
    order vLLM undoes for 8-bit AWQ (inferred, no producer source read).
    """
    pf = 32 // bits
    return tuple(range(0, pf, 2)) + tuple(range(1, pf, 2))


def pack_awq(codes: Tensor, bits: int) -> Tensor:
    """Pack unsigned codes ``[..., N]`` into AWQ GEMM words ``[..., N / (32/b)]``."""
    pf = 32 // bits
    *lead, n = codes.shape
    grouped = codes.reshape(*lead, n // pf, pf)
    # Field i holds column awq_order[i]: the even columns, then the odd ones.
    ordered = torch.cat((grouped[..., 0::2], grouped[..., 1::2]), dim=-1)
    return pack_bits(ordered.reshape(*lead, n), bits)


def unpack_awq(words: Tensor, bits: int) -> Tensor:
    """Inverse of :func:`pack_awq`: logical column ``pf*j + c`` is field ``order.index(c)``."""
    pf = 32 // bits
    *lead, nw = words.shape
    fields = unpack_bits(words, bits, nw * pf).reshape(*lead, nw, pf)
    # Column 2c is field c, column 2c + 1 is field pf/2 + c.
    logical = torch.stack((fields[..., : pf // 2], fields[..., pf // 2 :]), dim=-1)
    return logical.reshape(*lead, nw * pf)


# ----------------------------------------------------------------------------- scales


def fp19_truncate(scale: Tensor) -> Tensor:
    """Clear the 13 low mantissa bits of float32 values (the NPU's FP19 dequant scale)."""
    bits = scale.to(torch.float32).contiguous().view(torch.int32)
    return (bits & torch.tensor(FP19_MASK - 2**32, dtype=torch.int32)).view(torch.float32)


def fp19_round(scale: Tensor) -> Tensor:
    """Round float32 values to nearest FP19 (ties to even), for ``round_mode=1``."""
    bits = scale.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    lsb = (bits >> 13) & 1
    rounded = (bits + 0x0FFF + lsb) & FP19_MASK
    return _to_int32_wrapping(rounded).view(torch.float32)


def float_bits_to_int64(scale: Tensor) -> Tensor:
    """The float32 bit pattern of ``scale`` as a non-negative int64 (ModelSlim ``deq_scale``)."""
    return scale.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def int64_to_float_bits(word: Tensor) -> Tensor:
    """The float32 held in bits 0-31 of int64 scale words."""
    return _to_int32_wrapping(word.to(torch.int64) & 0xFFFFFFFF).view(torch.float32)


def decode_e8m0(byte: Tensor) -> Tensor:
    """E8M0 exponent bytes to float32: ``2^(e - 127)``; 0xFF is NaN (OCP MX)."""
    e = byte.to(torch.int32)
    val = torch.ldexp(torch.ones(e.shape, dtype=torch.float32), e - 127)
    return torch.where(e == 255, torch.full_like(val, float("nan")), val)


def floor_log2(x: Tensor) -> Tensor:
    """Exact ``floor(log2(x))`` of positive finite float32 values (via frexp, no log rounding)."""
    _, exp = torch.frexp(x.to(torch.float32))
    return exp.to(torch.int32) - 1


# ----------------------------------------------------------------------------- FP4 / FP8


def encode_e2m1(x: Tensor) -> Tensor:
    """Float to FP4 E2M1 codes (uint8 in [0, 15]), round-to-nearest-even, saturating at 6."""
    mag = torch.abs(x.to(torch.float32)).clamp(max=FP4_E2M1_MAX)
    values = torch.tensor(FP4_E2M1_VALUES)
    mids = (values[1:] + values[:-1]) / 2
    code = torch.zeros(mag.shape, dtype=torch.int64)
    for c, m in enumerate(mids.tolist()):
        # At an exact midpoint between codes c and c+1 the even code wins.
        passed = mag > m if c % 2 == 0 else mag >= m
        code = code + passed.to(torch.int64)
    sign = (torch.signbit(x) & (code > 0)).to(torch.int64) << 3
    return (code | sign).to(torch.uint8)


def decode_e2m1(code: Tensor) -> Tensor:
    """FP4 E2M1 codes (uint8 in [0, 15]) to float32."""
    c = code.to(torch.int64)
    mag = torch.tensor(FP4_E2M1_VALUES)[c & 7]
    return torch.where((c & 8) != 0, -mag, mag)


def pack_fp4_pairs(codes: Tensor) -> Tensor:
    """Pack FP4 codes two per uint8 along the last dim: element 2i low nibble, 2i+1 high."""
    c = codes.to(torch.uint8)
    return (c[..., 0::2] | (c[..., 1::2] << 4)).to(torch.uint8)


def unpack_fp4_pairs(packed: Tensor) -> Tensor:
    """Inverse of :func:`pack_fp4_pairs` (uint8 bytes to codes, last dim doubled)."""
    lo, hi = packed & 0xF, packed >> 4
    return torch.stack([lo, hi], dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def to_fp8_saturating(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast to an FP8 dtype with saturation to its max finite value (NaN kept)."""
    limit = FP8_E4M3_MAX if dtype == torch.float8_e4m3fn else FP8_E5M2_MAX
    return torch.clamp(x.to(torch.float32), -limit, limit).to(dtype)


def pair_scales(blocks: Tensor) -> Tensor:
    """Reshape per-32 E8M0 block scales ``[..., nb]`` to the NPU pair layout ``[..., ceil(nb/2), 2]``.

    Odd block counts are padded with byte 0, as the kernels' padding entries are (ops.md 1.8).
    """
    nb = blocks.shape[-1]
    if nb % 2:
        blocks = torch.nn.functional.pad(blocks, (0, 1))
    return blocks.reshape(*blocks.shape[:-1], (nb + 1) // 2, 2)
