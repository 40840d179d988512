"""ModelSlim quant_model_description.json: parsing, normalisation, findings."""

from __future__ import annotations

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import modelslim, read_description
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, SchemeId, ZeroPoint
from tests.formats.conftest import MakeDir

DESC = {
    "model_quant_type": "W8A8_DYNAMIC",
    "version": "1.0.0",
    "group_size": 0,
    "fa_quant_type": None,
    "metadata": {},
    "model.embed_tokens.weight": "FLOAT",
    "model.layers.0.self_attn.q_proj.weight": "W8A8",
    "model.layers.0.self_attn.q_proj.input_scale": "W8A8",
    "model.layers.0.self_attn.q_proj.deq_scale": "W8A8",
    "model.layers.0.mlp.down_proj.weight": "W8A8_DYNAMIC",
    "model.layers.0.mlp.experts.0.gate_proj.weight": "W4A8_DYNAMIC",
    "model.layers.0.mlp.gate.weight": "FLOAT",
    "lm_head.weight": "FLOAT",
}


def read(data: object, **kw: object) -> modelslim.CheckpointDescription:
    return modelslim.read(data, file="quant_model_description.json", source="quant_model_description.json")


def test_weight_entries_decide_the_scheme() -> None:
    desc = read(DESC)
    assert desc.format is FormatFamily.MODELSLIM
    assert desc.requires_entry
    q = desc.resolve("model.layers.0.self_attn.q_proj").quant
    assert q is not None and q.scheme is SchemeId.W8A8_STATIC
    assert q.weight.zero_point is ZeroPoint.FLOAT_OFFSET and q.weight.layout is Layout.MODELSLIM_INT8
    assert q.activation is not None and not q.activation.dynamic
    dyn = desc.resolve("model.layers.0.mlp.down_proj").quant
    assert dyn is not None and dyn.scheme is SchemeId.W8A8_DYNAMIC
    assert dyn.activation is not None and dyn.activation.granularity is Granularity.TOKEN
    w4 = desc.resolve("model.layers.0.mlp.experts.0.gate_proj").quant
    assert w4 is not None and w4.scheme is SchemeId.W4A8_DYNAMIC
    assert w4.weight.layout is Layout.MODELSLIM_INT4X2
    assert w4.weight.granularity is Granularity.CHANNEL
    res = desc.resolve("model.layers.0.mlp.gate")
    assert res.matched and res.quant is None
    assert res.origin == "/model.layers.0.mlp.gate.weight"


def test_missing_module_is_unmatched_not_float() -> None:
    res = read(DESC).resolve("model.layers.1.mlp.down_proj")
    assert not res.matched and res.quant is None


def test_header_in_extras_null_is_absent_and_all_tensors_declared() -> None:
    desc = read(DESC)
    assert desc.extras["model_quant_type"] == "W8A8_DYNAMIC"
    assert "fa_quant_type" not in desc.extras
    assert desc.producer_version == "1.0.0"
    assert desc.declared_tensors is not None
    assert "model.layers.0.self_attn.q_proj.deq_scale" in desc.declared_tensors
    assert len(desc.declared_tensors) == 8


def test_w4a8_old_version_is_int4() -> None:
    desc = read({"version": "0.1.0", "group_size": 128, "a.weight": "W4A8_DYNAMIC"})
    q = desc.resolve("a").quant
    assert q is not None and q.weight.layout is Layout.MODELSLIM_INT4
    assert q.weight.granularity is Granularity.GROUP and q.weight.group_size == 128


@pytest.mark.parametrize(
    ("label", "scheme", "element", "layout"),
    [
        ("W8A16", SchemeId.W8A16, ElementType.INT8, Layout.MODELSLIM_INT8),
        ("W4A4_DYNAMIC", SchemeId.W4A4_DYNAMIC, ElementType.INT4, Layout.MODELSLIM_INT4),
        ("W8A8_MXFP8", SchemeId.W8A8_MXFP8, ElementType.FP8_E4M3, Layout.MX_FP8),
        ("W4A8_MXFP", SchemeId.W4A8_MXFP, ElementType.FP4_E2M1, Layout.MX_FP4),
        ("W4A4_MXFP4", SchemeId.W4A4_MXFP4, ElementType.FP4_E2M1, Layout.MX_FP4),
        ("W8A8FP8_DYNAMIC", SchemeId.W8A8_FP8_DYNAMIC, ElementType.FP8_E4M3, Layout.MODELSLIM_INT8),
    ],
)
def test_label_mapping(label: str, scheme: SchemeId, element: ElementType, layout: Layout) -> None:
    q = read({"m.weight": label}).resolve("m").quant
    assert q is not None
    assert (q.scheme, q.weight.element, q.weight.layout, q.label) == (scheme, element, layout, label)


def test_mx_scale_is_e8m0_group_32() -> None:
    q = read({"group_size": 32, "m.weight": "W8A8_MXFP8"}).resolve("m").quant
    assert q is not None and q.weight.scale_dtype == "e8m0" and q.weight.group_size == 32
    assert q.activation is not None and q.activation.group_size == 32


def test_unknown_label_is_kept_and_reported() -> None:
    desc = read({"m.weight": "W3A5_FANCY", "n.weight": "W3A5_FANCY"})
    q = desc.resolve("m").quant
    assert q is not None and q.scheme is None and q.label == "W3A5_FANCY"
    assert [r.code for r in desc.findings] == [Code.FORMAT_UNKNOWN_VALUE]
    assert desc.findings[0].where == "/m.weight"


def test_known_unmapped_label_is_a_note_naming_the_recipe_option() -> None:
    desc = read({"m.weight": "W4A4_MXFP4_DUALSCALE", "n.weight": "W4A4_FLATQUANT_DYNAMIC"})
    q = desc.resolve("m").quant
    assert q is not None and q.scheme is None and q.weight.element is ElementType.INT4
    assert [r.code for r in desc.findings] == [Code.FORMAT_NOTE, Code.FORMAT_NOTE]
    assert desc.findings[0].hint == ("produced by weight scope 'dual_scale' (method 'dualscale'); use scope "
                                     "'per_block' for plain W4A4_MXFP4")
    assert desc.findings[1].hint is not None and "FlatQuant ('flatquant')" in desc.findings[1].hint


@pytest.mark.parametrize(("label", "scheme"), [
    ("WFP8AFP8_DYNAMIC", SchemeId.W8A8_FP8_DYNAMIC), ("W8A8FP8_DYNAMIC", SchemeId.W8A8_FP8_DYNAMIC),
    ("W8A8_MIX", SchemeId.W8A8_MIX),
])
def test_msmodelslim_labels_map_to_schemes(label: str, scheme: SchemeId) -> None:
    desc = read({"m.weight": label})
    q = desc.resolve("m").quant
    assert q is not None and q.scheme is scheme and q.label == label
    assert desc.findings == ()


def test_c8_and_fakquant_entries_become_kv_items() -> None:
    desc = read({
        "kv_cache_type": "C8",
        "fa_quant_type": "FAKQuant",
        "model.layers.0.self_attn.k_proj.weight": "FLOAT",
        "model.layers.0.self_attn.k_proj.kv_cache_scale": "W8A8",
        "model.layers.0.self_attn.v_proj.kv_cache_offset": "W8A8",
        "model.layers.1.self_attn.fa_k.scale": "FAKQuant",
        "model.layers.1.self_attn.fa_q.offset": "FAKQuant",
    })
    by_scheme = {k.scheme: k for k in desc.kv_cache}
    assert by_scheme[SchemeId.KV_C8].modules == ("model.layers.0.self_attn",)
    assert by_scheme[SchemeId.KV_C8].origin == "/kv_cache_type"
    assert by_scheme[SchemeId.FA_KQUANT].modules == ("model.layers.1.self_attn",)
    assert by_scheme[SchemeId.FA_KQUANT].label == "FAKQuant"
    assert desc.findings == ()


def test_c8_entries_without_header_are_noted() -> None:
    desc = read({"l.0.attn.k_proj.kv_cache_scale": "W8A8"})
    assert desc.kv_cache[0].scheme is SchemeId.KV_C8
    assert [r.code for r in desc.findings] == [Code.FORMAT_NOTE]


def test_diffusion_header_keys_kept() -> None:
    desc = read({"timestep_policy": {"w4a4_linear": "W4A8"}, "mxfp4_scale_alg": 2, "mxfp4_dst_type_max": 7.25,
                 "blocks.0.attn1.to_q.weight": "W4A4_MXFP4"})
    assert desc.extras["timestep_policy"] == {"w4a4_linear": "W4A8"}
    assert desc.extras["mxfp4_dst_type_max"] == 7.25


def test_wrong_header_type_is_a_pointer_error() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read({"group_size": "big", "version": 3, "m.weight": "W8A8"})
    wheres = {r.where: r.code for r in exc.value.reasons}
    assert wheres == {"/group_size": Code.FORMAT_WRONG_TYPE, "/version": Code.FORMAT_WRONG_TYPE}


def test_non_string_unknown_key_is_a_finding() -> None:
    desc = read({"max_layers": 3, "m.weight": "W8A8"})
    assert desc.extras["max_layers"] == 3
    assert desc.findings[0].code is Code.FORMAT_UNKNOWN_VALUE


def test_not_an_object() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read(["W8A8"])
    assert exc.value.code is Code.FORMAT_WRONG_TYPE


def test_read_description_from_folder(make_model: MakeDir) -> None:
    root = make_model({"quant_model_description.json": DESC, "config.json": {"model_type": "llama"}})
    desc = read_description(root)
    assert desc.source == "quant_model_description.json"
    assert desc.findings == ()


def test_legacy_map_inside_config_json(make_model: MakeDir) -> None:
    root = make_model({"config.json": {"quantization_config": {
        "lm_head.weight": "FLOAT", "group_size": 0, "kv_quant_type": None, "fa_quant_type": None,
        "w_bit": 8, "a_bit": 8, "is_dynamic": False, "model.layers.0.mlp.down_proj.weight": "W8A8",
    }}})
    desc = read_description(root)
    assert desc.format is FormatFamily.MODELSLIM and desc.source == "config.json"
    assert desc.extras["w_bit"] == 8 and "kv_quant_type" not in desc.extras
    assert desc.rules[0].origin == "/quantization_config/lm_head.weight"
