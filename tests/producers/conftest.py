"""Where the producer suite's exports are, and what to do when they are not there.

``make producers`` writes them (each producer in its own virtual environment) under
``.cache/producers/<producer>/<case>/``; ``make test`` runs it first and sets
``QUANTSPEC_REQUIRE_PRODUCERS=1``, so that in CI a missing export fails instead of skipping.
A bare ``pytest`` without the exports skips these tests with the command to make them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def producer_dir(producer: str) -> Path:
    """The export folder of ``producer`` (``QUANTSPEC_PRODUCERS`` overrides ``.cache/producers``)."""
    base = Path(os.environ.get("QUANTSPEC_PRODUCERS", ROOT / ".cache" / "producers"))
    return base / producer


def require_export(producer: str, case_id: str) -> Path:
    """The folder of one case, or a skip (a failure under ``QUANTSPEC_REQUIRE_PRODUCERS=1``)."""
    path = producer_dir(producer) / case_id
    if not path.is_dir():
        message = f"no {producer} export at {path}: run `make producers`"
        if os.environ.get("QUANTSPEC_REQUIRE_PRODUCERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def assert_recorded_failure(producer: str, case_id: str, fragment: str | None) -> None:
    """A case its producer cannot make on CPU failed with the error docs/e2e.md lists."""
    root = require_export(producer, case_id)
    error = (root / "ERROR.txt").read_text() if (root / "ERROR.txt").is_file() else "(it exported)"
    assert fragment is not None and fragment in error, error.splitlines()[0]
