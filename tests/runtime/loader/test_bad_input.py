"""Damaged or hostile checkpoints: each is a QuantspecError naming the tensor or file, nothing leaks."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from quantspec.checkpoint.inventory import read_inventory
from quantspec.errors import Code, InvalidCheckpoint, PlanRejected, QuantspecError
from quantspec.runtime.loader import load_quantized
from quantspec.runtime.loader.reader import TensorReader
from tests.runtime.loader.ckpt import llama_w8a8
from tests.runtime.loader.conftest import Checkpoints

Q = "model.layers.0.self_attn.q_proj"


@pytest.fixture
def path(ckpts: Checkpoints, tmp_path: Path) -> Path:
    """A private copy of the shared Llama W8A8_DYNAMIC checkpoint (these tests damage it)."""
    return ckpts.copy("llama_w8a8", llama_w8a8, tmp_path / "m")[0]


def _edit(path: Path, **changes: torch.Tensor | None) -> None:
    sd = load_file(str(path / "model.safetensors"))
    for k, v in changes.items():
        name = k.replace("__", ".")
        if v is None:
            del sd[name]
        else:
            sd[name] = v
    save_file(sd, str(path / "model.safetensors"))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_missing_tensor(path: Path) -> None:
    _edit(path, **{f"{Q}.weight_scale".replace(".", "__"): None})
    with pytest.raises(PlanRejected) as exc:
        load_quantized(path, "cpu", progress=False)
    assert any(r.code is Code.TENSOR_MISSING and "q_proj.weight_scale" in r.message for r in exc.value.reasons)


def test_shape_contradicting_plan(path: Path) -> None:
    _edit(path, **{f"{Q}.weight_scale".replace(".", "__"): torch.ones(255, 1, dtype=torch.bfloat16)})
    with pytest.raises(PlanRejected) as exc:
        load_quantized(path, "cpu", progress=False)
    assert any(r.code is Code.TENSOR_SHAPE and "q_proj.weight_scale" in (r.where or "") for r in exc.value.reasons)


def test_corrupt_values_name_the_layer_and_leave_nothing(path: Path) -> None:
    _edit(path, **{f"{Q}.weight_scale".replace(".", "__"): torch.full((256, 1), float("nan"), dtype=torch.bfloat16)})
    before = _open_fds()
    with pytest.raises(InvalidCheckpoint) as exc:
        load_quantized(path, "cpu", progress=False)
    assert "q_proj" in str(exc.value) and "NaN" in str(exc.value)
    assert _open_fds() == before  # every file closed


def test_truncated_file(path: Path) -> None:
    f = path / "model.safetensors"
    os.truncate(f, f.stat().st_size - 100)
    with pytest.raises(InvalidCheckpoint) as exc:
        load_quantized(path, "cpu", progress=False)
    assert exc.value.code is Code.TENSOR_TRUNCATED
    assert exc.value.reasons[0].file == str(f) and exc.value.reasons[0].where


def test_truncated_after_planning(path: Path) -> None:
    """The reader re-checks every read: a file that shrank since planning names the tensor."""
    f = path / "model.safetensors"
    with TensorReader(path, read_inventory(path).tensors) as reader:
        reader.read("model.norm.weight")
        os.truncate(f, 1000)
        with pytest.raises(InvalidCheckpoint) as exc:
            reader.read("lm_head.weight")
    assert exc.value.code is Code.TENSOR_TRUNCATED and exc.value.reasons[0].where == "lm_head.weight"


def _rewrite_header(f: Path, edit: object) -> None:
    raw = f.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)  # type: ignore[operator]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text)) if len(text) <= n else b""
    assert len(text) == n, "test header edit must not grow the header"
    f.write_bytes(raw[:8] + text + raw[8 + n:])


def test_overlapping_offsets(path: Path) -> None:

    def overlap(h: dict[str, dict[str, list[int]]]) -> None:
        a, b = h["model.norm.weight"], h["model.layers.0.input_layernorm.weight"]
        b["data_offsets"] = list(a["data_offsets"])

    _rewrite_header(path / "model.safetensors", overlap)
    with pytest.raises(InvalidCheckpoint) as exc:
        load_quantized(path, "cpu", progress=False)
    assert any("overlaps" in r.message for r in exc.value.reasons)
    assert exc.value.reasons[0].file == str(path / "model.safetensors")


def test_offsets_past_end(path: Path) -> None:

    def past(h: dict[str, dict[str, list[int]]]) -> None:
        last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
        begin, end = h[last]["data_offsets"]
        h[last]["data_offsets"] = [begin + 8, end + 8]  # same digit count: the header keeps its size
        past.name = last  # type: ignore[attr-defined]

    _rewrite_header(path / "model.safetensors", past)
    with pytest.raises(InvalidCheckpoint) as exc:
        load_quantized(path, "cpu", progress=False)
    assert exc.value.reasons[0].where == past.name  # type: ignore[attr-defined]


def test_weight_map_leaving_folder(path: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.safetensors"
    save_file({"x": torch.zeros(1)}, str(outside))
    names = load_file(str(path / "model.safetensors"))
    wm = dict.fromkeys(names, "model.safetensors")
    wm["lm_head.weight"] = "../outside.safetensors"
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    with pytest.raises(InvalidCheckpoint) as exc:
        load_quantized(path, "cpu", progress=False)
    assert exc.value.code is Code.PATH_ESCAPE


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch UNPICKLED",))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt"])
def test_pickle_weights_refused(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(pickle.dumps(_Payload()))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(InvalidCheckpoint) as exc:
        load_quantized(tmp_path, "cpu", progress=False)
    assert exc.value.code is Code.TENSOR_PICKLE and name in str(exc.value)
    assert not (tmp_path / "UNPICKLED").exists()


def test_index_naming_pickle_refused(path: Path) -> None:
    (path / "pytorch_model-00001.bin").write_bytes(pickle.dumps({"a": 1}))
    wm = {"lm_head.weight": "pytorch_model-00001.bin"}
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    with pytest.raises(QuantspecError) as exc:
        load_quantized(path, "cpu", progress=False)
    assert exc.value.code is Code.TENSOR_PICKLE
