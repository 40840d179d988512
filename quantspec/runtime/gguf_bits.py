"""Byte-level helpers shared by the GGML block kernels (little-endian fields, exact fp16 decode)."""

from __future__ import annotations

import torch
from torch import Tensor

QK_K = 256


def _f16_bits(h: Tensor) -> Tensor:
    """fp16 bit patterns (int32, low 16 bits) to float32, exactly (NaN payloads kept).

    Decoded arithmetically rather than with a dtype view so that torch.compile fuses it.
    """
    sign = (h >> 15) & 1
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    exp32 = torch.where(e == 0x1F, torch.full_like(e, 0xFF), e + 112)
    normal = ((sign << 31) | (exp32 << 23) | (m << 13)).view(torch.float32)
    sub = m.to(torch.float32) * 2.0**-24
    sub = torch.where(sign == 1, -sub, sub)
    return torch.where(e == 0, sub, normal)


def _f16(b: Tensor) -> Tensor:
    """Little-endian fp16 byte pairs ``[..., 2j]`` to float32 ``[..., j]``."""
    return _f16_bits(_u16(b))


def _i8(b: Tensor) -> Tensor:
    """uint8 bytes reinterpreted as int8 values (as int32)."""
    v = b.to(torch.int32)
    return torch.where(v >= 128, v - 256, v)


def _u16(b: Tensor) -> Tensor:
    b = b.to(torch.int32)
    return b[..., 0::2] | (b[..., 1::2] << 8)


def _u32(b: Tensor) -> Tensor:
    b = b.to(torch.int64)
    return b[..., 0::4] | (b[..., 1::4] << 8) | (b[..., 2::4] << 16) | (b[..., 3::4] << 24)


def _nibbles_halves(qs: Tensor) -> Tensor:
    """Bytes ``[nb, j]`` to ``[nb, 2j]``: low nibbles first, then high nibbles."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=-1)


def _shift(x: Tensor, shifts: list[int], dim: int) -> Tensor:
    """``x`` (int) shifted by each value along a new axis ``dim``."""
    s = torch.tensor(shifts, dtype=x.dtype)
    shape = [1] * (x.dim() + 1)
    shape[dim] = len(shifts)
    return x.unsqueeze(dim) >> s.reshape(shape)
