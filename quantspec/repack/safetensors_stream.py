"""A small, strict safetensors header reader and a streaming writer, without torch.

Why hand-written rather than the ``safetensors`` package: the repack tool only renames
tensors, so it never needs to decode one. Reading the header (8-byte little-endian length,
then a JSON object of ``name -> {dtype, shape, data_offsets}``) and copying each tensor's
byte range keeps the tool

- in the pure layer (``safetensors``' Python API hands out framework tensors; the pure
  layer never imports torch);
- dtype-agnostic (fp8, uint8 E8M0 scales, packed FP4, bf16 are all just bytes here);
- memory-light (data is streamed in fixed-size chunks; a 14B transformer is never loaded).

Headers are validated before a single byte is copied: offsets inside the file, tensors not
overlapping, dtype names known, and ``prod(shape) * dtype bits / 8`` equal to the byte
length. Every problem of a file is reported at once as a :class:`~quantspec.errors.Reason`
naming the file and the tensor.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, TypeAlias

from pydantic import BaseModel, ConfigDict

from quantspec._io import parse_json_text
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason

#: Bits per element of every safetensors dtype code (including the newer sub-byte ones).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

#: The safetensors reference implementation refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: Copy granularity: large enough for throughput, small enough to keep memory flat.
CHUNK_BYTES = 16 * 1024 * 1024
_METADATA = "__metadata__"


class TensorInfo(BaseModel):
    """One tensor of a safetensors file, as its header describes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: str
    shape: tuple[int, ...]
    #: The file holding the tensor.
    file: Path
    #: Absolute byte offset of the tensor's data in ``file``.
    start: int
    #: Byte length of the tensor's data.
    nbytes: int


def _bad(code: Code, message: str, file: Path, where: str | None = None, hint: str | None = None) -> Reason:
    return reason(code, message, file=str(file), where=where, hint=hint)


def _read_prefix(path: Path) -> tuple[bytes, int]:
    """Return the raw header bytes and the total file size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise InvalidCheckpoint(_bad(Code.TENSOR_TRUNCATED, f"file is {size} bytes, too short for "
                                             "a safetensors header", path))
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise InvalidCheckpoint(_bad(Code.TENSOR_HEADER, f"header length {length} is over the "
                                             f"{MAX_HEADER_BYTES}-byte limit", path,
                                             hint="the file is not a safetensors file or is corrupt"))
            if 8 + length > size:
                raise InvalidCheckpoint(_bad(Code.TENSOR_TRUNCATED, f"header length {length} runs past the "
                                             f"end of the {size}-byte file", path,
                                             hint="the file is truncated; download it again"))
            return fh.read(length), size
    except FileNotFoundError:
        raise InvalidCheckpoint(_bad(Code.FILE_NOT_FOUND, "file not found", path)) from None


def _entry_reasons(path: Path, name: str, raw: object, data_len: int) -> tuple[list[Reason], TensorInfo | None]:
    """Validate one header entry; return its problems, or its :class:`TensorInfo`."""
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        return [_bad(Code.TENSOR_HEADER, "entry must be an object with exactly dtype, shape and "
                     "data_offsets", path, name)], None
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    problems: list[Reason] = []
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        problems.append(_bad(Code.TENSOR_DTYPE, f"unknown dtype {dtype!r}", path, name,
                             hint=f"known dtypes: {', '.join(sorted(DTYPE_BITS))}"))
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        problems.append(_bad(Code.TENSOR_HEADER, f"shape {shape!r} is not a list of non-negative integers",
                             path, name))
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        problems.append(_bad(Code.TENSOR_HEADER, f"data_offsets {offsets!r} is not [begin, end] with "
                             "0 <= begin <= end", path, name))
    if problems:
        return problems, None
    begin, end = offsets
    if end > data_len:
        problems.append(_bad(Code.TENSOR_TRUNCATED, f"data_offsets [{begin}, {end}] run past the end of the "
                             f"{data_len}-byte data section", path, name,
                             hint="the file is truncated; download it again"))
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        problems.append(_bad(Code.TENSOR_SHAPE, f"shape {shape} of {dtype} needs {bits / 8:g} bytes but "
                             f"data_offsets span {end - begin}", path, name))
    if problems:
        return problems, None
    return [], TensorInfo(name=name, dtype=dtype, shape=tuple(shape), file=path, start=begin, nbytes=end - begin)


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Read and validate the header of one safetensors file.

    Returns the tensors by name (absolute data positions resolved) and the
    ``__metadata__`` mapping. Raises :class:`InvalidCheckpoint` with every problem found.
    """
    raw_header, size = _read_prefix(path)
    header = parse_json_text(raw_header, file=str(path))
    if not isinstance(header, dict):
        raise InvalidCheckpoint(_bad(Code.TENSOR_HEADER, "header is not a JSON object", path))
    data_start = 8 + len(raw_header)
    data_len = size - data_start
    problems: list[Reason] = []
    metadata = header.pop(_METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        problems.append(_bad(Code.TENSOR_HEADER, "__metadata__ must map strings to strings", path, _METADATA))
        metadata = {}
    tensors: dict[str, TensorInfo] = {}
    for name, raw in header.items():
        found, info = _entry_reasons(path, name, raw, data_len)
        problems.extend(found)
        if info is not None:
            tensors[name] = info
    # Overlap check on the valid entries, in data order; empty tensors cannot overlap anything.
    previous: TensorInfo | None = None
    for info in sorted((t for t in tensors.values() if t.nbytes), key=lambda t: t.start):
        if previous is not None and info.start < previous.start + previous.nbytes:
            problems.append(_bad(Code.TENSOR_HEADER, f"data of {info.name!r} overlaps {previous.name!r}",
                                 path, info.name, hint="the header is corrupt"))
        previous = info
    if problems:
        raise InvalidCheckpoint(problems)
    resolved = {n: t.model_copy(update={"start": data_start + t.start}) for n, t in tensors.items()}
    return resolved, {str(k): str(v) for k, v in metadata.items()}


#: A tensor to write: its (new) name and where its bytes are.
Renamed: TypeAlias = tuple[str, TensorInfo]


def _alignment_key(item: Renamed) -> tuple[int, str]:
    # Widest dtypes first: every tensor's byte length is a multiple of its element size, so
    # after an 8-byte-aligned header each tensor starts aligned for zero-copy readers.
    bits = DTYPE_BITS[item[1].dtype]
    return (-(bits if bits % 8 == 0 else 0), item[0])


def plan_layout(tensors: Iterable[Renamed], metadata: dict[str, str]) -> tuple[bytes, list[Renamed]]:
    """Build the header bytes (length prefix included) and the order in which data is written."""
    order = sorted(tensors, key=_alignment_key)
    if len({name for name, _ in order}) != len(order):
        raise ValueError("two tensors with the same name; rename_all() refuses such mappings")
    header: dict[str, object] = {_METADATA: dict(metadata)} if metadata else {}
    offset = 0
    for name, info in order:
        header[name] = {"dtype": info.dtype, "shape": list(info.shape),
                        "data_offsets": [offset, offset + info.nbytes]}
        offset += info.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # pad with spaces (allowed by the format) to 8-byte alignment
    return struct.pack("<Q", len(text)) + text, order


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int) -> None:
    src.seek(start)
    remaining = length
    while remaining:
        chunk = src.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            raise OSError(f"unexpected end of file at byte {start + length - remaining}")
        dst.write(chunk)
        remaining -= len(chunk)


def write_renamed(
    target: Path,
    tensors: Iterable[Renamed],
    metadata: dict[str, str],
) -> int:
    """Write ``(new_name, source)`` pairs to ``target`` as one safetensors file, streaming the data.

    Each tensor's bytes are copied verbatim from its source file, ``CHUNK_BYTES`` at a time;
    at most one chunk is held in memory. Returns the number of data bytes written.
    """
    header, order = plan_layout(tensors, metadata)
    written = 0
    with ExitStack() as stack:
        handles: dict[Path, BinaryIO] = {}
        dst = stack.enter_context(target.open("wb"))
        dst.write(header)
        for _name, info in order:
            src = handles.get(info.file)
            if src is None:
                src = handles[info.file] = stack.enter_context(info.file.open("rb"))
            _copy_range(src, dst, info.start, info.nbytes)
            written += info.nbytes
    return written
