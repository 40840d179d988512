"""``quantspec validate --fix``: mechanical repairs with a backup, weights untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import quantspec
from quantspec.cli.main import main
from quantspec.errors import InvalidInput
from quantspec.repair import BACKUP_DIR, apply_repairs, find_repairs

DESC = {"model_quant_type": "W8A8_DYNAMIC", "m.weight": "W8A8_DYNAMIC"}
CONFIG = {"model_type": "llama", "quantization_config": {"quant_method": "gptq", "bits": 4},
          "text_config": {"quantization_config": {"bits": 8}}}


def _folder(root: Path, files: dict[str, object]) -> Path:
    root.mkdir()
    for name, value in files.items():
        (root / name).write_text(json.dumps(value))
    (root / "model.safetensors").write_bytes(b"weights stay as they are")
    return root


def test_fix_renames_and_moves_aside_with_a_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder(tmp_path / "m", {"quant_model_description_w8a8_dynamic.json": DESC, "config.json": CONFIG})
    assert [r.kind for r in find_repairs(root)] == ["rename", "move aside", "move aside"]
    main(["validate", str(root), "--fix"])
    out = capsys.readouterr().out
    assert "fixed: rename: quant_model_description_w8a8_dynamic.json -> quant_model_description.json" in out
    assert json.loads((root / "quant_model_description.json").read_text()) == DESC
    assert not (root / "quant_model_description_w8a8_dynamic.json").exists()
    config = json.loads((root / "config.json").read_text())
    assert "quantization_config" not in config and "quantization_config" not in config["text_config"]
    [backup] = (root / BACKUP_DIR).iterdir()
    assert json.loads((backup / "config.json").read_text()) == CONFIG
    assert json.loads((backup / "quant_model_description_w8a8_dynamic.json").read_text()) == DESC
    assert json.loads((backup / "moved_quantization_config.json").read_text()) == {
        "quantization_config": CONFIG["quantization_config"],
        "text_config/quantization_config": {"bits": 8}}
    assert (root / "model.safetensors").read_bytes() == b"weights stay as they are"
    assert find_repairs(root) == []  # idempotent
    assert apply_repairs(root, []) is None


def test_fix_refuses_to_guess_between_descriptions(tmp_path: Path) -> None:
    root = _folder(tmp_path / "m", {"quant_model_description_w8a8.json": DESC,
                                    "quant_model_description_w4a8_dynamic.json": DESC})
    with pytest.raises(InvalidInput) as exc:
        find_repairs(root)
    assert exc.value.reasons[0].message.startswith("several descriptions to choose from")


def test_config_without_a_description_is_left_alone(tmp_path: Path) -> None:
    root = _folder(tmp_path / "m", {"config.json": CONFIG})
    assert find_repairs(root) == []


def test_plan_rejects_a_misnamed_description_as_a_whole(tmp_path: Path) -> None:
    from tests.plan.builders import ms_linear, write_safetensors

    root = _folder(tmp_path / "m", {"quant_model_description_w8a8_dynamic.json": DESC})
    write_safetensors(root / "model.safetensors", ms_linear("m", "W8A8_DYNAMIC", 64, 64))
    plan = quantspec.plan(root, target="a3")
    assert plan.summary.rejected == 0  # every layer is fine: the name alone rejects it
    assert not plan.accepted
    assert [r.code.value for r in plan.rejections] == ["format.misnamed_description"]


def test_mindie_config_description_is_flagged_and_extracted(tmp_path: Path) -> None:
    """MindIE / msit exports keep the per-tensor map in config.json (vLLM-Ascend #633)."""
    from quantspec.formats import read_description

    mindie = {"model_type": "qwen2", "quantize": "w8a8", "quantization_config": DESC}
    root = _folder(tmp_path / "m", {"config.json": mindie})
    [f] = [f for f in read_description(root).findings if f.code.value == "format.misnamed_description"]
    assert f.message.startswith("the msModelSlim description is in config.json#quantization_config (MindIE format)")
    assert [r.kind for r in find_repairs(root)] == ["extract", "move aside"]
    apply_repairs(root, find_repairs(root))
    assert json.loads((root / "quant_model_description.json").read_text()) == DESC
    assert "quantization_config" not in json.loads((root / "config.json").read_text())
    assert not [f for f in read_description(root).findings if f.code.value == "format.misnamed_description"]
