"""GGML IQ-family block kernels (lattice codebooks plus sign tables), bit-identical to gguf-py.

Split from :mod:`quantspec.runtime.gguf_dequant`; the grids and sign tables are gguf-py's own
constants and are passed to the kernels as arguments (see ``gguf_dequant._tables``) so that
torch.compile sees plain tensors.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from gguf import quants as gq
from torch import Tensor

from quantspec.runtime.gguf_bits import _f16, _f16_bits, _shift, _u16, _u32

__all__ = ["grid", "iq1_m", "iq1_s", "iq2_s", "iq2_xs", "iq2_xxs", "iq3_s", "iq3_xxs", "ksigns"]


@cache
def grid(name: str) -> Tensor:
    cls = getattr(gq, name)
    cls.init_grid()
    return torch.from_numpy(np.ascontiguousarray(cls.grid.reshape(cls.grid_shape)))


@cache
def ksigns() -> Tensor:
    return torch.from_numpy(np.frombuffer(gq.IQ2_XXS.ksigns, dtype=np.uint8).copy()).to(torch.int64)


def _sign_bits(byte: Tensor) -> Tensor:
    """Bytes to +-1 per bit (bit set means negative), last dim times 8."""
    bits = _shift(byte.to(torch.int32), list(range(8)), byte.dim()) & 1
    ones = torch.ones((), dtype=torch.float32)
    return torch.where(bits == 0, ones, -ones).reshape(*byte.shape[:-1], byte.shape[-1] * 8)


def iq2_xxs(b: Tensor, grid_t: Tensor, ksigns: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs = _u32(b[:, 2:]).reshape(nb, -1, 2)
    db = (d * (0.5 + (qs[..., 1] >> 28).to(torch.float32)) * 0.25).reshape(nb, -1, 1, 1)
    sidx = _shift(qs[..., 1], [0, 7, 14, 21], 2) & 0x7F
    signs = _sign_bits(ksigns[sidx]).reshape(nb, -1, 4, 8)
    gidx = _shift(qs[..., 0], [0, 8, 16, 24], 2) & 0xFF
    grid = grid_t[gidx].reshape(nb, -1, 4, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq2_xs(b: Tensor, grid_t: Tensor, ksigns: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs = _u16(b[:, 2:66]).to(torch.int64)
    sc = (_shift(b[:, 66:74], [0, 4], 2).reshape(nb, -1) & 0x0F).to(torch.float32)
    db = (d * (0.5 + sc) * 0.25).reshape(nb, -1, 1, 1)
    signs = _sign_bits(ksigns[qs >> 9].unsqueeze(-1)).reshape(nb, -1, 2, 8)
    grid = grid_t[qs & 511].reshape(nb, -1, 2, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq2_s(b: Tensor, grid_t: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, sg, qh, sc = b[:, 2:34], b[:, 34:66], b[:, 66:74], b[:, 74:82]
    scf = (_shift(sc, [0, 4], 2).reshape(nb, -1) & 0x0F).to(torch.float32)
    db = (d * (0.5 + scf) * 0.25).reshape(nb, -1, 1, 1)
    signs = _sign_bits(sg).reshape(nb, -1, 2, 8)
    hi = (_shift(qh, [0, 2, 4, 6], 2) & 0x03).reshape(nb, -1).to(torch.int64)
    idx = qs.to(torch.int64) | (hi << 8)
    grid = grid_t[idx].reshape(nb, -1, 2, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq3_xxs(b: Tensor, grid_t: Tensor, ksigns: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, scales = b[:, 2:66].to(torch.int64), _u32(b[:, 66:98])
    db = (d * (0.5 + (scales >> 28).to(torch.float32)) * 0.5).reshape(nb, -1, 1, 1)
    sidx = _shift(scales, [0, 7, 14, 21], 2) & 0x7F
    signs = _sign_bits(ksigns[sidx]).reshape(nb, -1, 4, 8)
    grid = grid_t[qs].reshape(nb, -1, 4, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq3_s(b: Tensor, grid_t: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, qh, sg, sc = b[:, 2:66], b[:, 66:74], b[:, 74:106], b[:, 106:110]
    scu = (_shift(sc, [0, 4], 2).reshape(nb, -1) & 0x0F).to(torch.int32)
    db = (d * (1 + 2 * scu).to(torch.float32)).reshape(nb, -1, 1, 1)
    signs = _sign_bits(sg).reshape(nb, -1, 4, 8)
    hi = (_shift(qh, list(range(8)), 2) & 1).reshape(nb, -1).to(torch.int64)
    grid = grid_t[qs.to(torch.int64) | (hi << 8)].reshape(nb, -1, 4, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq1_s(b: Tensor, grid_t: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, qh = b[:, 2:34].to(torch.int64), _u16(b[:, 34:50]).to(torch.int64)
    dl = (d * (2 * ((qh >> 12) & 7) + 1).to(torch.float32)).reshape(nb, -1, 1, 1)
    delta = float(gq.IQ1_S.delta)
    dlt = torch.where((qh & 0x8000) == 0, delta, -delta).to(torch.float32).reshape(nb, -1, 1, 1)
    idx = qs | (((_shift(qh, [0, 3, 6, 9], 2) & 7) << 8).reshape(nb, -1))
    grid = grid_t[idx].reshape(nb, -1, 4, 8)
    return (dl * (grid + dlt)).reshape(nb, -1)


def iq1_m(b: Tensor, grid_t: Tensor) -> Tensor:
    nb = b.size(0)
    qs, qh = b[:, :32].to(torch.int64), b[:, 32:48].to(torch.int64)
    scales = _u16(b[:, 48:56]).to(torch.int64)
    dbits = (scales & 0xF000) >> torch.tensor([12, 8, 4, 0])
    dbits = dbits[:, 0] | dbits[:, 1] | dbits[:, 2] | dbits[:, 3]
    d = _f16_bits(dbits.to(torch.int32)).reshape(nb, 1)
    sc = (_shift(scales, [0, 3, 6, 9], 2) & 7).reshape(nb, -1)
    dl = (d * (2 * sc + 1).to(torch.float32)).reshape(nb, -1, 2, 1, 1)
    qhs = _shift(qh, [0, 4], 2).reshape(nb, -1)
    idx = qs | ((qhs & 7) << 8)
    delta = float(gq.IQ1_M.delta)
    dlt = torch.where((qhs & 8) == 0, delta, -delta).to(torch.float32).reshape(nb, -1, 2, 2, 1)
    grid = grid_t[idx].reshape(nb, -1, 2, 2, 8)
    return (dl * (grid + dlt)).reshape(nb, -1)
