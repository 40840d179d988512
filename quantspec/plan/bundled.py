"""The planner's bundled data files (``defects.yaml``, ``parallel.yaml``, ``devices.yaml``), read as
package data with the matrix's strict YAML loader and validated by their models."""

from __future__ import annotations

from importlib import resources
from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def load_bundled(name: str, model: type[M]) -> M:
    """``quantspec/plan/<name>`` parsed (duplicate keys refused) and validated as ``model``."""
    from quantspec.matrix.load import _load_yaml

    text = resources.files("quantspec.plan").joinpath(name).read_text(encoding="utf-8")
    return model.model_validate(_load_yaml(text))
