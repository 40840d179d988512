"""Loading and validating support_matrix.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quantspec.errors import Code, InvalidMatrix
from quantspec.matrix import load_matrix, parse_matrix
from quantspec.matrix.load import default_matrix_path
from quantspec.vocab import FormatFamily, MatrixLayer, NpuGen, SchemeId, Status

REPO = Path(__file__).resolve().parents[2]


def _data() -> dict:
    return yaml.safe_load((REPO / "support_matrix.yaml").read_text(encoding="utf-8"))


def _text(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def test_bundled_matrix_is_the_repository_file() -> None:
    assert default_matrix_path().read_text() == (REPO / "support_matrix.yaml").read_text()
    m = load_matrix()
    assert m.schema_version == 2
    assert m.changelog[0].version == m.matrix_version


def test_unknown_status_names_file_entry_and_allowed_values() -> None:
    data = _data()
    data["entries"][1]["status"]["a2"] = "maybe"
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(_text(data), file="m.yaml")
    (r,) = info.value.reasons
    assert r.code is Code.MATRIX_UNKNOWN_VALUE
    assert r.file == "m.yaml"
    assert r.where == "/entries/1/status/a2"
    assert r.message == "entry modelslim/w8a8_static/linear: unknown a2 value 'maybe'"
    assert r.hint == "allowed values: 'supported', 'unsupported', 'untested' or 'in_progress'"


def test_every_problem_is_reported_not_only_the_first() -> None:
    data = _data()
    data["entries"][0]["status"]["a5"] = "tbd"
    data["entries"][3]["layer"] = "conv"
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(_text(data), file="m.yaml")
    wheres = [r.where for r in info.value.reasons]
    assert wheres == ["/entries/0/status/a5", "/entries/3/layer"]


def test_duplicate_entries_are_refused() -> None:
    data = _data()
    data["entries"].append(dict(data["entries"][0]))
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(_text(data), file="m.yaml")
    assert info.value.code is Code.MATRIX_DUPLICATE
    assert "duplicate entry modelslim/w4a4_dynamic/linear" in info.value.reasons[0].message


def test_duplicate_yaml_keys_are_refused() -> None:
    text = (REPO / "support_matrix.yaml").read_text().replace(
        "    label: \"W8A8 static\"\n", "    label: \"W8A8 static\"\n    label: \"again\"\n", 1
    )
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(text, file="m.yaml")
    r = info.value.reasons[0]
    assert r.code is Code.DUPLICATE_KEY
    assert r.where is not None and r.where.startswith("line ")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("entries: [", Code.INVALID_YAML),
        ("- a\n- b\n", Code.MATRIX_SCHEMA),
        ("schema_version: 9\n", Code.MATRIX_VERSION),
    ],
)
def test_malformed_files(text: str, code: Code) -> None:
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(text, file="m.yaml")
    assert info.value.code is code


def test_unknown_source_and_bad_version() -> None:
    data = _data()
    data["entries"][0]["sources"] = ["nowhere"]
    data["matrix_version"] = "v1"
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(_text(data), file="m.yaml")
    messages = " ".join(r.message for r in info.value.reasons)
    assert "not of the form YYYY.MM.patch" in messages


def test_missing_file() -> None:
    with pytest.raises(InvalidMatrix) as info:
        load_matrix("/nonexistent/matrix.yaml")
    assert info.value.code is Code.FILE_NOT_FOUND


def test_lookup_and_select() -> None:
    m = load_matrix()
    e = m.lookup(FormatFamily.MODELSLIM, SchemeId.W8A8_MXFP8, MatrixLayer.LINEAR)
    assert e is not None
    assert e.status.get(NpuGen.A5) is Status.IN_PROGRESS
    assert [r.render() for r in e.requirements] == ["Ascend A5", "CANN >= 8.0.RC3", "torch_npu >= 2.9"]
    assert m.lookup(FormatFamily.AWQ, SchemeId.W8A8_MXFP8, MatrixLayer.LINEAR) is None
    assert {x.family for x in m.select(layer=MatrixLayer.MOE)} >= {FormatFamily.MODELSLIM, FormatFamily.GGUF}


def test_a_misspelt_constraint_parameter_is_refused_not_defaulted() -> None:
    data = _data()
    i, entry = next((i, e) for i, e in enumerate(data["entries"])
                    if any(c["id"] == "dim_multiple" for c in e.get("constraints", [])))
    j = next(j for j, c in enumerate(entry["constraints"]) if c["id"] == "dim_multiple")
    params = entry["constraints"][j]["params"]
    params["multple"] = params.pop("multiple")
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(_text(data), file="m.yaml")
    wheres = {r.where for r in info.value.reasons}
    assert f"/entries/{i}/constraints/{j}/params/multple" in wheres, info.value.reasons
    assert all(r.file == "m.yaml" for r in info.value.reasons)


def test_a_constraint_parameter_of_the_wrong_kind_is_refused() -> None:
    data = _data()
    i, entry = next((i, e) for i, e in enumerate(data["entries"])
                    if any(c["id"] == "weight_bits" for c in e.get("constraints", [])))
    j = next(j for j, c in enumerate(entry["constraints"]) if c["id"] == "weight_bits")
    entry["constraints"][j]["params"] = {"max": 4}
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(_text(data), file="m.yaml")
    assert any(r.where.startswith(f"/entries/{i}/constraints/{j}") for r in info.value.reasons)
