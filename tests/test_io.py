"""Strict JSON reading and atomic writing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantspec._io import atomic_path, check_inside, parse_json_text, read_json, write_text_atomic
from quantspec.errors import Code, InvalidCheckpoint, QuantspecError


def test_duplicate_keys_refused() -> None:
    with pytest.raises(InvalidCheckpoint) as info:
        parse_json_text(b'{"a": 1, "b": {"c": 1, "c": 2}}', file="f.json")
    assert info.value.code is Code.DUPLICATE_KEY
    assert info.value.reasons[0].message == "key 'c' appears more than once in one object"


def test_non_utf8_and_syntax() -> None:
    with pytest.raises(InvalidCheckpoint) as info:
        parse_json_text(b'{"a": "\xff"}', file="f.json")
    assert info.value.code is Code.NOT_UTF8
    with pytest.raises(InvalidCheckpoint) as info:
        parse_json_text(b'{"a": 1,', file="f.json")
    assert info.value.code is Code.INVALID_JSON
    with pytest.raises(InvalidCheckpoint) as info:
        parse_json_text(b'{"a": NaN}', file="f.json")
    assert info.value.code is Code.INVALID_JSON


def test_size_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.json"
    p.write_text('{"a": "' + "x" * 100 + '"}')
    with pytest.raises(InvalidCheckpoint) as info:
        read_json(p, limit=50)
    assert info.value.code is Code.FILE_TOO_LARGE


def test_symlink_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").symlink_to(outside)
    with pytest.raises(InvalidCheckpoint) as info:
        read_json(model / "config.json", root=model)
    assert info.value.code is Code.SYMLINK_ESCAPE
    assert check_inside(model, model) == model.resolve()


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_our_error(data: bytes) -> None:
    with contextlib.suppress(QuantspecError):
        parse_json_text(data, file="f.json")


def test_read_json_once_parses_each_version_once_and_hands_out_copies(tmp_path: Path) -> None:
    from quantspec import _io

    p = tmp_path / "config.json"
    p.write_text('{"a": [1]}')
    before = _io._json_cached.cache_info().misses
    first = _io.read_json_once(p)
    first["a"].append(2)  # a caller's change is its own
    assert _io.read_json_once(p) == {"a": [1]}
    assert _io._json_cached.cache_info().misses == before + 1  # parsed once
    p.write_text('{"a": [1, 2, 3]}')  # a new version (size changed) is parsed again
    assert _io.read_json_once(p) == {"a": [1, 2, 3]}
