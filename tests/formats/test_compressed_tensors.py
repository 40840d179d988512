"""compressed-tensors configs: scheme mapping, ignore/targets ordering, presets, strictness."""

from __future__ import annotations

import json

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import compressed_tensors as ct
from quantspec.vocab import ElementType, Granularity, Layout, SchemeId, ZeroPoint
from tests.formats.examples import load


def read(data: object) -> ct.CheckpointDescription:
    return ct.read(data, file="config.json", source="config.json", prefix="/quantization_config")


def group(
    weights: dict[str, object], acts: dict[str, object] | None = None, fmt: str | None = None
) -> dict[str, object]:
    g: dict[str, object] = {"targets": ["Linear"], "weights": weights, "input_activations": acts}
    if fmt:
        g["format"] = fmt
    return {"quant_method": "compressed-tensors", "config_groups": {"group_0": g}}


def test_w8a8_dynamic_with_ignore_and_kv() -> None:
    desc = read(load("ct_w8a8_dynamic.json"))
    q = desc.resolve("model.layers.0.self_attn.q_proj", "Linear").quant
    assert q is not None and q.scheme is SchemeId.W8A8_DYNAMIC and q.weight.layout is Layout.CT_INT
    assert desc.resolve("lm_head", "Linear").quant is None
    assert desc.resolve("model.layers.0.mlp.gate", "Linear").quant is None
    assert desc.resolve("model.layers.0.mlp.gate", "Linear").origin == "/quantization_config/ignore"
    assert desc.resolve("model.norm", "RMSNorm").quant is None
    assert desc.kv_cache[0].element is ElementType.FP8_E4M3 and desc.kv_cache[0].scheme is None


@pytest.mark.parametrize(
    ("weights", "acts", "fmt", "scheme"),
    [
        ({"num_bits": 8, "type": "int", "strategy": "tensor"}, {"num_bits": 8, "type": "int", "strategy": "tensor"},
         "naive-quantized", SchemeId.W8A8_STATIC),
        ({"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128}, None, "pack-quantized",
         SchemeId.W4A16),
        ({"num_bits": 4, "type": "int", "strategy": "channel"},
         {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True}, "int-quantized", SchemeId.W4A8_DYNAMIC),
        ({"num_bits": 8, "type": "float", "strategy": "channel"},
         {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}, "float-quantized",
         SchemeId.W8A8_FP8_DYNAMIC),
        ({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16}, None,
         "nvfp4-pack-quantized", None),
        ({"num_bits": 3, "type": "int", "strategy": "group", "group_size": 128}, None, "pack-quantized", None),
    ],
)
def test_scheme_mapping(weights: dict[str, object], acts: dict[str, object] | None, fmt: str,
                        scheme: SchemeId | None) -> None:
    q = read(group(weights, acts, fmt)).resolve("x", "Linear").quant
    assert q is not None and q.scheme is scheme


def test_asymmetric_pack_quantized_is_signed_zero() -> None:
    q = read(group({"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 32},
                   None, "pack-quantized")).resolve("x", "Linear").quant
    assert q is not None and q.weight.zero_point is ZeroPoint.SIGNED and q.scheme is SchemeId.W4A16


def test_targets_exact_then_regex_then_class() -> None:
    desc = read(load("ct_mixed_w4a8.json"))
    shared = desc.resolve("model.layers.0.mlp.shared_expert.down_proj", "Linear").quant
    assert shared is not None and shared.scheme is SchemeId.W4A16
    e = desc.resolve("model.layers.0.mlp.experts.3.up_proj", "Linear").quant
    assert e is not None and e.scheme is SchemeId.W4A8_DYNAMIC and e.weight.granularity is Granularity.GROUP
    a = desc.resolve("model.layers.0.self_attn.o_proj", "Linear").quant
    assert a is not None and a.scheme is SchemeId.W8A8_DYNAMIC
    assert desc.resolve("model.layers.0.mlp.down_proj", "Linear").quant is None


def test_inferred_format_and_uppercase_type() -> None:
    q = read(group({"num_bits": 4, "type": "INT", "group_size": 128}, None)).resolve("x", "Linear").quant
    assert q is not None and q.weight.layout is Layout.CT_PACKED and q.weight.granularity is Granularity.GROUP


def test_newer_keys_parse_but_unknown_keys_are_refused() -> None:
    ok = group({"num_bits": 4, "type": "int", "group_size": 128, "scale_dtype": "torch.bfloat16",
                "zp_dtype": "torch.int8"}, None, "pack-quantized")
    q = read(ok).resolve("x", "Linear").quant
    assert q is not None and q.weight.scale_dtype == "bfloat16"
    with pytest.raises(InvalidCheckpoint) as exc:
        read(group({"num_bits": 4, "bogus": 1}, None))
    assert [(r.code, r.where) for r in exc.value.reasons] == [
        (Code.FORMAT_SCHEMA, "/quantization_config/config_groups/group_0/weights/bogus")]


def test_unknown_strategy_and_preset() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read(group({"num_bits": 4, "strategy": "diagonal"}, None))
    assert Code.FORMAT_UNKNOWN_VALUE in {r.code for r in exc.value.reasons}
    with pytest.raises(InvalidCheckpoint) as exc2:
        read({"config_groups": {"W9A9": ["Linear"]}})
    assert exc2.value.code is Code.FORMAT_UNKNOWN_VALUE


def test_sparse_only_is_rejected_by_name() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read({"quant_method": "compressed-tensors", "sparsity_config": {"format": "sparse-24-bitmask"}})
    assert exc.value.code is Code.FORMAT_UNSUPPORTED and "sparse-24-bitmask" in exc.value.reasons[0].message


def test_no_groups_is_a_note() -> None:
    desc = read({"quant_method": "compressed-tensors", "sparsity_config": {}})
    assert desc.rules == () and desc.findings[0].code is Code.FORMAT_NOTE


def test_example_round_trips_as_json() -> None:
    desc = read(load("ct_w8a8_dynamic.json"))
    assert json.loads(desc.model_dump_json())["format"] == "compressed_tensors"


W4A8_W = {"num_bits": 4, "type": "int", "strategy": "channel"}
W4A8_A = {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True}


def test_activation_use_clip_is_read_into_the_activation_spec_and_label() -> None:
    data = group(W4A8_W, W4A8_A, "int-quantized")
    groups = data["config_groups"]
    assert isinstance(groups, dict)
    groups["group_1"] = {**groups.pop("group_0"), "activation_use_clip": True}
    desc = read(data)
    q = desc.resolve("model.layers.0.mlp.experts.0.down_proj", "Linear").quant
    assert q is not None and q.activation is not None and q.activation.clip
    assert q.label.endswith(" activation_use_clip")
    assert not desc.findings


def test_activation_use_clip_outside_group_1_is_noted() -> None:
    data = group(W4A8_W, W4A8_A, "int-quantized")
    groups = data["config_groups"]
    assert isinstance(groups, dict)
    groups["group_0"]["activation_use_clip"] = False
    desc = read(data)
    q = desc.resolve("x.down_proj", "Linear").quant
    assert q is not None and q.activation is not None and not q.activation.clip
    assert [(f.code, f.message, f.where) for f in desc.findings] == [(
        Code.FORMAT_NOTE, "activation_use_clip is set on 'group_0'; SGLang reads it only from 'group_1'",
        "/quantization_config/config_groups/group_0/activation_use_clip")]
