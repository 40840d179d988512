"""Property tests for every pack/unpack routine and scale encoding in quantspec.runtime.numerics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantspec.runtime import numerics as nm

_SETTINGS = settings(max_examples=40, deadline=None)


def _codes(draw: Callable[..., Any], bits: int, rows: int, cols: int) -> torch.Tensor:
    vals = draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=rows * cols, max_size=rows * cols))
    return torch.tensor(vals, dtype=torch.int64).reshape(rows, cols)


@st.composite
def packed_case(draw: st.DrawFn) -> tuple[int, torch.Tensor, bool]:
    bits = draw(st.integers(1, 8))
    rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 70))
    return bits, _codes(draw, bits, rows, cols), draw(st.booleans())


@_SETTINGS
@given(packed_case())
def test_pack_bits_round_trip(case: tuple[int, torch.Tensor, bool]) -> None:
    bits, codes, dense = case
    words = nm.pack_bits(codes, bits, dense=dense)
    assert words.dtype == torch.int32
    assert words.shape[-1] == nm.packed_words(codes.shape[-1], bits, dense=dense)
    assert torch.equal(nm.unpack_bits(words, bits, codes.shape[-1], dense=dense).to(torch.int64), codes)


@_SETTINGS
@given(packed_case())
def test_dense_stream_is_little_endian_bit_stream(case: tuple[int, torch.Tensor, bool]) -> None:
    bits, codes, _ = case
    words = nm.pack_bits(codes, bits, dense=True).to(torch.int64) & 0xFFFFFFFF
    for r in range(codes.shape[0]):
        stream = sum(int(w) << (32 * j) for j, w in enumerate(words[r]))
        for i, c in enumerate(codes[r].tolist()):
            assert (stream >> (i * bits)) & ((1 << bits) - 1) == c


@_SETTINGS
@given(st.data())
def test_gptq_3bit_layout_10_1_10_1_10(data: st.DataObject) -> None:
    """formats.md 3.3: 32 3-bit codes in 3 words with codes 10 and 21 straddling words."""
    codes = data.draw(st.lists(st.integers(0, 7), min_size=32, max_size=32))
    w = [int(v) & 0xFFFFFFFF for v in nm.pack_bits(torch.tensor([codes]), 3, dense=True)[0]]
    for i in range(10):
        assert (w[0] >> (3 * i)) & 7 == codes[i]
        assert (w[1] >> (3 * i + 1)) & 7 == codes[11 + i]
        assert (w[2] >> (3 * i + 2)) & 7 == codes[22 + i]
    assert (w[0] >> 30) | ((w[1] & 1) << 2) == codes[10]
    assert (w[1] >> 31) | ((w[2] & 3) << 1) == codes[21]


@_SETTINGS
@given(st.data())
def test_padded_words_leave_high_bits_zero(data: st.DataObject) -> None:
    bits = data.draw(st.sampled_from([3, 5, 6, 7]))
    codes = _codes(data.draw, bits, 1, data.draw(st.integers(1, 40)))
    words = nm.pack_bits(codes, bits, dense=False).to(torch.int64) & 0xFFFFFFFF
    used = (32 // bits) * bits
    assert bool(((words >> used) == 0).all())


@_SETTINGS
@given(st.data())
def test_int4_lsb_first(data: st.DataObject) -> None:
    n = 8 * data.draw(st.integers(1, 6))
    vals = data.draw(st.lists(st.integers(-8, 7), min_size=n, max_size=n))
    words = nm.pack_int4_lsb(torch.tensor([vals]))
    assert words.shape == (1, n // 8)
    for j, w in enumerate(words[0].tolist()):
        for t in range(8):
            nib = ((w & 0xFFFFFFFF) >> (4 * t)) & 0xF
            assert (nib - 16 if nib >= 8 else nib) == vals[8 * j + t]
    assert nm.unpack_int4_lsb(words)[0].tolist() == vals


@_SETTINGS
@given(st.data())
def test_int4_pairs_round_trip(data: st.DataObject) -> None:
    rows, cols = 2 * data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    vals = torch.tensor(data.draw(st.lists(st.integers(-8, 7), min_size=rows * cols, max_size=rows * cols)))
    q = vals.reshape(rows, cols).to(torch.int8)
    packed = nm.pack_int4_pairs(q, dim=0)
    assert packed.shape == (rows // 2, cols)
    assert int(packed[0, 0]) & 0xF == int(q[0, 0]) & 0xF  # even row in the low nibble
    assert torch.equal(nm.unpack_int4_pairs(packed, dim=0), q)


@_SETTINGS
@given(st.data())
def test_awq_interleave(data: st.DataObject) -> None:
    bits = data.draw(st.sampled_from([4, 8]))
    pf = 32 // bits
    codes = _codes(data.draw, bits, 2, pf * data.draw(st.integers(1, 4)))
    words = nm.pack_awq(codes, bits).to(torch.int64) & 0xFFFFFFFF
    order = [0, 2, 4, 6, 1, 3, 5, 7] if bits == 4 else [0, 2, 1, 3]
    for r in range(2):
        for j in range(words.shape[1]):
            for i in range(pf):
                assert (int(words[r, j]) >> (bits * i)) & ((1 << bits) - 1) == int(codes[r, pf * j + order[i]])
    assert torch.equal(nm.unpack_awq(nm.pack_awq(codes, bits), bits).to(torch.int64), codes)


@_SETTINGS
@given(st.lists(st.integers(0, 15), min_size=2, max_size=64).filter(lambda v: len(v) % 2 == 0))
def test_fp4_nibbles(codes: list[int]) -> None:
    c = torch.tensor([codes], dtype=torch.uint8)
    packed = nm.pack_fp4_pairs(c)
    assert [int(b) & 0xF for b in packed[0]] == codes[0::2]
    assert [int(b) >> 4 for b in packed[0]] == codes[1::2]
    assert torch.equal(nm.unpack_fp4_pairs(packed), c)
    # Every code decodes to a table value, and encoding the value gives the code back (-0 -> +0).
    vals = nm.decode_e2m1(c)
    back = nm.encode_e2m1(vals)
    assert torch.equal(nm.decode_e2m1(back), vals)


@_SETTINGS
@given(st.floats(-10, 10, allow_nan=False))
def test_fp4_encode_is_nearest(v: float) -> None:
    code = nm.encode_e2m1(torch.tensor([v]))
    got = float(nm.decode_e2m1(code)[0])
    table = np.array(nm.FP4_E2M1_VALUES)
    best = np.abs(np.abs(table) - min(abs(v), 6.0)).min()
    assert abs(abs(got) - min(abs(v), 6.0)) == best


@_SETTINGS
@given(st.integers(0, 254))
def test_e8m0(byte: int) -> None:
    assert float(nm.decode_e8m0(torch.tensor([byte], dtype=torch.uint8))[0]) == 2.0 ** (byte - 127)


def test_e8m0_nan() -> None:
    assert bool(torch.isnan(nm.decode_e8m0(torch.tensor([255], dtype=torch.uint8)))[0])


@_SETTINGS
@given(st.floats(1e-30, 1e30))
def test_fp19_truncation_keeps_ten_mantissa_bits(v: float) -> None:
    x = torch.tensor([v], dtype=torch.float32)
    t = nm.fp19_truncate(x)
    bits = int(t.view(torch.int32)[0]) & 0xFFFFFFFF
    assert bits & 0x1FFF == 0
    assert 0 <= float(x[0]) - float(t[0]) < float(x[0]) * 2**-10
    r = float(nm.fp19_round(x)[0])
    assert abs(r - float(x[0])) <= float(x[0]) * 2**-11 * 1.0000001


@_SETTINGS
@given(st.floats(1e-30, 1e30))
def test_floor_log2_exact(v: float) -> None:
    x = torch.tensor([v], dtype=torch.float32)
    e = int(nm.floor_log2(x)[0])
    assert 2.0**e <= float(x[0]) < 2.0 ** (e + 1)


@_SETTINGS
@given(st.floats(-100, 100, allow_nan=False))
def test_round_modes(v: float) -> None:
    x = torch.tensor([v], dtype=torch.float64)
    assert float(nm.rint(x)[0]) == float(np.rint(v))
    away = float(np.sign(v) * np.floor(abs(v) + 0.5))
    assert float(nm.round_half_away(x)[0]) == away


@_SETTINGS
@given(st.data())
def test_unpack_bits_rows_is_unpack_along_dim0(data: st.DataObject) -> None:
    bits = data.draw(st.sampled_from([2, 3, 4, 8]))
    k = 32 * data.draw(st.integers(1, 3))
    codes = _codes(data.draw, bits, k, data.draw(st.integers(1, 6)))
    words = nm.pack_bits(codes.t().contiguous(), bits).t().contiguous()
    assert torch.equal(nm.unpack_bits_rows(words, bits, k).to(torch.int64), codes)
