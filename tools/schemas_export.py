"""Generate the checked-in JSON Schemas under ``schemas/`` from the pydantic models.

A developer tool, not shipped: ``python -m tools.schemas_export`` (or ``make schemas``) rewrites
every file;
``--check`` exits 1 when a checked-in schema differs from what the models give (a test
runs the same comparison). Each module that owns a model adds it to :data:`SCHEMAS`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from quantspec._io import write_text_atomic
from quantspec.formats.specs import FORMATS
from quantspec.schema_files import REPO_SCHEMAS

#: schema file name -> "module:Model". Strings keep this import cheap and torch-free.
SCHEMAS: dict[str, str] = {
    "support_matrix.schema.json": "quantspec.matrix.model:SupportMatrix",
    "naming.schema.json": "quantspec.plan.naming_model:NamingFile",
    "checkpoint_description.schema.json": "quantspec.description:CheckpointDescription",
    "plan.schema.json": "quantspec.plan.model:Plan",
    # one per format with a raw model (quantspec/formats/specs.py)
    **{s.raw_schema: s.raw_model for s in FORMATS.values() if s.raw_schema and s.raw_model},
}

SCHEMA_DIR = REPO_SCHEMAS


def _model(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def render_schema(ref: str) -> str:
    """JSON Schema text of one model, stable across runs (sorted keys, trailing newline)."""
    schema = _model(ref).model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    out = []
    for name, ref in SCHEMAS.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render_schema(ref):
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) every schema."""
    parser = argparse.ArgumentParser(prog="python -m tools.schemas_export")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.dir)
        for n in names:
            print(f"stale schema: {args.dir / n}", file=sys.stderr)
        return 1 if names else 0
    for name, ref in SCHEMAS.items():
        write_text_atomic(args.dir / name, render_schema(ref))
        print(f"wrote {args.dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
