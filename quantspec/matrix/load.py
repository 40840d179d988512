"""Loading and validating ``support_matrix.yaml``.

Loading refuses, with the file, the path inside it and the allowed values: YAML syntax
errors, duplicate mapping keys, unknown statuses or enum values, duplicate entries and an
unsupported ``schema_version``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from quantspec.errors import Code, InvalidMatrix, Reason, reason
from quantspec.matrix.model import SCHEMA_VERSION, ConstraintId, SupportMatrix

MATRIX_FILENAME = "support_matrix.yaml"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


# Dates stay strings: the changelog is text, not datetime objects.
_NO_TIMESTAMPS = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.yaml_implicit_resolvers = _NO_TIMESTAMPS

#: The same loader on libyaml's C parser when PyYAML was built with it: the pure-Python scanner
#: takes ~0.1 s on the bundled matrix, a tenth of a ``quantspec plan`` run. Only the parser
#: differs: construction (duplicate-key check) and tag resolution (no timestamps) are the
#: Python classes above.
_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CStrictLoader(yaml.CSafeLoader):
        """CSafeLoader with the duplicate-key check and without timestamps, as ``_StrictLoader``."""

    _CStrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _CStrictLoader.yaml_implicit_resolvers = _NO_TIMESTAMPS
    _FastLoader = _CStrictLoader


def _load_yaml(text: str) -> Any:
    """YAML text to Python data, refusing duplicate keys; raises ``yaml.YAMLError``.

    libyaml first when available; on any YAML error the pure-Python loader parses again, so
    that problems are reported with its messages and marks (and whatever it accepts is
    accepted with its result).
    """
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=_StrictLoader)


def default_matrix_path() -> Path:
    """Path of the bundled matrix: package data when installed, the repository root otherwise."""
    packaged = resources.files("quantspec.matrix") / MATRIX_FILENAME
    if packaged.is_file():
        return Path(str(packaged))
    # Editable installs and source checkouts: the file lives at the repository root.
    return Path(__file__).resolve().parents[2] / MATRIX_FILENAME


def parse_matrix(text: str, *, file: str) -> SupportMatrix:
    """Parse and validate matrix YAML text; raise :class:`InvalidMatrix` with every problem."""
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        code = Code.DUPLICATE_KEY if "duplicate key" in str(problem) else Code.INVALID_YAML
        raise InvalidMatrix(reason(code, f"invalid YAML: {problem}", file=file, where=where)) from None
    if not isinstance(data, dict):
        raise InvalidMatrix(reason(Code.MATRIX_SCHEMA, "the matrix must be a YAML mapping", file=file))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidMatrix(
            reason(
                Code.MATRIX_VERSION,
                f"schema_version {version!r} is not supported by this quantspec",
                file=file,
                where="/schema_version",
                hint=f"this quantspec reads schema_version {SCHEMA_VERSION}; upgrade quantspec",
            )
        )
    try:
        return SupportMatrix.model_validate(data)
    except ValidationError as exc:
        raise InvalidMatrix(_reasons(exc, data, file)) from None


def load_matrix(path: Path | str | None = None) -> SupportMatrix:
    """Load and validate a matrix file (the bundled one by default)."""
    if path is None:
        return _bundled()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidMatrix(reason(Code.FILE_NOT_FOUND, "matrix file not found", file=str(p))) from None
    except UnicodeDecodeError:
        raise InvalidMatrix(reason(Code.NOT_UTF8, "matrix file is not UTF-8", file=str(p))) from None
    return parse_matrix(text, file=str(p))


@lru_cache(maxsize=1)
def _bundled() -> SupportMatrix:
    path = default_matrix_path()
    return parse_matrix(path.read_text(encoding="utf-8"), file=str(path))


def _file_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic's error location without the discriminator tag it inserts after a constraint's index
    (``constraints/0/dim_multiple/params``): the path as it is in the file."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if i >= 2 and loc[i - 2] == "constraints" and isinstance(loc[i - 1], int) and part in _CONSTRAINT_IDS:
            continue
        out.append(part)
    return tuple(out)


_CONSTRAINT_IDS = frozenset(c.value for c in ConstraintId)


def _entry_name(data: Any, loc: tuple[int | str, ...]) -> str | None:
    """``family/scheme/layer`` of the entry a validation error points into, if readable."""
    if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int):
        try:
            e = data["entries"][loc[1]]
            return f"{e.get('family')}/{e.get('scheme')}/{e.get('layer')}"
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    return None


def _reasons(exc: ValidationError, data: Any, file: str) -> list[Reason]:
    out: list[Reason] = []
    for err in exc.errors():
        loc = _file_path(tuple(err["loc"]))
        pointer = "/" + "/".join(str(p) for p in loc) if loc else "/"
        entry = _entry_name(data, loc)
        prefix = f"entry {entry}: " if entry else ""
        ctx = err.get("ctx") or {}
        if err["type"] == "enum":
            value = err.get("input")
            field = str(loc[-1]) if loc else "value"
            out.append(
                reason(
                    Code.MATRIX_UNKNOWN_VALUE,
                    f"{prefix}unknown {field} value {value!r}",
                    file=file,
                    where=pointer,
                    hint=f"allowed values: {ctx.get('expected', '')}",
                )
            )
            continue
        msg = err["msg"]
        code = Code.MATRIX_DUPLICATE if "duplicate entry" in msg else Code.MATRIX_SCHEMA
        out.append(reason(code, f"{prefix}{msg}", file=file, where=pointer))
    return out
