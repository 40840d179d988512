"""Planner units on hand-built descriptions and inventories (no files), plus TP and KV cases."""

from __future__ import annotations

from pathlib import Path

import pytest

import quantspec
from quantspec.checkpoint.inventory import Inventory, TensorInfo, read_inventory
from quantspec.description import (
    CheckpointDescription,
    KVCacheQuant,
    Matcher,
    QuantSpec,
    Resolver,
    Rule,
    WeightQuant,
)
from quantspec.formats import read_description
from quantspec.matrix import load_matrix
from quantspec.plan.model import LayerStatus, PlannedLayer
from quantspec.plan.planner import Planner
from quantspec.plan.verdict import Setting
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, NpuGen, SchemeId, ZeroPoint
from tests.plan.builders import Tensors, build_modelslim, llama_modules, ms_linear
from tests.plan.fixtures import FIXTURES

MATRIX = load_matrix()
DT = {"I8": "int8", "I32": "int32", "F32": "float32", "BF16": "bfloat16", "F16": "float16", "I64": "int64",
      "U8": "uint8", "F8_E4M3": "float8_e4m3fn"}


def _inv(tensors: Tensors) -> Inventory:
    return Inventory("safetensors", {n: TensorInfo(n, DT[d], s, "m.safetensors") for n, (d, s) in tensors.items()},
                     ("m.safetensors",))


def _awq(group: int, *, bits: int = 4) -> QuantSpec:
    return QuantSpec(scheme=SchemeId.W4A16 if bits == 4 else SchemeId.W8A16, label=f"awq g{group}",
                     weight=WeightQuant(element=ElementType.INT4, bits=bits, granularity=Granularity.GROUP,
                                        group_size=group, symmetric=False, zero_point=ZeroPoint.TRUE,
                                        layout=Layout.AWQ_GEMM))


def _plan(desc: CheckpointDescription, tensors: Tensors, *, target: NpuGen = NpuGen.A2, tp: int = 1,
          model_dtype: str | None = "float16", config: dict[str, object] | None = None) -> list[PlannedLayer]:
    setting = Setting(desc=desc, matrix=MATRIX, target=target, tp=tp, model_dtype=model_dtype, config=config or {})
    return Planner(setting, _inv(tensors)).plan()


def _awq_tensors(prefix: str, n: int, k: int, group: int) -> Tensors:
    ng = k // group
    return {f"{prefix}.qweight": ("I32", (k, n // 8)), f"{prefix}.qzeros": ("I32", (ng, n // 8)),
            f"{prefix}.scales": ("F16", (ng, n))}


def test_awq_group_16_is_rejected_with_the_rule() -> None:
    desc = CheckpointDescription(format=FormatFamily.AWQ, source="config.json", default=_awq(16))
    [layer] = _plan(desc, _awq_tensors("model.layers.0.mlp.down_proj", 64, 128, 16))
    assert layer.status is LayerStatus.REJECTED
    assert [r.code.value for r in layer.reasons] == ["plan.kernel_constraint"]
    assert layer.reasons[0].message == ("antiquant group size 16 must be a multiple of 32 with 32 <= group < K = 128 "
                                        "[rule antiquant_group of awq/w4a16/linear]")


def test_awq_tensor_contract_reports_every_failure() -> None:
    desc = CheckpointDescription(format=FormatFamily.AWQ, source="config.json", default=_awq(64))
    tensors = _awq_tensors("m.proj", 64, 128, 64)
    tensors["m.proj.qzeros"] = ("I8", (2, 8))
    tensors["m.proj.scales"] = ("F16", (3, 64))
    [layer] = _plan(desc, tensors)
    codes = sorted(r.code.value for r in layer.reasons)
    assert codes == ["tensor.dtype_mismatch", "tensor.shape_mismatch"]
    assert "m.proj.scales is [3, 64], expected [ng, N] = [2, 64]" in [r.message for r in layer.reasons]


def test_row_parallel_tp_must_keep_group_boundaries() -> None:
    desc = CheckpointDescription(format=FormatFamily.AWQ, source="config.json", default=_awq(64))
    [layer] = _plan(desc, _awq_tensors("model.layers.0.mlp.down_proj", 64, 384, 64), tp=4)
    assert any(r.code.value == "plan.tensor_parallel" and "K/tp = 96 is not a multiple of the group size 64"
               in r.message for r in layer.reasons)
    [ok] = _plan(desc, _awq_tensors("model.layers.0.mlp.down_proj", 64, 512, 64), tp=4)
    assert ok.status is LayerStatus.ACCEPTED


def test_column_parallel_tp_divisibility() -> None:
    desc = CheckpointDescription(format=FormatFamily.AWQ, source="config.json", default=_awq(64))
    [layer] = _plan(desc, _awq_tensors("model.layers.0.mlp.up_proj", 24, 128, 64), tp=2)
    assert any("splits packed int32 words" in r.message for r in layer.reasons)


def test_modelslim_module_without_entry_is_rejected() -> None:
    desc = CheckpointDescription(format=FormatFamily.MODELSLIM, source="quant_model_description.json",
                                 requires_entry=True)
    [layer] = _plan(desc, ms_linear("model.layers.0.mlp.down_proj", "W8A8_DYNAMIC", 64, 64))
    assert layer.reasons[0].code.value == "plan.no_scheme"
    assert layer.reasons[0].message == "model.layers.0.mlp.down_proj has no entry in quant_model_description.json"


def test_scheme_less_label_is_rejected() -> None:
    q = QuantSpec(scheme=None, label="W8A8_MIX", weight=WeightQuant(element=ElementType.INT8, bits=8,
                  granularity=Granularity.CHANNEL, layout=Layout.MODELSLIM_INT8))
    rule = Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("a.proj",)), quant=q, origin="/a.proj.weight")
    desc = CheckpointDescription(format=FormatFamily.MODELSLIM, source="d.json", rules=(rule,), requires_entry=True)
    [layer] = _plan(desc, ms_linear("a.proj", "W8A8_DYNAMIC", 64, 64))
    assert layer.reasons[0].message == "W8A8_MIX (modelslim) has no NPU scheme in quantspec"


def test_kv_c8_attention_layers(tmp_path: Path) -> None:
    mods = llama_modules(1, hidden=64, inter=128, vocab=256)
    labels = {m: "W8A8_DYNAMIC" for m, _, _ in mods if m not in ("model.embed_tokens", "lm_head")}
    extra: Tensors = {f"model.layers.0.self_attn.{p}_proj.kv_cache_{x}": ("F32", (32,)) for p in "kv"
                      for x in ("scale", "offset")}
    root = build_modelslim(tmp_path / "c8", mods, labels, extra=extra, header={"kv_cache_type": "C8"},
                           config={"model_type": "llama", "torch_dtype": "bfloat16"})
    strict = quantspec.plan(root, target="a3")
    attn = strict.layer("model.layers.0.self_attn")
    assert attn.kind.value == "attention" and attn.scheme is SchemeId.KV_C8
    assert [r.code.value for r in attn.reasons] == ["matrix.untested"]
    allowed = quantspec.plan(root, target="a3", allow_untested=True)
    ok = allowed.layer("model.layers.0.self_attn")
    assert ok.status is LayerStatus.ACCEPTED and len(ok.tensors) == 4 and ok.kv_cache is not None
    # the KV params are not part of the k_proj/v_proj linear
    assert not any("kv_cache" in t for t in allowed.layer("model.layers.0.self_attn.qkv_proj").tensors)


def test_kv_entry_for_an_attention_module_without_tensors() -> None:
    kv = KVCacheQuant(scheme=SchemeId.FA_KQUANT, label="FAKQuant", element=ElementType.INT8, bits=8,
                      granularity=Granularity.HEAD, modules=("model.layers.0.self_attn",), origin="/fa_quant_type")
    desc = CheckpointDescription(format=FormatFamily.MODELSLIM, source="d.json", kv_cache=(kv,))
    [layer] = _plan(desc, {}, target=NpuGen.A3)
    assert {r.code.value for r in layer.reasons} == {"matrix.untested", "tensor.missing"}


def _moe_tensors(experts: int, *, odd: int | None = None) -> Tensors:
    t: Tensors = {}
    for e in range(experts):
        for proj, n, k in (("gate_proj", 32, 64), ("up_proj", 32, 64), ("down_proj", 64, 32)):
            t.update(ms_linear(f"model.layers.1.mlp.experts.{e}.{proj}", "W8A8_DYNAMIC", n, k))
    if odd is not None:
        t[f"model.layers.1.mlp.experts.{odd}.down_proj.weight_scale"] = ("F32", (64, 2))
    return t


def _ms_desc(tensors: Tensors, label: str = "W8A8_DYNAMIC") -> CheckpointDescription:
    from quantspec.formats.modelslim import read

    data = {n: label for n in tensors}
    return read(data, file="d.json", source="d.json")


def test_every_expert_is_checked_not_only_expert_0() -> None:
    tensors = _moe_tensors(8, odd=5)
    w13, w2 = _plan(_ms_desc(tensors), tensors, config={"n_routed_experts": 8})
    assert w13.status is LayerStatus.ACCEPTED and w13.experts == tuple(range(8))
    assert w2.status is LayerStatus.REJECTED
    assert w2.reasons[0].message == (
        "down_proj tensors of experts 5 of model.layers.1.mlp.experts differ from expert 0: expert 5 weight_scale "
        "is float32 [64, 2], expert 0 has float32 [64, 1]")


def test_missing_experts_are_named() -> None:
    tensors = {n: v for n, v in _moe_tensors(4).items() if ".experts.2." not in n}
    w13, _ = _plan(_ms_desc(tensors), tensors, config={"num_experts": 4})
    assert w13.reasons[0].code.value == "tensor.missing"
    assert w13.reasons[0].message == "experts 2 of model.layers.1.mlp.experts (w13) are missing (4 expected)"


def test_w4a8_moe_max_tp(tmp_path: Path) -> None:
    builder, _ = FIXTURES["deepseek_moe_a3"]
    root = builder(tmp_path / "ds")
    plan = quantspec.plan(root, target="a3", tp=32)
    w13 = next(lay for lay in plan.layers if lay.kind.value == "moe_w13" and lay.label == "W4A8_DYNAMIC")
    assert "tensor-parallel size 32 exceeds 16 [rule max_tp of modelslim/w4a8_dynamic/moe]" in [
        r.message for r in w13.reasons]
    assert any(r.code.value == "plan.tensor_parallel" for r in w13.reasons)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_resolver_matches_description_resolve(name: str, tmp_path: Path) -> None:
    builder, _ = FIXTURES[name]
    root = builder(tmp_path / name)
    dirs = [p for p in root.iterdir() if p.is_dir() and any(p.glob("*.safetensors"))] if (
        root / "model_index.json").is_file() else [root]
    for d in dirs:
        desc = read_description(d)
        fast = Resolver(desc)
        modules = {n.rpartition(".")[0] for n in read_inventory(d).tensors}
        for m in sorted(modules):
            for cls in ("Linear", "Embedding", None):
                slow = desc.resolve(m, cls)
                got = fast.resolve(m, cls)
                assert (got.quant, got.matched, got.origin) == (slow.quant, slow.matched, slow.origin), m


def test_quantized_non_linear_module_is_rejected() -> None:
    tensors: Tensors = {"patch_embedding.weight": ("I8", (64, 16, 1, 2, 2)),
                        "patch_embedding.weight_scale": ("F32", (64, 1))}
    [layer] = _plan(_ms_desc(tensors), tensors)
    assert layer.kind.value == "other" and layer.status is LayerStatus.REJECTED
    assert layer.reasons[0].message == ("patch_embedding is W8A8_DYNAMIC in d.json but is not a linear, MoE or "
                                        "embedding layer: no NPU scheme runs it quantized")


def test_gguf_stacked_experts_need_gate_and_up(tmp_path: Path) -> None:
    from tests.formats.gguf_fixture import write_tiny_gguf

    (tmp_path / "g").mkdir()
    write_tiny_gguf(tmp_path / "g" / "m.gguf")
    plan = quantspec.plan(tmp_path / "g", target="a3")
    w13 = plan.layer("model.layers.0.mlp.experts")
    assert w13.kind.value == "moe_w13" and w13.experts == (0, 1)
    assert w13.reasons[0].message == ("model.layers.0.mlp.experts has no stacked up_proj tensor for w13 "
                                      "(found gate_proj)")


def test_mixtral_block_sparse_moe_naming() -> None:
    t: Tensors = {}
    for e in range(2):
        for proj, n, k in (("w1", 32, 64), ("w3", 32, 64), ("w2", 64, 32)):
            t.update(ms_linear(f"model.layers.0.block_sparse_moe.experts.{e}.{proj}", "W8A8_DYNAMIC", n, k))
    t.update(ms_linear("model.layers.0.block_sparse_moe.gate", "FLOAT", 2, 64, dtype="float16"))
    from quantspec.formats.modelslim import read

    labels = {n: "FLOAT" if ".gate." in n else "W8A8_DYNAMIC" for n in t}
    layers = _plan(read(labels, file="d.json", source="d.json"), t, config={"num_local_experts": 2})
    kinds = {(lay.name, lay.kind.value): lay for lay in layers}
    w13 = kinds[("model.layers.0.block_sparse_moe.experts", "moe_w13")]
    w2 = kinds[("model.layers.0.block_sparse_moe.experts", "moe_w2")]
    assert w13.shards == ("w1", "w3") and w2.shards == ("w2",) and (w13.n, w13.k) == (64, 64)
    assert kinds[("model.layers.0.block_sparse_moe.gate", "router")].status is LayerStatus.ACCEPTED


def test_mla_down_projection_is_replicated_under_tp(tmp_path: Path) -> None:
    """vLLM builds fused_qkv_a_proj with disable_tp=True: every rank holds it whole."""
    builder, _ = FIXTURES["deepseek_moe_a3"]
    plan = quantspec.plan(builder(tmp_path / "ds"), target="a3", tp=8)
    fused = plan.layer("model.layers.0.self_attn.fused_qkv_a_proj")
    assert fused.parallel is not None and fused.parallel.value == "replicated"
    assert (fused.n_local, fused.k_local) == (fused.n, fused.k) == (112, 64)
    o_proj = plan.layer("model.layers.0.self_attn.o_proj")
    assert o_proj.parallel is not None and o_proj.parallel.value == "row" and o_proj.k_local == o_proj.k // 8
    q_b = plan.layer("model.layers.0.self_attn.q_b_proj")
    assert q_b.parallel is not None and q_b.parallel.value == "column" and q_b.n_local == q_b.n // 8
