"""Fixtures for format tests: a model folder builder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MakeDir = Callable[..., Path]


@pytest.fixture
def make_model(tmp_path: Path) -> MakeDir:
    """Build a model folder from ``{file name: JSON value or raw bytes}``."""

    def make(files: dict[str, Any], name: str = "model") -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        for rel, value in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, bytes):
                path.write_bytes(value)
            else:
                path.write_text(json.dumps(value), encoding="utf-8")
        return root

    return make
