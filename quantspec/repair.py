"""Mechanical repairs of a checkpoint's description files (``quantspec validate DIR --fix``).

Only what users otherwise do by hand, and never a weight file:

- **rename** an older export's ``quant_model_description_<type>.json`` (the msModelSlim old API and
  MindIE write it) to ``quant_model_description.json``, the only name vLLM-Ascend and SGLang read;
- **extract** a MindIE-format description (the whole per-tensor map in ``config.json``'s
  ``quantization_config``) to ``quant_model_description.json``;
- **move aside** a ``quantization_config`` (top level or ``text_config``) of ``config.json`` when a
  msModelSlim description describes the checkpoint: vLLM-Ascend reads ``config.json`` first, so a
  stale one shadows the description.

Every file changed is first copied to ``.quantspec-backup/<UTC time>/`` in the model folder (the
removed ``quantization_config`` is kept there too), and each write is atomic.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantspec._io import read_json, write_text_atomic
from quantspec.errors import Code, InvalidInput, reason
from quantspec.formats import modelslim
from quantspec.formats.detect import CONFIG, require_dir

BACKUP_DIR = ".quantspec-backup"


@dataclass(frozen=True)
class Repair:
    """One mechanical repair: what it does, to which file."""

    kind: str
    file: str
    detail: str
    #: Keys inside ``file`` the repair reads (``extract``: the description's place in config.json).
    path: tuple[str, ...] = ()

    def render(self) -> str:
        """One line for the CLI."""
        return f"{self.kind}: {self.detail}"


def find_repairs(model_dir: Path) -> list[Repair]:
    """The repairs :func:`apply_repairs` would make (nothing is written)."""
    model_dir = require_dir(Path(model_dir))
    repairs: list[Repair] = []
    canonical = model_dir / modelslim.FILENAME
    has_description = canonical.is_file()
    if not has_description:
        others = sorted(p.name for p in model_dir.glob(modelslim.MISNAMED_GLOB) if p.is_file())
        if len(others) > 1:
            raise InvalidInput(reason(
                Code.USAGE, f"several descriptions to choose from ({', '.join(others)}); --fix will not guess",
                file=str(model_dir), hint=f"rename the right one to {modelslim.FILENAME} by hand",
            ))
        if others:
            repairs.append(Repair("rename", others[0], f"{others[0]} -> {modelslim.FILENAME}"))
            has_description = True
    config = model_dir / CONFIG
    data = read_json(config, root=model_dir) if config.is_file() else None
    if not has_description and isinstance(data, dict):
        for path in _config_pointers(data):
            value = data[path[0]] if len(path) == 1 else data[path[0]][path[1]]
            if isinstance(value, dict) and modelslim.looks_like_modelslim(value):
                # MindIE format: the description itself lives in config.json.
                repairs.append(Repair("extract", CONFIG, f"config.json {'/'.join(path)} -> {modelslim.FILENAME}",
                                      path))
                has_description = True
                break
    if has_description and isinstance(data, dict):
        for path in _config_pointers(data):
            repairs.append(Repair("move aside", CONFIG, f"config.json {'/'.join(path)} (it shadows the "
                                  f"msModelSlim description in vLLM-Ascend)"))
    return repairs


def _config_pointers(data: Any) -> list[tuple[str, ...]]:
    if not isinstance(data, dict):
        return []
    out: list[tuple[str, ...]] = []
    if "quantization_config" in data:
        out.append(("quantization_config",))
    text = data.get("text_config")
    if isinstance(text, dict) and "quantization_config" in text:
        out.append(("text_config", "quantization_config"))
    return out


def apply_repairs(model_dir: Path, repairs: list[Repair]) -> Path | None:
    """Make ``repairs`` (from :func:`find_repairs`); returns the backup folder (None: nothing to do)."""
    if not repairs:
        return None
    model_dir = Path(model_dir)
    backup = model_dir / BACKUP_DIR / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup.mkdir(parents=True)
    for name in sorted({r.file for r in repairs}):
        shutil.copy2(model_dir / name, backup / name)
    for r in repairs:
        if r.kind == "extract":
            data = read_json(model_dir / CONFIG, root=model_dir)
            value = data[r.path[0]] if len(r.path) == 1 else data[r.path[0]][r.path[1]]
            write_text_atomic(model_dir / modelslim.FILENAME, json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        if r.kind == "rename":
            # A copy then an atomic rename: the description exists under one name at every moment.
            write_text_atomic(model_dir / modelslim.FILENAME, (model_dir / r.file).read_text(encoding="utf-8"))
            (model_dir / r.file).unlink()
    if any(r.kind == "move aside" for r in repairs):
        config = model_dir / CONFIG
        data = read_json(config, root=model_dir)
        moved: dict[str, Any] = {}
        for path in _config_pointers(data):
            parent = data if len(path) == 1 else data[path[0]]
            moved["/".join(path)] = parent.pop(path[-1])
        write_text_atomic(backup / "moved_quantization_config.json", json.dumps(moved, indent=2) + "\n")
        write_text_atomic(config, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return backup
