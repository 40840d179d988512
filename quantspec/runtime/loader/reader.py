"""Streaming tensor reader: one tensor at a time, straight from the file into its own buffer.

The planner has already validated every safetensors header (dtypes, shapes, offsets inside
the file, no overlaps). The reader re-parses the header of a file when the first tensor of
that file is asked for, maps the file, and copies each tensor out of the map into its own
buffer, then drops the tensor's mapped pages from the process (``MADV_DONTNEED``; they stay in
the page cache): resident memory is the result plus the tensors in flight, never a second copy
of the checkpoint. The file size is re-checked before each read: a file that shrank after
planning is an error naming the tensor and the file.

Pickle weights (``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) are refused before
anything is read: unpickling runs arbitrary code.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading
from pathlib import Path
from types import TracebackType
from typing import Protocol

import torch
from torch import Tensor

from quantspec._io import check_inside
from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.plan.inventory import find_index

#: safetensors dtype code -> torch dtype (little-endian data, as the format mandates).
TORCH_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "U16": torch.uint16,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I32": torch.int32,
    "U32": torch.uint32,
    "F32": torch.float32,
    "F64": torch.float64,
    "I64": torch.int64,
    "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3FNUZ": torch.float8_e4m3fnuz,
    "F8_E5M2FNUZ": torch.float8_e5m2fnuz,
    "F8_E8M0": torch.float8_e8m0fnu,
}
#: Weight files that would have to be unpickled.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def refuse_pickle(model_dir: Path) -> None:
    """Raise when the weights are pickle files (named by the index, or the only weights present)."""
    index = find_index(model_dir)
    named: list[str] = []
    if index is not None:
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            data = None  # the planner reports an unreadable index with its own reason
        wm = data.get("weight_map") if isinstance(data, dict) else None
        if isinstance(wm, dict):
            named = sorted({f for f in wm.values() if isinstance(f, str) and f.lower().endswith(PICKLE_SUFFIXES)})
    has_safe = any(model_dir.glob("*.safetensors")) or any(model_dir.glob("*.gguf"))
    pickles = named or (
        []
        if has_safe
        else sorted(p.name for p in model_dir.iterdir() if p.is_file() and p.name.lower().endswith(PICKLE_SUFFIXES))
    )
    if pickles:
        raise InvalidCheckpoint(
            reason(
                Code.TENSOR_PICKLE,
                f"pickle weight file(s) refused, never unpickled: {', '.join(pickles[:5])}",
                file=str(model_dir / pickles[0]),
                hint="convert the weights to safetensors (e.g. transformers save_pretrained(safe_serialization=True))",
            )
        )


class Reader(Protocol):
    """What the builder reads from: tensor name -> file, one tensor at a time, files released."""

    files: dict[str, str]

    def read(self, name: str) -> Tensor:
        """The tensor ``name``."""
        ...

    def release(self, fname: str) -> None:
        """No more tensors of ``fname`` are needed."""
        ...


class _File:
    """One open safetensors file: its descriptor, data start and header entries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self.fd).st_size
            head = os.pread(self.fd, 8, 0)
            if len(head) < 8:
                raise self.error(Code.TENSOR_TRUNCATED, "file is shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            raw = os.pread(self.fd, n, 8)
            if len(raw) < n:
                raise self.error(Code.TENSOR_TRUNCATED, f"header of {n} bytes runs past the end of the file")
            try:
                header = json.loads(raw)
            except ValueError:
                raise self.error(Code.TENSOR_HEADER, "the header is not valid JSON") from None
            if not isinstance(header, dict):
                raise self.error(Code.TENSOR_HEADER, "the header is not a JSON object")
            self.entries: dict[str, object] = header
            self.start = 8 + n
            self.map: mmap.mmap | None = None
            self.lock = threading.Lock()
        except BaseException:
            os.close(self.fd)
            raise

    def error(self, code: Code, message: str, where: str | None = None) -> InvalidCheckpoint:
        return InvalidCheckpoint(
            reason(
                code,
                message,
                file=str(self.path),
                where=where,
                hint="the file is damaged or changed since planning; re-download it",
            )
        )

    def read(self, name: str) -> Tensor:
        entry = self.entries.get(name)
        if not isinstance(entry, dict):
            raise self.error(Code.TENSOR_MISSING, f"tensor {name!r} is not in the file", where=name)
        try:
            dtype = TORCH_DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise self.error(Code.TENSOR_HEADER, f"unsupported or malformed entry {entry!r}", where=name) from None
        length = end - begin
        count = 1
        for d in shape:
            count *= d
        if begin < 0 or length != count * dtype.itemsize:
            raise self.error(Code.TENSOR_HEADER, f"data_offsets [{begin}, {end}] do not fit {shape}", where=name)
        # Re-checked on every read: a file that shrank since planning must not be touched through
        # the map (that would be SIGBUS), it is an error naming the tensor.
        size = os.fstat(self.fd).st_size
        if self.start + end > size:
            raise self.error(Code.TENSOR_TRUNCATED,
                             f"tensor {name!r} ends at byte {self.start + end} but the file has {size}", where=name)
        if length == 0:
            return torch.empty(shape, dtype=dtype)
        with self.lock:
            if self.map is None or len(self.map) < self.start + end:
                # Private and writable only so that torch accepts the buffer; nothing writes to it.
                self.map = mmap.mmap(self.fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            mapped = self.map
        src = torch.frombuffer(mapped, dtype=torch.uint8, count=length, offset=self.start + begin)
        raw = src.clone()  # the tensor's own memory (a parallel memcpy from the page cache)
        del src
        # Drop the mapped pages from this process (they stay in the page cache): resident memory is
        # the result plus the tensors in flight, never the checkpoint as well.
        lo = (self.start + begin) // mmap.PAGESIZE * mmap.PAGESIZE
        hi = min(len(mapped), -(-(self.start + end) // mmap.PAGESIZE) * mmap.PAGESIZE)
        mapped.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        return raw.view(dtype).reshape(shape)

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


class TensorReader:
    """Reads named tensors of a safetensors checkpoint; files are opened on first use.

    ``files`` maps each tensor name to its file (relative to ``model_dir``), as the planner's
    inventory lists it. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, model_dir: Path, files: dict[str, str]) -> None:
        self.model_dir = Path(model_dir)
        self.files = files
        self._open: dict[str, _File] = {}
        self._lock = threading.Lock()

    def read(self, name: str) -> Tensor:
        """The tensor ``name`` as stored (dtype and shape of its header)."""
        fname = self.files.get(name)
        if fname is None:
            raise InvalidCheckpoint(
                reason(
                    Code.TENSOR_MISSING,
                    f"tensor {name!r} is not in the checkpoint",
                    file=str(self.model_dir),
                    where=name,
                )
            )
        with self._lock:  # builder threads may ask for the same file at once
            handle = self._open.get(fname)
            if handle is None:
                path = check_inside(self.model_dir / fname, self.model_dir, what="weight file")
                try:
                    handle = _File(path)
                except OSError as exc:
                    raise InvalidCheckpoint(
                        reason(Code.FILE_NOT_FOUND, f"cannot read: {exc.strerror}", file=str(path), where=name)
                    ) from None
                self._open[fname] = handle
        return handle.read(name)  # pread: safe to run concurrently on one descriptor

    def release(self, fname: str) -> None:
        """Close ``fname`` (no more tensors of it are needed)."""
        with self._lock:
            handle = self._open.pop(fname, None)
        if handle is not None:
            handle.close()

    def close(self) -> None:
        """Close every open file."""
        for fname in list(self._open):
            self.release(fname)

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
