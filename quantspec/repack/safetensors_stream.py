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
import struct
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, TypeAlias

from pydantic import BaseModel, ConfigDict

from quantspec.checkpoint.inventory import ST_DTYPES, read_safetensors

#: Bits per element of every safetensors dtype code (the checkpoint reader's table).
DTYPE_BITS: dict[str, int] = {code: bits for code, (_, bits) in ST_DTYPES.items()}
_CODE_OF: dict[str, str] = {canonical: code for code, (canonical, _) in ST_DTYPES.items()}

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


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Read and validate the header of one safetensors file through the checkpoint reader
    (:func:`quantspec.checkpoint.inventory.read_safetensors`, the one strict parser).

    Returns the tensors by name (absolute data positions, the file's dtype codes) and the
    ``__metadata__`` mapping. Raises :class:`InvalidCheckpoint` with every problem found.
    """
    infos, metadata = read_safetensors(path)
    return {n: TensorInfo(name=n, dtype=_CODE_OF[t.dtype], shape=t.shape, file=path, start=t.offset,
                          nbytes=t.nbytes) for n, t in infos.items()}, metadata


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
