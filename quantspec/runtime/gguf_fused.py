"""GGML block kernels written for torch.compile (inductor), bit-identical to gguf-py.

``gguf_dequant`` runs these instead of its eager kernels when it compiles (see
``gguf_dequant.COMPILE_POLICY``). They restate the same gguf-py recipes (formats.md 6.3) with the
bit fields laid out as broadcasts over the block's natural shape: a K-quant super-block is viewed
as ``[half, field, sub-block, 16]`` so that a byte plane shifted by a small ``arange`` lines up with
its output elements, and the per-sub-block scales are reshaped to that shape instead of flattening
the values to ``[16, 16]``. Inductor then emits one vectorised loop with affine loads; the earlier
concatenations and flattening reshapes made it emit div/mod index arithmetic and scalar loads
(measured at 1024 x 4096, one thread: Q6_K 5.0 -> 1.7 ms, Q3_K 6.7 -> 2.6 ms, Q4_0 2.8 -> 1.4 ms).
Eagerly the same code is slower than the eager kernels (each broadcast is a separate pass), which
is why both sets exist.

Kernels take raw blocks ``[nb, type_size]`` (uint8) and return float32 ``[nb, block_size]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quantspec.runtime.gguf_bits import QK_K, _f16, _i8

__all__ = ["FUSED_KERNELS"]


def _steps(n: int, step: int, ndim: int, dim: int) -> Tensor:
    """Shift amounts ``0, step, ..., (n - 1) * step`` (uint8) laid along ``dim`` of an ``ndim`` shape."""
    shape = [1] * ndim
    shape[dim] = n
    return (torch.arange(n, dtype=torch.int32) * step).to(torch.uint8).reshape(shape)


def _nibble_planes(qs: Tensor) -> Tensor:
    """Bytes ``[nb, j]`` to ``[nb, 2, j]``: low nibbles, then high nibbles (gguf-py's order)."""
    return (qs.unsqueeze(1) >> _steps(2, 4, 3, 1)) & 0x0F


def q4_0(b: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2]).reshape(nb, 1, 1)
    return (d * (_nibble_planes(b[:, 2:]).to(torch.float32) - 8)).reshape(nb, 32)


def q4_1(b: Tensor) -> Tensor:
    nb = b.size(0)
    d, m = _f16(b[:, :2]).reshape(nb, 1, 1), _f16(b[:, 2:4]).reshape(nb, 1, 1)
    return (d * _nibble_planes(b[:, 4:]).to(torch.float32) + m).reshape(nb, 32)


def q8_0(b: Tensor) -> Tensor:
    # Same element size, so the int8 view is free (also eagerly: no int32 detour).
    return b[:, 2:].view(torch.int8).to(torch.float32) * _f16(b[:, :2])


def _crumb_planes(qs: Tensor) -> Tensor:
    """64 bytes of 2-bit fields to ``[nb, 2, 4, 32]``: element ``(h, t, l)`` is ``qs[32h + l] >> 2t & 3``."""
    return (qs.reshape(-1, 2, 1, 32) >> _steps(4, 2, 4, 2)) & 3


def q2_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    scales = b[:, :16]
    d, dmin = _f16(b[:, 80:82]), _f16(b[:, 82:84])
    # Sub-block g = 8h + 2t + (l >= 16): the [nb, 2, 4, 2, 1] view of the 16 scales.
    dl = (d * (scales & 0xF).to(torch.float32)).reshape(nb, 2, 4, 2, 1)
    ml = (dmin * (scales >> 4).to(torch.float32)).reshape(nb, 2, 4, 2, 1)
    q = _crumb_planes(b[:, 16:80]).reshape(nb, 2, 4, 2, 16).to(torch.float32)
    return (dl * q - ml).reshape(nb, QK_K)


def q3_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    hmask, scales = b[:, :32], b[:, 96:108]
    d = _f16(b[:, 108:110])
    lsc = (scales[:, :8].reshape(nb, 1, 8) >> _steps(2, 4, 3, 1)).reshape(nb, 16)
    hsc = (scales[:, 8:12].reshape(nb, 1, 4) >> _steps(4, 2, 3, 1)).reshape(nb, 16)
    sc = ((lsc & 0x0F) | ((hsc & 0x03) << 4)).to(torch.int32) - 32
    dl = (d * sc.to(torch.float32)).reshape(nb, 2, 4, 2, 1)
    ql = _crumb_planes(b[:, 32:96]).to(torch.int32)
    # The high bit of element 32t' + l (t' = 4h + t) is bit t' of hmask[l]; a clear bit subtracts 4.
    qh = ((hmask.reshape(nb, 1, 32) >> _steps(8, 1, 3, 1)) & 1) ^ 1
    q = ql - (qh.reshape(nb, 2, 4, 32).to(torch.int32) << 2)
    return (dl * q.reshape(nb, 2, 4, 2, 16).to(torch.float32)).reshape(nb, QK_K)


def q6_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    ql, qh = b[:, :128], b[:, 128:192]
    d = (_f16(b[:, 208:210]) * _i8(b[:, 192:208]).to(torch.float32)).reshape(nb, 2, 4, 2, 1)
    # Field t of half h: nibble t // 2 of ql[64h + 32 (t % 2) + l], i.e. a [shift, 32-byte half] view.
    lo = (ql.reshape(nb, 2, 1, 2, 32) >> _steps(2, 4, 5, 2)) & 0x0F
    hi = (qh.reshape(nb, 2, 1, 32) >> _steps(4, 2, 4, 2)) & 0x03
    q = (lo.reshape(nb, 2, 4, 32) | (hi << 4)).to(torch.int32) - 32
    return (d * q.reshape(nb, 2, 4, 2, 16).to(torch.float32)).reshape(nb, QK_K)


def tq1_0(b: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, 52:54])
    pow3 = torch.tensor([1, 3, 9, 27, 81], dtype=torch.uint8)

    def trits(x: Tensor, n: int) -> Tensor:
        # uint8 products wrap modulo 256 exactly as gguf-py's do.
        return (x.unsqueeze(1) * pow3[:n].reshape(1, n, 1)).reshape(nb, -1)

    q = torch.cat([trits(b[:, :32], 5), trits(b[:, 32:48], 5), trits(b[:, 48:52], 4)], dim=-1)
    return d * (((q.to(torch.int32) * 3) >> 8) - 1).to(torch.float32)


#: Compile-path kernel per GGML type name (types not listed compile their eager kernel).
FUSED_KERNELS = {
    "Q4_0": q4_0,
    "Q4_1": q4_1,
    "Q8_0": q8_0,
    "Q2_K": q2_k,
    "Q3_K": q3_k,
    "Q6_K": q6_k,
    "TQ1_0": tq1_0,
}
