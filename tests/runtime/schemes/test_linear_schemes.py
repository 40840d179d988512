"""Every linear scheme on the cpu backend against its independent float oracle."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from quantspec.description import QuantSpec, WeightQuant
from quantspec.matrix import load_matrix
from quantspec.runtime.ops import get_ops
from quantspec.runtime.schemes import linear_scheme_for, registered_linear
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatrixLayer, NpuGen, SchemeId, Status
from testkit import writers as wr
from testkit.scheme_cases import CASES, Case


def _run(case: Case, n: int, k: int, dtype: torch.dtype, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * 0.05
    tensors = case.write(w, dtype)
    has_bias = "quant_bias" not in tensors
    bias = (torch.randn(n, generator=g) * 0.1) if has_bias else None
    cls = linear_scheme_for(case.family, case.scheme)
    layer = cls.from_checkpoint(
        tensors,
        case.quant,
        out_features=n,
        in_features=k,
        model_dtype=dtype,
        ops=get_ops("cpu"),
        bias=None if bias is None else bias.to(dtype),
    )
    for m in (1, 3, 17):
        x = torch.randn(m, k, generator=g).to(dtype)
        y = layer(x)
        assert y.shape == (m, n) and y.dtype == dtype
        b = None if bias is None else bias.to(dtype).to(torch.float64).numpy()
        if "quant_bias" in tensors:
            b = None
        ref = case.oracle(tensors, x.to(torch.float64).numpy(), b)
        err = np.abs(y.to(torch.float64).numpy() - ref).max() / max(np.abs(ref).max(), 1e-6)
        assert err <= case.bound[dtype], f"{case.id} {dtype} M={m} N={n} K={k}: rel err {err:.2e}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scheme_matches_oracle(case: Case, dtype: torch.dtype) -> None:
    for i, (n, k) in enumerate(case.shapes):
        _run(case, n, k, dtype, seed=1000 * i + len(case.id))


def test_every_supported_linear_cell_has_a_scheme_and_a_case() -> None:
    matrix = load_matrix()
    tested = {(c.family, c.scheme) for c in CASES} | {(FormatFamily.GGUF, SchemeId.GGUF)}
    for entry in matrix.entries:
        if entry.layer != MatrixLayer.LINEAR:
            continue
        if all(entry.status.get(gen) == Status.UNSUPPORTED for gen in NpuGen):
            continue
        key = (entry.family, entry.scheme)
        assert key in registered_linear(), f"no runtime scheme for {entry.key}"
        assert key in tested, f"no oracle test for {entry.key}"


_GGUF_QUANTIZABLE = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "BF16", "F16")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("type_name", _GGUF_QUANTIZABLE)
def test_gguf_linear_matches_gguf_py(type_name: str, dtype: torch.dtype) -> None:
    """GGUF weights written by gguf-py's own quantizer; oracle = gguf-py dequantize + float matmul."""
    qtype = gguf.GGMLQuantizationType[type_name]
    n, k = 6, 96
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
    raw = gguf.quants.quantize(w, qtype)
    raw_t = torch.from_numpy(np.ascontiguousarray(raw).view(np.uint8).reshape(n, -1))
    quant = QuantSpec(
        scheme=SchemeId.GGUF,
        label=type_name,
        weight=WeightQuant(
            element=ElementType.GGML, bits=8, granularity=Granularity.BLOCK, layout=Layout.GGML, ggml_type=type_name
        ),
    )
    layer = linear_scheme_for(FormatFamily.GGUF, SchemeId.GGUF).from_checkpoint(
        {"weight": raw_t}, quant, out_features=n, in_features=k, model_dtype=dtype, ops=get_ops("cpu")
    )
    wd = torch.from_numpy(gguf.quants.dequantize(raw, qtype)).to(dtype)
    for m in (1, 3, 17):
        x = torch.from_numpy(rng.standard_normal((m, k)).astype(np.float32)).to(dtype)
        y = layer(x)
        ref = x.to(torch.float64) @ wd.to(torch.float64).T
        err = float((y.to(torch.float64) - ref).abs().max() / ref.abs().max())
        assert err <= (2e-3 if dtype == torch.float16 else 1e-2), f"{type_name} {dtype} M={m}: {err:.2e}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("v0", [False, True], ids=["v1", "v0"])
def test_w8a8_static_bias_is_added_once(dtype: torch.dtype, v0: bool) -> None:
    """msModelSlim folds the float bias into quant_bias and writes the bias too (v1): add it once."""
    g = torch.Generator().manual_seed(7)
    n, k = 32, 64
    w = torch.randn(n, k, generator=g) * 0.05
    bias = torch.linspace(-2, 2, n)
    tensors = wr.modelslim_w8a8_static(w, model_dtype=dtype, input_scale=0.02, input_offset=3, bias=bias, v0=v0)
    assert "bias" in tensors and ("weight_scale" in tensors) is v0
    quant = next(c.quant for c in CASES if c.id == "modelslim-w8a8-static")
    layer = linear_scheme_for(FormatFamily.MODELSLIM, SchemeId.W8A8_STATIC).from_checkpoint(
        tensors, quant, out_features=n, in_features=k, model_dtype=dtype, ops=get_ops("cpu")
    )
    x = torch.randn(5, k, generator=g) * 0.5
    y = layer(x.to(dtype)).to(torch.float32)
    ref = x @ w.T + bias
    assert float((y - ref).abs().max()) < 0.1 * float(bias.abs().max())
