"""Reading one msModelSlim-exported transformer folder: weight shards, index, description.

msModelSlim writes, per exported model, ``quant_model_weight*.safetensors`` (one file such as
``quant_model_weight_w8a8_mxfp8.safetensors``, or shards ``quant_model_weights-0000N-of-0000M
.safetensors`` with ``quant_model_weights.safetensors.index.json``) and a
``quant_model_description*.json``. Every weight file is read (header only); when an index is
present it must agree with the files. The first description in name order is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from quantspec._io import read_json
from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, Reason, reason
from quantspec.repack.modelslim_desc import read_description
from quantspec.repack.safetensors_stream import TensorInfo, read_header

WEIGHT_GLOB = "quant_model_weight*.safetensors"
INDEX_GLOB = "quant_model_weight*.safetensors.index.json"
DESCRIPTION_GLOB = "quant_model_description*.json"


class TransformerSource(BaseModel):
    """One Wan-format quantized transformer as msModelSlim exported it, headers read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: Path
    weight_files: tuple[Path, ...]
    description_file: Path
    #: Tensors of all weight files by name (each knows its file and byte range).
    tensors: dict[str, TensorInfo]
    #: The description as read (header keys and per-tensor entries).
    description: dict[str, Any]


def has_weights(folder: Path) -> bool:
    """Whether ``folder`` directly holds msModelSlim weight files."""
    return folder.is_dir() and any(p.is_file() for p in folder.glob(WEIGHT_GLOB))


def _index_reasons(index_file: Path, tensors: dict[str, TensorInfo], files: tuple[Path, ...]) -> list[Reason]:
    """Check ``weight_map`` of a safetensors index against the tensors actually found."""
    doc = read_json(index_file)
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        return [reason(Code.FORMAT_WRONG_TYPE, "index has no 'weight_map' object of tensor -> file name",
                       file=str(index_file), where="/weight_map")]
    names = {p.name for p in files}
    problems: list[Reason] = []
    for shard in sorted(set(weight_map.values()) - names):
        problems.append(reason(Code.FILE_NOT_FOUND, f"index names shard {shard!r}, which is not in the folder",
                               file=str(index_file), where="/weight_map",
                               hint="the download is incomplete; fetch the missing shard"))
    for name, shard in sorted(weight_map.items()):
        info = tensors.get(name)
        if shard in names and (info is None or info.file.name != shard):
            found = f"found in {info.file.name!r}" if info else "not found in any shard"
            problems.append(reason(Code.REPACK_INDEX_MISMATCH, f"index puts the tensor in {shard!r}, {found}",
                                   file=str(index_file), where=name))
    for name in sorted(set(tensors) - set(weight_map)):
        problems.append(reason(Code.REPACK_INDEX_MISMATCH,
                               f"tensor of {tensors[name].file.name!r} is not in the index",
                               file=str(index_file), where=name,
                               hint="a stale shard from another export may be lying in the folder"))
    return problems


def read_source(folder: Path) -> TransformerSource:
    """Read the headers, index and description of one exported transformer folder.

    Raises :class:`InvalidCheckpoint` with every problem of the folder at once.
    """
    files = tuple(sorted(p for p in folder.glob(WEIGHT_GLOB) if p.is_file()))
    descriptions = sorted(p for p in folder.glob(DESCRIPTION_GLOB) if p.is_file())
    problems: list[Reason] = []
    if not files:
        problems.append(reason(Code.FILE_NOT_FOUND, f"no {WEIGHT_GLOB} file", file=str(folder),
                               hint="point --quant-path at the msModelSlim --save_path folder"))
    if not descriptions:
        problems.append(reason(Code.FILE_NOT_FOUND, f"no {DESCRIPTION_GLOB} file", file=str(folder),
                               hint="msModelSlim writes the description next to the weights; copy it too"))
    if problems:
        raise InvalidCheckpoint(problems)
    tensors: dict[str, TensorInfo] = {}
    for path in files:
        try:
            found, _metadata = read_header(path)
        except InvalidInput as exc:
            problems.extend(exc.reasons)
            continue
        for name, info in found.items():
            if name in tensors:
                problems.append(reason(Code.REPACK_DUPLICATE_TENSOR,
                                       f"tensor is in both {tensors[name].file.name!r} and {path.name!r}",
                                       file=str(folder), where=name,
                                       hint="remove the stale shard; only one export may be in the folder"))
            else:
                tensors[name] = info
    indexes = sorted(p for p in folder.glob(INDEX_GLOB) if p.is_file())
    if indexes and not problems:
        try:
            problems.extend(_index_reasons(indexes[0], tensors, files))
        except InvalidInput as exc:
            problems.extend(exc.reasons)
    try:
        description = read_description(descriptions[0])
    except InvalidInput as exc:
        problems.extend(exc.reasons)
        description = {}
    if problems:
        raise InvalidCheckpoint(problems)
    return TransformerSource(folder=folder, weight_files=files, description_file=descriptions[0],
                             tensors=tensors, description=description)
