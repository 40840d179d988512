"""Tensor inventory from metadata only: safetensors headers and GGUF tensor infos.

No tensor data is read. A safetensors file is an 8-byte little-endian header length, a JSON
header ``{name: {dtype, shape, data_offsets}, "__metadata__": {...}}`` and the data buffer;
the header is parsed here (not by the ``safetensors`` package, which would need torch or
numpy) and validated strictly: known dtype names, non-negative integer shapes, offsets inside
the file whose length matches dtype x shape, no two tensors overlapping.

Which files: the index's weight map when there is one (ModelSlim's
``quant_model_weights*.safetensors.index.json`` first, then ``model.safetensors.index.json``,
then any other ``*.safetensors.index.json``), else every ``*.safetensors`` in the folder. A
weight-map entry that leaves the model folder is refused (``input.path_escape``).
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from quantspec._io import check_inside, check_name, open_regular, parse_json_text, read_bytes
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason

#: safetensors dtype code -> (canonical dtype name, bits per element).
ST_DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 8), "U8": ("uint8", 8), "I8": ("int8", 8), "I16": ("int16", 16),
    "U16": ("uint16", 16), "F16": ("float16", 16), "BF16": ("bfloat16", 16), "I32": ("int32", 32),
    "U32": ("uint32", 32), "F32": ("float32", 32), "F64": ("float64", 64), "I64": ("int64", 64),
    "U64": ("uint64", 64), "F8_E4M3": ("float8_e4m3fn", 8), "F8_E5M2": ("float8_e5m2", 8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 8), "F8_E5M2FNUZ": ("float8_e5m2fnuz", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8), "F4": ("float4_e2m1fn", 4), "F6_E2M3": ("float6_e2m3", 6),
    "F6_E3M2": ("float6_e3m2", 6), "C64": ("complex64", 64),
}
#: The canonical dtypes the runtime can build a tensor of (it maps exactly these to torch dtypes,
#: ``quantspec.runtime.loader.reader.TORCH_DTYPES``; a test binds the two). A safetensors file may
#: hold others (``F4``, ``F6_*``): the planner rejects a layer that reads one, before any weight.
LOADABLE_DTYPES = frozenset({
    "bool", "uint8", "int8", "int16", "uint16", "float16", "bfloat16", "int32", "uint32", "float32", "float64",
    "int64", "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
})
#: Largest safetensors header accepted (the reference implementation's limit).
MAX_HEADER_BYTES = 100 * 1024 * 1024
_MAX_REASONS_PER_FILE = 20
#: ModelSlim writes ``quant_model_weights-00001-of-00002.safetensors`` (sometimes
#: ``quant_model_weight_w8a8.safetensors``) with its own index.
MODELSLIM_INDEX_PREFIXES = ("quant_model_weights", "quant_model_weight")
_INDEX_SUFFIX = ".safetensors.index.json"


class TensorInfo(NamedTuple):
    """One tensor's metadata: canonical dtype (``int8``, ``bfloat16``, GGML ``Q4_K``...) and shape.

    GGUF shapes are given in numpy/PyTorch order (reversed ggml ``ne``): ``[N, K]`` for a weight.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    #: File relative to the model folder.
    file: str
    #: Absolute byte offset of the tensor's data in ``file``, and its length: what the runtime's
    #: streaming reader and ``validate --tensors`` read, without parsing the header again.
    offset: int = 0
    nbytes: int = 0


@dataclass(frozen=True)
class Inventory:
    """Every tensor of a checkpoint, by name, and where the list came from."""

    kind: Literal["safetensors", "gguf"]
    tensors: dict[str, TensorInfo]
    files: tuple[str, ...]
    #: The index file used, when there was one.
    index: str | None = None
    #: Non-fatal findings (stray files an engine would also load, unlisted tensors...).
    findings: tuple[Reason, ...] = field(default=())
    #: GGUF ``general.architecture``.
    architecture: str | None = None


def find_index(model_dir: Path) -> Path | None:
    """The safetensors index to use, by the precedence in the module docstring."""
    names = sorted(p.name for p in model_dir.glob(f"*{_INDEX_SUFFIX}") if p.is_file())
    for pick in (
        [n for n in names if n.startswith(MODELSLIM_INDEX_PREFIXES)],
        [n for n in names if n == f"model{_INDEX_SUFFIX}"],
        names,
    ):
        if pick:
            return model_dir / pick[0]
    return None


def read_inventory(model_dir: Path) -> Inventory:
    """Inventory of ``model_dir``: safetensors when present, else GGUF; raises InvalidCheckpoint."""
    model_dir = Path(model_dir)
    index = find_index(model_dir)
    # Anything but a folder: a FIFO or device named *.safetensors is refused when read, not skipped.
    st_files = sorted(p.name for p in model_dir.glob("*.safetensors") if not p.is_dir())
    if index is not None or st_files:
        return _safetensors_inventory(model_dir, index, st_files)
    ggufs = sorted(p.name for p in model_dir.glob("*.gguf"))
    if ggufs:
        return gguf_inventory(model_dir, ggufs)
    raise InvalidCheckpoint(reason(
        Code.FILE_NOT_FOUND, "no *.safetensors, safetensors index or *.gguf file in the model folder",
        file=str(model_dir), hint="point at the folder that holds the weight files",
    ))


def _safetensors_inventory(model_dir: Path, index: Path | None, st_files: list[str]) -> Inventory:
    findings: list[Reason] = []
    wanted: dict[str, str] | None = None
    if index is not None:
        wanted = _weight_map(index, model_dir)
        files = sorted(set(wanted.values()))
        stray = sorted(set(st_files) - set(files))
        if stray:
            findings.append(reason(
                Code.PLAN_STRAY_FILES,
                f"{len(stray)} *.safetensors file(s) are not in {index.name} and are ignored: {', '.join(stray[:5])}",
                file=str(index), hint="engines that glob *.safetensors (SGLang) would load them too; remove them",
            ))
    else:
        files = st_files
    per_file = Counter(wanted.values()) if wanted is not None else Counter()
    tensors: dict[str, TensorInfo] = {}
    reasons: list[Reason] = []
    for fname in files:
        path = model_dir / fname
        try:
            check_inside(path, model_dir, what="weight file")
            infos = read_header_infos(path, fname)
        except InvalidCheckpoint as exc:
            reasons.extend(exc.reasons)
            continue
        # The header's names must be exactly those the index assigns to this file; checked with
        # C-level set operations (items-view inclusion), not a Python loop over 100k names.
        if wanted is not None and not (len(infos) == per_file[fname]
                                       and dict.fromkeys(infos, fname).items() <= wanted.items()):
            listed = {n for n, f in wanted.items() if f == fname}
            if infos.keys() != listed:
                # Tensors the index does not assign to this file are not loaded; missing ones are errors.
                absent = sorted(listed - infos.keys())
                if absent:
                    reasons.append(reason(
                        Code.TENSOR_MISSING, f"{len(absent)} tensor(s) the index assigns to {fname} are not in it: "
                        f"{', '.join(absent[:5])}", file=str(index), where=absent[0],
                        hint="the index and the shards are out of sync; re-download"))
                infos = {n: t for n, t in infos.items() if n in listed}
        else:
            for name in tensors.keys() & infos.keys():
                reasons.append(reason(
                    Code.TENSOR_HEADER, f"tensor {name!r} is in both {tensors[name].file} and {fname}",
                    file=str(path), where=name, hint="a tensor must be stored once",
                ))
        tensors.update(infos)
    if reasons:
        raise InvalidCheckpoint(reasons)
    return Inventory("safetensors", tensors, tuple(files), index.name if index else None, tuple(findings))


def _weight_map(index: Path, model_dir: Path) -> dict[str, str]:
    check_inside(index, model_dir, what="index")
    raw = read_bytes(index)
    # Fast path as for headers: every weight-map value ends in ``.safetensors"``, so a count
    # different from the number of entries means duplicate names (or odd values): parse strictly.
    data: Any = None
    with contextlib.suppress(ValueError, RecursionError):
        data = json.loads(raw, parse_constant=_refuse)
    wm = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(wm, dict) or raw.count(b'.safetensors"') != len(wm):
        data = parse_json_text(raw, file=str(index))
        wm = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(wm, dict) or set(map(type, wm.values())) - {str}:
        raise InvalidCheckpoint(reason(
            Code.FORMAT_WRONG_TYPE, "the index has no weight_map object of tensor name -> file name",
            file=str(index), where="/weight_map",
        ))
    reasons: list[Reason] = []
    checked: dict[str, bool] = {}
    for name, fname in wm.items():
        if fname in checked:
            continue
        try:
            check_name(fname, file=str(index), where=f"/weight_map/{name}", what="weight-map file")
            path = model_dir / fname
            check_inside(path, model_dir, what="weight-map file")
            ok = path.is_file()
        except InvalidCheckpoint as exc:
            reasons.append(exc.reasons[0].model_copy(update={"where": f"/weight_map/{name}", "file": str(index)}))
            checked[fname] = False
            continue
        checked[fname] = ok
        if not ok:
            reasons.append(reason(Code.FILE_NOT_FOUND, f"weight file {fname!r} named by the index does not exist",
                                  file=str(index), where=f"/weight_map/{name}"))
    if reasons:
        raise InvalidCheckpoint(reasons)
    return wm


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Parse and validate one safetensors header: ``{name: (canonical dtype, shape)}``."""
    return {n: (t.dtype, t.shape) for n, t in read_header_infos(path, path.name).items()}


def read_header_infos(path: Path, fname: str) -> dict[str, TensorInfo]:
    """Parse and validate one safetensors header into :class:`TensorInfo` (``file`` = ``fname``)."""
    return read_safetensors(path, fname)[0]


def read_safetensors(path: Path, fname: str | None = None) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse and validate one safetensors header: its tensors (``file`` = ``fname``, default the
    file name; each with its absolute byte range) and its ``__metadata__``. Raises
    :class:`InvalidCheckpoint` with the problems found (at most a screenful per file)."""
    fname = path.name if fname is None else fname
    file = str(path)
    fh, size = open_regular(path)
    with fh:
        try:
            head = fh.read(8)
            if len(head) < 8:
                raise _bad(Code.TENSOR_TRUNCATED, "file is shorter than the 8-byte header length", file)
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise _bad(Code.TENSOR_HEADER, f"header length {n} exceeds {MAX_HEADER_BYTES} bytes", file)
            if 8 + n > size:
                raise _bad(Code.TENSOR_TRUNCATED, f"header length {n} runs past the end of the {size}-byte file",
                           file)
            raw = fh.read(n)
        except OSError as exc:
            raise _bad(Code.FILE_NOT_FOUND, f"cannot read: {exc.strerror or exc}", file) from None
    header = _parse_header(raw, file)
    infos = _validate(header, size - 8 - n, file, fname, 8 + n)
    meta = header.get("__metadata__")
    return infos, {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _parse_header(raw: bytes, file: str) -> dict[str, Any]:
    # Fast path: the C JSON parser. Duplicate names would collapse silently, so the number of
    # entries is compared with the number of "data_offsets" keys; on a mismatch the strict
    # (slower) parser runs to name the duplicate.
    try:
        data = json.loads(raw, parse_constant=_refuse)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        entries = len(data) - (1 if "__metadata__" in data else 0)
        if raw.count(b'"data_offsets"') == entries:
            return data
    strict = parse_json_text(raw, file=file)
    if not isinstance(strict, dict):
        raise _bad(Code.TENSOR_HEADER, "the header is not a JSON object", file)
    return strict


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _validate(header: dict[str, Any], data_len: int, file: str, fname: str, start: int) -> dict[str, TensorInfo]:
    out: dict[str, TensorInfo] = {}
    in_order = True
    last_end = 0
    new = tuple.__new__  # TensorInfo without its Python-level __new__: ~2x faster for 100k tensors
    reasons: list[Reason] = []
    # (dtype code, shape) -> (canonical dtype, byte size, shape): experts repeat a handful of
    # shapes tens of thousands of times, so each distinct one is validated once, and its shape
    # tuple is shared by every tensor that has it (less memory; comparisons of expert
    # signatures then succeed on identity).
    known: dict[tuple[str, tuple[int, ...]], tuple[str, int, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if not name.isprintable():
            reasons.append(reason(Code.TENSOR_HEADER, f"tensor name {name[:80]!r} contains control characters",
                                  file=file, where=name.encode("unicode_escape").decode()))
            continue
        try:
            code = entry["dtype"]
            shape = tuple(entry["shape"])
            begin, end = entry["data_offsets"]
            spec = known[(code, shape)]
        except (TypeError, KeyError, ValueError):
            if name == "__metadata__":
                if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                    reasons.append(reason(Code.TENSOR_HEADER, "__metadata__ must map strings to strings",
                                          file=file, where=name))
                continue
            checked = _check_entry(name, entry, file, reasons)
            if checked is None:
                continue
            code, shape, begin, end, spec = checked
            known[(code, shape)] = spec
        if len(entry) != 3:
            reasons.append(reason(Code.TENSOR_HEADER, "entry must have exactly dtype, shape and data_offsets",
                                  file=file, where=name))
        elif type(begin) is not int or type(end) is not int or not 0 <= begin <= end:
            reasons.append(reason(Code.TENSOR_HEADER, f"data_offsets {[begin, end]!r} is not [begin, end] with "
                                  "0 <= begin <= end", file=file, where=name))
        elif end > data_len:
            reasons.append(reason(Code.TENSOR_TRUNCATED,
                                  f"data_offsets [{begin}, {end}] run past the end of the {data_len}-byte data "
                                  "buffer", file=file, where=name, hint="the file is truncated; download it again"))
        elif end - begin != spec[1]:
            reasons.append(reason(Code.TENSOR_SHAPE,
                                  f"{code} {list(shape)} needs {spec[1]} bytes but data_offsets span {end - begin}",
                                  file=file, where=name))
        else:
            out[name] = new(TensorInfo, (name, spec[0], spec[2], fname, start + begin, end - begin))
            if end > begin:
                if begin < last_end:
                    in_order = False
                last_end = end
            continue
        if len(reasons) >= _MAX_REASONS_PER_FILE:
            break
    if not in_order:  # writers store tensors in offset order; sort and compare only when one does not
        spans = sorted((e["data_offsets"][0], e["data_offsets"][1], n) for n, e in header.items()
                       if n in out and e["data_offsets"][1] > e["data_offsets"][0])
        prev_end, prev = 0, ""
        for begin, end, name in spans:
            if begin < prev_end:
                reasons.append(reason(Code.TENSOR_HEADER, f"data of {name!r} overlaps data of {prev!r}",
                                      file=file, where=name))
                break
            prev_end, prev = end, name
    if reasons:
        raise InvalidCheckpoint(reasons[:_MAX_REASONS_PER_FILE])
    return out


def _check_entry(name: str, entry: Any, file: str, reasons: list[Reason]
                 ) -> tuple[str, tuple[int, ...], Any, Any, tuple[str, int, tuple[int, ...]]] | None:
    """Full validation of one entry whose (dtype, shape) was not seen yet; None when invalid."""
    try:
        code = entry["dtype"]
        shape = entry["shape"]
        begin, end = entry["data_offsets"]
    except (TypeError, KeyError, ValueError):
        reasons.append(reason(Code.TENSOR_HEADER, "entry needs dtype, shape and data_offsets [begin, end]",
                              file=file, where=name))
        return None
    spec = ST_DTYPES.get(code) if isinstance(code, str) else None
    if spec is None:
        reasons.append(reason(Code.TENSOR_DTYPE, f"unknown dtype {code!r}", file=file, where=name,
                              hint=f"safetensors dtypes: {', '.join(ST_DTYPES)}"))
        return None
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        reasons.append(reason(Code.TENSOR_HEADER, f"bad entry (shape {shape!r})", file=file, where=name))
        return None
    count = 1
    for d in shape:
        count *= d
    bits = count * spec[1]
    if bits % 8:
        reasons.append(reason(Code.TENSOR_SHAPE, f"{code} {shape} is not a whole number of bytes",
                              file=file, where=name))
        return None
    shape_t = tuple(shape)
    return code, shape_t, begin, end, (spec[0], bits // 8, shape_t)


def _bad(code: Code, message: str, file: str) -> InvalidCheckpoint:
    return InvalidCheckpoint(reason(code, message, file=file, hint="the file is damaged or not a safetensors file"))


# ---------------------------------------------------------------- GGUF

#: GGML types the NPU path dequantizes at load (SGLang ``ggml_dequantize_ascend``).
GGML_DEQUANTIZABLE = frozenset({
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    "IQ1_M", "IQ1_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS", "IQ4_NL",
})
_GGML_PLAIN = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
               "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64"}


def ggml_dtype(type_name: str) -> str:
    """Canonical dtype of a GGML type: plain types map to torch names, block types stay as is."""
    return _GGML_PLAIN.get(type_name, type_name)


def gguf_inventory(model_dir: Path, names: Iterable[str]) -> Inventory:
    """Inventory of GGUF file(s) from tensor infos, under Hugging Face names.

    GGUF names (``blk.3.attn_q.weight``) are mapped to the module names the GGUF description's
    rules use (``model.layers.3.self_attn.q_proj.weight``; stacked experts become
    ``...mlp.experts.gate_proj.weight`` ``[E, N, K]``); unmapped names are kept.
    """
    from quantspec.formats.gguf import hf_name_map, read_gguf_header  # numpy: only for GGUF

    tensors: dict[str, TensorInfo] = {}
    files = tuple(names)
    architecture: str | None = None
    for fname in files:
        path = check_inside(model_dir / fname, model_dir, what="GGUF file")
        header = read_gguf_header(path)
        architecture = architecture or header.architecture
        mapping = hf_name_map(header.architecture, header.block_count)
        for t in header.tensors:
            base, dot, suffix = t.name.rpartition(".")
            if not dot:
                base, suffix = t.name, ""
            hf = mapping.get(base, base)
            name = f"{hf}.{suffix}" if suffix else hf
            if name in tensors:
                raise InvalidCheckpoint(reason(Code.TENSOR_HEADER, f"tensor {t.name!r} appears twice",
                                               file=str(path), where=t.name))
            tensors[name] = TensorInfo(name, ggml_dtype(t.ggml_type), t.shape, fname, t.offset, t.n_bytes)
    return Inventory("gguf", tensors, files, architecture=architecture)
