"""``read_description``: detect the source of a checkpoint and normalise it."""

from __future__ import annotations

from pathlib import Path

from quantspec.description import CheckpointDescription
from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, reason
from quantspec.formats import mxfp8_online, unsupported
from quantspec.formats.detect import (
    CONFIG,
    Detection,
    Source,
    SourceKind,
    default_method,
    detect_with_files,
    pipeline_components,
    source_data,
)
from quantspec.formats.dispatch import read_quant_config
from quantspec.vocab import FormatFamily

#: ``--quantization`` values that select online quantization of a float checkpoint.
ONLINE_METHODS = ("mxfp8",)


def unquantized_description() -> CheckpointDescription:
    """Description of a float checkpoint: no rules, nothing quantized."""
    return CheckpointDescription(format=FormatFamily.UNQUANTIZED, source="<none>")


def _read_source(model_dir: Path, source: Source, files: dict[str, object]) -> CheckpointDescription:
    file = str(model_dir / source.file)
    if source.kind is SourceKind.GGUF:
        from quantspec.formats.gguf import read_gguf_description, split_stem  # numpy/gguf: only when needed

        stem = split_stem(source.file)
        shards = tuple(sorted(p for p in model_dir.glob("*.gguf") if stem and split_stem(p.name) == stem))
        return read_gguf_description(model_dir / source.file, model_dir=model_dir, shards=shards)
    if source.kind is SourceKind.MODELOPT:
        raise unsupported.recognise_modelopt_file(files.get(source.file), file=file)
    if source.kind is SourceKind.MLX:
        config = files.get(CONFIG)
        raise unsupported.reject_mlx(config if isinstance(config, dict) else {}, file=file)
    data = source_data(source, files)
    if source.kind is SourceKind.DESCRIPTION:
        from quantspec.formats import modelslim

        return modelslim.read(data, file=file, source=source.file)
    return read_quant_config(data, file=file, source=source.file, prefix=source.where,
                             default_method=default_method(source.file))


def read_description(model_dir: Path, *, quantization: str | None = None) -> CheckpointDescription:
    """Read and normalise the quantization description of the checkpoint in ``model_dir``.

    ``quantization`` is the user's ``--quantization`` choice: ``"mxfp8"`` requests online MXFP8
    of an unquantized checkpoint; any other value must name the detected format. Raises
    :class:`~quantspec.errors.InvalidCheckpoint` carrying every fatal reason (unreadable files,
    schema errors, unsupported formats); non-fatal findings, including disagreements between
    sources, are in the result's ``findings``. A Diffusers pipeline folder has no single
    description: call this on each of :func:`pipeline_components`.
    """
    model_dir = Path(model_dir)
    det, files = detect_with_files(model_dir)
    if det.pipeline:
        names = ", ".join(sorted(pipeline_components(model_dir)))
        raise InvalidInput(reason(
            Code.USAGE, "this is a Diffusers pipeline folder; each component has its own description",
            file=str(model_dir), hint=f"read the components instead: {names}",
        ))
    try:
        desc = unquantized_description() if det.chosen is None else _read_source(model_dir, det.chosen, files)
    except InvalidCheckpoint as exc:
        # report the disagreements too: "every problem at once"
        raise InvalidCheckpoint([*exc.reasons, *det.conflicts]) from None
    desc = _apply_request(desc, det, quantization, model_dir)
    if det.conflicts or det.misnamed:
        desc = desc.model_copy(update={"findings": (*det.misnamed, *det.conflicts, *desc.findings)})
    return desc


def _apply_request(
    desc: CheckpointDescription, det: Detection, quantization: str | None, model_dir: Path
) -> CheckpointDescription:
    if quantization is None:
        return desc
    q = quantization.lower()
    if q in ONLINE_METHODS:
        if desc.format is not FormatFamily.UNQUANTIZED:
            raise InvalidCheckpoint(reason(
                Code.FORMAT_CONFLICT,
                f"--quantization {quantization} quantizes a float checkpoint online, but this checkpoint is "
                f"already quantized ({desc.format.value}, from {desc.source})",
                file=str(model_dir), hint="drop --quantization to load the checkpoint as it is quantized",
            ))
        return mxfp8_online.mxfp8_request_description()
    aliases = {desc.format.value, desc.format.value.replace("_", "-")}
    if desc.format is FormatFamily.MODELSLIM:
        aliases.add("ascend")
    if q not in aliases:
        raise InvalidCheckpoint(reason(
            Code.FORMAT_CONFLICT,
            f"--quantization {quantization} does not match the checkpoint's format ({desc.format.value})",
            file=str(model_dir), where=det.chosen.file if det.chosen else None,
            hint="omit --quantization: the format is detected from the checkpoint",
        ))
    return desc
