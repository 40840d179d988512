"""Expert parallelism (--ep): placement of the routed experts and the engines' rules, as data."""

from __future__ import annotations

from pathlib import Path

import pytest

import quantspec
from quantspec.cli.main import main as cli
from quantspec.errors import InvalidInput
from quantspec.plan.parallel import CHECKERS, EpRuleId, load_rules, placement
from quantspec.vocab import LayerKind, NpuGen, ParallelMode
from tests.plan.builders import build_modelslim

H, INTER = 64, 32


def _moe(root: Path, experts: int) -> Path:
    """One MoE layer of ``experts`` W8A8_DYNAMIC routed experts (Qwen3-MoE names), a float router."""
    mods, labels, groups = [], {}, {}
    for e in range(experts):
        for proj, n, k in (("gate_proj", INTER, H), ("up_proj", INTER, H), ("down_proj", H, INTER)):
            name = f"model.layers.0.mlp.experts.{e}.{proj}"
            mods.append((name, n, k))
            labels[name] = "W8A8_DYNAMIC"
            groups[name] = "w2" if proj == "down_proj" else "w13"
    mods.append(("model.layers.0.mlp.gate", experts, H))
    return build_modelslim(root, mods, labels, moe_groups=groups,
                           config={"model_type": "qwen3_moe", "torch_dtype": "bfloat16", "num_experts": experts})


def test_every_rule_has_data_and_a_checker() -> None:
    assert sorted(r.id for r in load_rules().rules) == sorted(EpRuleId) == sorted(CHECKERS)


def test_vllm_linear_expert_map() -> None:
    assert placement(256, 16) == (16,) * 16
    assert placement(256, 7) == (37, 37, 37, 37, 36, 36, 36)


def test_ep_16_on_256_experts_places_16_per_rank(tmp_path: Path) -> None:
    plan = quantspec.plan(_moe(tmp_path / "m", 256), target="a3", tp=1, ep=16)
    assert plan.accepted and plan.ep == 16
    moe = [la for la in plan.layers if la.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2)]
    assert moe and all(la.experts_per_rank == (16,) * 16 and la.parallel is ParallelMode.EXPERT for la in moe)
    w13 = next(la for la in moe if la.kind is LayerKind.MOE_W13)
    assert (w13.n_local, w13.k_local) == (w13.n, w13.k)  # experts whole on their rank
    # tp=1 is not a multiple of ep=16: SGLang's moe_tp rule is named (vLLM-Ascend runs EP over tp x dp)
    assert [w.code.value for w in w13.warnings] == ["plan.expert_parallel"]


def test_ep_7_on_256_experts_names_the_uneven_split_and_the_engines(tmp_path: Path) -> None:
    plan = quantspec.plan(_moe(tmp_path / "m", 256), target="a3", tp=7, ep=7)
    w13 = next(la for la in plan.layers if la.kind is LayerKind.MOE_W13)
    assert plan.accepted and w13.experts_per_rank == (37, 37, 37, 37, 36, 36, 36)
    assert {w.code.value for w in w13.warnings} == {"plan.expert_parallel"}
    rules = sorted(w.message.split("[rule ")[1].split(",")[0] for w in w13.warnings)
    assert rules == ["ep_even_split", "mc2_expert_split", "mc2_tp_domain"]  # tp 7 > MC2's TP domain of 2 on a3
    w = next(w for w in w13.warnings if "ep_even_split" in w.message)
    assert w.message == ("256 experts over ep=7 do not split evenly: 4 ranks hold 37 and 3 hold 36 "
                         "[rule ep_even_split, SGLang]")
    assert w.hint is not None and "vLLM-Ascend's linear expert map puts the remainder on the first ranks" in w.hint


def test_mc2_limits_per_generation(tmp_path: Path) -> None:
    from quantspec.plan.parallel import EpContext, check_ep

    def rules(**kw: object) -> list[str]:
        ctx = EpContext(**{"experts": 256, "ep": 16, "tp": 1, **kw})  # type: ignore[arg-type]
        found = (w.message.split("[rule ")[1].split(",")[0] for w in check_ep("m", ctx)[1])
        return sorted(r for r in found if r.startswith("mc2"))

    assert rules(target=NpuGen.A3, hidden=7168, top_k=8) == []  # DeepSeek-V3 on A3: MC2 applies
    assert rules(target=NpuGen.A3, hidden=4096, top_k=8) == ["mc2_hidden"]
    assert rules(target=NpuGen.A2, hidden=7168, top_k=8) == []
    assert rules(target=NpuGen.A2, hidden=8192, top_k=16) == ["mc2_hidden"]
    assert rules(target=NpuGen.A3, hidden=7168, top_k=9) == ["mc2_top_k"]
    assert rules(target=NpuGen.A2, hidden=7168, top_k=8, tp=16) == ["mc2_tp_domain"]


def test_more_ranks_than_experts_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _moe(tmp_path / "m", 8)
    assert cli(["plan", str(root), "--target", "a3", "--tp", "16", "--ep", "16"]) == 1
    out = capsys.readouterr().out
    assert "8 routed experts cannot fill ep=16 ranks [rule ep_at_most_experts" in out
    assert "target a3, tp 16, ep 16" in out


def test_an_ep_plan_with_tp_is_not_loaded_silently(tmp_path: Path) -> None:
    plan = quantspec.plan(_moe(tmp_path / "m", 16), target="a3", tp=2, ep=2)
    with pytest.raises(InvalidInput) as err:
        quantspec.load_plan(plan, device="cpu", progress=False)
    assert err.value.reasons[0].message == ("the plan combines tp=2 with ep=2; expert-parallel loading runs with tp 1 "
                                            "in this quantspec")


def test_ep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        quantspec.plan(_moe(tmp_path / "m", 4), target="a3", ep=0)
