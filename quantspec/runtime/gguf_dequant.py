"""GGML block dequantization in torch, bit-identical to ``gguf.quants.dequantize`` (gguf-py 0.19).

Every type gguf-py can dequantize is covered. Each kernel restates gguf-py's numpy recipe
(formats.md 6.3) as vectorised torch with the same float32 operation order, so results are equal
bit for bit; the IQ lattice grids, sign tables and value tables are gguf-py's own constants.
Input is the raw uint8 tensor ``[..., row_bytes]`` (what ``GGUFReader`` gives for quantized
types); output is float32 ``[..., K]``. The compile path uses ``gguf_fused`` kernels for some types
and the IQ2/IQ3 types always go through ``gguf_lattice``'s tables (see :func:`compile_policy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gq
from torch import Tensor

from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.runtime import gguf_fused as fused
from quantspec.runtime import gguf_iq as iq
from quantspec.runtime.gguf_bits import QK_K, _f16, _i8, _nibbles_halves, _shift, _u16, _u32
from quantspec.runtime.gguf_lattice import LATTICE_TYPES, dequantize_lattice

_log = logging.getLogger(__name__)
T = GGMLQuantizationType
_Kernel = Callable[..., Tensor]


def _q4_0(b: Tensor) -> Tensor:
    d = _f16(b[:, :2])
    q = _nibbles_halves(b[:, 2:]).to(torch.float32) - 8
    return d * q


def _q4_1(b: Tensor) -> Tensor:
    d, m = _f16(b[:, :2]), _f16(b[:, 2:4])
    return d * _nibbles_halves(b[:, 4:]).to(torch.float32) + m


def _q5(b: Tensor, with_min: bool) -> Tensor:
    o = 4 if with_min else 2
    d = _f16(b[:, :2])
    qh = _u32(b[:, o : o + 4])
    hi = (_shift(qh, list(range(32)), 2).reshape(-1, 32) & 1).to(torch.uint8)
    q = (_nibbles_halves(b[:, o + 4 :]) | (hi << 4)).to(torch.float32)
    return d * q + _f16(b[:, 2:4]) if with_min else d * (q - 16)


def _crumbs(qs: Tensor) -> Tensor:
    """2-bit fields of 32-byte groups: element ``128h + 32t + l`` is ``(qs[32h + l] >> 2t) & 3``.

    Written as concatenated slices (not broadcast shifts plus reshapes) so inductor fuses it.
    """
    parts: list[Tensor] = []
    for h in range(qs.size(1) // 32):
        g = qs[:, 32 * h : 32 * h + 32]
        parts.extend((g >> s) & 3 for s in (0, 2, 4, 6))
    return torch.cat(parts, dim=-1)


def _q2_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    scales, qs = b[:, :16], b[:, 16:80]
    d, dmin = _f16(b[:, 80:82]), _f16(b[:, 82:84])
    dl = (d * (scales & 0xF).to(torch.float32)).reshape(nb, 16, 1)
    ml = (dmin * (scales >> 4).to(torch.float32)).reshape(nb, 16, 1)
    q = _crumbs(qs).reshape(nb, 16, 16).to(torch.float32)
    return (dl * q - ml).reshape(nb, QK_K)


def _q3_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    hmask, qs, scales = b[:, :32], b[:, 32:96], b[:, 96:108]
    d = _f16(b[:, 108:110])
    lsc = torch.cat([scales[:, :8] & 0x0F, scales[:, :8] >> 4], dim=-1)
    hsc = torch.cat([(scales[:, 8:12] >> s) & 0x03 for s in (0, 2, 4, 6)], dim=-1)
    sc = (lsc | (hsc << 4)).to(torch.float32) - 32
    dl = (d * sc).reshape(nb, 16, 1)
    ql = _crumbs(qs).to(torch.int32)
    # The high bit of element 32t + l is bit t of hmask[l]; a clear bit subtracts 4.
    qh = torch.cat([(hmask >> t) & 1 for t in range(8)], dim=-1).to(torch.int32)
    q = (ql - ((qh ^ 1) << 2)).to(torch.float32).reshape(nb, 16, 16)
    return (dl * q).reshape(nb, QK_K)


def _scale_min_k4(scales: Tensor) -> tuple[Tensor, Tensor]:
    s = scales.reshape(-1, 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mn = torch.cat([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc.to(torch.float32), mn.to(torch.float32)


def _q4_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    d, dmin = _f16(b[:, :2]), _f16(b[:, 2:4])
    sc, mn = _scale_min_k4(b[:, 4:16])
    dd = (d * sc).reshape(nb, 8, 1)
    dm = (dmin * mn).reshape(nb, 8, 1)
    q = (_shift(b[:, 16:].reshape(nb, 4, 32), [0, 4], 2) & 0x0F).reshape(nb, 8, 32).to(torch.float32)
    return (dd * q - dm).reshape(nb, QK_K)


def _q5_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    d, dmin = _f16(b[:, :2]), _f16(b[:, 2:4])
    sc, mn = _scale_min_k4(b[:, 4:16])
    dd = (d * sc).reshape(nb, 8, 1)
    dm = (dmin * mn).reshape(nb, 8, 1)
    ql = (_shift(b[:, 48:].reshape(nb, 4, 32), [0, 4], 2) & 0x0F).reshape(nb, 8, 32)
    qh = (_shift(b[:, 16:48].reshape(nb, 1, 32), list(range(8)), 2) & 1).reshape(nb, 8, 32)
    q = (ql | (qh << 4)).to(torch.float32)
    return (dd * q - dm).reshape(nb, QK_K)


def _q6_k(b: Tensor) -> Tensor:
    nb = b.size(0)
    ql, qh = b[:, :128], b[:, 128:192]
    scales = _i8(b[:, 192:208]).to(torch.float32)
    d = (_f16(b[:, 208:210]) * scales).reshape(nb, 16, 1)
    halves = []
    for h in range(2):
        # Half h: low nibbles of ql[64h:64h+64], then high nibbles; 2-bit fields of qh[32h:32h+32].
        qlh, qhh = ql[:, 64 * h : 64 * h + 64], qh[:, 32 * h : 32 * h + 32]
        lo = torch.cat([qlh & 0x0F, qlh >> 4], dim=-1)
        hi = torch.cat([(qhh >> s) & 0x03 for s in (0, 2, 4, 6)], dim=-1)
        halves.append(lo | (hi << 4))
    q = (torch.cat(halves, dim=-1).to(torch.float32) - 32).reshape(nb, 16, 16)
    return (d * q).reshape(nb, QK_K)


def _tq1_0(b: Tensor) -> Tensor:
    qs, qh, d = b[:, :48].to(torch.int32), b[:, 48:52].to(torch.int32), _f16(b[:, 52:54])
    # gguf-py multiplies in uint8, so the products wrap modulo 256; slices keep gguf-py's order.
    parts = [(qs[:, :32] * p) & 0xFF for p in (1, 3, 9, 27, 81)]
    parts += [(qs[:, 32:] * p) & 0xFF for p in (1, 3, 9, 27, 81)]
    parts += [(qh * p) & 0xFF for p in (1, 3, 9, 27)]
    q = ((torch.cat(parts, dim=-1) * 3) >> 8) - 1
    return d * q.to(torch.float32)


def _tq2_0(b: Tensor) -> Tensor:
    nb = b.size(0)
    q = (_shift(b[:, :64].reshape(nb, 2, 32), [0, 2, 4, 6], 2) & 3).reshape(nb, -1).to(torch.float32) - 1
    return _f16(b[:, 64:66]) * q


def _lut(values: tuple[int, ...] | list[int]) -> Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _table16(idx: Tensor, values: tuple[int, ...] | list[int]) -> Tensor:
    """``values[idx]`` for 4-bit indices, as float32.

    Eager: a gather. Under torch.compile: a binary tree of selects on the index bits, which
    inductor vectorises (its indirect loads do not; measured 10x+ on IQ4_NL).
    """
    if not torch.compiler.is_compiling():
        return _lut(values)[idx.to(torch.int64)]
    i = idx.to(torch.int32)
    level = [torch.full((), float(v), dtype=torch.float32) for v in values]
    for bit in range(4):
        take_hi = ((i >> bit) & 1) == 1
        level = [torch.where(take_hi, level[2 * j + 1], level[2 * j]) for j in range(len(level) // 2)]
    return level[0]


def _e2m1_doubled(code: Tensor) -> Tensor:
    """gguf-py's doubled E2M1 table ``[0, 1, 2, 3, 4, 6, 8, 12, 0, -1, ..., -12]`` computed
    arithmetically (int, so code 8 gives +0 as the table does); fuses under torch.compile."""
    c = code.to(torch.int32)
    m = c & 7
    mag = torch.where(m < 4, m, (2 + (m & 1)) << ((m >> 1) - 1))
    return torch.where((c & 8) != 0, -mag, mag).to(torch.float32)


def _mxfp4(b: Tensor) -> Tensor:
    e = b[:, :1].to(torch.int32)
    bits = torch.where(e < 2, 0x00200000 << e, (e - 1) << 23)
    d = bits.view(torch.float32)
    return d * _e2m1_doubled(_nibbles_halves(b[:, 1:]))


def _nvfp4(b: Tensor) -> Tensor:
    nb = b.size(0)
    x = b[:, :4].to(torch.int32)
    exp = (x >> 3) & 0xF
    man = (x & 0x7).to(torch.float32)
    raw = torch.where(exp == 0, man * 2**-9, (1.0 + man / 8.0) * torch.exp2(exp.to(torch.float32) - 7))
    d = torch.where((x == 0) | (x == 0x7F), torch.zeros_like(raw), raw * 0.5).reshape(nb, 4, 1)
    qs = b[:, 4:].reshape(nb, 4, 8)
    vals = torch.cat([qs & 0x0F, qs >> 4], dim=-1)
    return (d * _e2m1_doubled(vals)).reshape(nb, 64)


def _iq4_nl(b: Tensor) -> Tensor:
    return _f16(b[:, :2]) * _table16(_nibbles_halves(b[:, 2:]), gq.IQ4_NL.kvalues)


def _iq4_xs(b: Tensor) -> Tensor:
    nb = b.size(0)
    d = _f16(b[:, :2])
    sh = _u16(b[:, 2:4])
    sl = (_shift(b[:, 4:8], [0, 4], 2).reshape(nb, 8) & 0x0F).to(torch.int32)
    shb = (_shift(sh, [2 * i for i in range(8)], 1).reshape(nb, 8) & 0x03).to(torch.int32)
    scales = ((sl | (shb << 4)) - 32).to(torch.float32)
    dl = (d * scales).reshape(nb, 8, 1)
    qs = (_shift(b[:, 8:].reshape(nb, 8, 16), [0, 4], 2) & 0x0F).reshape(nb, 8, 32)
    return (dl * _table16(qs, gq.IQ4_NL.kvalues)).reshape(nb, QK_K)


def _bf16(b: Tensor) -> Tensor:
    return (_u16(b) << 16).view(torch.float32)


_KERNELS: dict[GGMLQuantizationType, _Kernel] = {
    T.Q4_0: _q4_0,
    T.Q4_1: _q4_1,
    T.Q5_0: lambda b: _q5(b, with_min=False),
    T.Q5_1: lambda b: _q5(b, with_min=True),
    T.Q8_0: fused.q8_0,
    T.Q2_K: _q2_k,
    T.Q3_K: _q3_k,
    T.Q4_K: _q4_k,
    T.Q5_K: _q5_k,
    T.Q6_K: _q6_k,
    T.TQ1_0: _tq1_0,
    T.TQ2_0: _tq2_0,
    T.MXFP4: _mxfp4,
    T.NVFP4: _nvfp4,
    T.IQ4_NL: _iq4_nl,
    T.IQ4_XS: _iq4_xs,
    T.IQ1_S: iq.iq1_s,
    T.IQ1_M: iq.iq1_m,
    T.BF16: _bf16,
}

_LATTICE = frozenset(GGMLQuantizationType[name] for name in LATTICE_TYPES)

#: Every type this module dequantizes (gguf-py 0.19's dequantizable set).
SUPPORTED_TYPES: tuple[GGMLQuantizationType, ...] = (T.F32, T.F16, *_KERNELS, *sorted(_LATTICE))


def ggml_type(name: str | int | GGMLQuantizationType) -> GGMLQuantizationType:
    """Resolve a GGML type given by name (``"Q4_K"``), id or enum."""
    try:
        if isinstance(name, str):
            return GGMLQuantizationType[name.upper()]
        return GGMLQuantizationType(name)
    except (KeyError, ValueError):
        raise InvalidCheckpoint(
            reason(Code.RUNTIME_BAD_TENSOR, f"unknown GGML type {name!r}", where="ggml_type")
        ) from None


_COMPILED: dict[GGMLQuantizationType, _Kernel] = {}
_COMPILE_BROKEN: set[GGMLQuantizationType] = set()
#: Raw tensors at least this large are dequantized through torch.compile when ``compile=None``.
#: The compilation is once per type and process (1-5 s cold, well under 1 s from inductor's disk
#: cache) and a GGUF model has hundreds of weights of one type, while the compiled kernels are
#: 5-19x faster than gguf-py and the eager ones 0.3-6x; 512 KiB (a 1024 x 4096 IQ1_S weight is
#: 0.8 MB) keeps tiny test tensors eager and sends every real weight matrix to the compiled path.
AUTO_COMPILE_BYTES = 1 << 19


_IQ1 = (T.IQ1_S, T.IQ1_M)


def compile_policy(qtype: GGMLQuantizationType) -> str:
    """How ``qtype`` runs when :func:`dequantize` compiles (chosen per type by measurement,
    docs/benchmarks.md "Runtime"): its ``gguf_fused`` kernel, the lattice table path (compiled
    index/scale steps around an eager gather), torch's own conversion, or its eager kernel compiled."""
    if qtype in (T.F32, T.F16, T.BF16):
        return "torch dtype conversion (never compiled)"
    if qtype in _LATTICE:
        return "lattice tables: compiled index + scale, eager int32 gather"
    if qtype.name in fused.FUSED_KERNELS:
        return "gguf_fused kernel compiled"
    return "eager kernel compiled"


def _run(qtype: GGMLQuantizationType, blocks: Tensor, compile: bool) -> Tensor:
    """Run the eager kernel, or the torch.compile'd one (inductor fuses it into one loop)."""
    if qtype in _LATTICE:
        return dequantize_lattice(qtype.name, blocks, compile=compile)
    tables = (iq.grid(qtype.name),) if qtype in _IQ1 else ()
    if compile and qtype not in _COMPILE_BROKEN:
        if qtype not in _COMPILED:
            kernel = fused.FUSED_KERNELS.get(qtype.name, _KERNELS[qtype])
            # Every table index is a masked bit field, so inductor's bounds asserts are dead weight.
            _COMPILED[qtype] = torch.compile(kernel, dynamic=True, options={"assert_indirect_indexing": False})
        try:
            return _COMPILED[qtype](blocks, *tables)
        except Exception as exc:  # no C++ compiler, unsupported platform...: the eager kernel is exact too
            _COMPILE_BROKEN.add(qtype)
            _log.warning("torch.compile of the %s kernel failed (%s); using the eager kernel", qtype.name, exc)
    return _KERNELS[qtype](blocks, *tables)


def dequantize(
    data: Tensor, qtype: GGMLQuantizationType, name: str = "weight", *, compile: bool | None = None
) -> Tensor:
    """Dequantize raw GGML data ``[..., row_bytes]`` (uint8; typed for F32/F16) to float32 ``[..., K]``.

    ``compile=True`` runs the block kernel through ``torch.compile`` (needs a C++ compiler; the
    first call per type compiles); ``None`` does so for tensors of at least
    :data:`AUTO_COMPILE_BYTES`. The result is the same bit for bit either way.
    """
    if qtype == T.F32:
        return data.contiguous().view(torch.float32) if data.dtype == torch.uint8 else data.to(torch.float32)
    if qtype == T.F16:
        return (data.contiguous().view(torch.float16) if data.dtype == torch.uint8 else data).to(torch.float32)
    if qtype == T.BF16 and data.dtype in (torch.uint8, torch.bfloat16):
        # bf16 -> f32 is exact (a 16-bit shift), and torch's conversion is one vectorised pass.
        return (data.contiguous().view(torch.bfloat16) if data.dtype == torch.uint8 else data).to(torch.float32)
    if qtype not in _KERNELS and qtype not in _LATTICE:
        raise InvalidCheckpoint(
            reason(
                Code.RUNTIME_BAD_TENSOR,
                f"tensor '{name}': GGML type {qtype.name} cannot be dequantized",
                where=name,
                hint=f"supported: {', '.join(t.name for t in SUPPORTED_TYPES)}",
            )
        )
    if data.dtype != torch.uint8:
        raise InvalidCheckpoint(
            reason(
                Code.RUNTIME_BAD_TENSOR, f"tensor '{name}': raw GGML data must be uint8, got {data.dtype}", where=name
            )
        )
    block, type_size = GGML_QUANT_SIZES[qtype]
    row_bytes = data.size(-1)
    if row_bytes % type_size:
        raise InvalidCheckpoint(
            reason(
                Code.RUNTIME_BAD_TENSOR,
                f"tensor '{name}': row of {row_bytes} bytes is not a whole number "
                f"of {qtype.name} blocks ({type_size} bytes)",
                where=name,
            )
        )
    lead = data.shape[:-1]
    blocks = data.reshape(-1, type_size)
    use_compile = data.numel() >= AUTO_COMPILE_BYTES if compile is None else compile
    out = _run(qtype, blocks, use_compile)
    return out.reshape(*lead, row_bytes // type_size * block)
