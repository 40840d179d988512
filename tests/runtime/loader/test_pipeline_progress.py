"""Diffusers pipelines (per component), online MXFP8 and the progress bar."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from quantspec.errors import PlanRejected
from quantspec.runtime.loader import load_quantized
from quantspec.runtime.moe.groups_mx import OnlineMxFp8Experts
from quantspec.runtime.schemes.mxfp8 import OnlineMxFp8
from testkit import writers as W
from testkit.models import TinyArch, logits, token_batch
from tests.runtime.loader.ckpt import llama_w8a8, meta_model, write_float
from tests.runtime.loader.conftest import Checkpoints


def _pipeline(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "TinyPipeline", "_diffusers_version": "0.35.0",
        "transformer": ["diffusers", "TinyTransformer"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    }))
    gen = torch.Generator().manual_seed(0)
    tr = root / "transformer"
    tr.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    desc: dict[str, str] = {"model_quant_type": "W8A8_DYNAMIC"}
    for i in range(2):
        mod = f"blocks.{i}.attn1.to_q"
        for k, v in W.modelslim_w8a8_dynamic(torch.randn(64, 64, generator=gen), model_dtype=torch.bfloat16).items():
            tensors[f"{mod}.{k}"] = v
            desc[f"{mod}.{k}"] = "W8A8_DYNAMIC"
        tensors[f"blocks.{i}.norm1.weight"] = torch.ones(64, dtype=torch.bfloat16)
        desc[f"blocks.{i}.norm1.weight"] = "FLOAT"
    save_file(tensors, str(tr / "diffusion_pytorch_model.safetensors"))
    (tr / "quant_model_description.json").write_text(json.dumps(desc))
    (tr / "config.json").write_text(json.dumps({"_class_name": "TinyTransformer", "torch_dtype": "bfloat16"}))
    vae = root / "vae"
    vae.mkdir()
    save_file({"decoder.conv.weight": torch.randn(4, 4, 3, 3)}, str(vae / "diffusion_pytorch_model.safetensors"))
    (vae / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    (root / "scheduler").mkdir()


def test_pipeline_components_prefixed(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    assert set(qm.modules) == {"transformer.blocks.0.attn1.to_q", "transformer.blocks.1.attn1.to_q"}
    sd = qm.state_dict()
    assert "transformer.blocks.0.norm1.weight" in sd
    assert not any(k.startswith("vae.") for k in sd)  # only components with a quantization description
    x = torch.randn(3, 64).to(torch.bfloat16)
    assert qm.modules["transformer.blocks.1.attn1.to_q"](x).shape == (3, 64)


def test_online_mxfp8(tmp_path: Path) -> None:
    ref = write_float(tmp_path, TinyArch.QWEN3_MOE)
    with pytest.raises(PlanRejected, match="unsupported on a2"):
        load_quantized(tmp_path, "cpu", quantization="mxfp8", progress=False)
    qm = load_quantized(tmp_path, "cpu", target="a5", quantization="mxfp8", allow_untested=True, progress=False)
    assert isinstance(qm.modules["model.layers.0.self_attn.q_proj"], OnlineMxFp8)
    assert isinstance(qm.modules["model.layers.0.mlp.experts"].w13, OnlineMxFp8Experts)
    assert "model.layers.0.mlp.gate.weight" in qm.state_dict()  # the router stays float
    model = qm.install(meta_model(ref))
    tokens = token_batch()
    got, want = logits(model, tokens), logits(ref, tokens)
    assert float((got - want).norm() / want.norm()) < 0.35  # fp8 weights and activations, two layers


def test_progress_bar_only_on_a_terminal(ckpts: Checkpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = ckpts.get("llama_w8a8", llama_w8a8)[0]

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    load_quantized(tmp_path, "cpu", progress=True)
    assert "tensor" in err.getvalue()  # tqdm drew a bar of tensors
    err.truncate(0)
    load_quantized(tmp_path, "cpu", progress=False)
    assert err.getvalue() == ""
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    load_quantized(tmp_path, "cpu", progress=True)  # not a terminal: silent
    assert plain.getvalue() == ""
