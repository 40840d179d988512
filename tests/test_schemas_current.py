"""Checked-in JSON Schemas match the models they are generated from."""

from __future__ import annotations

from tools.schemas_export import stale


def test_schemas_are_current() -> None:
    assert stale() == [], "schemas/ is stale: run `python -m tools.schemas_export`"
