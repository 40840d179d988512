"""Every row of the seed document's tables is in the matrix, with the seed's statuses.

The seed's text lost its check-mark cells; its readable cells ("TBD", "x", "WIP") and the
rules stated in issue 2 give the expected statuses, written out below independently of the
YAML so that a drifting matrix fails here.
"""

from __future__ import annotations

import pytest

from quantspec.matrix import load_matrix
from quantspec.vocab import FormatFamily as F
from quantspec.vocab import MatrixLayer as L
from quantspec.vocab import Mode, NpuGen
from quantspec.vocab import SchemeId as S

OK, NO, TBD, WIP = "supported", "unsupported", "untested", "in_progress"
A2A3_TBD = (OK, OK, TBD)

# (family, scheme, layer, label, quant_type, scheme_class, (a2, a3, a5), diffusion a2/a3/a5 or None)
SEED_ROWS = [
    (F.MODELSLIM, S.W4A4_DYNAMIC, L.LINEAR, "W4A4 dynamic", "W4A4_DYNAMIC", "ModelSlimW4A4Int4", A2A3_TBD, A2A3_TBD),
    (F.MODELSLIM, S.W8A8_STATIC, L.LINEAR, "W8A8 static", "W8A8", "ModelSlimW8A8Int8", A2A3_TBD, A2A3_TBD),
    (F.MODELSLIM, S.W8A8_DYNAMIC, L.LINEAR, "W8A8 dynamic", "W8A8_DYNAMIC", "ModelSlimW8A8Int8", A2A3_TBD, A2A3_TBD),
    (F.MODELSLIM, S.W8A8_MXFP8, L.LINEAR, "MXFP8", "W8A8_MXFP8", "ModelSlimMXFP8Scheme", (NO, NO, WIP), (NO, NO, OK)),
    (F.MODELSLIM, S.W4A4_DYNAMIC, L.MOE, "W4A4 dynamic", "W4A4_DYNAMIC", "ModelSlimW4A4Int4", A2A3_TBD, None),
    (F.MODELSLIM, S.W4A8_DYNAMIC, L.MOE, "W4A8 dynamic", "W4A8_DYNAMIC", "ModelSlimW4A8Int8MoE", A2A3_TBD, None),
    (F.MODELSLIM, S.W8A8_DYNAMIC, L.MOE, "W8A8 dynamic", "W8A8_DYNAMIC", "ModelSlimW8A8Int8", A2A3_TBD, None),
    (F.MODELSLIM, S.W8A8_MXFP8, L.MOE, "MXFP8", "W8A8_MXFP8", "ModelSlimMXFP8Scheme", (NO, NO, WIP), None),
    (F.AWQ, S.W4A16, L.LINEAR, "W4A16", None, None, A2A3_TBD, None),
    # The seed says supported; no engine runs 8-bit AWQ (SGLang raises for bits != 4, vLLM-Ascend
    # has no AWQ): untested everywhere (shared/reference/ERRATA.md, "Weight-only").
    (F.AWQ, S.W8A16, L.LINEAR, "W8A16", None, None, (TBD, TBD, TBD), None),
    (F.AWQ, S.W4A16, L.MOE, "W4A16", None, None, A2A3_TBD, None),
    (F.GPTQ, S.W4A16, L.LINEAR, "W4A16", None, None, A2A3_TBD, None),
    (F.GPTQ, S.W8A16, L.LINEAR, "W8A16", None, None, A2A3_TBD, None),
    (F.GPTQ, S.W4A16, L.MOE, "W4A16 MOE", None, None, A2A3_TBD, None),
    (F.GPTQ, S.W8A16, L.MOE, "W8A16 MOE", None, None, A2A3_TBD, None),
    (F.AUTO_ROUND, S.W4A16, L.LINEAR, "W4A16", None, None, A2A3_TBD, None),
    (F.AUTO_ROUND, S.W8A16, L.LINEAR, "W8A16", None, None, A2A3_TBD, None),
    (F.AUTO_ROUND, S.W4A16, L.MOE, "W4A16", None, None, A2A3_TBD, None),
    (F.AUTO_ROUND, S.W8A16, L.MOE, "W8A16", None, None, A2A3_TBD, None),
    (F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, L.LINEAR, "W8A8 dynamic", None, None, A2A3_TBD, None),
    (F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, L.MOE, "W4A8 dynamic with/without activation clip", None, None,
     A2A3_TBD, None),
    (F.COMPRESSED_TENSORS, S.W4A16, L.MOE, "W4A16 MOE", None, None, A2A3_TBD, None),
    (F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, L.MOE, "W8A8 dynamic", None, None, A2A3_TBD, None),
    (F.GGUF, S.GGUF, L.LINEAR, "GGUF (all types)", None, None, A2A3_TBD, None),
    (F.GGUF, S.GGUF, L.MOE, "GGUF (all types)", None, None, A2A3_TBD, None),
]


@pytest.mark.parametrize("row", SEED_ROWS, ids=lambda r: f"{r[0].value}/{r[1].value}/{r[2].value}")
def test_seed_row(row: tuple) -> None:  # type: ignore[type-arg]
    family, scheme, layer, label, quant_type, scheme_class, status, diffusion = row
    e = load_matrix().lookup(family, scheme, layer)
    assert e is not None, "seed row missing from the matrix"
    assert e.label == label
    if quant_type is not None:
        assert e.quant_type == quant_type
    if scheme_class is not None:
        assert e.scheme_class == scheme_class
    assert tuple(e.status.get(g).value for g in NpuGen) == status
    if diffusion is None:
        assert e.diffusion is None
    else:
        assert e.diffusion is not None
        assert tuple(e.diffusion.status.get(g).value for g in NpuGen) == diffusion


def test_seed_diffusion_table() -> None:
    """The five rows of the seed's diffusion table, with mode and trigger."""
    m = load_matrix()
    rows = {(e.family, e.scheme): e.diffusion for e in m.entries if e.diffusion is not None}
    assert len(rows) == 5
    online = rows[(F.MXFP8_ONLINE, S.W8A8_MXFP8)]
    assert online is not None and online.mode is Mode.ONLINE and online.trigger == "--quantization mxfp8"
    assert tuple(online.status.get(g).value for g in NpuGen) == (NO, NO, OK)
    for scheme in (S.W8A8_MXFP8, S.W8A8_STATIC, S.W8A8_DYNAMIC, S.W4A4_DYNAMIC):
        d = rows[(F.MODELSLIM, scheme)]
        assert d is not None and d.mode is Mode.OFFLINE
        assert d.trigger == "auto-detected from quant_model_description.json"


def test_mxfp8_requirements_from_the_seed() -> None:
    for e in load_matrix().entries:
        if e.scheme is S.W8A8_MXFP8 and e.diffusion is not None:
            rendered = {r.render() for r in e.requirements}
            assert {"Ascend A5", "CANN >= 8.0.RC3"} <= rendered


def test_extra_rows_cite_a_reference() -> None:
    seed_keys = {(r[0], r[1], r[2]) for r in SEED_ROWS}
    for e in load_matrix().entries:
        if (e.family, e.scheme, e.layer) not in seed_keys and e.family is not F.MXFP8_ONLINE:
            assert set(e.sources) & {"sglang", "vllm", "formats", "ops"}, e.key
