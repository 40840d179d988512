"""``quantspec matrix`` and ``quantspec docs``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from quantspec.cli.main import main
from quantspec.matrix import load_matrix

REPO = Path(__file__).resolve().parents[2]


def test_matrix_json_for_a5_lists_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--target", "a5", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["targets"] == ["a5"]
    assert len(doc["entries"]) == len(load_matrix().entries)
    by_key = {e["key"]: e for e in doc["entries"]}
    assert by_key["modelslim/w8a8_mxfp8/linear"]["status"] == {"a5": "in_progress"}
    assert by_key["modelslim/w8a8_mxfp8/linear"]["diffusion"]["status"] == {"a5": "supported"}
    assert by_key["gguf/gguf/moe"]["status"] == {"a5": "untested"}


def test_matrix_filters_and_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--family", "gptq", "--layer", "moe", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 4  # header, rule, two rows
    assert "| GPTQ | W4A16 MOE | MoE | ✓ | ✓ | TBD | ✗ |" in out
    assert main(["matrix", "--target", "a2"]) == 0
    assert "modelslim           w8a8_mxfp8        linear     unsupported" in capsys.readouterr().out


def test_matrix_check_unknown_status_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((REPO / "support_matrix.yaml").read_text())
    data["entries"][2]["status"]["a3"] = "sometimes"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    assert main(["matrix", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"(at {bad}#/entries/2/status/a3)" in err
    assert "entry modelslim/w8a8_dynamic/linear: unknown a3 value 'sometimes'" in err
    assert "allowed values: 'supported', 'unsupported', 'untested' or 'in_progress'" in err
    assert "Traceback" not in err


def test_matrix_check_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "check", str(REPO / "support_matrix.yaml")]) == 0
    assert "valid (matrix 2026.12.0" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["matrix", "--target", "a9"])
    assert info.value.code == 2
    assert "[input.usage]" in capsys.readouterr().err


def test_docs_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "support_matrix.md"
    assert main(["docs", "--output", str(out), "--check"]) == 1
    assert main(["docs", "--output", str(out)]) == 0
    assert main(["docs", "--output", str(out), "--check"]) == 0
    assert out.read_text() == (REPO / "docs" / "support_matrix.md").read_text()


def test_version_subprocess() -> None:
    res = subprocess.run([sys.executable, "-m", "quantspec", "--version"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0 and res.stdout.strip() == "quantspec 0.1.0"
