"""Per-rank memory: weights as placed, the KV cache from config.json, the reserve, the device."""

from __future__ import annotations

from pathlib import Path

import pytest

import quantspec
from quantspec.cli.main import main as cli
from quantspec.plan.memory import GIB, RESERVE_BYTES, kv_bytes_per_token
from quantspec.vocab import ParallelMode
from tests.plan.fixtures import deepseek_moe
from tests.plan.test_expert_parallel import _moe


@pytest.mark.parametrize(("tp", "ep"), [(1, 1), (2, 1), (4, 1), (2, 2), (1, 4)])
def test_weights_over_ranks_are_the_model_plus_its_replicated_copies(tmp_path: Path, tp: int, ep: int) -> None:
    plan = quantspec.plan(deepseek_moe(tmp_path / "m"), target="a3", tp=tp, ep=ep, allow_untested=True)
    assert plan.memory is not None and plan.memory.ranks_count == max(tp, ep)
    ranks = max(tp, ep)
    whole = sum(la.bytes_after_load or 0 for la in plan.layers if la.status.value == "accepted")
    replicated = sum(la.bytes_after_load or 0 for la in plan.layers if la.status.value == "accepted"
                     and la.parallel in (None, ParallelMode.REPLICATED))
    split_tp = [la for la in plan.layers if la.status.value == "accepted"
                and la.parallel in (ParallelMode.COLUMN, ParallelMode.ROW, ParallelMode.VOCAB)]
    # ranks beyond tp (ep > tp) hold another copy of every tensor-parallel shard set
    copies_of_tp_layers = (ranks // tp - 1) * sum(la.bytes_after_load or 0 for la in split_tp)
    padding = sum((la.bytes_after_load or 0) * -(-(la.n or 1) // tp) * tp // (la.n or 1) - (la.bytes_after_load or 0)
                  for la in split_tp if la.parallel is ParallelMode.VOCAB) * (ranks // tp)
    total = sum(r.weights for r in plan.memory.ranks)
    assert total == whole + (ranks - 1) * replicated + copies_of_tp_layers + padding


def test_kv_cache_per_token_mha_gqa_and_mla() -> None:
    gqa = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096}
    assert kv_bytes_per_token(gqa, tp=1, kv_int8=False, dtype_bytes=2) == 2 * 32 * 8 * 128 * 2
    assert kv_bytes_per_token(gqa, tp=4, kv_int8=False, dtype_bytes=2) == 2 * 32 * 2 * 128 * 2
    assert kv_bytes_per_token(gqa, tp=16, kv_int8=True, dtype_bytes=2) == 2 * 32 * 1 * 128  # one head per rank
    mla = {"num_hidden_layers": 61, "kv_lora_rank": 512, "qk_rope_head_dim": 64}
    assert kv_bytes_per_token(mla, tp=8, kv_int8=False, dtype_bytes=2) == 61 * 576 * 2  # whole on every rank
    assert kv_bytes_per_token({}, tp=1, kv_int8=False, dtype_bytes=2) is None


def test_a_model_that_does_not_fit_is_rejected_with_its_largest_consumers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _moe(tmp_path / "m", 64)
    assert cli(["plan", str(root), "--target", "a2", "--device-memory", "3.0001", "--max-tokens", "0"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "does NOT fit" in text
    plan = quantspec.plan(root, target="a2", device_memory=3.0001, max_tokens=0)
    assert not plan.accepted and [r.code.value for r in plan.rejections] == ["plan.does_not_fit"]
    assert plan.rejections[0].message == (
        "rank 0 needs 3.0 GiB (weights 0.4 MiB, KV cache 0.0 MiB for 0 tokens, reserve 3.0 GiB) but the device "
        "has 3.0 GiB; largest: model.layers.0.mlp.experts (moe_w13) 0.3 MiB, model.layers.0.mlp.experts (moe_w2) "
        "0.2 MiB, model.layers.0.mlp.gate 0.0 MiB")
    assert plan.rejections[0].hint == "the smallest power-of-two split that fits is tp=8, ep=8"


def test_capacity_comes_from_the_device_table_or_is_not_judged(tmp_path: Path) -> None:
    root = _moe(tmp_path / "m", 4)
    a3 = quantspec.plan(root, target="a3")
    assert a3.memory is not None and a3.memory.capacity == 64 * GIB and a3.memory.fits is True
    assert a3.memory.device == "910_93"
    a2 = quantspec.plan(root, target="a2")
    assert a2.memory is not None and a2.memory.capacity is None and a2.memory.fits is None
    assert "cannot be judged" in a2.memory.note
    b4 = quantspec.plan(root, target="a2", device="910B4")
    assert b4.memory is not None and b4.memory.capacity == 32 * GIB
    r0 = b4.memory.ranks[0]
    assert r0.total == r0.weights + r0.kv_cache + RESERVE_BYTES and r0.headroom == 32 * GIB - r0.total
