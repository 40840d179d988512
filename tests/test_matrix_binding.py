"""The support matrix, the pure scheme specs and the runtime registries name the same things.

For every matrix entry that can run somewhere (status or diffusion status not ``unsupported`` on
some generation):

(a) a pure spec (``quantspec.schemes``) exists for every layout the format parsers produce for it;
(b) a runtime class is registered: the linear registry for linear rows, the MoE registry for MoE
    rows; attention/KV and embedding rows have no runtime module -- their tensors are loaded as
    float (GGUF dequantized) and installed into the model's own modules, which the spec says with
    :data:`~quantspec.schemes.registry.LOADED_AS_FLOAT` and the loader's dispatch confirms;
(c) the spec's ``executable`` is that runtime class's ``__name__``.

Conversely every runtime-registered key is a matrix entry that can run somewhere: the runtime runs
nothing the planner could not admit, and the checks above rule out the plan accepting what the
loader refuses.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from quantspec.formats import auto_round, compressed_tensors
from quantspec.formats.modelslim import label_spec
from quantspec.matrix import MatrixEntry, load_matrix
from quantspec.runtime.moe import registered_moe
from quantspec.runtime.schemes import registered_linear
from quantspec.schemes import FLOAT_SPECS, SPECS
from quantspec.schemes.registry import LOADED_AS_FLOAT
from quantspec.vocab import FormatFamily, Layout, MatrixLayer, NpuGen, SchemeId, Status

MATRIX = load_matrix()
F, L = FormatFamily, MatrixLayer


def _runnable(entry: MatrixEntry) -> bool:
    statuses = {entry.status.get(g) for g in NpuGen}
    if entry.diffusion:
        statuses |= {entry.diffusion.status.get(g) for g in NpuGen}
    return statuses != {Status.UNSUPPORTED}


RUNNABLE = [e for e in MATRIX.entries if _runnable(e)]


def _ct_layouts(scheme: SchemeId) -> set[Layout]:
    """Layouts compressed-tensors produces for ``scheme``: the parser's own scheme and layout rules
    over the formats llm-compressor writes (packed 4-bit or weight-only, int-quantized/naive int8)."""
    CA = compressed_tensors.QuantizationArgs
    weights = [CA(num_bits=b, symmetric=sym, strategy=st, group_size=128 if st == "group" else None)
               for b, sym, st in itertools.product((4, 8), (True, False), ("channel", "group"))]
    acts = [None, CA(num_bits=8, strategy="token", dynamic=True), CA(num_bits=8, strategy="tensor", dynamic=False)]
    out: set[Layout] = set()
    # llm-compressor's FP8_DYNAMIC preset: float-quantized E4M3 weights per channel, dynamic E4M3 tokens
    fp8_w = CA(num_bits=8, type="float", strategy="channel", symmetric=True)
    fp8_a = CA(num_bits=8, type="float", strategy="token", dynamic=True, symmetric=True)
    if compressed_tensors.scheme_of(fp8_w, fp8_a, "float-quantized") is scheme:
        out.add(compressed_tensors.LAYOUTS["float-quantized"])
    for w, a in itertools.product(weights, acts):
        fmts = ["pack-quantized"] if a is None else (
            ["int-quantized", "naive-quantized"] + (["pack-quantized"] if w.num_bits == 4 else []))
        for fmt in fmts:
            if compressed_tensors.scheme_of(w, a, fmt) is scheme:
                out.add(compressed_tensors.LAYOUTS[fmt])
    return out


def produced_layouts(entry: MatrixEntry) -> set[Layout]:
    """Layouts the format parsers give modules of this entry's family and scheme."""
    scheme = entry.scheme
    match entry.family:
        case F.MODELSLIM:
            if entry.layer is L.ATTENTION:
                return set()  # KV/FA entries carry no weight layout (one contract per key)
            assert entry.quant_type, entry.key
            specs = [label_spec(entry.quant_type, version=v, group_size=g)
                     for v, g in itertools.product((None, "1.0.0"), (None, 128))]
            return {s.weight.layout for s in specs if s is not None and s.scheme is scheme}
        case F.COMPRESSED_TENSORS:
            return _ct_layouts(scheme)
        case F.AUTO_ROUND:
            return {layout for layout, _ in auto_round.PACKINGS.values()}
        case F.AWQ:
            return {Layout.AWQ_GEMM}  # awq.normalise gives a scheme to the GEMM layout only
        case F.GPTQ:
            return {Layout.GPTQ}
        case F.GGUF:
            return {Layout.GGML}
        case F.MXFP8_ONLINE:
            return {Layout.FLOAT}
    raise AssertionError(f"no layout rule for {entry.key}")


@pytest.mark.parametrize("entry", RUNNABLE, ids=lambda e: e.key)
def test_specs_cover_every_produced_layout(entry: MatrixEntry) -> None:
    specs = SPECS.get((entry.family, entry.scheme, entry.layer), {})
    assert specs, f"{entry.key}: no pure spec"
    produced = produced_layouts(entry)
    if entry.layer is not L.ATTENTION:
        assert produced, f"{entry.key}: the format parsers produce no layout for it"
    missing = produced - set(specs)
    assert not missing, f"{entry.key}: no spec for layouts {sorted(m.value for m in missing)}"


@pytest.mark.parametrize("entry", RUNNABLE, ids=lambda e: e.key)
def test_runtime_class_is_registered_and_named_by_the_spec(entry: MatrixEntry) -> None:
    specs = SPECS[(entry.family, entry.scheme, entry.layer)]
    names = {spec.executable for spec in specs.values()}
    key = (entry.family, entry.scheme)
    if entry.layer in (L.LINEAR, L.MOE):
        registry = registered_linear() if entry.layer is L.LINEAR else registered_moe()
        assert key in registry, f"{entry.key}: no runtime class registered"
        assert names == {registry[key].__name__}, f"{entry.key}: spec names {names}, runtime {registry[key].__name__}"
    else:
        # attention/KV and embedding rows: planned, their tensors loaded as float, no runtime module
        assert entry.layer in (L.ATTENTION, L.EMBEDDING), entry.key
        assert names == {LOADED_AS_FLOAT}, entry.key
        if entry.layer is L.ATTENTION:
            assert key not in registered_linear() and key not in registered_moe()


def test_attention_tensors_are_loaded_as_float(tmp_path: Path) -> None:
    """A planned KV-C8 attention layer yields float tensors and no executable module."""
    from quantspec.runtime.loader import load_quantized
    from testkit.models import TinyArch
    from tests.runtime.loader.ckpt import add_c8_kv_cache, write_modelslim

    write_modelslim(tmp_path, TinyArch.LLAMA)
    add_c8_kv_cache(tmp_path, layers=2)
    qm = load_quantized(tmp_path, "cpu", allow_untested=True, progress=False)
    attn = [layer for layer in qm.plan.layers if layer.kind.value == "attention"]
    assert attn and all(layer.executable == LOADED_AS_FLOAT for layer in attn)
    sd = qm.state_dict()
    for layer in attn:
        assert layer.module not in qm.modules
        for name in layer.tensors:
            assert sd[name].dtype == torch.bfloat16, name


def test_float_specs_name_their_runtime() -> None:
    assert FLOAT_SPECS[L.MOE].executable == registered_moe()[(F.UNQUANTIZED, None)].__name__
    assert FLOAT_SPECS[L.LINEAR].executable == LOADED_AS_FLOAT
    assert FLOAT_SPECS[L.EMBEDDING].executable == LOADED_AS_FLOAT


#: Runtime keys with no matrix cell, so the planner never plans them. Listed so that the gap stays
#: visible: compressed-tensors ``pack-quantized`` int8 weight-only linears are decoded and tested
#: (tests/runtime/schemes) and the parser names them W8A16, but the support matrix has no
#: ``compressed_tensors/w8a16/linear`` cell yet (adding one is a matrix decision: status, sources).
def test_every_registered_key_is_a_runnable_matrix_entry() -> None:
    runnable = {(e.family, e.scheme, e.layer) for e in RUNNABLE}
    registered = {(family, scheme, L.LINEAR) for family, scheme in registered_linear()}
    for family, moe_scheme in registered_moe():
        if moe_scheme is None:
            assert family is F.UNQUANTIZED  # float experts: unquantized MoE layers
            continue
        registered.add((family, moe_scheme, L.MOE))
    # exact: a new unlisted key fails, and so does a listed one once the matrix gains its cell
    assert registered - runnable == set()
