"""Careful file reading and atomic writing for the pure layer.

JSON and YAML inputs come from strangers' checkpoints: every read here refuses what would
otherwise surface as a raw traceback (non-UTF-8 bytes, duplicate keys, huge files, links
that leave the model folder) and turns it into a :class:`~quantspec.errors.Reason`.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from quantspec.errors import Code, InvalidCheckpoint, reason

#: Largest description file accepted (descriptions of 100k-tensor models are ~10 MiB).
MAX_JSON_BYTES = 64 * 1024 * 1024


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


#: Longest file name taken from a checkpoint's own files (index weight maps, descriptions).
MAX_NAME_CHARS = 1024


def check_name(name: str, *, file: str, where: str | None = None, what: str = "file name") -> None:
    """Refuse a file name from a checkpoint's own metadata that cannot name a file in the folder:
    NUL or other control characters, or over :data:`MAX_NAME_CHARS` characters."""
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None or len(name) > MAX_NAME_CHARS or not name:
        detail = (f"contains the control character {bad!r}" if bad is not None
                  else "is empty" if not name else f"is {len(name)} characters long (limit {MAX_NAME_CHARS})")
        raise InvalidCheckpoint(reason(Code.BAD_PATH, f"{what} {name[:80]!r} {detail}", file=file, where=where,
                                       hint="the metadata is damaged or crafted; file names are plain text"))


def check_inside(path: Path, root: Path, *, what: str = "file") -> Path:
    """Resolve ``path`` and refuse it when it (or a link on the way) leaves ``root``, is a symlink
    loop or is not a valid path."""
    try:
        real = path.resolve()
        real_root = root.resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # loops (RuntimeError in 3.11), ELOOP, NUL
        raise InvalidCheckpoint(reason(
            Code.BAD_PATH, f"{what} {path.name!r} cannot be resolved: {exc}", file=str(path),
            hint="a symlink loop or a damaged path; replace it with the real file")) from None
    if real != real_root and real_root not in real.parents:
        raise InvalidCheckpoint(
            reason(
                Code.SYMLINK_ESCAPE if path.is_symlink() else Code.PATH_ESCAPE,
                f"{what} {path.name!r} resolves to {str(real)!r}, outside the model folder",
                file=str(path),
                hint="copy the file into the model folder instead of linking to it",
            )
        )
    return real


def open_regular(path: Path) -> tuple[BinaryIO, int]:
    """``path`` opened for binary reading, with its size. Checked with ``stat`` before ``open``
    (opening a FIFO would block): anything but a regular file, a missing or unreadable file, or a
    path that cannot name one is a coded error."""
    file = str(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InvalidCheckpoint(reason(Code.NOT_A_FILE, "is not a regular file (a FIFO, device, socket or "
                                           "folder)", file=file, hint="replace it with the real file"))
        return path.open("rb"), st.st_size
    except FileNotFoundError:
        raise InvalidCheckpoint(reason(Code.FILE_NOT_FOUND, "file not found", file=file)) from None
    except PermissionError:
        raise InvalidCheckpoint(reason(Code.PERMISSION, "permission denied", file=file,
                                       hint="make the file readable by this user")) from None
    except (OSError, ValueError) as exc:
        raise InvalidCheckpoint(reason(Code.BAD_PATH, f"cannot open: {exc}", file=file)) from None


def read_bytes(path: Path, *, limit: int = MAX_JSON_BYTES, root: Path | None = None) -> bytes:
    """Read a whole file with a size limit (and an optional containment check)."""
    if root is not None:
        check_inside(path, root)
    fh, size = open_regular(path)
    with fh:
        if size > limit:
            raise InvalidCheckpoint(reason(
                Code.FILE_TOO_LARGE, f"file is {size} bytes, over the {limit}-byte limit for description files",
                file=str(path), hint="a description file this large is almost certainly not a description"))
        return fh.read()


def parse_json_text(data: bytes, *, file: str) -> Any:
    """Parse JSON bytes strictly: UTF-8 only, no duplicate keys, no NaN literals."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidCheckpoint(
            reason(
                Code.NOT_UTF8,
                f"file is not valid UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})",
                file=file,
                hint="JSON files must be UTF-8 encoded",
            )
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKey as exc:
        raise InvalidCheckpoint(
            reason(
                Code.DUPLICATE_KEY,
                f"key {exc.key!r} appears more than once in one object",
                file=file,
                hint="JSON parsers keep only one of the values; remove the duplicate",
            )
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidCheckpoint(
            reason(
                Code.INVALID_JSON,
                f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                file=file,
                hint="fix the syntax; a truncated download is a common cause",
            )
        ) from None
    except RecursionError:
        raise InvalidCheckpoint(
            reason(Code.INVALID_JSON, "JSON nesting is too deep", file=file)
        ) from None


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"non-standard constant {name}", name, 0)


def read_json(path: Path, *, root: Path | None = None, limit: int = MAX_JSON_BYTES) -> Any:
    """Read and strictly parse one JSON file."""
    return parse_json_text(read_bytes(path, limit=limit, root=root), file=str(path))


def read_json_once(path: Path, *, root: Path | None = None) -> Any:
    """:func:`read_json` parsed once per file version (resolved path, size, modification time): the
    format detection and the planner share one parse of ``config.json``. Each caller gets its own
    copy, so no caller sees another's changes."""
    if root is not None:
        check_inside(path, root)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    except (OSError, ValueError, RuntimeError):
        return read_json(path, root=root)  # reports the problem with its code
    return copy.deepcopy(_json_cached(*key))


@lru_cache(maxsize=16)
def _json_cached(resolved: str, size: int, mtime_ns: int) -> Any:
    return read_json(Path(resolved))


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success.

    Readers never see a half-written file, and a failure leaves the old file untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8, trailing newline kept as given)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
