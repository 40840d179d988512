"""Known producer defects: data bound to checkers, each identified and named with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import quantspec
from quantspec.plan.defects import CHECKERS, DefectId, load_defects
from quantspec.plan.model import LayerStatus
from tests.plan.builders import build_modelslim
from tests.plan.fixtures import deepseek_moe


def test_every_defect_has_data_and_a_checker() -> None:
    ids = [d.id for d in load_defects().defects]
    assert sorted(ids) == sorted(DefectId) == sorted(CHECKERS)
    assert len(ids) == len(set(ids))


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
