"""Inventory from headers only: strict safetensors parsing, index handling, path escapes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from quantspec.checkpoint.inventory import find_index, read_inventory, read_safetensors_header
from quantspec.errors import Code, InvalidCheckpoint
from tests.plan.builders import write_json, write_safetensors


def _raw(path: Path, header: dict[str, object], data: int) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * data)
    return path


def test_header_dtypes_and_shapes(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "a.safetensors", {"w": ("I8", (4, 8)), "s": ("BF16", (4, 1)),
                                                       "f": ("F8_E4M3", (2, 2))})
    assert read_safetensors_header(p) == {"w": ("int8", (4, 8)), "s": ("bfloat16", (4, 1)),
                                          "f": ("float8_e4m3fn", (2, 2))}


@pytest.mark.parametrize(("header", "data", "code", "text"), [
    ({"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}, 1, Code.TENSOR_DTYPE, "unknown dtype 'Q9'"),
    ({"w": {"dtype": "I8", "shape": [4], "data_offsets": [0, 8]}}, 8, Code.TENSOR_SHAPE, "needs 4 bytes"),
    ({"w": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}, 2, Code.TENSOR_TRUNCATED, "run past the end"),
    ({"a": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]},
      "b": {"dtype": "I8", "shape": [4], "data_offsets": [2, 6]}}, 8, Code.TENSOR_HEADER, "overlaps"),
    ({"w": {"dtype": "I8", "shape": [-1], "data_offsets": [0, 0]}}, 0, Code.TENSOR_HEADER, "bad entry"),
])
def test_bad_headers(tmp_path: Path, header: dict[str, object], data: int, code: Code, text: str) -> None:
    p = _raw(tmp_path / "x.safetensors", header, data)
    with pytest.raises(InvalidCheckpoint) as exc:
        read_safetensors_header(p)
    assert exc.value.code is code and text in exc.value.reasons[0].message


def test_duplicate_tensor_names_are_refused(tmp_path: Path) -> None:
    body = b'{"w": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}, ' \
           b'"w": {"dtype": "I8", "shape": [1], "data_offsets": [1, 2]}}'
    p = tmp_path / "d.safetensors"
    p.write_bytes(struct.pack("<Q", len(body)) + body + b"\0\0")
    with pytest.raises(InvalidCheckpoint) as exc:
        read_safetensors_header(p)
    assert exc.value.code is Code.DUPLICATE_KEY


def test_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\1\2")
    with pytest.raises(InvalidCheckpoint) as exc:
        read_safetensors_header(tmp_path / "short.safetensors")
    assert exc.value.code is Code.TENSOR_TRUNCATED
    (tmp_path / "long.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(InvalidCheckpoint) as exc:
        read_safetensors_header(tmp_path / "long.safetensors")
    assert exc.value.code is Code.TENSOR_TRUNCATED


def test_index_precedence_and_stray_files(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "quant_model_weights-00000-of-00001.safetensors", {"a.weight": ("I8", (2, 2))})
    write_safetensors(tmp_path / "stray.safetensors", {"b.weight": ("I8", (2, 2))})
    write_json(tmp_path / "quant_model_weights.safetensors.index.json",
               {"weight_map": {"a.weight": "quant_model_weights-00000-of-00001.safetensors"}})
    write_json(tmp_path / "model.safetensors.index.json", {"weight_map": {"b.weight": "stray.safetensors"}})
    assert find_index(tmp_path) == tmp_path / "quant_model_weights.safetensors.index.json"
    inv = read_inventory(tmp_path)
    assert set(inv.tensors) == {"a.weight"}
    assert inv.findings and "stray.safetensors" in inv.findings[0].message


def test_weight_map_outside_the_folder_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_safetensors(tmp_path / "outside.safetensors", {"a.weight": ("I8", (2, 2))})
    write_json(model / "model.safetensors.index.json", {"weight_map": {"a.weight": "../outside.safetensors"}})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_inventory(model)
    assert exc.value.code is Code.PATH_ESCAPE
    assert exc.value.reasons[0].where == "/weight_map/a.weight"


def test_weight_map_missing_tensor(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "m.safetensors", {"a.weight": ("I8", (2, 2))})
    write_json(tmp_path / "model.safetensors.index.json",
               {"weight_map": {"a.weight": "m.safetensors", "b.weight": "m.safetensors"}})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_inventory(tmp_path)
    assert exc.value.code is Code.TENSOR_MISSING


def test_without_index_every_file_is_read_and_duplicates_refused(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "a.safetensors", {"x.weight": ("I8", (2, 2))})
    write_safetensors(tmp_path / "b.safetensors", {"x.weight": ("I8", (2, 2))})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_inventory(tmp_path)
    assert "in both a.safetensors and b.safetensors" in exc.value.reasons[0].message


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read_inventory(tmp_path)
    assert exc.value.code is Code.FILE_NOT_FOUND


def test_duplicate_names_in_the_weight_map_are_refused(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "m.safetensors", {"a.weight": ("I8", (2, 2))})
    (tmp_path / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a.weight": "m.safetensors", "a.weight": "m.safetensors"}}')
    with pytest.raises(InvalidCheckpoint) as exc:
        read_inventory(tmp_path)
    assert exc.value.code is Code.DUPLICATE_KEY


def test_header_names_not_in_the_weight_map_are_ignored(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "m.safetensors", {"a.weight": ("I8", (2, 2)), "b.weight": ("I8", (2, 2))})
    write_json(tmp_path / "model.safetensors.index.json", {"weight_map": {"a.weight": "m.safetensors"}})
    assert set(read_inventory(tmp_path).tensors) == {"a.weight"}


def test_naming_data_is_validated_like_the_matrix() -> None:
    from importlib import resources

    import yaml

    from quantspec.errors import InvalidInput
    from quantspec.plan.discover import parse_naming

    text = resources.files("quantspec.plan").joinpath("naming.yaml").read_text(encoding="utf-8")
    assert parse_naming(text, file="naming.yaml").replicated  # the bundled file validates
    data = yaml.safe_load(text)
    data["moe"]["fused_3d"]["down_proj"] = "w3"
    data["row_paralel"] = data.pop("row_parallel")
    with pytest.raises(InvalidInput) as err:
        parse_naming(yaml.safe_dump(data), file="naming.yaml")
    got = {(r.code.value, r.where) for r in err.value.reasons}
    assert got == {("naming.schema", "/moe/fused_3d/down_proj"), ("naming.schema", "/row_parallel"),
                   ("naming.schema", "/row_paralel")}
    assert all(r.file == "naming.yaml" for r in err.value.reasons)


def test_a_dtype_the_runtime_cannot_build_is_refused_at_plan_time(tmp_path: Path) -> None:
    import json
    import struct

    import quantspec

    header = {"model.norm.weight": {"dtype": "F4", "shape": [64], "data_offsets": [0, 32]},
              "lm_head.weight": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [32, 64]}}
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(64))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "bfloat16"}))
    plan = quantspec.plan(tmp_path, target="a2")
    [bad] = plan.rejected_layers()
    assert bad.name == "model.norm" and [r.code.value for r in bad.reasons] == ["tensor.dtype_mismatch"]
    assert bad.reasons[0].message == ("model.norm reads float4_e2m1fn tensors, which quantspec's runtime cannot "
                                      "build (no torch dtype)")


def test_the_loadable_dtypes_are_the_runtimes() -> None:
    from quantspec.checkpoint.inventory import LOADABLE_DTYPES, ST_DTYPES
    from quantspec.runtime.loader.reader import TORCH_DTYPES

    assert set(TORCH_DTYPES) == LOADABLE_DTYPES <= {c for c, _ in ST_DTYPES.values()}
