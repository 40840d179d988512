"""GGUF (llama.cpp): header, metadata and tensor infos, never tensor data.

Every tensor carries its own ggml type, so the file is its own description: one EXACT rule
per weight tensor, under its Hugging Face module name (gguf-py's ``TensorNameMap`` reversed).
F32/F16/BF16 tensors stay float; every other type is the ``gguf`` scheme (dequantized at load
on Ascend). MoE experts are stacked 3-D tensors (``blk.N.ffn_gate_exps``); their rule matches
every per-expert module ``...mlp.experts.<E>.gate_proj``.

The ``gguf`` package (and numpy) is imported only inside these functions: a checkpoint
without ``.gguf`` files never loads it. The header is parsed by :mod:`quantspec.checkpoint.gguf_header`
(bounded by the file's size; gguf-py's reader trusts the file's counts); only header pages of
the memory map are touched.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue

from quantspec._io import check_inside
from quantspec.description import CheckpointDescription, Matcher, QuantSpec, Rule, WeightQuant
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, SchemeId

FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})


class GgufTensorInfo(BaseModel):
    """One tensor info record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    ggml_type: str
    #: numpy-order shape (reversed ggml ``ne``): ``(N, K)`` for a weight, ``(E, N, K)`` for experts.
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    #: Absolute byte offset of the data in the file.
    offset: int


class GgufHeader(BaseModel):
    """Header of a GGUF file: version, metadata key/values and tensor infos."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    architecture: str | None = None
    alignment: int = 32
    #: Metadata as decoded; long arrays are replaced by ``"[<n> items]"``.
    metadata: dict[str, JsonValue]
    tensors: tuple[GgufTensorInfo, ...]

    @property
    def block_count(self) -> int:
        """Blocks the tensors use (``1 +`` the highest ``blk.N``); see :func:`blocks_in_use`."""
        return blocks_in_use(t.name for t in self.tensors)


def _jsonable(value: Any) -> JsonValue:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):  # no JSON spelling
        return str(value)
    return value  # type: ignore[no-any-return]


def read_gguf_header(path: Path) -> GgufHeader:
    """Read a GGUF file's header (see :func:`_read_gguf_header`), once per file and version: the
    description, the inventory and the runtime reader share one parse (keyed by the resolved path,
    size and modification time)."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    except (OSError, ValueError, RuntimeError):
        return _read_gguf_header(path)  # reports the problem with its code
    return _cached_header(*key)


@lru_cache(maxsize=8)
def _cached_header(resolved: str, size: int, mtime_ns: int) -> GgufHeader:
    return _read_gguf_header(Path(resolved))


def _read_gguf_header(path: Path) -> GgufHeader:
    """Read a GGUF file's header, metadata and tensor infos (no tensor data), bounded by the file's
    size (:mod:`quantspec.checkpoint.gguf_header`).

    Raises :class:`InvalidCheckpoint` (``tensor.bad_header``) naming the byte offset of the problem.
    """
    import gguf  # lazily: numpy (the ggml type table)

    from quantspec.checkpoint.gguf_header import read_gguf_bytes

    raw, file = read_gguf_bytes(path)
    tensors: list[GgufTensorInfo] = []
    for t in raw.tensors:
        try:
            qtype = gguf.GGMLQuantizationType(t.type_id)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise _bad(file, f"tensor {t.name!r} has unknown ggml type {t.type_id}") from None
        n_elements = 1
        for d in t.dims:
            n_elements *= d
        if t.dims[0] % block:
            raise _bad(file, f"tensor {t.name!r}: row of {t.dims[0]} elements is not a whole number of "
                             f"{qtype.name} blocks ({block})")
        n_bytes = n_elements // block * type_size
        start = raw.data_start + t.offset
        if t.offset % raw.alignment or start + n_bytes > raw.size:
            raise _bad(file, f"tensor {t.name!r}: data [{start}, {start + n_bytes}) is misaligned or "
                             f"outside the {raw.size}-byte file")
        tensors.append(GgufTensorInfo(
            name=t.name, ggml_type=qtype.name, shape=tuple(reversed(t.dims)), n_elements=n_elements,
            n_bytes=n_bytes, offset=start))
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _bad(file, f"tensor {dup!r} appears twice")
    metadata = {k: _jsonable(v) for k, v in raw.metadata.items()}
    arch = metadata.get("general.architecture")
    if arch is not None and not isinstance(arch, str):
        raise _bad(file, f"general.architecture is {arch!r}, not a string (the GGUF spec requires a string)")
    return GgufHeader(version=raw.version, architecture=arch,
                      alignment=raw.alignment, metadata=metadata, tensors=tuple(tensors))


def _bad(file: str, message: str) -> InvalidCheckpoint:
    return InvalidCheckpoint(reason(Code.TENSOR_HEADER, f"GGUF header: {message}", file=file,
                                    hint="the file is truncated, damaged or not GGUF"))


_BLK_RE = re.compile(r"^blk\.(\d+)\.")


def blocks_in_use(tensor_names: Any) -> int:
    """``1 + `` the highest ``blk.N`` among the tensor names (0 without blocks).

    Name maps are built for this many blocks, not for ``{arch}.block_count``: the count is a
    number from the file that can claim 10^7 blocks for a 100-byte file; the tensor names are
    bounded by the file's size.
    """
    top = -1
    for name in tensor_names:
        m = _BLK_RE.match(name)
        if m:
            top = max(top, int(m.group(1)))
    return top + 1


#: Spellings TensorNameMap lists for other architectures than the transformers (v5) models use:
#: routers are ``mlp.gate`` (Mixtral's ``block_sparse_moe`` is only its checkpoint name) and
#: attention q/k norms are ``q_norm``/``k_norm``.
_OTHER_SPELLINGS = (".block_sparse_moe.", "_layernorm")


def _preference(hf: str) -> tuple[int, int]:
    # TensorNameMap lists every architecture's spelling; prefer the transformers one.
    if hf == "lm_head":
        return (0, 0)
    if hf.startswith("model.layers.") and ".layers.layers." not in hf:
        other = any(s in hf for s in _OTHER_SPELLINGS) and not hf.endswith(("input_layernorm",
                                                                            "post_attention_layernorm"))
        return (1, int(other))
    if hf.startswith("model."):
        return (2, 0)
    return (3, 0)


def hf_name_map(architecture: str | None, n_blocks: int) -> dict[str, str]:
    """GGUF base tensor name (no ``.weight``) -> Hugging Face module name, for one architecture."""
    import gguf

    arch = {name: a for a, name in gguf.MODEL_ARCH_NAMES.items()}.get(architecture or "")
    if arch is None:
        return {}
    tmap = gguf.get_tensor_name_map(arch, n_blocks)
    out: dict[str, str] = {}
    for hf, (_tensor, gname) in tmap.mapping.items():
        if hf == gname:
            continue
        if gname not in out or _preference(hf) < _preference(out[gname]):
            out[gname] = hf
    return out


_BITS_RE = re.compile(r"^(?:I?Q|TQ)(\d)")


def ggml_bits(ggml_type: str) -> int:
    """Nominal bits per weight of a ggml type (``Q4_K`` -> 4, ``IQ2_XXS`` -> 2, ``MXFP4`` -> 4)."""
    if m := _BITS_RE.match(ggml_type):
        return int(m.group(1))
    if ggml_type.endswith("FP4"):
        return 4
    digits = re.findall(r"\d+", ggml_type)
    return max(1, min(int(digits[0]), 32)) if digits else 8


def ggml_spec(ggml_type: str) -> QuantSpec | None:
    """QuantSpec of one ggml type; None for the float types."""
    if ggml_type in FLOAT_TYPES:
        return None
    import gguf

    qtype = gguf.GGMLQuantizationType[ggml_type]
    block, _size = gguf.GGML_QUANT_SIZES[qtype]
    return QuantSpec(
        scheme=SchemeId.GGUF, label=ggml_type,
        weight=WeightQuant(element=ElementType.GGML, bits=ggml_bits(ggml_type), granularity=Granularity.GROUP,
                           group_size=block, layout=Layout.GGML, ggml_type=ggml_type),
    )


def _matcher(hf_module: str, stacked: bool) -> Matcher:
    if stacked and ".experts." in hf_module:
        head, tail = hf_module.split(".experts.", 1)
        pattern = re.escape(head + ".experts.") + r"\d+" + re.escape("." + tail)
        return Matcher(kind=MatchKind.REGEX_FULLMATCH, patterns=(pattern,))
    return Matcher(kind=MatchKind.EXACT, patterns=(hf_module,))


def describe(header: GgufHeader, *, file: str, source: str) -> CheckpointDescription:
    """Normalise a GGUF header into a description (one rule per weight tensor)."""
    names = hf_name_map(header.architecture, header.block_count)
    rules: list[Rule] = []
    declared: list[str] = []
    unmapped: list[str] = []
    specs: dict[str, QuantSpec | None] = {}
    for t in header.tensors:
        base, dot, suffix = t.name.rpartition(".")
        if not dot:
            base, suffix = t.name, ""
        hf = names.get(base)
        if hf is None:
            unmapped.append(t.name)
            hf = base
        declared.append(f"{hf}.{suffix}" if suffix else hf)
        if suffix != "weight":
            continue
        if t.ggml_type not in specs:
            specs[t.ggml_type] = ggml_spec(t.ggml_type)
        stacked = len(t.shape) == 3 and "_exps" in base
        rules.append(Rule(match=_matcher(hf, stacked), quant=specs[t.ggml_type], origin=f"tensor:{t.name}"))
    findings: list[Reason] = []
    if unmapped:
        findings.append(reason(
            Code.FORMAT_NOTE,
            f"{len(unmapped)} GGUF tensor name(s) have no Hugging Face name for architecture "
            f"{header.architecture!r} (e.g. {unmapped[0]!r}); kept as named in the file",
            file=file, where=unmapped[0],
        ))
    return CheckpointDescription(
        format=FormatFamily.GGUF, source=source, producer_version=f"gguf v{header.version}",
        rules=tuple(rules), requires_entry=True, declared_tensors=tuple(declared),
        extras={k: v for k, v in header.metadata.items() if k.startswith("general.")},
        findings=tuple(findings),
    )


_SPLIT_RE = re.compile(r"^(?P<stem>.+)-\d{5}-of-\d{5}\.gguf$")


def split_stem(name: str) -> str | None:
    """The common stem of a split GGUF shard name (``model-00001-of-00003.gguf``), else None."""
    m = _SPLIT_RE.match(name)
    return m.group("stem") if m else None


def read_gguf_description(path: Path, *, model_dir: Path, shards: tuple[Path, ...] = ()) -> CheckpointDescription:
    """Read ``path`` (and the other shards of a split file) inside ``model_dir`` and describe it."""
    headers = []
    for p in (path, *[s for s in shards if s != path]):
        check_inside(p, model_dir)
        headers.append(read_gguf_header(p))
    header = headers[0]
    if len(headers) > 1:  # split files: metadata in the first shard, tensors spread over all
        header = header.model_copy(update={"tensors": tuple(t for h in headers for t in h.tensors)})
    return describe(header, file=str(path), source=path.name)
