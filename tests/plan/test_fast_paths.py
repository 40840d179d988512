"""The plan path's fast variants give exactly what the plain ones give."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quantspec.formats import modelslim
from quantspec.formats.base import parse_raw
from quantspec.matrix import load as matrix_load

REPO = Path(__file__).resolve().parents[2]


def test_libyaml_matrix_loader_matches_the_python_one() -> None:
    text = (REPO / "support_matrix.yaml").read_text(encoding="utf-8")
    assert matrix_load._load_yaml(text) == yaml.load(text, Loader=matrix_load._StrictLoader)


@pytest.mark.skipif(matrix_load._FastLoader is None, reason="PyYAML without libyaml")
def test_libyaml_loader_keeps_the_strict_rules() -> None:
    assert matrix_load._FastLoader is not None
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        yaml.load("a: 1\na: 2\n", Loader=matrix_load._FastLoader)
    assert yaml.load("d: 2026-11-26\n", Loader=matrix_load._FastLoader) == {"d": "2026-11-26"}


ODD = {
    "model_quant_type": "W8A8_DYNAMIC",
    "version": "1.0.0",
    "kv_cache_type": "C8",
    "fa_quant_type": None,
    "a.q_proj.weight": "W8A8",
    "a.q_proj.input_scale": "W8A8",
    "a/b~c.weight": "W8A8_DYNAMIC",
    "a.k_proj.kv_cache_scale": "W8A8",
    "a.k_proj.kv_cache_offset": "W8A8",
    "a.fa_k.scale": "W8A8",
    "odd.weight": "W9A9",
    "weird": 3,
    "b.weight": "W4A16",
    "none.weight": None,
    "c.weight": "FLOAT",
}


@pytest.mark.parametrize("prefix", ["", "/quantization_config"])
def test_modelslim_read_equals_full_validation_then_normalise(prefix: str) -> None:
    # read() validates only the header keys and passes the entries on; the public normalise()
    # takes a model validated with every entry: both must give the same description.
    fast = modelslim.read(ODD, file="f", source="s", prefix=prefix)
    raw = parse_raw(modelslim.ModelSlimDescription, ODD, file="f", prefix=prefix)
    slow = modelslim.normalise(raw, file="f", source="s", prefix=prefix)
    assert fast == slow
    assert fast.rules[1].origin == f"{prefix}/a~1b~0c.weight"
    assert [f.where for f in fast.findings] == [f.where for f in slow.findings]
