"""The JSON Schemas quantspec ships, read as package data.

The checked-in ``schemas/`` folder at the repository root is the source; the wheel carries it as
``quantspec/_schemas`` (``pyproject.toml``, force-include). :func:`schema_text` reads the packaged
copy with :mod:`importlib.resources` and falls back to the repository folder in a source checkout.
``tools/schemas_export.py`` (a developer tool, not shipped) regenerates the files from the models.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from quantspec.errors import Code, QuantspecError, reason

#: The packaged folder inside the ``quantspec`` package.
PACKAGED = "_schemas"
#: The repository folder (source checkouts and editable installs).
REPO_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def schema_text(name: str) -> str:
    """The text of one shipped schema file, e.g. ``plan.schema.json``."""
    packaged = resources.files("quantspec").joinpath(PACKAGED, name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    path = REPO_SCHEMAS / name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise QuantspecError(reason(Code.PACKAGE_DATA, f"schema {name!r} is neither packaged nor in {REPO_SCHEMAS}",
                                hint="reinstall quantspec; the wheel ships its schemas as package data"))
