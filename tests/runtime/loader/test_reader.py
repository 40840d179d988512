"""The streaming reader returns exactly what safetensors stores, for every dtype and shape."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from quantspec.checkpoint.inventory import read_inventory
from quantspec.errors import Code, InvalidCheckpoint
from quantspec.runtime.loader.reader import TensorReader


def _tensors() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen)
    return {
        "f32": x, "bf16": x.to(torch.bfloat16), "f16": x.to(torch.float16), "f64": x.double(),
        "fp8": x.to(torch.float8_e4m3fn), "fp8_e5m2": x.to(torch.float8_e5m2),
        "i8": torch.randint(-128, 127, (3, 9), dtype=torch.int8, generator=gen),
        "u8": torch.randint(0, 255, (4,), dtype=torch.uint8, generator=gen),
        "i32": torch.randint(-(2**31), 2**31 - 1, (2, 3), dtype=torch.int32, generator=gen),
        "i64": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }


def test_every_dtype_round_trips(tmp_path: Path) -> None:
    save_file(_tensors(), str(tmp_path / "a.safetensors"))
    want = load_file(str(tmp_path / "a.safetensors"))
    with TensorReader(tmp_path, read_inventory(tmp_path).tensors) as reader:
        for name, t in want.items():
            got = reader.read(name)
            assert got.dtype == t.dtype and got.shape == t.shape, name
            assert torch.equal(got.reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8)), name  # bitwise


def test_concurrent_reads_and_no_fd_leak(tmp_path: Path) -> None:
    tensors = {f"t{i}": torch.full((64, 64), float(i)) for i in range(32)}
    for j in range(2):
        save_file({k: v for k, v in tensors.items() if int(k[1:]) % 2 == j}, str(tmp_path / f"{j}.safetensors"))
    infos = read_inventory(tmp_path).tensors
    assert {k: t.file for k, t in infos.items()} == {k: f"{int(k[1:]) % 2}.safetensors" for k in tensors}
    before = len(os.listdir("/proc/self/fd"))
    out: dict[str, torch.Tensor] = {}
    with TensorReader(tmp_path, infos) as reader:
        threads = [threading.Thread(target=lambda ks=ks: out.update({k: reader.read(k) for k in ks}))
                   for ks in (list(tensors)[:16], list(tensors)[16:])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(os.listdir("/proc/self/fd")) == before
    assert all(torch.equal(out[k], v) for k, v in tensors.items())


def test_unknown_tensor_is_named(tmp_path: Path) -> None:
    save_file({"a": torch.zeros(2)}, str(tmp_path / "a.safetensors"))
    with TensorReader(tmp_path, read_inventory(tmp_path).tensors) as reader, pytest.raises(InvalidCheckpoint) as exc:
        reader.read("b")
    assert exc.value.code is Code.TENSOR_MISSING and exc.value.reasons[0].where == "b"
