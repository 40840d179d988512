"""Known producer defects: data bound to checkers, each identified and named with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import quantspec
from quantspec.errors import InvalidInput
from quantspec.plan.defects import CHECKERS, REPAIRS, load_defects
from quantspec.plan.model import LayerStatus
from quantspec.vocab import DefectId, ZeroPoint
from tests.plan.builders import build_modelslim
from tests.plan.fixtures import deepseek_moe


def test_every_defect_has_data_and_a_checker() -> None:
    ids = [d.id for d in load_defects().defects]
    assert sorted(ids) == sorted(DefectId) == sorted(CHECKERS)
    assert len(ids) == len(set(ids))
    assert sorted(d.id for d in load_defects().defects if d.repair) == sorted(REPAIRS)


def _old_api_deepseek(root: Path) -> Path:
    """The DeepSeek fixture as msModelSlim's old API writes it: no version header, no router buffers."""
    deepseek_moe(root)
    desc_path = root / "quant_model_description.json"
    desc = json.loads(desc_path.read_text())
    del desc["version"]
    desc_path.write_text(json.dumps(desc))
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**config, "topk_method": "noaux_tc"}))
    index = json.loads((root / "quant_model_weights.safetensors.index.json").read_text())
    for name in [n for n in index["weight_map"] if n.endswith("e_score_correction_bias")]:
        del index["weight_map"][name]
    (root / "quant_model_weights.safetensors.index.json").write_text(json.dumps(index))
    return root


def test_old_api_drops_router_buffers(tmp_path: Path) -> None:
    root = _old_api_deepseek(tmp_path / "ds")
    plan = quantspec.plan(root, target="a3", allow_untested=True)
    routers = [layer for layer in plan.layers if layer.kind.value == "router"]
    assert routers and all(r.status is LayerStatus.REJECTED for r in routers)
    [r] = routers[0].reasons
    assert r.code.value == "plan.producer_defect"
    assert r.message.startswith("msModelSlim defect msmodelslim_drops_router_buffers: msModelSlim saves module "
                                "parameters, not buffers")
    assert r.hint is not None and "e_score_correction_bias from the float checkpoint" in r.hint


def test_v1_float_model_quant_type_is_a_finding(tmp_path: Path) -> None:
    mods = [(f"model.layers.1.mlp.experts.{e}.{p}", n, k) for e in range(2)
            for p, n, k in (("gate_proj", 64, 64), ("up_proj", 64, 64), ("down_proj", 64, 64))]
    root = build_modelslim(tmp_path / "m", mods, {m: "W4A8_DYNAMIC" for m, _, _ in mods},
                           config={"model_type": "qwen3_moe", "torch_dtype": "bfloat16", "num_experts": 2},
                           header={"model_quant_type": "FLOAT", "version": "1.0.0", "group_size": 0},
                           moe_groups={m: ("w2" if m.endswith("down_proj") else "w13") for m, _, _ in mods})
    plan = quantspec.plan(root, target="a3")
    [f] = [f for f in plan.findings if f.code.value == "plan.producer_defect"]
    assert "msmodelslim_v1_float_model_quant_type" in f.message
    assert f.hint == ('set model_quant_type to "W4A8_DYNAMIC" in quant_model_description.json '
                      "(the per-tensor labels are right)")


@pytest.mark.parametrize(("version", "flagged"), [("0.12.3", False), ("0.13.0", True), ("0.15.1", True),
                                                  ("0.16.0", False)])
def test_auto_round_model_free_asym_zero_point(tmp_path: Path, version: str, flagged: bool) -> None:
    from tests.plan.fixtures import _float, _gptq, _hf

    h = 256
    tensors = {**_float("model.embed_tokens", 512, h, "float16"), **_float("lm_head", 512, h, "float16"),
               **_gptq("model.layers.0.self_attn.o_proj", h, h, 32)}
    qcfg = {"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4, "group_size": 32, "sym": False,
            "iters": 0, "model_free": True, "autoround_version": version}
    config = {"model_type": "llama", "torch_dtype": "float16", "num_hidden_layers": 1, "hidden_size": h}
    root = _hf(tmp_path / "m", tensors, qcfg, config)
    plan = quantspec.plan(root, target="a2")
    layer = plan.layer("model.layers.0.self_attn.o_proj")
    codes = [r.code.value for r in layer.reasons]
    assert ("plan.producer_defect" in codes) is flagged
    if flagged:
        assert layer.reasons[-1].hint == (
            "re-export with auto-round >= 0.16.0, or without model-free mode (--disable_model_free), or symmetric "
            "weights; or plan and load with --producer-fix auto_round_model_free_asym_zero_point")
    # The explicit repair: accepted, zero points decoded as stored + 1, and the plan says so.
    fixed = quantspec.plan(root, target="a2", producer_fixes=["auto_round_model_free_asym_zero_point"])
    assert fixed.policy.producer_fixes == (DefectId.AUTO_ROUND_MODEL_FREE_ASYM_ZERO_POINT,)
    layer = fixed.layer("model.layers.0.self_attn.o_proj")
    assert layer.status is LayerStatus.ACCEPTED and layer.quant is not None
    assert layer.quant.weight.zero_point is (ZeroPoint.MINUS_ONE if flagged else ZeroPoint.TRUE)
    repaired = [w.message for w in layer.warnings if w.code.value == "plan.producer_defect"]
    assert repaired == ([
        "auto-round defect auto_round_model_free_asym_zero_point repaired by --producer-fix: every zero point is "
        "decoded as stored + 1 (the auto_round:auto_gptq convention the exporter used)"] if flagged else [])
    assert (layer.transforms[-1] == "zeros + 1 (--producer-fix auto_round_model_free_asym_zero_point)") is flagged


def test_producer_fix_names_only_repairable_defects(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        quantspec.plan(tmp_path, target="a2", producer_fixes=["msmodelslim_drops_router_buffers"])
    [r] = err.value.reasons
    assert r.code.value == "input.usage"
    assert r.message == "--producer-fix: 'msmodelslim_drops_router_buffers' is not a repairable producer defect"
    assert r.hint == "one of: auto_round_model_free_asym_zero_point (see docs/planner.md, producer defects)"
