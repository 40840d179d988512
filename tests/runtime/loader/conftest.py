"""Session cache of the tiny checkpoints the loader tests share (writing them dominates the time)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import PreTrainedModel

Maker = Callable[[Path], PreTrainedModel]


class Checkpoints:
    """Checkpoints written once per session; tests that damage one take a private copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, tuple[Path, PreTrainedModel]] = {}

    def get(self, name: str, make: Maker) -> tuple[Path, PreTrainedModel]:
        """The shared (read-only) checkpoint ``name`` and the float model it was exported from."""
        if name not in self._made:
            path = self.root / name
            self._made[name] = (path, make(path))
        return self._made[name]

    def copy(self, name: str, make: Maker, dest: Path) -> tuple[Path, PreTrainedModel]:
        """A private copy of checkpoint ``name`` under ``dest``."""
        path, ref = self.get(name, make)
        shutil.copytree(path, dest, dirs_exist_ok=True)
        return dest, ref


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    """The session's checkpoint cache."""
    return Checkpoints(tmp_path_factory.mktemp("loader-ckpts"))
