"""IQ2/IQ3 lattice kernels as one table gather per four values, bit-identical to gguf-py.

gguf-py decodes these types as ``db * grid[idx] * signs`` with ``signs`` in {+1, -1} per value.
Every lattice value is a small integer (8..62), so ``grid * signs`` is exact in int8, and
``(db * g) * s == db * (g * s)`` bit for bit (a sign flip commutes with IEEE rounding). This module
therefore precomputes, per grid row quarter ("quad", four values) and per 4-bit sign pattern, the
signed values packed as four int8 in one int32: decoding becomes one integer index per four outputs,
one ``index_select`` of int32 words, a free ``view`` as int8, and one int8 -> float32 multiply by
the block scales. The per-element row gathers and float sign multiplies of the earlier kernels
(inductor does not vectorise gathers) are gone. :func:`dequantize_lattice` compiles the index and
scale steps around the eager gather (2.0-2.8x -> 16-20x over gguf-py at 1024 x 4096); eagerly the
same code is about 5-7x (docs/benchmarks.md "Runtime").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any, cast

import numpy as np
import torch
from gguf import quants as gq
from torch import Tensor

from quantspec.runtime.gguf_bits import _f16

__all__ = ["LATTICE_TYPES", "dequantize_lattice", "quad_table"]

_log = logging.getLogger(__name__)

_NIBBLE_BITS = (np.arange(16)[:, None] >> np.arange(4)) & 1  # [sign pattern, value] -> negate?


@cache
def quad_table(name: str) -> Tensor:
    """Signed quads of gguf-py's ``name`` grid: int32 ``[rows * quads_per_row * 16]``.

    Entry ``(row * quads_per_row + j) * 16 + s`` holds ``grid[row, 4j : 4j + 4]`` as four int8
    (native byte order, so a ``view(torch.int8)`` restores value order), value ``i`` negated when
    bit ``i`` of ``s`` is set (gguf-py's sign convention: a set bit means negative).
    """
    cls = getattr(gq, name)
    cls.init_grid()
    grid = np.asarray(cls.grid, dtype=np.float32).reshape(cls.grid_shape)
    if not (np.array_equal(grid, np.round(grid)) and np.abs(grid).max() <= 127):
        raise ValueError(f"{name} grid values are not small integers; the int8 table would not be exact")
    rows, width = grid.shape
    quads = grid.astype(np.int8).reshape(rows, width // 4, 1, 4)
    signed = np.where(_NIBBLE_BITS.astype(bool), -quads, quads).astype(np.int8)  # [rows, q, 16, 4]
    return torch.from_numpy(np.ascontiguousarray(signed).view(np.int32).reshape(-1))


def _ksign(idx7: Tensor) -> Tensor:
    """gguf-py's ``ksigns[idx7]`` computed: the 7 sign bits plus their parity as bit 7."""
    p = idx7 ^ (idx7 >> 4)
    p = p ^ (p >> 2)
    p = p ^ (p >> 1)
    return idx7 | ((p & 1) << 7)


def _u32(b: Tensor) -> Tensor:
    """Little-endian uint32 fields as int32 bit patterns (callers mask after shifting right)."""
    w = b.to(torch.int32)
    return w[..., 0::4] | (w[..., 1::4] << 8) | (w[..., 2::4] << 16) | (w[..., 3::4] << 24)


def _wide_idx(gidx: Tensor, sign_byte: Tensor) -> Tensor:
    """Quad indices for 8-wide rows: row ``g`` with sign byte ``s`` covers quads ``2g`` and ``2g + 1``."""
    g = gidx * 32
    return torch.stack((g + (sign_byte & 15), g + 16 + (sign_byte >> 4)), dim=-1).reshape(gidx.size(0), -1)


def _narrow_idx(gidx: Tensor, sign_byte: Tensor) -> Tensor:
    """Quad indices for 4-wide rows: rows ``2r`` and ``2r + 1`` share sign byte ``r`` (low nibble first)."""
    nb = gidx.size(0)
    g = gidx.reshape(nb, -1, 2) * 16
    return torch.stack((g[..., 0] + (sign_byte & 15), g[..., 1] + (sign_byte >> 4)), dim=-1).reshape(nb, -1)


def _nibbles(x: Tensor) -> Tensor:
    """Bytes ``[nb, j]`` to their nibbles ``[nb, 2j]`` in gguf-py's order (low, high per byte)."""
    return torch.stack((x & 15, x >> 4), dim=-1).reshape(x.size(0), -1)


# Each ``_prep`` function returns the int32 quad indices ``[nb, 64]`` and the float32 scales
# ``[nb, groups]`` (one per equal run of values), restating gguf-py's scale arithmetic exactly.


def _prep_iq2_xxs(b: Tensor) -> tuple[Tensor, Tensor]:
    nb = b.size(0)
    d = _f16(b[:, :2])
    aux = _u32(b[:, 2:].reshape(nb, 8, 8)[..., 4:]).reshape(nb, 8)  # second uint32 of each pair
    db = d * (0.5 + ((aux >> 28) & 15).to(torch.float32)) * 0.25
    signs = torch.stack([_ksign((aux >> s) & 0x7F) for s in (0, 7, 14, 21)], dim=-1)  # [nb, 8, 4]
    gidx = b[:, 2:].reshape(nb, 8, 8)[..., :4].to(torch.int32)
    return _wide_idx(gidx.reshape(nb, 32), signs.reshape(nb, 32)), db


def _prep_iq2_xs(b: Tensor) -> tuple[Tensor, Tensor]:
    d = _f16(b[:, :2])
    w = b[:, 2:66].to(torch.int32)
    qs = w[:, 0::2] | (w[:, 1::2] << 8)
    db = d * (0.5 + _nibbles(b[:, 66:74]).to(torch.float32)) * 0.25
    return _wide_idx(qs & 511, _ksign(qs >> 9)), db


def _prep_iq2_s(b: Tensor) -> tuple[Tensor, Tensor]:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, sg, qh = b[:, 2:34].to(torch.int32), b[:, 34:66].to(torch.int32), b[:, 66:74].to(torch.int32)
    db = d * (0.5 + _nibbles(b[:, 74:82]).to(torch.float32)) * 0.25
    hi = torch.stack([(qh >> s) & 3 for s in (0, 2, 4, 6)], dim=-1).reshape(nb, 32)
    return _wide_idx(qs | (hi << 8), sg), db


def _prep_iq3_xxs(b: Tensor) -> tuple[Tensor, Tensor]:
    nb = b.size(0)
    d = _f16(b[:, :2])
    aux = _u32(b[:, 66:98])
    db = d * (0.5 + ((aux >> 28) & 15).to(torch.float32)) * 0.5
    signs = torch.stack([_ksign((aux >> s) & 0x7F) for s in (0, 7, 14, 21)], dim=-1).reshape(nb, 32)
    return _narrow_idx(b[:, 2:66].to(torch.int32), signs), db


def _prep_iq3_s(b: Tensor) -> tuple[Tensor, Tensor]:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, qh, sg = b[:, 2:66].to(torch.int32), b[:, 66:74].to(torch.int32), b[:, 74:106].to(torch.int32)
    db = d * (1 + 2 * _nibbles(b[:, 106:110]).to(torch.int32)).to(torch.float32)
    hi = torch.stack([(qh >> s) & 1 for s in range(8)], dim=-1).reshape(nb, 64)
    return _narrow_idx(qs | (hi << 8), sg), db


def _scale(values: Tensor, db: Tensor) -> Tensor:
    """int8 values ``[nb, 256]`` times their group's scale ``db`` ``[nb, groups]``, as float32.

    ``float(v) * db`` is gguf-py's product exactly (see the module docstring).
    """
    nb, groups = db.shape
    vals = values.reshape(nb, groups, -1).to(torch.float32)
    if torch.compiler.is_compiling():
        return (vals * db.unsqueeze(-1)).reshape(nb, -1)
    # Eager: in place, which saves a 4-bytes-per-value allocation and pass (about 2x on this step).
    return vals.mul_(db.unsqueeze(-1)).reshape(nb, -1)


_Prep = Callable[[Tensor], tuple[Tensor, Tensor]]
_PREP: dict[str, _Prep] = {
    "IQ2_XXS": _prep_iq2_xxs,
    "IQ2_XS": _prep_iq2_xs,
    "IQ2_S": _prep_iq2_s,
    "IQ3_XXS": _prep_iq3_xxs,
    "IQ3_S": _prep_iq3_s,
}
#: The gguf-py class names of the types this module decodes.
LATTICE_TYPES = tuple(_PREP)
_COMPILED: dict[str, Callable[..., Any]] = {}
_COMPILE_BROKEN: set[str] = set()


def _compiled(key: str, fn: Callable[..., Any]) -> Callable[..., Any] | None:
    if key in _COMPILE_BROKEN:
        return None
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(fn, dynamic=True)
    return _COMPILED[key]


def _call(key: str, fn: Callable[..., Any], compile: bool, *args: Tensor) -> Any:
    """``fn(*args)``, through torch.compile when asked and working (else eager, equally exact)."""
    compiled = _compiled(key, fn) if compile else None
    if compiled is not None:
        try:
            return compiled(*args)
        except Exception as exc:  # no C++ compiler, unsupported platform...
            _COMPILE_BROKEN.add(key)
            _log.warning("torch.compile of %s failed (%s); running it eagerly", key, exc)
    return fn(*args)


def dequantize_lattice(name: str, blocks: Tensor, *, compile: bool) -> Tensor:
    """Dequantize ``blocks`` ``[nb, type_size]`` (uint8) of lattice type ``name`` to float32 ``[nb, 256]``.

    With ``compile`` the index/scale arithmetic and the final scaling each run as one inductor
    kernel; the table gather always runs eagerly, as ``index_select`` on int32 words, because
    inductor's indirect loads are not vectorised (measured 10x+ slower here than the eager gather).
    """
    idx, db = _call(name, _PREP[name], compile, blocks)
    words = torch.index_select(quad_table(name), 0, idx.reshape(-1))
    return cast(Tensor, _call("scale", _scale, compile, words.view(torch.int8), db))
