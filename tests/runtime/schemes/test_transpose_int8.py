"""``transpose_int8`` equals ``t().contiguous()`` bit for bit on every path."""

from __future__ import annotations

import pytest
import torch

from quantspec.runtime.schemes.base import transpose_int8


@pytest.mark.parametrize(("n", "k"), [(1, 8), (7, 16), (512, 64), (513, 24), (1100, 40), (3, 12), (32, 2048)])
def test_equals_torch_transpose(n: int, k: int) -> None:
    w = torch.randint(-128, 128, (n, k), dtype=torch.int8, generator=torch.Generator().manual_seed(n * k))
    out = transpose_int8(w)
    assert out.is_contiguous() and out.dtype == torch.int8 and torch.equal(out, w.t())


def test_unaligned_and_non_contiguous_inputs_fall_back() -> None:
    base = torch.randint(-128, 128, (64, 33), dtype=torch.int8, generator=torch.Generator().manual_seed(1))
    for w in (base[:, 1:], base[:, :32].contiguous()[:, :16], base.t()[:8]):
        out = transpose_int8(w)
        assert out.is_contiguous() and torch.equal(out, w.t())
    offset = base.reshape(-1)[3:3 + 16 * 64].view(16, 64)  # storage offset not a multiple of 8
    assert torch.equal(transpose_int8(offset), offset.t())
