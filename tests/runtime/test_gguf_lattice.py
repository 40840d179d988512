"""The signed-quad table kernels for IQ2/IQ3 (``gguf_lattice``) match gguf-py bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gq
from hypothesis import given, settings
from hypothesis import strategies as st

from quantspec.runtime.gguf_lattice import LATTICE_TYPES, dequantize_lattice, quad_table

_SETTINGS = settings(max_examples=25, deadline=None)


def _blocks(name: str, seed: int, n_blocks: int, scale_bits: int) -> np.ndarray:
    """Random blocks whose leading fp16 scale is ``scale_bits`` (any finite pattern, sign included)."""
    _, ts = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    raw = np.random.default_rng(seed).integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    raw[:, 0:2] = np.array([scale_bits], dtype=np.uint16).view(np.uint8)
    return raw


# Any fp16 bit pattern except Inf/NaN (exponent 0x1F): zeros, subnormals, both signs, extremes.
_finite_f16 = st.integers(0, 0xFFFF).filter(lambda h: (h >> 10) & 0x1F != 0x1F)


@_SETTINGS
@given(
    name=st.sampled_from(LATTICE_TYPES),
    seed=st.integers(0, 2**32 - 1),
    n_blocks=st.integers(1, 9),
    scale_bits=_finite_f16,
    compile=st.booleans(),
)
def test_lattice_kernels_bit_identical(name: str, seed: int, n_blocks: int, scale_bits: int, compile: bool) -> None:
    raw = _blocks(name, seed, n_blocks, scale_bits)
    ref = gq.dequantize(raw, GGMLQuantizationType[name])
    got = dequantize_lattice(name, torch.from_numpy(raw), compile=compile).numpy()
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.array_equal(got.view(np.uint32), ref.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("name", LATTICE_TYPES)
def test_quad_table_is_the_signed_grid(name: str) -> None:
    """Entry ``(row * q + j) * 16 + s`` is grid quad ``j`` of ``row`` with the bits of ``s`` negating."""
    cls = getattr(gq, name)
    cls.init_grid()
    grid = np.asarray(cls.grid, dtype=np.float32).reshape(cls.grid_shape)
    rows, width = grid.shape
    table = quad_table(name).numpy().view(np.int8).reshape(rows, width // 4, 16, 4)
    rng = np.random.default_rng(0)
    picks = zip(rng.integers(0, rows, 64), rng.integers(0, width // 4, 64), rng.integers(0, 16, 64), strict=True)
    for row, j, s in picks:
        signs = np.where((s >> np.arange(4)) & 1, -1.0, 1.0)
        assert np.array_equal(table[row, j, s].astype(np.float32), grid[row, 4 * j : 4 * j + 4] * signs)
