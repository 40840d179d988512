"""``quantspec repack wan``: msModelSlim's Wan-format Wan2.2 export → a Diffusers folder.

msModelSlim saves quantized Wan2.2 transformers with the original Wan tensor names. SGLang
(and quantspec's planner and loader) expect a Diffusers checkpoint: ``model_index.json`` at
the root and one folder per component, the transformers with Diffusers tensor names and a
``quant_model_description.json`` each. :func:`repack_wan` builds that folder:

1. checks everything first (inputs, layouts, headers, description ↔ tensors, quantized
   embeddings, rename collisions) and reports every problem at once, before writing;
2. writes into a temporary folder beside the output: the original Diffusers checkpoint minus
   its ``transformer``/``transformer_2``, then per transformer one streamed
   ``diffusion_pytorch_model.safetensors``, the renamed description and the original
   ``config.json``;
3. renames the temporary folder into place. A refused or interrupted repack leaves neither
   an output folder nor a temporary one; a killed one leaves no output, and the next run
   sweeps its temporary folder (:func:`_sweep`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from quantspec._io import read_json
from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, QuantspecError, Reason, reason
from quantspec.repack import modelslim_desc
from quantspec.repack.renames import rename_all
from quantspec.repack.safetensors_stream import write_renamed
from quantspec.repack.sources import TransformerSource, has_weights, read_source

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
DESCRIPTION_NAME = "quant_model_description.json"
CONFIG_NAME = "config.json"
MODEL_INDEX = "model_index.json"
TRANSFORMER_COMPONENTS = ("transformer", "transformer_2")


class WanModelType(StrEnum):
    """The Wan2.2 models the repack knows (the values are the CLI's ``--model-type``)."""

    T2V_A14B = "Wan2.2-T2V-A14B"
    I2V_A14B = "Wan2.2-I2V-A14B"
    TI2V_5B = "Wan2.2-TI2V-5B"

    @property
    def cascade(self) -> bool:
        """Whether the model has a high-noise and a low-noise expert transformer."""
        return self is not WanModelType.TI2V_5B


#: Cascade models: Diffusers component ← msModelSlim subfolder.
CASCADE_FOLDERS: tuple[tuple[str, str], ...] = (
    ("transformer", "high_noise_model"),
    ("transformer_2", "low_noise_model"),
)


class ComponentResult(BaseModel):
    """What was written for one transformer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str
    source: Path
    tensors: int
    data_bytes: int


class RepackResult(BaseModel):
    """Outcome of a successful repack."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_type: WanModelType
    output: Path
    components: tuple[ComponentResult, ...]
    #: Top-level entries copied from the original Diffusers checkpoint.
    copied: tuple[str, ...]


class _Job(BaseModel):
    """One transformer to write: its source, its renames and the renamed description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str
    source: TransformerSource
    mapping: dict[str, str]
    description: dict[str, Any]


def _usage(message: str, *, file: str | None = None, hint: str | None = None) -> Reason:
    return reason(Code.USAGE, message, file=file, hint=hint)


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _check_paths(original: Path, quant: Path, output: Path, force: bool) -> None:
    problems: list[Reason] = []
    for flag, path in (("--original-model-path", original), ("--quant-path", quant)):
        if not path.exists():
            problems.append(reason(Code.FILE_NOT_FOUND, f"{flag} does not exist", file=str(path)))
        elif not path.is_dir():
            problems.append(reason(Code.NOT_A_DIRECTORY, f"{flag} is not a directory", file=str(path)))
    real_out = output.resolve()
    for flag, path in (("--original-model-path", original), ("--quant-path", quant)):
        if path.exists() and _overlaps(real_out, path.resolve()):
            problems.append(_usage(f"--output-path overlaps {flag}", file=str(output),
                                   hint="write the repacked model to a separate folder"))
    if problems:
        raise InvalidInput(problems)
    if (output.exists() or output.is_symlink()) and not force:
        raise InvalidInput(reason(Code.OUTPUT_EXISTS, "output folder already exists", file=str(output),
                                  hint="choose another --output-path or pass --force to replace it"))


def _check_original(original: Path, model_type: WanModelType) -> list[Reason]:
    """The original must be a Diffusers checkpoint of the right shape for ``model_type``."""
    problems: list[Reason] = []
    index_path = original / MODEL_INDEX
    if not index_path.is_file():
        return [reason(Code.REPACK_LAYOUT, f"no {MODEL_INDEX}: not a Diffusers checkpoint", file=str(original),
                       hint="pass the Hugging Face *-Diffusers model folder as --original-model-path")]
    try:
        model_index = read_json(index_path)
    except InvalidInput as exc:
        return list(exc.reasons)
    if not isinstance(model_index, dict):
        return [reason(Code.FORMAT_WRONG_TYPE, f"{MODEL_INDEX} is not a JSON object", file=str(index_path))]
    wanted = TRANSFORMER_COMPONENTS if model_type.cascade else TRANSFORMER_COMPONENTS[:1]
    for component in TRANSFORMER_COMPONENTS:
        entry = model_index.get(component)
        listed = isinstance(entry, list) and any(v is not None for v in entry)
        if listed != (component in wanted):
            kind = "a cascade (two-transformer)" if model_type.cascade else "a single-transformer"
            problems.append(reason(Code.REPACK_LAYOUT,
                                   f"{MODEL_INDEX} {'lacks' if not listed else 'lists'} {component!r}, but "
                                   f"{model_type.value} is {kind} model", file=str(index_path),
                                   where=f"/{component}", hint="check --model-type and --original-model-path"))
    for component in wanted:
        if not (original / component / CONFIG_NAME).is_file():
            problems.append(reason(Code.FILE_NOT_FOUND, f"no {component}/{CONFIG_NAME} in the original model",
                                   file=str(original / component)))
    return problems


def _source_folders(quant: Path, model_type: WanModelType) -> dict[str, Path]:
    """Map each Diffusers transformer component to its msModelSlim export folder.

    Cascade models: ``high_noise_model`` → ``transformer``, ``low_noise_model`` →
    ``transformer_2``. TI2V-5B: the quant path itself when it holds weight files, else its
    only subfolder that does.
    """
    if model_type.cascade:
        missing = [sub for _, sub in CASCADE_FOLDERS if not has_weights(quant / sub)]
        if missing:
            raise InvalidCheckpoint([
                reason(Code.REPACK_LAYOUT, f"{model_type.value} export needs a {sub!r} folder with "
                       "quant_model_weight*.safetensors", file=str(quant / sub),
                       hint="point --quant-path at msModelSlim's --save_path for the cascade model")
                for sub in missing
            ])
        return {component: quant / sub for component, sub in CASCADE_FOLDERS}
    if has_weights(quant):
        return {"transformer": quant}
    candidates = sorted(p for p in quant.iterdir() if has_weights(p))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise InvalidCheckpoint(reason(
            Code.REPACK_LAYOUT,
            f"{model_type.value} needs one exported model: quant_model_weight*.safetensors in --quant-path "
            f"or in exactly one subfolder (subfolders with weights: {found})",
            file=str(quant), hint="point --quant-path at the folder of the one exported transformer"))
    return {"transformer": candidates[0]}


def _plan(component: str, folder: Path) -> _Job:
    """Read one export and check it completely; raise every problem found."""
    source = read_source(folder)
    desc_file = str(source.description_file)
    weights = ", ".join(p.name for p in source.weight_files)
    problems = modelslim_desc.match_reasons(source.description, set(source.tensors),
                                            description=desc_file, weights=weights)
    dtypes = {name: info.dtype for name, info in source.tensors.items()}
    problems += modelslim_desc.embedding_reasons(source.description, dtypes, file=desc_file)
    names = set(source.tensors) | set(modelslim_desc.entries(source.description))
    try:
        mapping = rename_all(sorted(names), file=str(folder))
    except InvalidCheckpoint as exc:
        problems += exc.reasons
        mapping = {}
    if problems:
        raise InvalidCheckpoint(problems)
    return _Job(component=component, source=source, mapping=mapping,
                description=modelslim_desc.renamed_description(source.description, mapping))


def _write_component(job: _Job, original: Path, staging: Path) -> ComponentResult:
    folder = staging / job.component
    folder.mkdir()
    pairs = [(job.mapping[name], info) for name, info in job.source.tensors.items()]
    data_bytes = write_renamed(folder / WEIGHTS_NAME, pairs, {"format": "pt"})
    (folder / DESCRIPTION_NAME).write_text(modelslim_desc.dumps(job.description), encoding="utf-8")
    shutil.copyfile(original / job.component / CONFIG_NAME, folder / CONFIG_NAME)
    return ComponentResult(component=job.component, source=job.source.folder, tensors=len(pairs),
                           data_bytes=data_bytes)


def _copy_original(original: Path, staging: Path) -> tuple[str, ...]:
    """Copy the original checkpoint except its transformers; links are copied as content."""
    copied: list[str] = []
    for entry in sorted(original.iterdir()):
        if entry.name in TRANSFORMER_COMPONENTS:
            continue
        # Hugging Face cache snapshots are symlinks into ../blobs: copy what they point to.
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name, symlinks=False)
        else:
            shutil.copy2(entry, staging / entry.name)
        copied.append(entry.name)
    return tuple(copied)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _sweep(output: Path) -> None:
    """Clean up after a killed repack beside ``output``: remove its staging folders
    (``.<output>.<pid>-<hex>.tmp``, pid gone; a live run's is left alone), and put back a previous
    output it had set aside (``.<output>.<hex>.old``) when it died between the two renames of
    :func:`_install`, or remove that copy when the new output is in place."""
    prefix = f".{output.name}."
    for entry in sorted(output.parent.iterdir()):
        name = entry.name
        if not name.startswith(prefix) or not name.endswith((".tmp", ".old")):
            continue
        if name.endswith(".old"):
            if output.exists() or output.is_symlink():
                _remove(entry)
            else:
                os.rename(entry, output)
            continue
        pid = name[len(prefix):-4].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(entry)


def _install(staging: Path, output: Path, force: bool) -> None:
    """Rename the staging folder to ``output``, replacing an existing one only with ``force``.

    A folder cannot be renamed over a non-empty one, so the old output is first renamed
    aside, then the new one into place (restoring the old one if that fails), then the old
    one is deleted: at every moment ``output`` is either the complete old or the complete new
    folder, except for the instant between the two renames.
    """
    if not (output.exists() or output.is_symlink()):
        os.rename(staging, output)
        return
    if not force:
        raise InvalidInput(reason(Code.OUTPUT_EXISTS, "output folder appeared while repacking",
                                  file=str(output), hint="pass --force to replace it"))
    aside = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.old")
    os.rename(output, aside)
    try:
        os.rename(staging, output)
    except BaseException:
        os.rename(aside, output)
        raise
    _remove(aside)


def repack_wan(
    model_type: WanModelType,
    original_model_path: Path,
    quant_path: Path,
    output_path: Path,
    *,
    force: bool = False,
) -> RepackResult:
    """Repack msModelSlim's Wan-format export of ``model_type`` into a Diffusers folder.

    Raises :class:`~quantspec.errors.QuantspecError` (exit code 2) with every problem found;
    nothing is written unless every check passes. What a killed earlier run left beside the output
    is cleaned up first (:func:`_sweep`).
    """
    if output_path.parent.is_dir():
        _sweep(output_path)
    _check_paths(original_model_path, quant_path, output_path, force)
    problems = _check_original(original_model_path, model_type)
    jobs: list[_Job] = []
    try:
        folders = _source_folders(quant_path, model_type)
    except InvalidInput as exc:
        problems += exc.reasons
        folders = {}
    for component, folder in folders.items():
        try:
            jobs.append(_plan(component, folder))
        except InvalidInput as exc:
            problems += exc.reasons
    if problems:
        raise InvalidCheckpoint(problems)

    # Not tempfile.mkdtemp: its 0o700 mode would survive the final rename; mkdir honours the umask.
    # The pid in the name lets a later run remove what a killed one left (see _sweep).
    staging = output_path.with_name(f".{output_path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        copied = _copy_original(original_model_path, staging)
        results = tuple(_write_component(job, original_model_path, staging) for job in jobs)
        _install(staging, output_path, force)
    except OSError as exc:
        raise QuantspecError(reason(Code.WRITE_FAILED, f"repack failed while writing: {exc}",
                                    file=str(output_path), hint="nothing was left behind; fix the cause "
                                    "(disk space, permissions) and rerun")) from exc
    finally:
        # Only still there when something failed: success renamed it to the output.
        _remove(staging)
    return RepackResult(model_type=model_type, output=output_path, components=results, copied=copied)
