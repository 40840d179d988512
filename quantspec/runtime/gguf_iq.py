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


@cache
def packed_grid(name: str) -> tuple[Tensor, Tensor]:
    """The grid as one int per row (2 or 3 bits per value index) and the value table.

    Under torch.compile a row is then one indirect load instead of 4-8, decoded with shifts and a
    select tree (inductor vectorises those, not gathers).
    """
    cls = getattr(gq, name)
    cls.init_grid()
    values = np.array(cls.grid_map, dtype=np.float32)
    rows = cls.grid.reshape(cls.grid_shape)
    idx = np.argmax(rows[..., None] == values, axis=-1).astype(np.int64)
    bits = 2 if len(values) <= 4 else 3
    code = (idx << (bits * np.arange(rows.shape[1]))).sum(axis=-1).astype(np.int32)
    return torch.from_numpy(code), torch.from_numpy(values)


def _rows(idx: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor, *, pack: bool = False) -> Tensor:
    """``grid[idx]`` (rows of 4 or 8 values): a gather, or with ``pack`` under compile the packed
    rows. Measured: packing pays for IQ2_XXS/IQ2_XS (3-5x) but loses on the larger or 3-bit grids."""
    if not (pack and torch.compiler.is_compiling()):
        return grid_t[idx.to(torch.int64)]
    width = grid_t.size(1)
    bits = 2 if values.numel() <= 4 else 3
    code = packed[idx.to(torch.int64)].unsqueeze(-1)
    field = (code >> (torch.arange(width, dtype=torch.int32) * bits)) & ((1 << bits) - 1)
    level = [values[i] for i in range(values.numel())]
    level += [level[-1]] * ((1 << bits) - len(level))
    for bit in range(bits):
        hi = ((field >> bit) & 1) == 1
        level = [torch.where(hi, level[2 * j + 1], level[2 * j]) for j in range(len(level) // 2)]
    return level[0]


def _ksign_bytes(idx7: Tensor, table: Tensor, *, compute: bool = False) -> Tensor:
    """``ksigns[idx7]``: 7 sign bits plus their parity as bit 7 (with ``compute``, computed
    arithmetically under compile instead of gathered)."""
    if not (compute and torch.compiler.is_compiling()):
        return table[idx7.to(torch.int64)]
    x = idx7.to(torch.int32)
    p = x ^ (x >> 4)
    p = p ^ (p >> 2)
    p = p ^ (p >> 1)
    return x | ((p & 1) << 7)


def _sign_bits(byte: Tensor) -> Tensor:
    """Bytes to +-1 per bit (bit set means negative), last dim times 8."""
    bits = _shift(byte.to(torch.int32), list(range(8)), byte.dim()) & 1
    ones = torch.ones((), dtype=torch.float32)
    return torch.where(bits == 0, ones, -ones).reshape(*byte.shape[:-1], byte.shape[-1] * 8)


def iq2_xxs(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor, ksigns: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs = _u32(b[:, 2:]).reshape(nb, -1, 2)
    db = (d * (0.5 + (qs[..., 1] >> 28).to(torch.float32)) * 0.25).reshape(nb, -1, 1, 1)
    sidx = _shift(qs[..., 1], [0, 7, 14, 21], 2) & 0x7F
    signs = _sign_bits(_ksign_bytes(sidx, ksigns, compute=True)).reshape(nb, -1, 4, 8)
    gidx = _shift(qs[..., 0], [0, 8, 16, 24], 2) & 0xFF
    grid = _rows(gidx, grid_t, packed, values, pack=True).reshape(nb, -1, 4, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq2_xs(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor, ksigns: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs = _u16(b[:, 2:66]).to(torch.int64)
    sc = (_shift(b[:, 66:74], [0, 4], 2).reshape(nb, -1) & 0x0F).to(torch.float32)
    db = (d * (0.5 + sc) * 0.25).reshape(nb, -1, 1, 1)
    signs = _sign_bits(_ksign_bytes(qs >> 9, ksigns, compute=True).unsqueeze(-1)).reshape(nb, -1, 2, 8)
    grid = _rows(qs & 511, grid_t, packed, values, pack=True).reshape(nb, -1, 2, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq2_s(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, sg, qh, sc = b[:, 2:34], b[:, 34:66], b[:, 66:74], b[:, 74:82]
    scf = (_shift(sc, [0, 4], 2).reshape(nb, -1) & 0x0F).to(torch.float32)
    db = (d * (0.5 + scf) * 0.25).reshape(nb, -1, 1, 1)
    signs = _sign_bits(sg).reshape(nb, -1, 2, 8)
    hi = (_shift(qh, [0, 2, 4, 6], 2) & 0x03).reshape(nb, -1).to(torch.int64)
    idx = qs.to(torch.int64) | (hi << 8)
    grid = _rows(idx, grid_t, packed, values).reshape(nb, -1, 2, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq3_xxs(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor, ksigns: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, scales = b[:, 2:66].to(torch.int64), _u32(b[:, 66:98])
    db = (d * (0.5 + (scales >> 28).to(torch.float32)) * 0.5).reshape(nb, -1, 1, 1)
    sidx = _shift(scales, [0, 7, 14, 21], 2) & 0x7F
    signs = _sign_bits(_ksign_bytes(sidx, ksigns)).reshape(nb, -1, 4, 8)
    grid = _rows(qs, grid_t, packed, values).reshape(nb, -1, 4, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq3_s(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, qh, sg, sc = b[:, 2:66], b[:, 66:74], b[:, 74:106], b[:, 106:110]
    scu = (_shift(sc, [0, 4], 2).reshape(nb, -1) & 0x0F).to(torch.int32)
    db = (d * (1 + 2 * scu).to(torch.float32)).reshape(nb, -1, 1, 1)
    signs = _sign_bits(sg).reshape(nb, -1, 4, 8)
    hi = (_shift(qh, list(range(8)), 2) & 1).reshape(nb, -1).to(torch.int64)
    grid = _rows(qs.to(torch.int64) | (hi << 8), grid_t, packed, values).reshape(nb, -1, 4, 8)
    return (db * grid * signs).reshape(nb, -1)


def iq1_s(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, qh = b[:, 2:34].to(torch.int64), _u16(b[:, 34:50]).to(torch.int64)
    dl = (d * (2 * ((qh >> 12) & 7) + 1).to(torch.float32)).reshape(nb, -1, 1, 1)
    delta = float(gq.IQ1_S.delta)
    dlt = torch.where((qh & 0x8000) == 0, delta, -delta).to(torch.float32).reshape(nb, -1, 1, 1)
    idx = qs | (((_shift(qh, [0, 3, 6, 9], 2) & 7) << 8).reshape(nb, -1))
    grid = _rows(idx, grid_t, packed, values).reshape(nb, -1, 4, 8)
    return (dl * (grid + dlt)).reshape(nb, -1)


def iq1_m(b: Tensor, grid_t: Tensor, packed: Tensor, values: Tensor) -> Tensor:
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
    grid = _rows(idx, grid_t, packed, values).reshape(nb, -1, 2, 2, 8)
    return (dl * (grid + dlt)).reshape(nb, -1)
