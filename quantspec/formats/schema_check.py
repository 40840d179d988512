"""Check description files against the shipped JSON Schemas (``schemas/``, packaged as data).

The pydantic models already validated the file; the JSON Schema check tells whether tools
that only have the schema would accept it too (reported as notes), and the normalised
description is checked against ``checkpoint_description.schema.json`` (a failure there is a
quantspec bug, reported as ``format.schema``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from quantspec.description import CheckpointDescription
from quantspec.errors import Code, QuantspecError, Reason, reason
from quantspec.formats.base import pointer
from quantspec.formats.detect import SourceKind, detect_with_files, source_data
from quantspec.formats.specs import FORMATS
from quantspec.schema_files import schema_text
from quantspec.vocab import FormatFamily

#: Format family -> schema file of its raw model (description formats read from JSON files).
RAW_SCHEMAS: dict[FormatFamily, str] = {f: s.raw_schema for f, s in FORMATS.items() if s.raw_schema and s.reader}
DESCRIPTION_SCHEMA = "checkpoint_description.schema.json"
_MAX_REPORTED = 20


@lru_cache(maxsize=16)
def _validator(name: str) -> Any:
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads(schema_text(name))
    return jsonschema.Draft202012Validator(schema)


def check(data: Any, schema: str, *, file: str, prefix: str = "", code: Code = Code.FORMAT_SCHEMA) -> list[Reason]:
    """Reasons for every way ``data`` fails ``schema`` (at most a screenful)."""
    out: list[Reason] = []
    for err in sorted(_validator(schema).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        out.append(reason(code, f"JSON Schema {schema}: {err.message[:200]}", file=file,
                          where=pointer(prefix, *err.absolute_path) or "/"))
        if len(out) >= _MAX_REPORTED:
            break
    return out


def schema_reasons(model_dir: Path, desc: CheckpointDescription) -> list[Reason]:
    """Schema findings for the description file of ``model_dir`` and for the normalised ``desc``."""
    out = check(desc.model_dump(mode="json"), DESCRIPTION_SCHEMA, file=f"<normalised {desc.source}>")
    schema = RAW_SCHEMAS.get(desc.format)
    if schema is None:
        return out
    try:
        det, files = detect_with_files(model_dir)
    except QuantspecError:  # already reported by read_description
        return out
    if det.chosen is None or det.chosen.kind is SourceKind.GGUF:
        return out
    data = source_data(det.chosen, files)
    out += check(data, schema, file=str(model_dir / det.chosen.file), prefix=det.chosen.where, code=Code.FORMAT_NOTE)
    return out
