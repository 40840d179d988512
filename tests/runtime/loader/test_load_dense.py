"""load_quantized on dense and MoE tiny models: modules, state_dict, install, logits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import quantspec
from quantspec.errors import BackendUnavailable, InvalidInput, PlanRejected
from quantspec.runtime.loader import ConcatLinear, QuantizedModel, load_quantized
from quantspec.runtime.loader.model import _Journal
from quantspec.runtime.moe import QuantizedExperts
from quantspec.runtime.moe.groups import WeightOnlyExperts
from quantspec.runtime.schemes.modelslim import ModelSlimW8A8Dynamic, ModelSlimW8A8Static
from quantspec.runtime.schemes.weight_only import WeightOnlyLinear
from testkit.models import TinyArch, logits, token_batch
from tests.runtime.loader.ckpt import (
    add_c8_kv_cache,
    fake_quant_reference,
    llama_static,
    llama_w8a8,
    meta_model,
    write_float,
    write_gptq,
    write_modelslim,
)
from tests.runtime.loader.conftest import Checkpoints


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_lazy_export() -> None:
    assert quantspec.load_quantized is load_quantized
    assert quantspec.QuantizedModel is QuantizedModel


def test_llama_modelslim_w8a8_dynamic(ckpts: Checkpoints) -> None:
    path, ref = ckpts.get("llama_w8a8", llama_w8a8)
    qm = load_quantized(path, "cpu", progress=False)
    assert qm.plan.accepted
    # one module per checkpoint module name, not per fused layer
    assert "model.layers.0.self_attn.q_proj" in qm.modules
    assert "model.layers.0.self_attn.qkv_proj" not in qm.modules
    assert isinstance(qm.modules["model.layers.1.mlp.down_proj"], ModelSlimW8A8Dynamic)
    sd = qm.state_dict()
    assert sd["model.layers.0.self_attn.q_proj.weight"].dtype == torch.int8
    assert sd["model.layers.0.self_attn.q_proj.weight"].shape == (256, 256)  # [K, N]
    assert sd["model.embed_tokens.weight"].dtype == torch.bfloat16
    model = qm.install(meta_model(ref))
    assert not any(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())
    tokens = token_batch()
    assert _rel(logits(model, tokens), logits(ref, tokens)) < 0.05


@pytest.mark.parametrize("arch", [TinyArch.QWEN3_MOE, TinyArch.MIXTRAL])
def test_moe_modelslim_w8a8_dynamic(tmp_path: Path, arch: TinyArch) -> None:
    ref = write_modelslim(tmp_path, arch)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    container = "block_sparse_moe" if arch is TinyArch.MIXTRAL else "mlp"
    experts = qm.modules[f"model.layers.0.{container}.experts"]
    assert isinstance(experts, QuantizedExperts)
    assert experts.w13.weight.dtype == torch.int8 and experts.w13.weight.shape == (4, 256, 512)  # [E, K, 2I]
    model = qm.install(meta_model(ref))
    assert isinstance(model.get_submodule("model.layers.1.mlp.experts"), QuantizedExperts)
    tokens = token_batch()
    # int8 noise flips a few top-k routing choices, hence a looser bound than the dense model's
    assert _rel(logits(model, tokens), logits(ref, tokens)) < 0.1


@pytest.mark.parametrize("arch", [TinyArch.QWEN3_MOE, TinyArch.MIXTRAL])
def test_float_moe_matches_transformers(tmp_path: Path, arch: TinyArch) -> None:
    ref = write_float(tmp_path, arch)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    model = qm.install(meta_model(ref))
    tokens = token_batch()
    assert _rel(logits(model, tokens), logits(ref, tokens)) < 0.01


def test_experts_interface_matches_transformers(tmp_path: Path) -> None:
    """The experts module alone equals transformers' Qwen3MoeExperts on the same routing."""
    ref = write_float(tmp_path, TinyArch.QWEN3_MOE)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    ours = qm.modules["model.layers.0.mlp.experts"]
    theirs = ref.get_submodule("model.layers.0.mlp.experts")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 256, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(4, generator=gen)[:2] for _ in range(7)])
    w = torch.softmax(torch.randn(7, 2, generator=gen), -1).to(torch.bfloat16)
    with torch.no_grad():
        assert _rel(ours(x, idx, w).float(), theirs(x, idx, w).float()) < 0.01


def test_gptq_moe_weight_only(tmp_path: Path) -> None:
    ref = write_gptq(tmp_path, TinyArch.QWEN3_MOE)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    assert isinstance(qm.modules["model.layers.0.self_attn.o_proj"], WeightOnlyLinear)
    experts = qm.modules["model.layers.0.mlp.experts"]
    assert isinstance(experts, QuantizedExperts)
    assert isinstance(experts.w13, WeightOnlyExperts)
    assert experts.w13.weight.dtype == torch.int32 and experts.w13.weight.shape == (4, 256, 64)  # int4x8
    assert experts.w13.antiquant_scale.shape == (4, 2, 512)  # [E, G, N]
    fake = fake_quant_reference(qm, ref)
    model = qm.install(meta_model(ref))
    tokens = token_batch()
    # weight-only: the installed model computes exactly the dequantized weights
    assert _rel(logits(model, tokens), logits(fake, tokens)) < 0.02
    assert _rel(logits(model, tokens), logits(ref, tokens)) < 0.6  # int4 round-to-nearest of random weights


def test_install_fused_model_module(ckpts: Checkpoints) -> None:
    """Separate q/k/v checkpoint shards go into a model that fuses them as qkv_proj."""
    qm = load_quantized(ckpts.get("llama_w8a8", llama_w8a8)[0], "cpu", progress=False)
    attn = torch.nn.Module()
    attn.qkv_proj = torch.nn.Linear(256, 512)
    model = torch.nn.Module()
    model.add_module("self_attn", attn)
    shards = ("q_proj", "k_proj", "v_proj")
    qm._swap(model, {f"self_attn.{p}": qm.modules[f"model.layers.0.self_attn.{p}"] for p in shards}, _Journal())
    fused = model.get_submodule("self_attn.qkv_proj")
    assert isinstance(fused, ConcatLinear)
    x = torch.randn(3, 256).to(torch.bfloat16)
    assert fused(x).shape == (3, 256 + 128 + 128)


def test_tied_embeddings(tmp_path: Path) -> None:
    ref = write_float(tmp_path, TinyArch.LLAMA)
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "model.safetensors"))
    del sd["lm_head.weight"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    ref.config.tie_word_embeddings = True
    ref.config.save_pretrained(tmp_path)
    qm = load_quantized(tmp_path, "cpu", progress=False)
    model = qm.install(meta_model(ref))
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_install_missing_module_is_named(ckpts: Checkpoints) -> None:
    qm = load_quantized(ckpts.get("llama_w8a8", llama_w8a8)[0], "cpu", progress=False)
    with pytest.raises(InvalidInput, match="no submodule"):
        qm.install(torch.nn.Linear(2, 2))


def test_failed_install_leaves_the_model_unchanged(ckpts: Checkpoints) -> None:
    path, ref = ckpts.get("llama_w8a8", llama_w8a8)
    qm = load_quantized(path, "cpu", progress=False)
    qm._tensors["model.norm.weight"] = torch.ones(3, dtype=torch.bfloat16)  # contradicts the model
    model = meta_model(ref)
    before = {n: id(p) for n, p in model.named_parameters()}
    modules = {n: id(m) for n, m in model.named_modules()}
    with pytest.raises(InvalidInput, match=r"model\.norm\.weight"):
        qm.install(model)
    assert {n: id(p) for n, p in model.named_parameters()} == before
    assert {n: id(m) for n, m in model.named_modules()} == modules


def test_plan_rejection_before_reading(ckpts: Checkpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ckpts.get("llama_w8a8", llama_w8a8)[0]
    from quantspec.runtime.loader import reader

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a weight was read")

    monkeypatch.setattr(reader._File, "read", boom)
    with pytest.raises(PlanRejected) as exc:
        load_quantized(path, "cpu", target="a5", progress=False)  # W8A8_DYNAMIC is not supported on a5
    assert len(exc.value.reasons) >= 8  # every rejected layer, not only the first


def test_npu_without_torch_npu(ckpts: Checkpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    with pytest.raises(BackendUnavailable) as exc:
        load_quantized(ckpts.get("llama_w8a8", llama_w8a8)[0], "npu", progress=False)
    assert exc.value.reasons[0].hint


def test_bad_arguments(ckpts: Checkpoints) -> None:
    path = ckpts.get("llama_w8a8", llama_w8a8)[0]
    with pytest.raises(InvalidInput, match="tp_rank"):
        load_quantized(path, "cpu", tp_rank=2, tp_size=2)
    with pytest.raises(InvalidInput, match="unknown device"):
        load_quantized(path, "gpu")


def test_llama_static_and_dynamic(ckpts: Checkpoints) -> None:
    """W8A8 static MLP (per-tensor input scale, offset folded into quant_bias) and W8A8_DYNAMIC attention."""
    path, ref = ckpts.get("llama_static", llama_static)
    qm = load_quantized(path, "cpu", progress=False)
    assert isinstance(qm.modules["model.layers.0.mlp.up_proj"], ModelSlimW8A8Static)
    model = qm.install(meta_model(ref))
    tokens = token_batch()
    assert _rel(logits(model, tokens), logits(ref, tokens)) < 0.1  # per-tensor int8 activations


def test_kv_cache_tensors_kept(ckpts: Checkpoints, tmp_path: Path) -> None:
    """C8 KV-cache scales are planned as attention layers and kept as tensors (engines apply them)."""
    path, ref = ckpts.copy("llama_w8a8", llama_w8a8, tmp_path / "m")
    add_c8_kv_cache(path, layers=2)
    qm = load_quantized(path, "cpu", allow_untested=True, progress=False)  # kv_c8 is untested on a2
    assert any(layer.kind.value == "attention" for layer in qm.plan.layers)
    assert "model.layers.1.self_attn.v_proj.kv_cache_scale" in qm.state_dict()
    qm.install(meta_model(ref))  # the model has no place for them: they are not installed
