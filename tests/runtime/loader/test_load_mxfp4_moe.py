"""ModelSlim MXFP4 MoE through the loader (A5, untested cells): plan, stream, build, forward.

A tiny Qwen3-MoE checkpoint is written with :func:`testkit.writers.modelslim_mxfp4`
(experts) and loaded with ``load_quantized(..., device="cpu", target="a5", allow_untested=True)``.
The loaded experts are checked against the float oracle of tests/runtime/moe/test_groups_mxfp4.py
fed with the checkpoint's own tensors (bound documented there), so names, expert order, gate/up
order and stacking are all covered; the installed model must then run end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from quantspec.errors import PlanRejected
from quantspec.runtime.loader import load_quantized
from quantspec.runtime.moe import QuantizedExperts
from quantspec.runtime.moe.groups_mx import MxFp8Experts
from quantspec.runtime.moe.groups_mxfp4 import MxFp4W4A4Experts, MxFp4W4A8Experts
from testkit import writers as W
from testkit.models import EXPERTS, TinyArch, build_float_model, logits, token_batch
from tests.runtime.loader.ckpt import Quantizer, meta_model, write_modelslim
from tests.runtime.moe.test_groups_mxfp4 import BOUND, oracle_moe

LABELS = {"w4a8_mxfp": "W4A8_MXFP", "w4a4_mxfp4": "W4A4_MXFP4", "w8a8_mxfp8": "W8A8_MXFP8"}
WRITERS: dict[str, Quantizer] = {"w4a8_mxfp": W.modelslim_mxfp4, "w4a4_mxfp4": W.modelslim_mxfp4,
                                 "w8a8_mxfp8": W.modelslim_w8a8_mxfp8}
CASES = [("w4a4_mxfp4", "w4a4_mxfp4", MxFp4W4A4Experts, MxFp4W4A4Experts),
         ("w4a8_mxfp", "w8a8_mxfp8", MxFp4W4A8Experts, MxFp8Experts)]


def _write(path: Path, w13: str, w2: str) -> None:
    def choose(module: str) -> tuple[str, Quantizer]:
        if ".experts." in module:
            key = w2 if module.endswith("down_proj") else w13
            return LABELS[key], WRITERS[key]
        return "W8A8_MXFP8", W.modelslim_w8a8_mxfp8

    write_modelslim(path, TinyArch.QWEN3_MOE, choose=choose)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(("w13", "w2", "cls13", "cls2"), CASES, ids=[f"{c[0]}+{c[1]}" for c in CASES])
def test_load_mxfp4_moe(tmp_path: Path, w13: str, w2: str, cls13: type, cls2: type) -> None:
    _write(tmp_path, w13, w2)
    with pytest.raises(PlanRejected):  # untested cells need the explicit opt-in
        load_quantized(tmp_path, device="cpu", target="a5", progress=False)
    qm = load_quantized(tmp_path, device="cpu", target="a5", allow_untested=True, progress=False)
    name = "model.layers.1.mlp.experts"
    experts = qm.modules[name]
    assert isinstance(experts, QuantizedExperts)
    assert isinstance(experts.w13, cls13) and isinstance(experts.w2, cls2)
    stored = load_file(str(tmp_path / "model.safetensors"))
    ck = {p: [{s: stored[f"{name}.{e}.{p}_proj.{s}"] for s in ("weight", "weight_scale")} for e in range(EXPERTS)]
          for p in ("gate", "up", "down")}
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(7, experts.hidden_dim, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(EXPERTS, generator=gen)[:2] for _ in range(7)])
    wt = torch.softmax(torch.randn(7, 2, generator=gen), -1).to(torch.bfloat16)
    with torch.no_grad():
        got = experts(x, idx, wt).to(torch.float64).numpy()
    assert _rel(got, oracle_moe(ck, w13, w2, x, idx=idx, wt=wt)) < BOUND
    model = qm.install(meta_model(build_float_model(TinyArch.QWEN3_MOE)))
    out = logits(model, token_batch())
    assert bool(torch.isfinite(out).all())
