"""Routers planned as the engines build them, and what a module's tensors settle (int4 storage, groups)."""

from __future__ import annotations

from pathlib import Path

import pytest

import quantspec
from quantspec.plan.model import LayerStatus, PlannedLayer
from quantspec.plan.refine import refine
from quantspec.vocab import FormatFamily, Granularity, Layout, NpuGen
from tests.plan.builders import Tensors, ms_linear
from tests.plan.test_planner import DT, _moe_tensors, _ms_desc, _plan

ROUTER = "model.layers.1.mlp.gate"


def _router_layer(tensors: Tensors, labels: dict[str, str]) -> PlannedLayer:
    from quantspec.formats.modelslim import read

    desc = read({**{n: "W8A8_DYNAMIC" for n in tensors}, **labels}, file="d.json", source="d.json")
    layers = _plan(desc, tensors, target=NpuGen.A3, config={"num_experts": 4})
    return next(layer for layer in layers if layer.name == ROUTER)


def test_float_router_named_quantized_plans_float_with_a_note() -> None:
    tensors = {**_moe_tensors(4), f"{ROUTER}.weight": ("BF16", (4, 64))}
    layer = _router_layer(tensors, {f"{ROUTER}.weight": "W8A8_DYNAMIC"})
    assert layer.status is LayerStatus.ACCEPTED and layer.label == "FLOAT" and layer.executable == "FloatTensors"
    assert [w.message for w in layer.warnings] == [
        "d.json names router model.layers.1.mlp.gate W8A8_DYNAMIC, but its weight is stored bfloat16: planned "
        "float, as the engines build routers (quant_config=None)"]


def test_router_without_an_entry_plans_float() -> None:
    tensors = {**_moe_tensors(4), f"{ROUTER}.weight": ("BF16", (4, 64))}
    from quantspec.formats.modelslim import read

    desc = read({n: "W8A8_DYNAMIC" for n in tensors if not n.startswith(ROUTER)}, file="d.json", source="d.json")
    layer = next(la for la in _plan(desc, tensors, target=NpuGen.A3) if la.name == ROUTER)
    assert layer.status is LayerStatus.ACCEPTED and not layer.warnings


def test_quantized_router_is_rejected_with_the_exclusion_hint() -> None:
    tensors = {**_moe_tensors(4), **ms_linear(ROUTER, "W8A8_DYNAMIC", 4, 64)}
    layer = _router_layer(tensors, {})
    assert layer.status is LayerStatus.REJECTED
    [r] = layer.reasons
    assert r.code.value == "plan.quantized_router"
    assert r.message == (
        "router model.layers.1.mlp.gate is quantized (weight int8, weight_offset, weight_scale); vLLM-Ascend and "
        "SGLang build MoE routers unquantized and cannot load it")
    assert r.hint is not None and "'*mlp.gate'" in r.hint


def test_e_score_correction_bias_belongs_to_the_router() -> None:
    tensors = {**_moe_tensors(4), f"{ROUTER}.weight": ("BF16", (4, 64)),
               f"{ROUTER}.e_score_correction_bias": ("F32", (4,))}
    layer = _router_layer(tensors, {})
    assert layer.tensors == (f"{ROUTER}.weight", f"{ROUTER}.e_score_correction_bias")
    assert layer.bytes_after_load == 4 * 64 * 2 + 4 * 4


# ----------------------------------------------------------------------------- refine


def _params(tensors: Tensors, module: str) -> dict[str, object]:
    from quantspec.checkpoint.inventory import TensorInfo

    return {n[len(module) + 1:]: TensorInfo(n, DT[d], s, "m") for n, (d, s) in tensors.items()}


@pytest.mark.parametrize(("rows", "layout"), [(32, Layout.MODELSLIM_INT4X2), (64, Layout.MODELSLIM_INT4)])
def test_int4_storage_comes_from_the_tensors(rows: int, layout: Layout) -> None:
    m = "model.layers.0.mlp.experts.0.gate_proj"
    tensors: Tensors = {f"{m}.weight": ("I8", (rows, 128)), f"{m}.weight_scale": ("F32", (64, 1))}
    desc = _ms_desc(tensors, "W4A8_DYNAMIC")  # no version: the one-int4-per-byte layout by default
    quant = desc.resolve(m).quant
    out, notes = refine(quant, FormatFamily.MODELSLIM, m, _params(tensors, m))  # type: ignore[arg-type]
    assert out is not None and out.weight.layout is layout
    assert len(notes) == (1 if layout is Layout.MODELSLIM_INT4X2 else 0)


def test_legacy_w4a8_group_is_inferred_from_weight_scale_second() -> None:
    m = "model.layers.0.mlp.experts.0.gate_proj"
    tensors: Tensors = {f"{m}.weight": ("I8", (64, 1024)), f"{m}.weight_scale": ("F32", (64, 1)),
                        f"{m}.weight_scale_second": ("F32", (64, 4)), f"{m}.weight_offset_second": ("I64", (64, 4))}
    quant = _ms_desc(tensors, "W4A8_DYNAMIC").resolve(m).quant
    assert quant is not None and quant.weight.group_size is None
    out, [note] = refine(quant, FormatFamily.MODELSLIM, m, _params(tensors, m))  # type: ignore[arg-type]
    assert out is not None and out.weight.group_size == 256 and out.weight.granularity is Granularity.GROUP
    assert note.message == (f"group size 256 inferred from {m}.weight_scale_second [64, 4] (K = 1024); the "
                            "description has no group_size (a legacy old-API W4A8 export)")


def test_legacy_w4a8_moe_plans_with_the_inferred_group_and_kernel_rule() -> None:
    t: Tensors = {}
    for e in range(4):
        for proj, n, k in (("gate_proj", 64, 512), ("up_proj", 64, 512), ("down_proj", 512, 64)):
            p = f"model.layers.1.mlp.experts.{e}.{proj}"
            ng = k // 64 if proj != "down_proj" else 1
            t.update({f"{p}.weight": ("I8", (n, k)), f"{p}.weight_scale": ("F32", (n, 1)),
                      f"{p}.weight_offset": ("F32", (n, 1)), f"{p}.weight_scale_second": ("F32", (n, ng)),
                      f"{p}.weight_offset_second": ("I64", (n, ng))})
    w13, w2 = _plan(_ms_desc(t, "W4A8_DYNAMIC"), t, target=NpuGen.A3, config={"num_experts": 4})
    assert w13.status is LayerStatus.REJECTED
    assert [r.message for r in w13.reasons] == [
        "per-group A8W4 needs group size 256, got 64 [rule a8w4_group of modelslim/w4a8_dynamic/moe]"]
    # w2: one group of K (weight_scale_second [N, 1]): per channel, the second scale read and folded
    assert w2.status is LayerStatus.ACCEPTED
    assert "model.layers.1.mlp.experts.0.down_proj.weight_scale_second" in w2.tensors


def test_mixtral_gptq_act_order_without_a_module_list_keeps_float_routers(tmp_path: Path) -> None:
    """A GPTQ config with no modules_in_block_to_quantize covers every Linear, the router too; the
    engines build routers unquantized and AutoGPTQ never quantizes them: all layers accepted on a2."""
    from tests.plan.fixtures import _float, _gptq, _hf

    h, inter, p = 256, 512, "model.layers.0"
    tensors: Tensors = {**_float("model.embed_tokens", 512, h, "float16"), **_float("lm_head", 512, h, "float16"),
                        **_float(f"{p}.block_sparse_moe.gate", 4, h, "float16")}
    for x in "qkvo":
        tensors.update(_gptq(f"{p}.self_attn.{x}_proj", h, h, 128))
    for e in range(4):
        for w, n, k in (("w1", inter, h), ("w3", inter, h), ("w2", h, inter)):
            tensors.update(_gptq(f"{p}.block_sparse_moe.experts.{e}.{w}", n, k, 128))
    tensors.update({f"{p}.input_layernorm.weight": ("F16", (h,)), f"{p}.post_attention_layernorm.weight": ("F16", (h,)),
                    "model.norm.weight": ("F16", (h,))})
    qcfg = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": True}
    config = {"model_type": "mixtral", "torch_dtype": "float16", "num_hidden_layers": 1, "hidden_size": h,
              "num_local_experts": 4}
    plan = quantspec.plan(_hf(tmp_path / "mixtral", tensors, qcfg, config), target="a2")
    assert plan.accepted, [(la.name, [r.message for r in la.reasons]) for la in plan.rejected_layers()]
    router = plan.layer(f"{p}.block_sparse_moe.gate")
    assert router.kind.value == "router" and router.label == "FLOAT" and not router.warnings
