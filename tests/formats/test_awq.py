"""AWQ configs: layouts, zero convention, substring skips."""

from __future__ import annotations

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import awq
from quantspec.vocab import Layout, SchemeId, ZeroPoint
from tests.formats.examples import load


def read(data: object) -> awq.CheckpointDescription:
    return awq.read(data, file="config.json", source="config.json")


def test_gemm_substring_skips() -> None:
    desc = read(load("awq_gemm.json"))
    d = desc.default
    assert d is not None and d.scheme is SchemeId.W4A16 and d.weight.layout is Layout.AWQ_GEMM
    assert d.weight.zero_point is ZeroPoint.TRUE and not d.weight.symmetric
    assert desc.resolve("model.visual.blocks.0.attn.qkv").quant is None
    # substring semantics: "mlp.gate" also hits gate_proj, as AutoAWQ and vLLM do
    assert desc.resolve("model.layers.3.mlp.gate_proj").quant is None
    assert desc.resolve("model.layers.0.self_attn.q_proj").quant is None
    assert desc.resolve("model.layers.10.self_attn.q_proj").quant == d


def test_autoawq_internal_names() -> None:
    d = read(load("awq_autoawq_quant_config.json")).default
    assert d is not None and d.weight.group_size == 64 and d.weight.layout is Layout.AWQ_GEMM


@pytest.mark.parametrize(("version", "layout"), [("gemv", Layout.AWQ_GEMV), ("gemv_fast", Layout.AWQ_GEMV_FAST),
                                                 ("marlin", Layout.AWQ_MARLIN)])
def test_non_gemm_layouts_have_no_scheme(version: str, layout: Layout) -> None:
    d = read({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": version != "marlin",
              "version": version}).default
    assert d is not None and d.weight.layout is layout and d.scheme is None


def test_8bit_and_unknown_version() -> None:
    assert read({"bits": 8, "group_size": 128, "zero_point": True}).default.scheme is SchemeId.W8A16  # type: ignore[union-attr]
    desc = read({"bits": 4, "group_size": 128, "zero_point": True, "version": "weird"})
    assert desc.findings[0].code is Code.FORMAT_UNKNOWN_VALUE


def test_missing_bits() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read({"quant_method": "awq", "group_size": 128})
    assert exc.value.code is Code.FORMAT_MISSING_FIELD
