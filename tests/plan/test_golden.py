"""Golden plans: each fixture checkpoint's full plan JSON is compared with tests/golden/plan/.

Run ``pytest tests/plan --update-golden`` after an intended change and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import quantspec
from quantspec.plan.model import LayerStatus, Plan
from tests.plan.fixtures import FIXTURES

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"


def plan_fixture(name: str, tmp_path: Path) -> Plan:
    builder, kw = FIXTURES[name]
    return quantspec.plan(builder(tmp_path / name), **kw)


def _normalised(plan: Plan, tmp_path: Path) -> str:
    return plan.model_dump_json(indent=2).replace(str(tmp_path), "<tmp>") + "\n"


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_golden_plan(name: str, tmp_path: Path, update_golden: bool) -> None:
    text = _normalised(plan_fixture(name, tmp_path), tmp_path)
    Plan.model_validate_json(text)  # the JSON round-trips through the schema'd model
    golden = GOLDEN / f"{name}.json"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.is_file(), f"missing golden file {golden}; run pytest --update-golden"
    assert text == golden.read_text(encoding="utf-8"), f"plan of {name} differs from {golden}"


def _by_name(plan: Plan) -> dict[tuple[str, str], object]:
    return {(layer.name, layer.kind.value): layer for layer in plan.layers}


def test_dense_w8a8_dynamic_accepts_every_layer(tmp_path: Path) -> None:
    plan = plan_fixture("dense_w8a8_dynamic_a3", tmp_path)
    assert plan.accepted
    qkv = plan.layer("model.layers.0.self_attn.qkv_proj")
    assert qkv.shards == tuple(f"model.layers.0.self_attn.{p}_proj" for p in "qkv")
    assert qkv.executable == "ModelSlimW8A8Dynamic"
    assert "cast weight to FRACTAL_NZ" in qkv.transforms
    assert qkv.quant is not None and qkv.quant.label == "W8A8_DYNAMIC"
    assert plan.layer("lm_head").label == "FLOAT" and plan.layer("lm_head").executable == "FloatTensors"
    assert plan.summary.by_scheme["W8A8_DYNAMIC"].accepted == 8


@pytest.mark.parametrize(("name", "deq"), [("w8a8_static_fp16_a2", "int64"), ("w8a8_static_bf16_a2", "float32")])
def test_w8a8_static_deq_scale_follows_model_dtype(name: str, deq: str, tmp_path: Path) -> None:
    plan = plan_fixture(name, tmp_path)
    assert plan.accepted
    layer = plan.layer("model.layers.0.self_attn.o_proj")
    assert layer.executable == "ModelSlimW8A8Static"
    assert "model.layers.0.self_attn.o_proj.deq_scale" in layer.tensors


def test_w8a8_static_wrong_deq_scale_dtype_is_rejected(tmp_path: Path) -> None:
    builder, _ = FIXTURES["w8a8_static_fp16_a2"]
    root = builder(tmp_path / "m")
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**config, "torch_dtype": "bfloat16"}))
    plan = quantspec.plan(root, target="a2")
    layer = plan.layer("model.layers.0.self_attn.o_proj")
    assert layer.status is LayerStatus.REJECTED
    messages = [r.message for r in layer.reasons]
    assert messages == ["model.layers.0.self_attn.o_proj.deq_scale is int64, expected float32 for a bfloat16 model"]
    assert layer.reasons[0].code.value == "tensor.dtype_mismatch"


def test_deepseek_moe(tmp_path: Path) -> None:
    plan = plan_fixture("deepseek_moe_a3", tmp_path)
    assert plan.accepted, [r.render() for layer in plan.rejected_layers() for r in layer.reasons]
    layers = _by_name(plan)
    w13 = plan.layers[next(i for i, lay in enumerate(plan.layers)
                       if lay.name == "model.layers.1.mlp.experts" and lay.kind.value == "moe_w13")]
    assert w13.label == "W4A8_DYNAMIC" and w13.executable == "W4A8Experts"
    assert w13.experts == (0, 1, 2, 3) and w13.shards == ("gate_proj", "up_proj")
    assert len(w13.tensors) == 4 * 2 * 4  # weight, scale, offset, scale_bias of gate and up, for 4 experts
    w2 = layers[("model.layers.1.mlp.experts", "moe_w2")]
    assert w2.label == "W8A8_DYNAMIC" and w2.executable == "Int8DynamicExperts"  # type: ignore[attr-defined]
    mtp = layers[("model.layers.3.mlp.experts", "moe_w13")]
    assert mtp.label == "FLOAT" and mtp.executable == "FloatExperts"  # type: ignore[attr-defined]
    fused = plan.layer("model.layers.0.self_attn.fused_qkv_a_proj")
    assert [w.code.value for w in fused.warnings] == ["plan.fallback"]
    assert "keep weight ND (not NZ-aligned)" in fused.transforms
    assert plan.layer("model.layers.1.mlp.gate").kind.value == "router"


def test_expert_mismatch_names_the_odd_expert(tmp_path: Path) -> None:
    plan = plan_fixture("expert_mismatch_a3", tmp_path)
    w2 = next(lay for lay in plan.layers if lay.kind.value == "moe_w2")
    assert w2.status is LayerStatus.REJECTED
    assert [r.code.value for r in w2.reasons] == ["plan.expert_mismatch"]
    assert w2.reasons[0].message == (
        "experts of model.layers.0.mlp.experts (w2) disagree: 3 of 4 experts are W8A8_DYNAMIC; "
        "expert 2 (down_proj W8A8)")


def test_fused_shard_mismatch_names_each_shard(tmp_path: Path) -> None:
    plan = plan_fixture("shard_mismatch_a3", tmp_path)
    layer = plan.layer("model.layers.0.self_attn.qkv_proj")
    assert layer.status is LayerStatus.REJECTED and layer.label == "mixed"
    assert layer.reasons[0].code.value == "plan.shard_mismatch"
    assert layer.reasons[0].message == (
        "shards of fused layer model.layers.0.self_attn.qkv_proj disagree: q_proj is W8A8, "
        "k_proj is W8A8_DYNAMIC, v_proj is W8A8_DYNAMIC")


def test_mxfp8_on_a3_is_rejected_naming_generation_and_rule(tmp_path: Path) -> None:
    plan = plan_fixture("mxfp8_a3", tmp_path)
    layer = plan.layer("model.layers.0.mlp.down_proj")
    assert layer.status is LayerStatus.REJECTED
    assert layer.reasons[0].code.value == "matrix.unsupported"
    assert layer.reasons[0].where == "model.layers.0.mlp.down_proj"
    assert layer.reasons[0].message == (
        "w8a8_mxfp8 linear (modelslim) is unsupported on a3 (support matrix 2026.12.0); "
        "requires Ascend A5, CANN >= 8.0.RC3, torch_npu >= 2.9")


def test_mxfp8_on_a5_needs_allow_untested(tmp_path: Path) -> None:
    builder, _ = FIXTURES["mxfp8_a3"]
    root = builder(tmp_path / "m")
    strict = quantspec.plan(root, target="a5")
    layer = strict.layer("model.layers.0.mlp.down_proj")
    assert [r.code.value for r in layer.reasons] == ["matrix.in_progress"]
    assert layer.reasons[0].hint == "pass --allow-untested to accept untested and in-progress cells"
    allowed = quantspec.plan(root, target="a5", allow_untested=True)
    assert allowed.accepted and allowed.policy.allow_untested
    ok = allowed.layer("model.layers.0.mlp.down_proj")
    assert ok.executable == "ModelSlimMxFp8"
    assert ok.warnings[0].message.endswith("accepted by --allow-untested")


def test_gptq_act_order_is_accepted_with_permutation(tmp_path: Path) -> None:
    plan = plan_fixture("gptq_act_order_a2", tmp_path)
    assert plan.accepted
    layer = plan.layer("model.layers.0.mlp.down_proj")
    assert layer.executable == "WeightOnlyLinear"
    assert "permute K by g_idx (act-order)" in layer.transforms
    assert layer.quant is not None and layer.quant.weight.act_order


def test_awq_group_64(tmp_path: Path) -> None:
    plan = plan_fixture("awq_g64_a2", tmp_path)
    assert plan.accepted
    layer = plan.layer("model.layers.0.mlp.gate_up_proj")
    assert layer.executable == "WeightOnlyLinear" and layer.quant is not None and layer.quant.weight.group_size == 64
    assert (layer.n, layer.k) == (512, 128)


def test_ct_w4a16_moe_with_ignore_list(tmp_path: Path) -> None:
    plan = plan_fixture("ct_w4a16_moe_a3", tmp_path)
    assert plan.accepted
    kinds = {(lay.name, lay.kind.value): lay for lay in plan.layers}
    assert kinds[("model.layers.0.mlp.experts", "moe_w13")].executable == "WeightOnlyExperts"
    assert plan.layer("model.layers.0.self_attn.qkv_proj").label == "FLOAT"
    assert plan.layer("model.layers.0.mlp.gate").label == "FLOAT"


def test_gguf_dequantizes_at_load(tmp_path: Path) -> None:
    plan = plan_fixture("gguf_a3", tmp_path)
    assert plan.accepted and plan.format.value == "gguf"
    emb = plan.layer("model.embed_tokens")
    assert emb.executable == "FloatTensors"
    assert emb.warnings[0].message == "GGUF is dequantized to bf16 at load: no memory saving [rule dequant_at_load]"


def test_quantized_embedding_is_rejected(tmp_path: Path) -> None:
    plan = plan_fixture("quantized_embedding_a3", tmp_path)
    emb = plan.layer("model.embed_tokens")
    assert emb.status is LayerStatus.REJECTED
    assert [(r.code.value, r.message) for r in emb.reasons] == [
        ("plan.quantized_embedding", "quantized embeddings are not supported")]


def test_pipeline_components_are_planned(tmp_path: Path) -> None:
    plan = plan_fixture("wan_pipeline_a3", tmp_path)
    assert plan.domain.value == "diffusion" and plan.accepted
    assert [c.name for c in plan.components] == ["text_encoder", "transformer"]
    layer = plan.layer("transformer/blocks.0.attn1.to_q")
    assert layer.component == "transformer" and layer.module == "blocks.0.attn1.to_q"
    assert layer.executable == "ModelSlimW8A8Dynamic"


#: Fixtures whose plan rejects layers by design (nothing to load).
REJECTING = {"expert_mismatch_a3", "mxfp8_a3", "quantized_embedding_a3", "shard_mismatch_a3"}


@pytest.mark.parametrize("name", sorted(set(FIXTURES) - REJECTING))
def test_golden_fixture_loads_as_planned(name: str, tmp_path: Path) -> None:
    """Every accepted layer of every golden plan loads as the executable the plan names (the fixtures
    hold zeros for planning; they are given plausible data first)."""
    import torch

    from testkit.fill import fill_plausible
    from testkit.follow import mismatches

    builder, kw = FIXTURES[name]
    root = builder(tmp_path / name)
    plan = quantspec.plan(root, **kw)
    assert plan.accepted
    fill_plausible(root)
    # a float32 model dtype (Wan's components, inferred from float32 tensors) runs in bf16 on the NPU
    dtype = torch.bfloat16 if plan.model_dtype in (None, "float32") else None
    qm = quantspec.load_plan(plan, device="cpu", dtype=dtype, progress=False)
    assert mismatches(qm) == []


@pytest.mark.parametrize("name", sorted(REJECTING))
def test_rejecting_fixtures_reject(name: str, tmp_path: Path) -> None:
    assert not plan_fixture(name, tmp_path).accepted
