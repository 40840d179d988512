"""Checked-in JSON Schemas match the models they are generated from."""

from __future__ import annotations

from quantspec.schemas_export import stale


def test_schemas_are_current() -> None:
    assert stale() == [], "schemas/ is stale: run `python -m quantspec.schemas_export`"
