"""GGML IQ1 block kernels (lattice codebook plus a delta), bit-identical to gguf-py.

Split from :mod:`quantspec.runtime.gguf_dequant`; the grids are gguf-py's own constants, passed to
the kernels as arguments (see ``gguf_dequant._run``) so that torch.compile sees plain tensors.
The IQ2/IQ3 types are decoded by :mod:`quantspec.runtime.gguf_lattice`.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from gguf import quants as gq
from torch import Tensor

from quantspec.runtime.gguf_bits import _f16, _f16_bits, _shift, _u16

__all__ = ["grid", "iq1_m", "iq1_s"]


@cache
def grid(name: str) -> Tensor:
    """gguf-py's ``name`` grid as float32 rows ``[n_rows, 8]``."""
    cls = getattr(gq, name)
    cls.init_grid()
    return torch.from_numpy(np.ascontiguousarray(cls.grid.reshape(cls.grid_shape)))


def _rows(idx: Tensor, grid_t: Tensor) -> Tensor:
    """``grid[idx]``: rows of 8 lattice values (a gather; the IQ1 grids have 2048 rows and a
    non-integer delta, so the signed-quad tables of ``gguf_lattice`` do not apply)."""
    return grid_t[idx.to(torch.int64)]


def iq1_s(b: Tensor, grid_t: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    qs, qh = b[:, 2:34].to(torch.int64), _u16(b[:, 34:50]).to(torch.int64)
    dl = (d * (2 * ((qh >> 12) & 7) + 1).to(torch.float32)).reshape(nb, -1, 1, 1)
    delta = float(gq.IQ1_S.delta)
    dlt = torch.where((qh & 0x8000) == 0, delta, -delta).to(torch.float32).reshape(nb, -1, 1, 1)
    idx = qs | (((_shift(qh, [0, 3, 6, 9], 2) & 7) << 8).reshape(nb, -1))
    grid = _rows(idx, grid_t).reshape(nb, -1, 4, 8)
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
    grid = _rows(idx, grid_t).reshape(nb, -1, 2, 2, 8)
    return (dl * (grid + dlt)).reshape(nb, -1)
