"""Issue 7 end to end: a Wan-format msModelSlim export, repacked, planned per component and loaded.

The export carries valid quantized tensors (written by the runtime's ModelSlim writers from
random float weights), so the repacked Diffusers folder is not only accepted by the planner but
also loads and runs on the CPU emulation, component by component.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import quantspec
from quantspec.cli.main import main as cli
from quantspec.errors import PlanRejected
from testkit import writers
from tests.repack.wan_fixtures import wan_export, write_original

_TORCH = {"BF16": torch.bfloat16, "F32": torch.float32}


def _write_valid_export(folder: Path, scheme: str, seed: int) -> dict[str, object]:
    """One Wan-format transformer with the fixture's names and shapes, and valid tensor values."""
    layout, desc = wan_export(scheme)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, (dtype, shape, _raw) in layout.items():
        module, _, suffix = name.rpartition(".")
        if suffix != "weight" or desc.get(name) == "FLOAT" or dtype in _TORCH:
            if name not in out and dtype in _TORCH:
                out[name] = (0.05 * torch.randn(shape, generator=gen)).to(_TORCH[dtype])
            continue
        w = 0.05 * torch.randn(shape, generator=gen)
        parts = (writers.modelslim_w8a8_mxfp8(w) if scheme == "W8A8_MXFP8"
                 else writers.modelslim_w8a8_dynamic(w, model_dtype=torch.bfloat16))
        for key, t in parts.items():
            out[f"{module}.{key}"] = t.contiguous()
            desc[f"{module}.{key}"] = scheme
    folder.mkdir(parents=True, exist_ok=True)
    save_file(out, str(folder / "quant_model_weight_w8a8.safetensors"))
    (folder / "quant_model_description_w8a8.json").write_text(json.dumps(desc, indent=2))
    return desc


def _original(folder: Path, *, cascade: bool) -> None:
    write_original(folder, cascade=cascade)
    # The fixture's stand-in VAE bytes are not a safetensors file; planning reads every component.
    save_file({"decoder.conv_in.weight": torch.zeros(4, 4, 3, 3, dtype=torch.bfloat16)},
              str(folder / "vae" / "diffusion_pytorch_model.safetensors"))


def _repack(tmp: Path, scheme: str, *, cascade: bool) -> Path:
    original, quant, output = tmp / "original", tmp / "quant", tmp / "out"
    _original(original, cascade=cascade)
    if cascade:
        _write_valid_export(quant / "high_noise_model", scheme, seed=1)
        _write_valid_export(quant / "low_noise_model", scheme, seed=2)
        model_type = "Wan2.2-T2V-A14B"
    else:
        _write_valid_export(quant, scheme, seed=3)
        model_type = "Wan2.2-TI2V-5B"
    rc = cli(["repack", "wan", "--model-type", model_type, "--original-model-path", str(original),
              "--quant-path", str(quant), "--output-path", str(output)])
    assert rc == 0
    return output


@pytest.mark.parametrize("cascade", [True, False], ids=["cascade", "single"])
def test_mxfp8_repack_plans_on_a5_and_loads(tmp_path: Path, cascade: bool) -> None:
    out = _repack(tmp_path, "W8A8_MXFP8", cascade=cascade)
    plan = quantspec.plan(out, target="a5")
    assert plan.accepted, [r.render() for layer in plan.rejected_layers() for r in layer.reasons]
    components = {c.name for c in plan.components}
    assert {"transformer", "vae"} <= components
    assert ("transformer_2" in components) is cascade
    quantized = [x for x in plan.layers if x.scheme is not None]
    assert quantized and all(x.component in ("transformer", "transformer_2") for x in quantized)
    assert any(x.module == "blocks.0.attn1.to_q" for x in quantized)

    qm = quantspec.load_quantized(out, device="cpu", target="a5", progress=False)
    q = qm.modules["transformer.blocks.0.attn1.to_q"]
    x = torch.randn(3, q.in_features, dtype=torch.bfloat16)
    y = q(x)
    assert y.shape == (3, q.out_features) and bool(torch.isfinite(y.float()).all())


def test_mxfp8_repack_is_rejected_on_a3_with_the_requirement(tmp_path: Path) -> None:
    out = _repack(tmp_path, "W8A8_MXFP8", cascade=False)
    plan = quantspec.plan(out, target="a3")
    reasons = [r for layer in plan.rejected_layers() for r in layer.reasons]
    assert reasons
    assert all("requires Ascend A5, CANN >= 8.0.RC3" in r.message for r in reasons)
    with pytest.raises(PlanRejected):
        quantspec.load_quantized(out, device="cpu", target="a3", progress=False)


def test_w8a8_dynamic_diffusion_runs_on_a2(tmp_path: Path) -> None:
    out = _repack(tmp_path, "W8A8_DYNAMIC", cascade=True)
    plan = quantspec.plan(out, target="a2")
    assert plan.accepted
    qm = quantspec.load_quantized(out, device="cpu", target="a2", progress=False)
    q = qm.modules["transformer_2.blocks.1.ffn.net.0.proj"]
    y = q(torch.randn(2, q.in_features, dtype=torch.bfloat16))
    assert bool(torch.isfinite(y.float()).all())


def test_quantized_embedder_in_a_diffusion_component_is_rejected(tmp_path: Path) -> None:
    """A Diffusers component whose condition embedder is quantized (repack refuses to write one)."""
    out = _repack(tmp_path, "W8A8_DYNAMIC", cascade=False)
    comp = out / "transformer"
    desc = json.loads((comp / "quant_model_description.json").read_text())
    tensors = dict(load_file(str(comp / "diffusion_pytorch_model.safetensors")))
    name = "condition_embedder.time_embedder.linear_1"
    w = tensors.pop(f"{name}.weight").float()
    for key, t in writers.modelslim_w8a8_dynamic(w, model_dtype=torch.bfloat16).items():
        tensors[f"{name}.{key}"] = t.contiguous()
        desc[f"{name}.{key}"] = "W8A8_DYNAMIC"
    save_file(tensors, str(comp / "diffusion_pytorch_model.safetensors"))
    (comp / "quant_model_description.json").write_text(json.dumps(desc))

    plan = quantspec.plan(out, target="a2")
    (layer,) = plan.rejected_layers()
    assert layer.name == f"transformer/{name}"
    (r,) = layer.reasons
    assert r.code.value == "plan.quantized_embedding"
    assert r.message == "quantized embeddings are not supported; disable embedding quantization in msModelSlim"
