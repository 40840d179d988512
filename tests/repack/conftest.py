"""Fixtures: a Wan2.2 cascade export (T2V-A14B shape) and its original Diffusers folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repack.wan_fixtures import Tensor, write_export, write_original


class Cascade:
    """Paths and written contents of a cascade repack scenario."""

    def __init__(self, root: Path, scheme: str = "W8A8_MXFP8") -> None:
        self.root = root
        self.original = root / "Wan2.2-T2V-A14B-Diffusers"
        self.quant = root / "wan_quant"
        self.output = root / "out" / "wan_repacked"
        write_original(self.original, cascade=True)
        self.high: tuple[dict[str, Tensor], dict[str, object]] = write_export(
            self.quant / "high_noise_model", scheme)
        self.low: tuple[dict[str, Tensor], dict[str, object]] = write_export(
            self.quant / "low_noise_model", scheme, shards=3)


@pytest.fixture
def cascade(tmp_path: Path) -> Cascade:
    """A T2V-A14B-shaped MXFP8 export: high-noise single file, low-noise in three shards."""
    return Cascade(tmp_path)
