"""GPTQ configs: zero conventions, dynamic overrides, lm_head, modules_in_block_to_quantize."""

from __future__ import annotations

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import gptq
from quantspec.vocab import ElementType, Granularity, Layout, SchemeId, ZeroPoint
from tests.formats.examples import load


def read(data: object) -> gptq.CheckpointDescription:
    return gptq.read(data, file="config.json", source="config.json", prefix="/quantization_config")


def test_v1_default_is_minus_one() -> None:
    desc = read({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False})
    d = desc.default
    assert d is not None and d.scheme is SchemeId.W4A16
    assert d.weight.zero_point is ZeroPoint.MINUS_ONE and d.weight.layout is Layout.GPTQ
    assert d.weight.granularity is Granularity.GROUP and d.weight.group_size == 128
    assert d.label == "gptq int4 g128 sym"


def test_8bit_per_channel_act_order() -> None:
    d = read({"bits": 8, "group_size": -1, "desc_act": True, "sym": True}).default
    assert d is not None and d.scheme is SchemeId.W8A16
    assert d.weight.granularity is Granularity.CHANNEL and d.weight.group_size is None and d.weight.act_order


def test_static_groups_is_not_act_order() -> None:
    d = read({"bits": 4, "group_size": 128, "desc_act": True, "static_groups": True, "sym": True}).default
    assert d is not None and not d.weight.act_order


def test_3bit_has_no_scheme() -> None:
    d = read({"bits": 3, "group_size": -1, "sym": True}).default
    assert d is not None and d.scheme is None and d.weight.element is ElementType.INT3


def test_lm_head_float_unless_quantized() -> None:
    desc = read({"bits": 4, "group_size": 128, "sym": True})
    assert desc.resolve("lm_head").quant is None
    desc2 = read({"bits": 4, "group_size": 128, "sym": True, "lm_head": True})
    assert desc2.resolve("lm_head").quant is not None


def test_dynamic_first_match_in_file_order() -> None:
    desc = read(load("gptq_gptqmodel_dynamic.json"))
    assert desc.default is not None and desc.default.weight.zero_point is ZeroPoint.TRUE
    assert desc.resolve("model.layers.20.mlp.gate_proj").quant is None
    q18 = desc.resolve("model.layers.18.mlp.gate_proj").quant
    assert q18 is not None and q18.weight.group_size == 32
    q19 = desc.resolve("model.layers.19.mlp.gate_proj").quant
    assert q19 is not None and q19.scheme is SchemeId.W8A16 and q19.weight.group_size == 64
    # re.match is anchored at the start only
    assert desc.resolve("model.layers.19.mlp.up_proj").quant == desc.default
    assert desc.producer_version == "gptqmodel:1.7.4"
    assert desc.resolve("model.layers.20.mlp.gate_proj").origin == "/quantization_config/dynamic/-:.*\\.20\\..*gate.*"


def test_modules_in_block_to_quantize_substring() -> None:
    desc = read(load("gptq_optimum.json"))
    assert desc.resolve("model.layers.0.self_attn.q_proj").quant is not None
    assert desc.resolve("model.layers.0.mlp.up_proj").quant is not None
    assert desc.resolve("model.layers.0.mlp.down_proj").quant is None
    assert desc.extras["use_exllama"] is True and "exllama_config" in desc.extras


def test_asymmetric_v1_is_noted() -> None:
    desc = read({"bits": 4, "group_size": 128, "sym": False})
    assert [r.code for r in desc.findings] == [Code.FORMAT_NOTE]
    assert desc.default is not None and desc.default.weight.zero_point is ZeroPoint.MINUS_ONE
    assert not desc.default.weight.symmetric


def test_marlin_format_has_no_scheme() -> None:
    desc = read({"bits": 4, "group_size": 128, "sym": True, "is_marlin_format": True})
    assert desc.default is not None and desc.default.scheme is None
    assert desc.findings[0].code is Code.FORMAT_UNKNOWN_VALUE


def test_bad_dynamic_regex_and_types() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read({"bits": 4, "sym": True, "dynamic": {"-:(": {}, "x": {"bits": "four"}}})
    assert [r.code for r in exc.value.reasons] == [Code.FORMAT_INVALID_PATTERN, Code.FORMAT_WRONG_TYPE]


def test_missing_bits() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read({"quant_method": "gptq", "group_size": 128})
    assert exc.value.reasons[0].code is Code.FORMAT_MISSING_FIELD
    assert exc.value.reasons[0].where == "/quantization_config/bits"
