"""Hostile paths: NUL bytes and over-long names in weight maps, symlink loops, FIFOs where files
should be, unreadable files. Each is a coded error with the file and a hint, never exit 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantspec.cli.main import main as cli
from tests.hostile.crafted import safetensors_bytes

ONE = {"a.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}


def _model(tmp_path: Path) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "bfloat16"}))
    return root


def _index(root: Path, fname: str) -> None:
    (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a.weight": fname}}))


def _plan(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    start = time.perf_counter()
    rc = cli(["plan", str(root), "--target", "a2"])
    assert time.perf_counter() - start < 5.0  # hang guard: milliseconds expected
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize(("fname", "message"), [
    ("model\x00.safetensors", "weight-map file 'model\\x00.safetensors' contains the control character '\\x00'"),
    ("x" * 5000 + ".safetensors", "characters long (limit 1024)"),
    ("", "weight-map file '' is empty"),
])
def test_weight_map_names_that_cannot_name_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], fname: str,
                                                  message: str) -> None:
    root = _model(tmp_path)
    _index(root, fname)
    rc, out = _plan(root, capsys)
    assert rc == 2 and "[input.bad_path]" in out and message in out, out
    assert "model.safetensors.index.json" in out and "hint:" in out


def test_symlink_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _model(tmp_path)
    os.symlink(root / "b.safetensors", root / "model.safetensors")
    os.symlink(root / "model.safetensors", root / "b.safetensors")
    _index(root, "model.safetensors")
    rc, out = _plan(root, capsys)
    assert rc == 2 and "[input.bad_path]" in out and "cannot be resolved" in out, out


def test_symlink_loop_without_an_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _model(tmp_path)
    os.symlink(root / "b.safetensors", root / "model.safetensors")
    os.symlink(root / "model.safetensors", root / "b.safetensors")
    rc, out = _plan(root, capsys)
    assert rc == 2 and "internal error" not in out and "model.safetensors" in out, out


def _cli_subprocess(args: list[str]) -> subprocess.CompletedProcess[str]:
    # A FIFO opened for reading blocks until a writer comes: a regression would hang, so the
    # command runs in its own process with a generous timeout.
    return subprocess.run([sys.executable, "-m", "quantspec", *args], check=False, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("name", ["model.safetensors", "model.gguf", "config.json"])
def test_fifo_in_place_of_a_file(tmp_path: Path, name: str) -> None:
    root = _model(tmp_path)
    if name == "config.json":
        (root / "config.json").unlink()
        (root / "model.safetensors").write_bytes(safetensors_bytes(ONE, b"\0" * 4))
    os.mkfifo(root / name)
    res = _cli_subprocess(["plan", str(root), "--target", "a2"])
    assert res.returncode == 2, res.stdout + res.stderr
    assert "[input.not_a_file]" in res.stdout + res.stderr and name in res.stdout + res.stderr


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission errors (simulated: the suite may run as root, where chmod 000 denies nothing)."""
    root = _model(tmp_path)
    path = root / "model.safetensors"
    path.write_bytes(safetensors_bytes(ONE, b"\0" * 4))
    real_open = Path.open

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "model.safetensors":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", deny)
    rc, out = _plan(root, capsys)
    assert rc == 2 and "[input.permission_denied]" in out and "model.safetensors" in out, out
