"""GGML dequantization in torch is bit-identical to gguf-py's numpy ``dequantize`` for every type."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gq

from quantspec.errors import InvalidCheckpoint
from quantspec.runtime.gguf_dequant import SUPPORTED_TYPES, dequantize

_BLOCKED = [t for t in SUPPORTED_TYPES if t not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16)]
# Byte offsets of the fp16 scale fields per block, overwritten with finite values so that random
# blocks compare bit for bit (random fp16 bytes would make NaNs, whose payloads may differ).
_F16_FIELDS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "Q8_0": (0,),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
    "TQ1_0": (52,),
    "TQ2_0": (64,),
    "IQ4_NL": (0,),
    "IQ4_XS": (0,),
    "IQ2_XXS": (0,),
    "IQ2_XS": (0,),
    "IQ2_S": (0,),
    "IQ3_XXS": (0,),
    "IQ3_S": (0,),
    "IQ1_S": (0,),
}


def _random_blocks(qtype: GGMLQuantizationType, rows: int, blocks: int, seed: int) -> np.ndarray:
    _, ts = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(rows, blocks, ts), dtype=np.uint8)
    for off in _F16_FIELDS.get(qtype.name, ()):
        raw[..., off : off + 2] = (
            (rng.standard_normal((rows, blocks)) * 0.01).astype(np.float16)[..., None].view(np.uint8)
        )
    if qtype.name == "IQ1_M":
        raw[..., 54:56] &= 0x3F  # top nibbles of the last 4 u16 hold the fp16 scale: keep it finite
        raw[..., 55] &= 0x0F
    if qtype.name == "BF16":
        raw[..., 1] &= 0x3F  # finite bf16 values
    return raw.reshape(rows, blocks * ts)


@pytest.mark.parametrize("qtype", _BLOCKED, ids=[t.name for t in _BLOCKED])
def test_bit_identical_on_random_blocks(qtype: GGMLQuantizationType) -> None:
    raw = _random_blocks(qtype, 3, 4, seed=int(qtype))
    ref = gq.dequantize(raw, qtype)
    got = dequantize(torch.from_numpy(raw), qtype).numpy()
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)) or np.array_equal(got, ref, equal_nan=True)
    finite = np.isfinite(ref)
    assert finite.mean() > 0.99
    assert np.array_equal(got[finite].view(np.uint32), ref[finite].view(np.uint32))


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0", "MXFP4", "BF16"])
def test_identical_on_gguf_py_quantized_weights(name: str) -> None:
    qtype = GGMLQuantizationType[name]
    w = (np.random.default_rng(1).standard_normal((4, 512)) * 0.1).astype(np.float32)
    try:
        raw = gq.quantize(w, qtype)
    except NotImplementedError:
        pytest.skip(f"gguf-py cannot quantize {name}")
    ref = gq.dequantize(raw, qtype)
    got = dequantize(torch.from_numpy(np.ascontiguousarray(raw).view(np.uint8)), qtype).numpy()
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_float_types_and_errors() -> None:
    w = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    assert np.array_equal(dequantize(torch.from_numpy(w.view(np.uint8)), GGMLQuantizationType.F32).numpy(), w)
    h = w.astype(np.float16)
    assert np.array_equal(dequantize(torch.from_numpy(h), GGMLQuantizationType.F16).numpy(), h.astype(np.float32))
    with pytest.raises(InvalidCheckpoint, match="whole number"):
        dequantize(torch.zeros(2, 17, dtype=torch.uint8), GGMLQuantizationType.Q4_0)
    with pytest.raises(InvalidCheckpoint, match="cannot be dequantized"):
        dequantize(torch.zeros(2, 292, dtype=torch.uint8), GGMLQuantizationType.Q8_K)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", ["Q8_0", "Q2_K", "Q3_K", "Q6_K", "TQ1_0", "IQ4_XS", "IQ2_XS", "IQ3_S", "IQ1_S"])
def test_compiled_kernel_is_identical(name: str) -> None:
    """The torch.compile path (used for large tensors; IQ4 takes its select-tree branch, IQ2/IQ3 the
    compiled index and scale steps) gives the same bits as gguf-py."""
    qtype = GGMLQuantizationType[name]
    raw = _random_blocks(qtype, 4, 8, seed=5)
    ref = gq.dequantize(raw, qtype)
    got = dequantize(torch.from_numpy(raw), qtype, compile=True).numpy()
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
