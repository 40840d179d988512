"""Tensor parallelism: two gloo ranks load their shards; reduced outputs equal the unsharded ones."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from quantspec.errors import Code, InvalidCheckpoint, PlanRejected
from quantspec.runtime.loader import Parallel, load_quantized
from quantspec.runtime.loader.tp import TensorParallel, shard_tensors
from quantspec.schemes import lookup_spec
from testkit import writers as W
from testkit.models import TinyArch
from tests.runtime.loader.ckpt import llama_mixed, qwen3_w8a8, write_gptq
from tests.runtime.loader.conftest import Checkpoints
from tests.runtime.loader.tp_inputs import inputs_for

ROOT = Path(__file__).resolve().parents[3]
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_two_ranks_match_unsharded(ckpts: Checkpoints, tmp_path: Path) -> None:
    dense = ckpts.get("llama_mixed", llama_mixed)[0]
    moe = ckpts.get("qwen3_w8a8", qwen3_w8a8)[0]
    cases = [
        [str(dense), "model.layers.0.self_attn.q_proj", "column"],  # W8A8_DYNAMIC, column
        [str(dense), "model.layers.0.self_attn.o_proj", "row"],  # W8A8_DYNAMIC, row
        [str(dense), "model.layers.1.mlp.up_proj", "column"],  # W8A8 static, column
        [str(dense), "model.layers.1.mlp.down_proj", "row"],  # W8A8 static, row: quant_bias on rank 0 only
        [str(moe), "model.layers.0.mlp.experts", "moe"],  # experts split the intermediate size
    ]
    out = tmp_path / "reduced.safetensors"
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(WORLD), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "TP_CASES": json.dumps(cases), "TP_OUT": str(out)}
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.runtime.loader.tp_worker"], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        logs = [p.communicate(timeout=120)[0].decode() for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    reduced = load_file(str(out))
    full = {path: load_quantized(path, "cpu", progress=False) for path in (str(dense), str(moe))}
    for path, name, how in cases:
        module = full[path].modules[name]
        with torch.no_grad():
            ref = module(*inputs_for(how, module, 0, 1)).to(torch.float32)
        got = reduced[f"{path}|{name}"]
        assert got.shape == ref.shape, name
        if how == "column":  # the same activations meet the same weight columns: identical
            assert torch.equal(got, ref), name
        else:  # per-rank partial sums in bf16 (and per-slice token scales) round differently
            assert _rel(got, ref) < 0.02, (name, _rel(got, ref))
    assert full[str(dense)].parallel["model.layers.1.mlp.down_proj"] is Parallel.ROW


def test_quant_bias_only_on_rank0(ckpts: Checkpoints) -> None:
    tmp_path = ckpts.get("llama_mixed", llama_mixed)[0]
    r0 = load_quantized(tmp_path, "cpu", tp_rank=0, tp_size=2, progress=False)
    r1 = load_quantized(tmp_path, "cpu", tp_rank=1, tp_size=2, progress=False)
    down = "model.layers.0.mlp.down_proj"
    assert r0.modules[down].quant_bias is not None and r1.modules[down].quant_bias is None
    up = "model.layers.0.mlp.up_proj"  # column-parallel: each rank its own N slice of quant_bias
    assert r0.modules[up].quant_bias.shape == (256,) and r1.modules[up].quant_bias.shape == (256,)
    assert r0.modules[down].in_features == 256 and r0.modules[up].out_features == 256


def test_group_boundary_rejected_by_plan(tmp_path: Path) -> None:
    write_gptq(tmp_path, TinyArch.LLAMA, group_size=128)
    with pytest.raises(PlanRejected) as exc:
        load_quantized(tmp_path, "cpu", tp_rank=0, tp_size=4, progress=False)
    assert any(r.code is Code.PLAN_TP and "group" in r.message for r in exc.value.reasons)


def test_split_derived_from_contract_names_the_layer() -> None:
    """A pack boundary broken by the split is refused with the layer and tensor named."""
    from quantspec.description import QuantSpec, WeightQuant
    from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatrixLayer, SchemeId, ZeroPoint

    weight = WeightQuant(element=ElementType.INT4, bits=4, granularity=Granularity.CHANNEL, layout=Layout.GPTQ,
                         zero_point=ZeroPoint.NONE)
    quant = QuantSpec(scheme=SchemeId.W4A16, label="gptq", weight=weight)
    spec = lookup_spec(FormatFamily.GPTQ, SchemeId.W4A16, MatrixLayer.LINEAR, Layout.GPTQ)
    tensors = W.gptq(torch.randn(16, 24), bits=4, group_size=-1)
    ok = shard_tensors(tensors, layer="l.o_proj", spec=spec, quant=quant, n=16, k=24, par=Parallel.COLUMN,
                       tp=TensorParallel(rank=1, size=2))
    assert ok["qweight"].shape == (3, 8) and ok["scales"].shape == (1, 8)
    with pytest.raises(InvalidCheckpoint) as exc:  # K/2 = 12 codes do not fill whole int32 words of 8
        shard_tensors(tensors, layer="l.o_proj", spec=spec, quant=quant, n=16, k=24, par=Parallel.ROW,
                      tp=TensorParallel(rank=0, size=2))
    assert exc.value.code is Code.PLAN_TP and "l.o_proj.qweight" in str(exc.value)
