"""Writers cross-checked against the real producer libraries that run on CPU (compressed-tensors)."""

from __future__ import annotations

import pytest
import torch
from compressed_tensors.compressors.pack_quantized.helpers import (  # type: ignore[import-untyped]
    pack_to_int32,
    unpack_from_int32,
)

from quantspec.runtime import numerics as nm
from testkit import writers as wr


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_dense_packing_matches_compressed_tensors(bits: int) -> None:
    g = torch.Generator().manual_seed(bits)
    half = 1 << (bits - 1)
    q = torch.randint(-half, half, (6, 77), generator=g, dtype=torch.int8)
    ours = nm.pack_bits((q.to(torch.int64) + half), bits, dense=True)
    theirs = pack_to_int32(q, bits, packed_dim=1)
    assert torch.equal(ours, theirs)
    assert torch.equal(nm.unpack_bits(theirs, bits, 77).to(torch.int64) - half, q.to(torch.int64))
    # Zero points are packed along dim 0.
    zp = torch.randint(-half, half, (37, 3), generator=g, dtype=torch.int8)
    ours_zp = nm.pack_bits((zp.to(torch.int64) + half).t().contiguous(), bits).t()
    assert torch.equal(ours_zp, pack_to_int32(zp, bits, packed_dim=0))


@pytest.mark.parametrize("sym", [True, False])
def test_ct_writer_round_trips_through_compressed_tensors_unpack(sym: bool) -> None:
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0)) * 0.05
    t = wr.ct_pack_quantized(w, bits=4, group_size=32, sym=sym)
    q = unpack_from_int32(t["weight_packed"], 4, torch.Size([16, 64]), packed_dim=1).to(torch.float32)
    s = t["weight_scale"].to(torch.float32).repeat_interleave(32, dim=1)
    zp = torch.zeros_like(s)
    if not sym:
        z = unpack_from_int32(t["weight_zero_point"], 4, torch.Size([16, 2]), packed_dim=0).to(torch.float32)
        zp = z.repeat_interleave(32, dim=1)
    deq = (q - zp) * s
    # Half a step of rounding, plus the clip of CT's range (absmax / 7.5 maps the largest value to
    # 7.5 but codes stop at 7) and the bf16 rounding of the scale; a packing error would be many steps.
    assert float(((deq - w).abs() / s).max()) <= 0.6


def test_gptq_v1_zero_point_corner_survives() -> None:
    """A true zero of 0 is stored as 15 (v1), and field-wise +1 recovers it (formats.md 3.5)."""
    w = torch.rand(8, 32) * 0.05 + 0.01  # all positive: min clamps to 0 -> zero point 0
    t = wr.gptq(w, bits=4, group_size=32, sym=False, v1=True)
    stored = nm.unpack_bits(t["qzeros"], 4, 8)
    assert bool((stored == 15).all())
    assert bool((((stored + 1) & 15) == 0).all())
