"""Find what describes a checkpoint's quantization, with a documented precedence.

Precedence (first found wins; the others are still read and compared):

1. ``quant_model_description.json`` at the model root (ModelSlim); without it, an older export's
   ``quant_model_description_<type>.json`` is read, with a blocking ``format.misnamed_description``
   finding (the engines read only the canonical name);
2. ``config.json``: a top-level MLX ``quantization`` object (rejected by name), then
   ``quantization_config``, ``text_config.quantization_config`` and the legacy
   ``compression_config`` (old llm-compressor);
3. side files: ``quantize_config.json``, ``quant_config.json``, ``quantization_config.json``
   (and ModelOpt's ``hf_quant_config.json``, rejected by name);
4. ``*.gguf`` files.

Nothing found means an unquantized checkpoint (eligible for online MXFP8). Disagreements
between sources are reported as ``format.sources_disagree`` findings, never resolved silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from quantspec._io import check_inside, read_json, read_json_once
from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, QuantspecError, Reason, reason
from quantspec.formats import modelslim, unsupported
from quantspec.formats.base import pointer
from quantspec.formats.dispatch import family_of
from quantspec.vocab import FormatFamily

CONFIG = "config.json"
MODEL_INDEX = "model_index.json"
#: Side files in precedence order.
SIDE_FILES: tuple[str, ...] = ("quantize_config.json", "quant_config.json", "quantization_config.json")
MODELOPT_FILE = "hf_quant_config.json"
#: Keys of ``config.json`` that may hold the quantization config, in precedence order.
CONFIG_POINTERS: tuple[tuple[str, ...], ...] = (
    ("quantization_config",),
    ("text_config", "quantization_config"),
    ("compression_config",),
)


class SourceKind(StrEnum):
    """Kind of a description source."""

    DESCRIPTION = "description"
    CONFIG = "config"
    SIDE_FILE = "side_file"
    MODELOPT = "modelopt"
    MLX = "mlx"
    GGUF = "gguf"


class Source(BaseModel):
    """One place that describes the quantization."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SourceKind
    #: File relative to the model folder.
    file: str
    #: JSON pointer of the quantization object inside the file ("" for the whole file).
    where: str = ""


class Detection(BaseModel):
    """What :func:`detect` found: every source, the chosen one and the disagreements."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_dir: str
    #: Every source found, in precedence order.
    sources: tuple[Source, ...] = ()
    #: The source that describes the checkpoint (None: unquantized).
    chosen: Source | None = None
    #: Format of the chosen source; None when it is recognised but unsupported.
    format: FormatFamily | None = FormatFamily.UNQUANTIZED
    #: Name of the recognised unsupported format, when it is one.
    unsupported: str | None = None
    #: Disagreements between sources (``format.sources_disagree``).
    conflicts: tuple[Reason, ...] = ()
    #: True for a Diffusers pipeline folder (``model_index.json``); see :func:`pipeline_components`.
    pipeline: bool = False
    #: The chosen description is under a name the engines do not read (``format.misnamed_description``).
    misnamed: tuple[Reason, ...] = ()


def require_dir(model_dir: Path) -> Path:
    """Refuse a path that is not an existing directory."""
    if not model_dir.exists():
        raise InvalidInput(reason(Code.FILE_NOT_FOUND, "model folder not found", file=str(model_dir)))
    if not model_dir.is_dir():
        raise InvalidInput(reason(Code.NOT_A_DIRECTORY, "not a directory", file=str(model_dir),
                                  hint="pass the checkpoint folder, not a file inside it"))
    return model_dir


def pipeline_components(model_dir: Path) -> dict[str, Path]:
    """Component folders of a Diffusers pipeline (``model_index.json``); empty when not a pipeline.

    A component is a ``model_index.json`` entry whose value is ``[library, class]`` and whose
    subfolder exists (``transformer``, ``transformer_2``, ``text_encoder``...).
    """
    model_dir = Path(model_dir)
    index = model_dir / MODEL_INDEX
    if not index.is_file():
        return {}
    data = read_json(index, root=model_dir)
    if not isinstance(data, Mapping):
        raise InvalidCheckpoint(reason(Code.FORMAT_WRONG_TYPE, "model_index.json must be a JSON object",
                                       file=str(index), where="/"))
    out: dict[str, Path] = {}
    for name, value in data.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        sub = model_dir / name
        if sub.is_dir():
            check_inside(sub, model_dir, what="component folder")
            out[name] = sub
    return out


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


class _Reader:
    """Reads each candidate JSON file once and collects every read error."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.cache: dict[str, Any] = {}
        self.errors: list[Reason] = []

    def load(self, name: str) -> Any:
        if name not in self.cache:
            path = self.model_dir / name
            try:
                reader = read_json_once if name == CONFIG else read_json
                self.cache[name] = reader(path, root=self.model_dir) if path.is_file() or path.is_symlink() else None
            except QuantspecError as exc:
                self.errors.extend(exc.reasons)
                self.cache[name] = None
        return self.cache[name]


def find_sources(model_dir: Path) -> tuple[list[Source], dict[str, Any]]:
    """Every source in precedence order and the decoded JSON files (raises on unreadable files)."""
    rd = _Reader(model_dir)
    sources: list[Source] = []
    desc = model_dir / modelslim.FILENAME
    if (desc.exists() or desc.is_symlink()) and rd.load(modelslim.FILENAME) is not None:
        sources.append(Source(kind=SourceKind.DESCRIPTION, file=modelslim.FILENAME))
    else:
        # Older msModelSlim exports and MindIE name it quant_model_description_<type>.json.
        for other in sorted(model_dir.glob(modelslim.MISNAMED_GLOB)):
            if rd.load(other.name) is not None:
                sources.append(Source(kind=SourceKind.DESCRIPTION, file=other.name))
    config = rd.load(CONFIG)
    if config is not None and not isinstance(config, Mapping):
        rd.errors.append(reason(Code.FORMAT_WRONG_TYPE, "config.json must be a JSON object",
                                file=str(model_dir / CONFIG), where="/"))
    if isinstance(config, Mapping):
        # mlx-lm also copies its `quantization` object to `quantization_config` (without
        # quant_method): name it MLX rather than "unknown".
        if unsupported.is_mlx(config):
            sources.append(Source(kind=SourceKind.MLX, file=CONFIG, where="/quantization"))
        for path in CONFIG_POINTERS:
            if _get(config, path) is not None:
                sources.append(Source(kind=SourceKind.CONFIG, file=CONFIG, where=pointer("", *path)))
    for name in SIDE_FILES:
        if rd.load(name) is not None:
            sources.append(Source(kind=SourceKind.SIDE_FILE, file=name))
    if rd.load(MODELOPT_FILE) is not None:
        sources.append(Source(kind=SourceKind.MODELOPT, file=MODELOPT_FILE))
    for gguf in sorted(model_dir.glob("*.gguf")):
        sources.append(Source(kind=SourceKind.GGUF, file=gguf.name))
    if rd.errors:
        raise InvalidCheckpoint(rd.errors)
    return sources, rd.cache


def source_data(source: Source, files: Mapping[str, Any]) -> Any:
    """The JSON value a source points at."""
    data = files.get(source.file)
    if not source.where:
        return data
    tokens = tuple(t.replace("~1", "/").replace("~0", "~") for t in source.where.split("/")[1:])
    return _get(data, tokens)


def _conflicts(model_dir: Path, sources: list[Source], chosen: Source, files: Mapping[str, Any]) -> list[Reason]:
    out: list[Reason] = []
    chosen_data = source_data(chosen, files)
    for other in sources:
        if other == chosen or _same_split(other, chosen):
            continue
        other_data = source_data(other, files)
        if chosen.kind in (SourceKind.DESCRIPTION, SourceKind.GGUF) or other.kind in (
            SourceKind.DESCRIPTION, SourceKind.GGUF, SourceKind.MLX, SourceKind.MODELOPT,
        ):
            out.append(reason(
                Code.FORMAT_CONFLICT,
                f"{other.file}{other.where and '#' + other.where} also describes the quantization; "
                f"{chosen.file} takes precedence here",
                file=str(model_dir / other.file), where=other.where or None,
                hint=_precedence_hint(chosen, other),
            ))
            continue
        if isinstance(chosen_data, Mapping) and isinstance(other_data, Mapping):
            for key in other_data:  # file order, so that reports are stable
                if key in chosen_data and chosen_data[key] != other_data[key]:
                    out.append(reason(
                        Code.FORMAT_CONFLICT,
                        f"{key!r} is {_short(other_data[key])} in {other.file} but {_short(chosen_data[key])} "
                        f"in {chosen.file}",
                        file=str(model_dir / other.file), where=pointer(other.where, key),
                        hint=f"{chosen.file} is used; make the two files agree",
                    ))
    return out


_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


def _same_split(a: Source, b: Source) -> bool:
    """Shards of one split GGUF file are one source, not a disagreement."""
    if a.kind is not SourceKind.GGUF or b.kind is not SourceKind.GGUF:
        return False
    return bool(_SPLIT.search(a.file)) and _SPLIT.sub("", a.file) == _SPLIT.sub("", b.file)


def _precedence_hint(chosen: Source, other: Source) -> str:
    if chosen.kind is SourceKind.DESCRIPTION and other.kind is SourceKind.CONFIG:
        return ("vLLM-Ascend reads config.json's quantization_config first, so it would shadow the "
                "description; remove it from config.json")
    return "remove the stale source so that every engine reads the same description"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def classify(source: Source, data: Any) -> tuple[FormatFamily | None, str | None]:
    """Format family of a source (or the name of the unsupported format it is)."""
    if source.kind is SourceKind.DESCRIPTION:
        return FormatFamily.MODELSLIM, None
    if source.kind is SourceKind.GGUF:
        return FormatFamily.GGUF, None
    if source.kind is SourceKind.MLX:
        return None, "MLX"
    if source.kind is SourceKind.MODELOPT:
        return None, "NVIDIA ModelOpt"
    return family_of(data, default_method=default_method(source.file))


def default_method(file: str) -> str | None:
    """Method assumed for a side file without ``quant_method`` (AutoGPTQ / old AutoAWQ write none)."""
    return {"quantize_config.json": "gptq", "quantization_config.json": "auto-round"}.get(file)


def detect_with_files(model_dir: Path) -> tuple[Detection, dict[str, Any]]:
    """:func:`detect` plus the decoded JSON files, so that callers do not read them twice."""
    model_dir = require_dir(Path(model_dir))
    if (model_dir / MODEL_INDEX).is_file() and pipeline_components(model_dir):
        return Detection(model_dir=str(model_dir), pipeline=True), {}
    sources, files = find_sources(model_dir)
    if not sources:
        return Detection(model_dir=str(model_dir)), files
    chosen = sources[0]
    family, name = classify(chosen, source_data(chosen, files))
    det = Detection(
        model_dir=str(model_dir), sources=tuple(sources), chosen=chosen, format=family, unsupported=name,
        conflicts=tuple(_conflicts(model_dir, sources, chosen, files)),
        misnamed=tuple(_misnamed(model_dir, chosen, family)),
    )
    return det, files


def _misnamed(model_dir: Path, chosen: Source, family: FormatFamily | None) -> list[Reason]:
    """The engines read only ``quant_model_description.json``: any other place is a blocking finding."""
    if chosen.kind is SourceKind.CONFIG and family is FormatFamily.MODELSLIM:
        # MindIE-format / msit exports: the whole per-tensor map in config.json (vLLM-Ascend #633).
        return [reason(
            Code.FORMAT_MISNAMED,
            f"the msModelSlim description is in config.json#{chosen.where.lstrip('/')} (MindIE format): "
            f"vLLM-Ascend and SGLang read only {modelslim.FILENAME} and refuse or mis-detect this checkpoint",
            file=str(model_dir / chosen.file), where=chosen.where,
            hint=f"write it to {modelslim.FILENAME} and remove it from config.json (`quantspec validate DIR --fix` "
                 "does, keeping a backup)",
        )]
    if chosen.kind is not SourceKind.DESCRIPTION or chosen.file == modelslim.FILENAME:
        return []
    return [reason(
        Code.FORMAT_MISNAMED,
        f"the msModelSlim description is named {chosen.file}: vLLM-Ascend and SGLang read only "
        f"{modelslim.FILENAME} and would load this checkpoint as unquantized (then fail on its int8 tensors)",
        file=str(model_dir / chosen.file),
        hint=f"rename it to {modelslim.FILENAME} (`quantspec validate DIR --fix` does, keeping a backup)",
    )]


def detect(model_dir: Path) -> Detection:
    """Which sources describe the checkpoint in ``model_dir``, which one is used, and conflicts."""
    return detect_with_files(model_dir)[0]
