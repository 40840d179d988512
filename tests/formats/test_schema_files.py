"""The checked-in JSON Schemas validate the tests' own example files of every format."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantspec.formats import read_description
from quantspec.formats.gguf import read_gguf_header
from quantspec.formats.schema_check import DESCRIPTION_SCHEMA, check
from tests.formats.examples import SCHEMA_OF, load
from tests.formats.gguf_fixture import write_tiny_gguf
from tools.schemas_export import SCHEMAS


@pytest.mark.parametrize("name", sorted(SCHEMA_OF))
def test_example_validates(name: str) -> None:
    assert SCHEMA_OF[name] in SCHEMAS
    assert check(load(name), SCHEMA_OF[name], file=name) == []


def test_gguf_header_and_mxfp8_request(tmp_path: Path) -> None:
    header = read_gguf_header(write_tiny_gguf(tmp_path / "m.gguf"))
    assert check(header.model_dump(mode="json"), "gguf_header.schema.json", file="m.gguf") == []
    assert check({"quant_method": "mxfp8", "activation_scheme": "dynamic"}, "mxfp8_request.schema.json", file="r") == []
    assert check({"quant_method": "mxfp8", "activation_scheme": "static"}, "mxfp8_request.schema.json", file="r")


def test_schema_rejects_what_the_producer_rejects() -> None:
    bad = {"config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "bogus": True}}}}
    reasons = check(bad, "compressed_tensors_config.schema.json", file="c")
    assert reasons and (reasons[0].where or "").startswith("/config_groups")


def test_normalised_descriptions_validate(tmp_path: Path) -> None:
    for i, name in enumerate(sorted(SCHEMA_OF)):
        root = tmp_path / str(i)
        root.mkdir()
        target = "quant_model_description.json" if name.startswith("modelslim") else "quantization_config.json"
        (root / target).write_text((Path(__file__).parent / "examples" / name).read_text())
        desc = read_description(root)
        assert check(desc.model_dump(mode="json"), DESCRIPTION_SCHEMA, file=name) == []
