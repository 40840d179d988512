"""The hand-written safetensors header reader and streaming writer."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from quantspec.checkpoint.inventory import MAX_HEADER_BYTES
from quantspec.errors import Code, InvalidCheckpoint
from quantspec.repack import safetensors_stream as sts
from tests.repack.wan_fixtures import data, write_safetensors


def _raw(path: Path, header: dict[str, object], body: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


def _mixed(path: Path) -> Path:
    write_safetensors(path, {
        "a.weight": ("F8_E4M3", (4, 64), data("a.weight", "F8_E4M3", (4, 64))),
        "a.weight_scale": ("U8", (4, 2), data("a.weight_scale", "U8", (4, 2))),
        "b.bias": ("BF16", (3,), data("b.bias", "BF16", (3,))),
        "c.scale": ("F32", (5, 1), data("c.scale", "F32", (5, 1))),
    }, {"format": "pt"})
    return path


def test_read_header_resolves_absolute_offsets(tmp_path: Path) -> None:
    path = _mixed(tmp_path / "m.safetensors")
    tensors, metadata = sts.read_header(path)
    assert metadata == {"format": "pt"}
    assert set(tensors) == {"a.weight", "a.weight_scale", "b.bias", "c.scale"}
    raw = path.read_bytes()
    for name, info in tensors.items():
        assert raw[info.start:info.start + info.nbytes] == data(name, info.dtype, info.shape)
    assert tensors["a.weight_scale"].shape == (4, 2)


def test_write_renamed_streams_identical_bytes_aligned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sts, "CHUNK_BYTES", 7)  # force many chunks per tensor
    tensors, _ = sts.read_header(_mixed(tmp_path / "m.safetensors"))
    out = tmp_path / "out.safetensors"
    written = sts.write_renamed(out, [(f"new.{n}", i) for n, i in tensors.items()], {"format": "pt"})
    assert written == sum(i.nbytes for i in tensors.values())
    renamed, metadata = sts.read_header(out)
    assert metadata == {"format": "pt"}
    raw = out.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    assert (8 + hlen) % 8 == 0
    for name, info in tensors.items():
        new = renamed[f"new.{name}"]
        assert (new.dtype, new.shape) == (info.dtype, info.shape)
        assert raw[new.start:new.start + new.nbytes] == data(name, info.dtype, info.shape)
        assert new.start % (sts.DTYPE_BITS[new.dtype] // 8) == 0


def test_output_loads_with_the_safetensors_library(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    tensors, _ = sts.read_header(_mixed(tmp_path / "m.safetensors"))
    out = tmp_path / "out.safetensors"
    sts.write_renamed(out, list(tensors.items()), {"format": "pt"})
    loaded = st.load_file(str(out))
    assert loaded["a.weight"].dtype == torch.float8_e4m3fn
    assert loaded["a.weight_scale"].dtype == torch.uint8
    for name, info in tensors.items():
        assert loaded[name].contiguous().view(torch.uint8).numpy().tobytes() == data(name, info.dtype, info.shape)


def test_every_entry_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _raw(tmp_path / "bad.safetensors", {
        "unknown": {"dtype": "F7", "shape": [2], "data_offsets": [0, 2]},
        "short": {"dtype": "F32", "shape": [2], "data_offsets": [2, 6]},
        "ok": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "overlap": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
        "past_end": {"dtype": "U8", "shape": [8], "data_offsets": [8, 16]},
        "neg": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]},
        "extra": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "x": 1},
    }, bytes(10))
    with pytest.raises(InvalidCheckpoint) as info:
        sts.read_header(path)
    got = {(r.code, r.where) for r in info.value.reasons}
    assert got == {
        (Code.TENSOR_DTYPE, "unknown"),
        (Code.TENSOR_SHAPE, "short"),
        (Code.TENSOR_TRUNCATED, "past_end"),
        (Code.TENSOR_HEADER, "neg"),
        (Code.TENSOR_HEADER, "extra"),
        (Code.TENSOR_HEADER, "overlap"),
    }
    assert all(r.file == str(path) for r in info.value.reasons)


@pytest.mark.parametrize(("blob", "code"), [
    (b"\x01\x02", Code.TENSOR_TRUNCATED),
    (struct.pack("<Q", 1000) + b"{}", Code.TENSOR_TRUNCATED),
    (struct.pack("<Q", MAX_HEADER_BYTES + 1), Code.TENSOR_HEADER),
    (struct.pack("<Q", 2) + b"[]", Code.TENSOR_HEADER),
    (struct.pack("<Q", 3) + b"{x}", Code.INVALID_JSON),
    (struct.pack("<Q", 30) + b'{"__metadata__": {"a": 1}}    ', Code.TENSOR_HEADER),
])
def test_malformed_files_are_refused(tmp_path: Path, blob: bytes, code: Code) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(blob)
    with pytest.raises(InvalidCheckpoint) as info:
        sts.read_header(path)
    assert info.value.code is code


def test_sub_byte_dtypes_need_whole_bytes(tmp_path: Path) -> None:
    ok = _raw(tmp_path / "ok.safetensors", {"p": {"dtype": "F4", "shape": [2, 4], "data_offsets": [0, 4]}}, bytes(4))
    assert sts.read_header(ok)[0]["p"].nbytes == 4
    odd = _raw(tmp_path / "odd.safetensors", {"p": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2))
    with pytest.raises(InvalidCheckpoint) as info:
        sts.read_header(odd)
    assert info.value.code is Code.TENSOR_SHAPE
