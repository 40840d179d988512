"""``quantspec plan``: output formats, grouping, --layer, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantspec.cli.main import main
from tests.plan.fixtures import FIXTURES


def _fixture(name: str, tmp_path: Path) -> str:
    builder, _ = FIXTURES[name]
    return str(builder(tmp_path / name))


def test_table_groups_repeated_layers_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", _fixture("dense_w8a8_dynamic_a3", tmp_path), "--target", "a3"])
    out = capsys.readouterr().out
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("model.layers.*.self_attn.qkv_proj"))
    assert row.split()[1:5] == ["linear", "2", "accepted", "W8A8_DYNAMIC"]
    assert "Summary:" in out and "all layers accepted" in out


def test_rejections_exit_1_and_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", _fixture("mxfp8_a3", tmp_path), "--target", "a3"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "Rejections:" in out and "[matrix.unsupported] w8a8_mxfp8 linear (modelslim) is unsupported on a3" in out


def test_allow_untested_on_a5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fixture("mxfp8_a3", tmp_path)
    assert main(["plan", path, "--target", "a5"]) == 1
    capsys.readouterr()
    assert main(["plan", path, "--target", "a5", "--allow-untested", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"]["allow_untested"] is True
    assert doc["policy"]["accepted_statuses"] == ["supported", "untested", "in_progress"]


def test_json_and_layer_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", _fixture("quantized_embedding_a3", tmp_path), "--target", "a3", "--format", "json",
               "--layer", r"mlp\."])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0  # the rejected embedding is filtered out
    assert {layer["name"] for layer in doc["layers"]} == {"model.layers.0.mlp.down_proj",
                                                           "model.layers.0.mlp.gate_up_proj"}
    assert doc["summary"]["layers"] == 2 and doc["target"] == "a3" and doc["matrix_version"]
    assert set(doc["layers"][0]) >= {"name", "kind", "status", "scheme", "reasons", "quant", "executable",
                                     "kernels", "transforms", "bytes_after_load", "warnings", "tensors"}


def test_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", _fixture("quantized_embedding_a3", tmp_path), "--target", "a3", "--format", "md"])
    out = capsys.readouterr().out
    assert rc == 1 and out.startswith("# Plan:") and "## Rejections" in out and "| LAYER |" in out


@pytest.mark.parametrize("args", [["plan", "/nonexistent/model", "--target", "a3"],
                                  ["plan", ".", "--target", "a9"],
                                  ["plan", ".", "--target", "a3", "--layer", "("]])
def test_invalid_input_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(args))
    assert exc.value.code == 2


def test_moe_rejection_blocks_name_the_weight_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """moe_w13 and moe_w2 share a module name: their rejection blocks say which one."""
    from quantspec.cli.main import main
    from tests.plan.fixtures import FIXTURES

    builder, _ = FIXTURES["expert_mismatch_a3"]
    main(["plan", str(builder(tmp_path / "m")), "--target", "a3"])
    out = capsys.readouterr().out
    block = out[out.index("Rejections:"):]
    assert "mlp.experts moe_w13" in block or "mlp.experts moe_w2" in block
