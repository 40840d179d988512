"""Damaged scale/offset/index values: refused at load and by ``validate --tensors``, naming the tensor
and the first bad index; never a module that computes garbage."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import quantspec
from quantspec.cli.main import main as cli
from quantspec.errors import InvalidCheckpoint
from quantspec.tensor_values import ValueKind, check_values, kind_of

#: Hang guard (seconds): these take well under a second; the bound is over 10x that.
HANG_GUARD_S = 10.0
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-llama-w8a8-dynamic"
SCALE = "model.layers.0.mlp.down_proj.weight_scale"
OFFSET = "model.layers.0.mlp.down_proj.weight_offset"


def _damaged(tmp_path: Path, name: str, edit: object) -> Path:
    root = tmp_path / "m"
    shutil.copytree(EXAMPLE, root)
    [st] = [p for p in root.glob("*.safetensors")]
    tensors = load_file(str(st))
    t = tensors[name].clone()
    edit(t)  # type: ignore[operator]
    tensors[name] = t
    save_file(tensors, str(st), metadata={"format": "pt"})
    return root


def _set(index: tuple[int, ...], value: float) -> object:
    def edit(t: torch.Tensor) -> None:
        t[index] = value
    return edit


Case = tuple[str, str, object, str]
CASES: list[Case] = [
    ("nan_scale", SCALE, _set((5, 0), float("nan")), "holds NaN or infinite values: 1 value(s), first at index [5, 0]"),
    ("infinite_scale", SCALE, _set((7, 0), float("inf")),
     "holds NaN or infinite values: 1 value(s), first at index [7, 0]"),
    ("zero_scales", SCALE, lambda t: t.zero_(), "is all zeros: every weight it scales would be zero"),
    ("offset_out_of_range", OFFSET, _set((3, 0), 1000.0),
     "holds offsets outside the 8-bit code range [-256, 255]: 1 value(s), first at index [3, 0]"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_damaged_values_are_refused_at_load(tmp_path: Path, case: Case) -> None:
    _, name, edit, message = case
    root = _damaged(tmp_path, name, edit)
    start = time.perf_counter()
    with pytest.raises(InvalidCheckpoint) as err:
        quantspec.load_quantized(root, device="cpu", progress=False)
    assert time.perf_counter() - start < HANG_GUARD_S
    [r] = err.value.reasons
    assert r.code.value == "tensor.bad_value" and r.where == name
    assert r.message.startswith(f"tensor '{name}' {message}"), r.message


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_validate_tensors_reports_every_bad_tensor(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   case: Case) -> None:
    _, name, edit, message = case
    root = _damaged(tmp_path, name, edit)
    assert cli(["validate", str(root)]) == 0  # the description alone is fine
    capsys.readouterr()
    start = time.perf_counter()
    assert cli(["validate", str(root), "--tensors", "--json"]) == 1
    assert time.perf_counter() - start < HANG_GUARD_S
    doc = json.loads(capsys.readouterr().out)
    [result] = doc["results"]
    bad = [r for r in result["reasons"] if r["code"] == "tensor.bad_value"]
    assert [r["where"] for r in bad] == [name] and message in bad[0]["message"]
    # Only scales and offsets were read: 28 of them, 8 KiB, not the weights.
    assert result["tensors"]["checked"] == 28 and result["tensors"]["bytes_read"] == 8192


def test_negative_weight_scales_are_legal(tmp_path: Path) -> None:
    """auto-round's symmetric RTN exports store signed scales (found by the producer suite): a negative
    weight scale with its codes negated is the same weight, and loads."""
    root = _damaged(tmp_path, SCALE, lambda t: t.neg_())
    tensors = load_file(str(root / "model.safetensors"))
    tensors["model.layers.0.mlp.down_proj.weight"] = -tensors["model.layers.0.mlp.down_proj.weight"]
    save_file(tensors, str(root / "model.safetensors"), metadata={"format": "pt"})
    quantspec.load_quantized(root, device="cpu", progress=False)


def test_validate_tensors_is_clean_on_a_good_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["validate", str(EXAMPLE), "--tensors"]) == 0
    assert "28 scale/offset/index tensors checked" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "dtype", "kind"), [
    ("m.weight_scale", "bfloat16", ValueKind.WEIGHT_SCALE), ("m.weight_scale", "uint8", ValueKind.E8M0),
    ("m.weight_scale", "int64", ValueKind.DEQ_SCALE), ("m.deq_scale", "int64", ValueKind.DEQ_SCALE),
    ("m.deq_scale", "float32", ValueKind.DIVISOR), ("m.input_scale", "float16", ValueKind.DIVISOR),
    ("m.scales", "float16", ValueKind.WEIGHT_SCALE), ("m.g_idx", "int32", ValueKind.GROUP_INDEX),
    ("a.fa_k.scale", "float32", ValueKind.DIVISOR), ("a.fa_k.offset", "int8", ValueKind.OFFSET),
    ("m.norm.scale", "float32", None), ("m.weight", "int8", None), ("m.qzeros", "int32", None),
])
def test_kind_of(name: str, dtype: str, kind: ValueKind | None) -> None:
    assert kind_of(name, dtype) is kind


def test_value_checks_of_the_other_kinds() -> None:
    e8m0 = np.array([[127, 126], [255, 120]], np.uint8)
    r = check_values("w.weight_scale", ValueKind.E8M0, e8m0)
    assert r is not None and r.message.startswith(
        "tensor 'w.weight_scale' holds the E8M0 NaN byte 0xFF: 1 value(s), first at index [1, 0]")
    bits = np.array([0x3F800000, 0x7FC00000, 0], np.int64)  # 1.0, NaN, 0.0: two bad
    r = check_values("w.deq_scale", ValueKind.DEQ_SCALE, bits)
    assert r is not None and "2 value(s), first at index [1]" in r.message
    g = np.array([0, 0, 1, 4], np.int32)
    r = check_values("w.g_idx", ValueKind.GROUP_INDEX, g, groups=4)
    assert r is not None and "outside [0, 4): 1 value(s), first at index [3]" in r.message
    assert check_values("w.input_scale", ValueKind.DIVISOR, np.array([0.5, 0.0], np.float32)) is not None
    assert check_values("w.weight_scale", ValueKind.WEIGHT_SCALE, np.array([0.5, 0.0], np.float32)) is None
