"""Sharded checkpoints: layers whose tensors span files load exactly like a single file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from quantspec.runtime.loader import load_quantized
from quantspec.runtime.loader.reader import TensorReader
from tests.runtime.loader.ckpt import qwen3_w8a8
from tests.runtime.loader.conftest import Checkpoints


def test_tensors_spread_over_shards(ckpts: Checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    single = ckpts.get("qwen3_w8a8", qwen3_w8a8)[0]
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for f in ("config.json", "quant_model_description.json"):
        (sharded / f).write_bytes((single / f).read_bytes())
    tensors = load_file(str(single / "model.safetensors"))
    names = sorted(tensors)
    weight_map: dict[str, str] = {}
    for j in range(3):  # round-robin: every layer (and every expert) spans all three files
        fname = f"model-{j + 1:05d}-of-00003.safetensors"
        part = {n: tensors[n] for n in names[j::3]}
        save_file(part, str(sharded / fname))
        weight_map.update(dict.fromkeys(part, fname))
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))

    released: list[str] = []
    original = TensorReader.release

    def spy(self: TensorReader, fname: str) -> None:
        released.append(fname)
        original(self, fname)

    monkeypatch.setattr(TensorReader, "release", spy)
    a = load_quantized(single, "cpu", progress=False).state_dict()
    b = load_quantized(sharded, "cpu", progress=False).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sorted(set(released) - {"model.safetensors"}) == sorted(set(weight_map.values()))
