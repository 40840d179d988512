"""``quantspec validate``: exit codes, JSON report, pipelines, corpus files, lean imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantspec.cli.main import main
from tests.formats.test_corpus import CORPUS, FILES

MS = {"model_quant_type": "W8A8", "m.weight": "W8A8", "lm_head.weight": "FLOAT"}


def make(root: Path, files: dict[str, object | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, bytes):
            (root / name).write_bytes(value)
        else:
            (root / name).write_text(json.dumps(value))
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_modelslim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(make(tmp_path / "m", {"quant_model_description.json": MS})))
    assert code == 0
    assert "format modelslim from quant_model_description.json: W8A8 x1, FLOAT x1" in out
    assert "result: valid" in out


def test_unquantized_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(make(tmp_path / "m", {"config.json": {"model_type": "llama"}})))
    assert code == 0 and "format unquantized" in out


def test_all_findings_at_once_with_pointers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make(tmp_path / "m", {"config.json": {"quantization_config": {
        "quant_method": "compressed-tensors",
        "config_groups": {"a": {"targets": ["re:("], "weights": {"num_bits": "x"}}, "W9A1": ["Linear"]}}}})
    code, out, _ = run(capsys, str(root), "--json")
    assert code == 1
    doc = json.loads(out)
    reasons = doc["results"][0]["reasons"]
    wheres = {(r["code"], r["where"]) for r in reasons}
    assert ("format.wrong_type", "/quantization_config/config_groups/a/weights/num_bits") in wheres
    assert all(r["file"].endswith("config.json") and r["hint"] for r in reasons)


def test_semantic_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make(tmp_path / "m", {"config.json": {"quantization_config": {
        "quant_method": "compressed-tensors", "ignore": ["re:("],
        "config_groups": {"W9A1": ["Linear"]}}}})
    code, out, _ = run(capsys, str(root), "--json")
    codes = sorted(r["code"] for r in json.loads(out)["results"][0]["reasons"])
    assert code == 1 and codes == ["format.invalid_pattern", "format.unknown_value"]


def test_conflict_is_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gptq = {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True}
    root = make(tmp_path / "m", {"config.json": {"quantization_config": gptq},
                                 "quantize_config.json": {**gptq, "bits": 8}})
    code, out, _ = run(capsys, str(root))
    assert code == 1
    assert "[format.sources_disagree] 'bits' is 8 in quantize_config.json but 4 in config.json" in out


def test_unsupported_is_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make(tmp_path / "m", {"config.json": {"quantization_config": {"quant_method": "mxfp4"}}})
    code, out, _ = run(capsys, str(root))
    assert code == 1 and "format.unsupported_format" in out and "supported formats:" in out


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe", b'{"a": 1, "a": 2}'])
def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    code, out, _ = run(capsys, str(make(tmp_path / "m", {"quant_model_description.json": content})))
    assert code == 2 and "result: unreadable" in out


def test_missing_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "none"))
    assert code == 2 and "input.file_not_found" in err


def test_pipeline_components(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make(tmp_path / "p", {
        "model_index.json": {"transformer": ["diffusers", "T"], "transformer_2": ["diffusers", "T"]},
        "transformer/quant_model_description.json": MS,
        "transformer_2/quant_model_description.json": {"m.weight": "W9Z9"},
    })
    code, out, _ = run(capsys, str(root), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["pipeline"] is True
    assert [r["status"] for r in doc["results"]] == [0, 1]


@pytest.mark.skipif(not FILES, reason="shared corpus not present")
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_as_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Path) -> None:
    name = "quant_model_description.json" if path.parent.name == "modelslim" else "config.json"
    shutil.copy(path, tmp_path / name)
    code, out, err = run(capsys, str(tmp_path))
    assert code in (0, 1)
    assert "Traceback" not in out + err and "internal error" not in err
    assert "result:" in out


def test_validate_leaves_torch_out(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"quant_model_description.json": MS})
    code = (
        "import sys, quantspec\n"
        "from quantspec.cli.main import main\n"
        f"rc = main(['validate', {str(root)!r}])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'gguf' not in sys.modules, 'gguf imported without a .gguf file'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
