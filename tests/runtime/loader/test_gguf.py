"""GGUF: dequantized at load into the executables the plan names (GgufLinear, float experts; embeddings
as float tensors) under Hugging Face names, Q/K permutation undone."""

from __future__ import annotations

from pathlib import Path

import torch

from quantspec.runtime.loader import load_quantized
from quantspec.runtime.moe import QuantizedExperts
from quantspec.runtime.moe.groups import FloatExperts
from quantspec.runtime.schemes.gguf import GgufLinear
from quantspec.vocab import Executable
from testkit.export_gguf import QT, export_gguf
from testkit.models import TinyArch, build_float_model, logits, token_batch
from tests.runtime.loader.ckpt import meta_model


def test_gguf_llama_linears_and_logits(tmp_path: Path) -> None:
    ref = build_float_model(TinyArch.LLAMA)
    exported = export_gguf(ref, TinyArch.LLAMA, tmp_path, QT.Q8_0)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    planned = {layer.name: layer.executable for layer in qm.plan.layers if layer.kind.value == "linear"}
    for module in ("model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.k_proj", "lm_head"):
        want = exported.reference[module].to(torch.bfloat16)
        got = qm.modules[module]
        assert isinstance(got, GgufLinear)  # what the plan names
        assert torch.equal(got.weight, want), module  # permutation undone, bit-identical dequant
    assert set(planned.values()) == {Executable.GGUF_LINEAR}
    model = qm.install(meta_model(ref))
    tokens = token_batch()
    got, want = logits(model, tokens), logits(ref, tokens)
    assert float((got - want).norm() / want.norm()) < 0.05


def test_gguf_moe_experts_dequantized(tmp_path: Path) -> None:
    ref = build_float_model(TinyArch.QWEN3_MOE)
    exported = export_gguf(ref, TinyArch.QWEN3_MOE, tmp_path, QT.Q8_0)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    experts = qm.modules["model.layers.0.mlp.experts"]
    assert isinstance(experts, QuantizedExperts)
    assert isinstance(experts.w13, FloatExperts)
    w13 = experts.w13.weight  # [E, K, 2I]
    gate = exported.reference["model.layers.0.mlp.experts.1.gate_proj"].to(torch.bfloat16)
    assert torch.equal(w13[1, :, : gate.size(0)], gate.t())
    # q/k are compared un-permuted only for Llama (transformers permutes no other architecture);
    # here the experts alone: the module equals float experts with the reference weights
    ref_e = ref.get_submodule("model.layers.0.mlp.experts")
    x = torch.randn(6, 256, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    idx = torch.tensor([[0, 1], [2, 3], [1, 3], [0, 2], [3, 0], [2, 1]])
    w = torch.full((6, 2), 0.5, dtype=torch.bfloat16)
    with torch.no_grad():
        got, want = experts(x, idx, w).float(), ref_e(x, idx, w).float()
    assert float((got - want).norm() / want.norm()) < 0.02
