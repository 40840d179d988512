"""``repack_wan``: layout, renames, byte identity, descriptions, refusals and atomicity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, QuantspecError
from quantspec.repack import WanModelType, repack_wan
from quantspec.repack import safetensors_stream as sts
from quantspec.repack.modelslim_desc import EMBEDDING_MESSAGE
from quantspec.repack.renames import rename
from tests.repack.conftest import Cascade
from tests.repack.wan_fixtures import DIM, Tensor, wan_export, write_export, write_original, write_safetensors

T2V = WanModelType.T2V_A14B
HEADER = ("model_quant_type", "version", "group_size", "metadata", "optional")


def _run(c: Cascade, *, force: bool = False, model_type: WanModelType = T2V) -> None:
    repack_wan(model_type, c.original, c.quant, c.output, force=force)


def _check_component(folder: Path, written: tuple[dict[str, Tensor], dict[str, object]]) -> None:
    tensors, desc = written
    out, metadata = sts.read_header(folder / "diffusion_pytorch_model.safetensors")
    assert metadata == {"format": "pt"}
    assert set(out) == {rename(n) for n in tensors}
    raw = (folder / "diffusion_pytorch_model.safetensors").read_bytes()
    for name, (dtype, shape, data) in tensors.items():
        info = out[rename(name)]
        assert (info.dtype, info.shape) == (dtype, shape)
        assert raw[info.start:info.start + info.nbytes] == data
    new_desc = json.loads((folder / "quant_model_description.json").read_text())
    for key in HEADER:
        assert new_desc[key] == desc[key]
    entries = {k: v for k, v in new_desc.items() if k not in HEADER}
    assert entries == {rename(k): v for k, v in desc.items() if k not in HEADER}
    assert set(entries) == set(out)


def test_cascade_repack_builds_a_diffusers_folder(cascade: Cascade) -> None:
    result = repack_wan(T2V, cascade.original, cascade.quant, cascade.output)
    out = cascade.output
    assert sorted(p.name for p in out.iterdir()) == [
        "model_index.json", "scheduler", "text_encoder", "tokenizer", "transformer", "transformer_2", "vae"]
    assert result.copied == ("model_index.json", "scheduler", "text_encoder", "tokenizer", "vae")
    assert [c.component for c in result.components] == ["transformer", "transformer_2"]
    for component in ("transformer", "transformer_2"):
        assert sorted(p.name for p in (out / component).iterdir()) == [
            "config.json", "diffusion_pytorch_model.safetensors", "quant_model_description.json"]
        assert json.loads((out / component / "config.json").read_text())["component"] == component
    _check_component(out / "transformer", cascade.high)
    _check_component(out / "transformer_2", cascade.low)
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == b"vae weights"
    assert (out / "model_index.json").read_bytes() == (cascade.original / "model_index.json").read_bytes()
    # nothing left beside the output
    assert [p.name for p in out.parent.iterdir()] == ["wan_repacked"]


def test_representative_names_and_description(cascade: Cascade) -> None:
    _run(cascade)
    tensors, _ = sts.read_header(cascade.output / "transformer" / "diffusion_pytorch_model.safetensors")
    for name in ("blocks.0.attn1.to_q.weight", "blocks.0.attn1.to_q.weight_scale", "blocks.1.attn2.to_out.0.bias",
                 "blocks.0.ffn.net.0.proj.weight", "blocks.1.ffn.net.2.weight_scale", "blocks.0.norm2.weight",
                 "blocks.0.scale_shift_table", "scale_shift_table", "proj_out.weight", "patch_embedding.weight",
                 "condition_embedder.time_embedder.linear_1.weight", "condition_embedder.time_proj.bias",
                 "condition_embedder.text_embedder.linear_2.weight"):
        assert name in tensors, name
    assert tensors["blocks.0.attn1.to_q.weight"].dtype == "F8_E4M3"
    assert tensors["blocks.0.attn1.to_q.weight_scale"].dtype == "U8"
    desc = json.loads((cascade.output / "transformer" / "quant_model_description.json").read_text())
    assert desc["blocks.0.attn1.to_q.weight"] == "W8A8_MXFP8"
    assert desc["condition_embedder.time_embedder.linear_1.weight"] == "FLOAT"
    assert desc["metadata"] == {"producer": "test"}
    assert list(desc)[:3] == ["model_quant_type", "version", "group_size"]


@pytest.mark.parametrize("nested", [False, True])
def test_single_transformer_5b_w8a8_dynamic(tmp_path: Path, nested: bool) -> None:
    original, quant, output = tmp_path / "orig", tmp_path / "quant", tmp_path / "out"
    write_original(original, cascade=False)
    written = write_export(quant / "Wan2.2-TI2V-5B" if nested else quant, "W8A8_DYNAMIC", shards=2)
    result = repack_wan(WanModelType.TI2V_5B, original, quant, output)
    assert [c.component for c in result.components] == ["transformer"]
    assert not (output / "transformer_2").exists()
    _check_component(output / "transformer", written)
    tensors, _ = sts.read_header(output / "transformer" / "diffusion_pytorch_model.safetensors")
    assert tensors["blocks.1.attn1.to_k.weight_offset"].dtype == "F32"


def test_i2v_image_conditioning(tmp_path: Path) -> None:
    original, quant, output = tmp_path / "orig", tmp_path / "quant", tmp_path / "out"
    write_original(original, cascade=True)
    high = write_export(quant / "high_noise_model", "W8A8_MXFP8", i2v=True)
    write_export(quant / "low_noise_model", "W8A8_MXFP8", i2v=True)
    repack_wan(WanModelType.I2V_A14B, original, quant, output)
    _check_component(output / "transformer", high)
    tensors, _ = sts.read_header(output / "transformer" / "diffusion_pytorch_model.safetensors")
    for name in ("blocks.0.attn2.add_k_proj.weight_scale", "blocks.1.attn2.add_v_proj.weight",
                 "blocks.0.attn2.norm_added_k.weight", "condition_embedder.image_embedder.ff.net.0.proj.weight",
                 "condition_embedder.image_embedder.norm1.bias", "condition_embedder.image_embedder.norm2.weight"):
        assert name in tensors, name


def test_existing_output_is_refused_then_replaced_with_force(cascade: Cascade) -> None:
    cascade.output.mkdir(parents=True)
    (cascade.output / "keep.txt").write_text("old")
    with pytest.raises(InvalidInput) as info:
        _run(cascade)
    assert info.value.code is Code.OUTPUT_EXISTS and info.value.exit_code == 2
    assert (cascade.output / "keep.txt").read_text() == "old"
    _run(cascade, force=True)
    assert not (cascade.output / "keep.txt").exists()
    assert (cascade.output / "transformer_2" / "diffusion_pytorch_model.safetensors").is_file()
    assert [p.name for p in cascade.output.parent.iterdir()] == ["wan_repacked"]


def test_description_mismatches_are_reported_all_at_once(cascade: Cascade) -> None:
    path = cascade.quant / "low_noise_model" / "quant_model_description_w8a8.json"
    desc = json.loads(path.read_text())
    del desc["blocks.0.self_attn.q.weight_scale"]
    del desc["head.head.bias"]
    desc["blocks.9.self_attn.q.weight"] = "W8A8_MXFP8"
    path.write_text(json.dumps(desc))
    high = cascade.quant / "high_noise_model" / "quant_model_description_w8a8.json"
    high_desc = json.loads(high.read_text())
    high_desc["blocks.7.ffn.0.weight"] = "W8A8_MXFP8"
    high.write_text(json.dumps(high_desc))
    with pytest.raises(InvalidCheckpoint) as info:
        _run(cascade)
    got = sorted((r.code.value, r.where or "") for r in info.value.reasons)
    assert got == [
        ("repack.undescribed_tensor", "blocks.0.self_attn.q.weight_scale"),
        ("repack.undescribed_tensor", "head.head.bias"),
        ("tensor.missing", "blocks.7.ffn.0.weight"),
        ("tensor.missing", "blocks.9.self_attn.q.weight"),
    ]
    assert not cascade.output.exists()


def test_quantized_embedding_is_refused(cascade: Cascade) -> None:
    path = cascade.quant / "high_noise_model" / "quant_model_description_w8a8.json"
    desc = json.loads(path.read_text())
    desc["patch_embedding.weight"] = "W8A8_MXFP8"
    desc["time_embedding.0.weight"] = "W8A8_DYNAMIC"
    path.write_text(json.dumps(desc))
    with pytest.raises(InvalidCheckpoint) as info:
        _run(cascade)
    reasons = info.value.reasons
    assert {r.where for r in reasons} == {"patch_embedding.weight", "time_embedding.0.weight"}
    assert all(r.code is Code.PLAN_QUANTIZED_EMBEDDING for r in reasons)
    assert all(r.message == "quantized embeddings are not supported; disable embedding quantization in "
               "msModelSlim" == EMBEDDING_MESSAGE for r in reasons)
    assert not cascade.output.exists()


def test_embedding_stored_quantized_is_refused_whatever_the_description(tmp_path: Path) -> None:
    original, quant = tmp_path / "orig", tmp_path / "quant"
    write_original(original, cascade=False)
    tensors, desc = wan_export("W8A8_DYNAMIC")
    tensors["text_embedding.2.weight"] = ("I8", (DIM, DIM), bytes(DIM * DIM))
    write_safetensors(quant / "quant_model_weight_w8a8_dynamic.safetensors", tensors)
    (quant / "quant_model_description.json").write_text(json.dumps(desc))
    with pytest.raises(InvalidCheckpoint) as info:
        repack_wan(WanModelType.TI2V_5B, original, quant, tmp_path / "out")
    [only] = info.value.reasons
    assert (only.code, only.where, only.message) == (
        Code.PLAN_QUANTIZED_EMBEDDING, "text_embedding.2.weight", EMBEDDING_MESSAGE)
    assert "stored as I8" in (only.hint or "")


@pytest.mark.parametrize("force", [False, True])
def test_interrupted_write_leaves_nothing_behind(cascade: Cascade, monkeypatch: pytest.MonkeyPatch,
                                                 force: bool) -> None:
    if force:
        cascade.output.mkdir(parents=True)
        (cascade.output / "keep.txt").write_text("old")
    real = sts._copy_range
    calls = {"n": 0}

    def flaky(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 40:  # well into the second transformer
            raise KeyboardInterrupt
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sts, "_copy_range", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(cascade, force=force)
    if force:
        assert [p.name for p in cascade.output.parent.iterdir()] == ["wan_repacked"]
        assert [p.name for p in cascade.output.iterdir()] == ["keep.txt"]
    else:
        assert list(cascade.output.parent.iterdir()) == []


def test_write_errors_become_write_failed(cascade: Cascade, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sts, "_copy_range", full)
    with pytest.raises(QuantspecError) as info:
        _run(cascade)
    assert info.value.code is Code.WRITE_FAILED and "No space left" in info.value.reasons[0].message
    assert list(cascade.output.parent.iterdir()) == []


def test_layout_problems_are_reported(cascade: Cascade) -> None:
    # a cascade original and export with a single-transformer model type
    with pytest.raises(InvalidCheckpoint) as info:
        _run(cascade, model_type=WanModelType.TI2V_5B)
    messages = [r.message for r in info.value.reasons]
    assert [r.code for r in info.value.reasons] == [Code.REPACK_LAYOUT] * 2
    assert "lists 'transformer_2'" in messages[0]
    assert "high_noise_model, low_noise_model" in messages[1]
    shutil.rmtree(cascade.quant / "low_noise_model")
    with pytest.raises(InvalidCheckpoint) as info:
        _run(cascade)
    assert [r.code for r in info.value.reasons] == [Code.REPACK_LAYOUT]
    assert "low_noise_model" in (info.value.reasons[0].file or "")
    assert not cascade.output.exists()


def test_5b_with_two_exported_folders_is_ambiguous(tmp_path: Path) -> None:
    write_original(tmp_path / "orig", cascade=False)
    write_export(tmp_path / "quant" / "a", "W8A8_DYNAMIC")
    write_export(tmp_path / "quant" / "b", "W8A8_DYNAMIC")
    with pytest.raises(InvalidCheckpoint) as info:
        repack_wan(WanModelType.TI2V_5B, tmp_path / "orig", tmp_path / "quant", tmp_path / "out")
    assert info.value.code is Code.REPACK_LAYOUT and "a, b" in info.value.reasons[0].message


def test_output_inside_an_input_is_refused(cascade: Cascade) -> None:
    with pytest.raises(InvalidInput) as info:
        repack_wan(T2V, cascade.original, cascade.quant, cascade.original / "out", force=True)
    assert info.value.code is Code.USAGE
    with pytest.raises(InvalidInput) as info:
        repack_wan(T2V, cascade.original, cascade.quant, cascade.root, force=True)
    assert info.value.code is Code.USAGE
    assert (cascade.original / "model_index.json").is_file()


def test_index_disagreeing_with_shards_is_reported(cascade: Cascade) -> None:
    index = cascade.quant / "low_noise_model" / "quant_model_weights.safetensors.index.json"
    doc = json.loads(index.read_text())
    doc["weight_map"]["head.head.weight"] = "quant_model_weights-00002-of-00003.safetensors"
    doc["weight_map"]["ghost.weight"] = "quant_model_weights-00009-of-00009.safetensors"
    index.write_text(json.dumps(doc))
    with pytest.raises(InvalidCheckpoint) as info:
        _run(cascade)
    got = {(r.code, r.where) for r in info.value.reasons}
    assert (Code.REPACK_INDEX_MISMATCH, "head.head.weight") in got
    assert (Code.FILE_NOT_FOUND, "/weight_map") in got


def test_output_folder_permissions_follow_the_umask(cascade: Cascade) -> None:
    _run(cascade)
    reference = cascade.root / "plain"
    reference.mkdir()
    assert cascade.output.stat().st_mode == reference.stat().st_mode


def test_output_under_a_file_is_a_write_error(cascade: Cascade) -> None:
    blocker = cascade.root / "blocker"
    blocker.write_text("x")
    with pytest.raises(QuantspecError) as info:
        repack_wan(T2V, cascade.original, cascade.quant, blocker / "out")
    assert info.value.code is Code.WRITE_FAILED
    assert blocker.read_text() == "x"
