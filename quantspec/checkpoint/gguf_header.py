"""A bounded GGUF header parser: metadata and tensor infos, checked against the file's size.

gguf-py's ``GGUFReader`` trusts every count in the file: a 100-byte file that claims an array of
2^40 items, or 2^62 tensors, makes it allocate or loop for minutes. Here every count, length and
size is checked against the bytes left in the file *before* anything is allocated or looped over,
names and strings have length limits, arrays nest at most :data:`MAX_ARRAY_DEPTH` deep, and every
tensor's data must lie inside the file. A violation is a ``tensor.bad_header`` error naming the
byte offset. Long arrays (tokenizer vocabularies) are skipped, not decoded: only their length is
kept. Pure Python (``struct``); the ggml type table comes from the ``gguf`` package.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantspec._io import open_regular
from quantspec.errors import Code, InvalidCheckpoint, reason

MAGIC = b"GGUF"
#: Longest key, tensor name or string value accepted (bytes).
MAX_NAME_BYTES = 64 * 1024
MAX_STRING_BYTES = 16 * 1024 * 1024
#: Arrays of arrays nest at most this deep (the format allows it; no real file goes past 1).
MAX_ARRAY_DEPTH = 2
#: Arrays longer than this are summarised as ``"[<n> items]"`` (their bytes are skipped).
MAX_ARRAY_ITEMS = 256
#: ggml's GGML_MAX_DIMS.
MAX_DIMS = 4

# value type -> (struct code, size); 8 = STRING, 9 = ARRAY
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
    7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class RawTensorInfo:
    """One tensor info record as stored: name, ggml type id, ggml ``ne`` dims, data offset."""

    name: str
    type_id: int
    dims: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class RawGguf:
    """What :func:`parse_gguf` read: version, metadata (long arrays summarised), tensor infos, and the
    absolute offset where tensor data starts."""

    version: int
    metadata: dict[str, Any]
    tensors: tuple[RawTensorInfo, ...]
    data_start: int
    alignment: int
    size: int


class _Cursor:
    def __init__(self, data: bytes | memoryview, file: str) -> None:
        self.data = data
        self.pos = 0
        self.file = file

    def fail(self, message: str, at: int | None = None) -> InvalidCheckpoint:
        at = self.pos if at is None else at
        return InvalidCheckpoint(reason(
            Code.TENSOR_HEADER, f"GGUF header: {message} (byte {at})", file=self.file,
            hint="the file is truncated, damaged or not GGUF"))

    def left(self) -> int:
        return len(self.data) - self.pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left():
            raise self.fail(f"{what} needs {n} bytes, {self.left()} left in the file")

    def unpack(self, code: str, size: int, what: str) -> Any:
        self.need(size, what)
        (value,) = struct.unpack_from(code, self.data, self.pos)
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", 8, what))

    def string(self, what: str, limit: int) -> str:
        start = self.pos
        n = self.u64(f"{what} length")
        if n > limit:
            raise self.fail(f"{what} is {n} bytes long, over the {limit}-byte limit", start)
        self.need(n, what)
        raw = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8", start) from None
        if "\x00" in text:
            raise self.fail(f"{what} contains a NUL character", start)
        return text

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            code, size = _SCALARS[vtype]
            return self.unpack(code, size, what)
        if vtype == _STRING:
            return self.string(what, MAX_STRING_BYTES)
        if vtype != _ARRAY:
            raise self.fail(f"{what} has unknown value type {vtype}")
        if depth >= MAX_ARRAY_DEPTH:
            raise self.fail(f"{what}: arrays nest deeper than {MAX_ARRAY_DEPTH}")
        etype = self.u32(f"{what} element type")
        count = self.u64(f"{what} item count")
        # The least each item can take: its scalar size, a string's 8-byte length, or an array's 12.
        least = _SCALARS[etype][1] if etype in _SCALARS else 8 if etype == _STRING else 12 if etype == _ARRAY else 0
        if least == 0:
            raise self.fail(f"{what} has unknown element type {etype}")
        if count * least > self.left():
            raise self.fail(f"{what} claims {count} items ({count * least} bytes at least), "
                            f"{self.left()} bytes left in the file")
        if etype in _SCALARS and count > MAX_ARRAY_ITEMS:
            self.pos += count * least  # skipped: a summary is kept
            return f"[{count} items]"
        if count > MAX_ARRAY_ITEMS:  # walked (each item's length checked), not kept
            for i in range(count):
                self.value(etype, f"{what}[{i}]", depth + 1)
            return f"[{count} items]"
        return [self.value(etype, f"{what}[{i}]", depth + 1) for i in range(count)]


def parse_gguf(data: bytes | memoryview, *, file: str) -> RawGguf:
    """Parse a whole GGUF file's bytes (a ``memoryview`` of an mmap is fine; only the header is touched)."""
    c = _Cursor(data, file)
    c.need(4, "magic")
    if bytes(data[:4]) != MAGIC:
        raise c.fail(f"magic is {bytes(data[:4])!r}, not b'GGUF'")
    c.pos = 4
    version = c.u32("version")
    if version not in (2, 3):
        raise c.fail(f"version {version} is not read (2 and 3 are)", 4)
    n_tensors = c.u64("tensor count")
    n_kv = c.u64("metadata count")
    # least bytes per record: a KV is key length 8 + type 4 + 1; a tensor info 8 + 4 + 4 + 8
    if n_kv * 13 > c.left() or n_tensors * 24 > c.left():
        raise c.fail(f"{n_tensors} tensors and {n_kv} metadata entries cannot fit in the {c.left()} bytes left", 8)
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        start = c.pos
        key = c.string(f"metadata key #{i}", MAX_NAME_BYTES)
        vtype = c.u32(f"metadata {key!r} type")
        value = c.value(vtype, f"metadata {key!r}")
        if key in metadata:
            raise c.fail(f"metadata key {key!r} appears twice", start)
        metadata[key] = value
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise c.fail(f"general.alignment {alignment!r} is not a positive power of two")
    infos: list[RawTensorInfo] = []
    for i in range(n_tensors):
        name = c.string(f"tensor name #{i}", MAX_NAME_BYTES)
        n_dims = c.u32(f"tensor {name!r} dimension count")
        if not 1 <= n_dims <= MAX_DIMS:
            raise c.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        dims = tuple(c.u64(f"tensor {name!r} dim {d}") for d in range(n_dims))
        type_id = c.u32(f"tensor {name!r} type")
        offset = c.u64(f"tensor {name!r} offset")
        infos.append(RawTensorInfo(name, type_id, dims, offset))
    data_start = -(-c.pos // alignment) * alignment
    return RawGguf(version=version, metadata=metadata, tensors=tuple(infos), data_start=data_start,
                   alignment=alignment, size=len(data))


def read_gguf_bytes(path: Path) -> tuple[RawGguf, str]:
    """Parse ``path`` (a regular file, memory-mapped read-only); returns the header and the file name."""
    import mmap

    file = str(path)
    fh, size = open_regular(path)
    with fh:
        if size == 0:
            raise InvalidCheckpoint(reason(Code.TENSOR_HEADER, "GGUF header: the file is empty", file=file,
                                           hint="the file is truncated, damaged or not GGUF"))
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                return parse_gguf(view, file=file), file
            finally:
                view.release()
