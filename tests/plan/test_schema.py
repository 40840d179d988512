"""Plan JSON conforms to the checked-in schemas/plan.schema.json."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("golden", sorted((ROOT / "tests" / "golden" / "plan").glob("*.json")), ids=lambda p: p.stem)
def test_golden_plans_validate_against_the_schema(golden: Path) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(golden.read_text(encoding="utf-8")))
