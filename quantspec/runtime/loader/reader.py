"""Streaming tensor reader: one tensor at a time, straight from the file into its own buffer.

The checkpoint reader (``quantspec.checkpoint.inventory``) has already validated every
safetensors header (dtypes, shapes, offsets inside the file, no overlaps) and knows each
tensor's byte range; this reader parses no header of its own. It maps a file when the first
tensor of that file is asked for and copies each tensor out of the map into its own buffer,
then drops the tensor's mapped pages from the process (``MADV_DONTNEED``; they stay in the page
cache): resident memory is the result plus the tensors in flight, never a second copy
of the checkpoint. The file size is re-checked before each read: a file that shrank after
planning is an error naming the tensor and the file.

Pickle weights (``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) are refused before
anything is read: unpickling runs arbitrary code.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Protocol

import torch
from torch import Tensor

from quantspec._io import check_inside
from quantspec.checkpoint.inventory import LOADABLE_DTYPES, TensorInfo, find_index
from quantspec.errors import Code, InvalidCheckpoint, reason

#: The inventory's canonical dtype names -> torch dtypes (the one place they are mapped to torch).
#: A canonical dtype outside ``LOADABLE_DTYPES`` (F4, F6_*) is refused at plan time.
TORCH_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in sorted(LOADABLE_DTYPES)}
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
    """One open safetensors file: its descriptor and (once a tensor is read) its read-only map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.map: mmap.mmap | None = None
        self.lock = threading.Lock()

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

    def read(self, info: TensorInfo) -> Tensor:
        name = info.name
        dtype = TORCH_DTYPES.get(info.dtype)
        if dtype is None:
            raise self.error(Code.TENSOR_DTYPE, f"dtype {info.dtype} has no torch dtype", where=name)
        start, length = info.offset, info.nbytes
        # Re-checked on every read: a file that shrank since planning must not be touched through
        # the map (that would be SIGBUS), it is an error naming the tensor.
        size = os.fstat(self.fd).st_size
        if start + length > size:
            raise self.error(Code.TENSOR_TRUNCATED,
                             f"tensor {name!r} ends at byte {start + length} but the file has {size}", where=name)
        if length == 0:
            return torch.empty(info.shape, dtype=dtype)
        with self.lock:
            if self.map is None or len(self.map) < start + length:
                # Private and writable only so that torch accepts the buffer; nothing writes to it.
                self.map = mmap.mmap(self.fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            mapped = self.map
        src = torch.frombuffer(mapped, dtype=torch.uint8, count=length, offset=start)
        raw = src.clone()  # the tensor's own memory (a parallel memcpy from the page cache)
        del src
        # Drop the mapped pages from this process (they stay in the page cache): resident memory is
        # the result plus the tensors in flight, never the checkpoint as well.
        lo = start // mmap.PAGESIZE * mmap.PAGESIZE
        hi = min(len(mapped), -(-(start + length) // mmap.PAGESIZE) * mmap.PAGESIZE)
        mapped.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        return raw.view(dtype).reshape(info.shape)

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


class TensorReader:
    """Reads named tensors of a safetensors checkpoint; files are opened on first use.

    ``infos`` is the inventory's tensors (file, dtype, shape, byte range of each). Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, model_dir: Path, infos: dict[str, TensorInfo]) -> None:
        self.model_dir = Path(model_dir)
        self.infos = infos
        self.files = {n: t.file for n, t in infos.items()}
        self._open: dict[str, _File] = {}
        self._lock = threading.Lock()

    def read(self, name: str) -> Tensor:
        """The tensor ``name`` as stored (dtype and shape of its header)."""
        info = self.infos.get(name)
        if info is None:
            raise InvalidCheckpoint(
                reason(
                    Code.TENSOR_MISSING,
                    f"tensor {name!r} is not in the checkpoint",
                    file=str(self.model_dir),
                    where=name,
                )
            )
        fname = info.file
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
        return handle.read(info)  # the map is shared; reads of distinct ranges run concurrently

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
