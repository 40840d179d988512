"""The inductor-shaped kernels of ``gguf_fused`` match gguf-py bit for bit, eagerly and compiled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gq
from hypothesis import given, settings
from hypothesis import strategies as st

from quantspec.runtime.gguf_dequant import compile_policy, dequantize
from quantspec.runtime.gguf_fused import FUSED_KERNELS
from tests.runtime.test_gguf_dequant import _random_blocks

_NAMES = sorted(FUSED_KERNELS)


def _same_bits(got: np.ndarray, ref: np.ndarray) -> bool:
    return got.shape == ref.shape and np.array_equal(got.view(np.uint32), ref.astype(np.float32).view(np.uint32))


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(_NAMES), seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 3), blocks=st.integers(1, 6))
def test_fused_kernels_bit_identical_eagerly(name: str, seed: int, rows: int, blocks: int) -> None:
    """Run eagerly, the kernels compute exactly gguf-py's values on random blocks (finite scales)."""
    qtype = GGMLQuantizationType[name]
    raw = _random_blocks(qtype, rows, blocks, seed)
    got = FUSED_KERNELS[name](torch.from_numpy(raw).reshape(-1, GGML_QUANT_SIZES[qtype][1]))
    assert _same_bits(got.reshape(rows, -1).numpy(), gq.dequantize(raw, qtype))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", _NAMES)
def test_fused_kernels_bit_identical_compiled(name: str) -> None:
    """``dequantize(compile=True)`` takes the fused kernel and stays exact, on two shapes (dynamic)."""
    qtype = GGMLQuantizationType[name]
    assert compile_policy(qtype) == "gguf_fused kernel compiled"
    for rows, blocks, seed in ((4, 8, 11), (3, 5, 12)):
        raw = _random_blocks(qtype, rows, blocks, seed)
        got = dequantize(torch.from_numpy(raw), qtype, compile=True).numpy()
        assert _same_bits(got, gq.dequantize(raw, qtype))
