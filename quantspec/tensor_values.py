"""Value checks of the small tensors that scale, offset or index a quantized weight.

A checkpoint whose scales are NaN, zero or negative, whose E8M0 scale bytes are 0xFF (NaN in
OCP MX), whose offsets lie outside the integer code range or whose group indices point past the
last group loads without complaint and computes garbage from the first forward. These checks run
on the values themselves: at load, on every such tensor before its module is built, and in
``quantspec validate DIR --tensors``, which reads only these tensors (ranged reads, never the
weights). Each failure names the tensor and the first bad index.

What a tensor is follows from its name (the suffix after the module) and dtype: see
:func:`kind_of`. numpy is imported lazily (it comes with the ``gguf`` dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from quantspec.errors import Code, Reason, reason

if TYPE_CHECKING:
    import numpy as np


class ValueKind(StrEnum):
    """What the values of a tensor must satisfy."""

    #: A weight scale: finite, not all zero (a zero channel may have scale 0). The sign is free:
    #: auto-round's symmetric RTN writes signed scales (``w = q * s`` with ``s < 0`` where the
    #: channel's largest magnitude is negative), and every scheme's dequantization honours it.
    WEIGHT_SCALE = "weight_scale"
    #: An activation or cache scale that is divided by: finite and positive.
    DIVISOR = "divisor"
    #: E8M0 exponent bytes (uint8): 0xFF is NaN.
    E8M0 = "e8m0"
    #: Float offsets / zero points of int8 codes: finite, within [-256, 255].
    OFFSET = "offset"
    #: ``deq_scale``: float32 bit patterns in int64 words; the floats must be finite and non-zero.
    DEQ_SCALE = "deq_scale"
    #: Group indices (``g_idx``): integers in [0, number of groups).
    GROUP_INDEX = "group_index"


_BY_SUFFIX: dict[str, ValueKind] = {
    "weight_scale": ValueKind.WEIGHT_SCALE, "scales": ValueKind.WEIGHT_SCALE,
    "weight_scale_second": ValueKind.WEIGHT_SCALE, "weight_global_scale": ValueKind.WEIGHT_SCALE,
    "input_scale": ValueKind.DIVISOR, "kv_cache_scale": ValueKind.DIVISOR, "k_scale": ValueKind.DIVISOR,
    "v_scale": ValueKind.DIVISOR,
    "weight_offset": ValueKind.OFFSET, "input_offset": ValueKind.OFFSET, "kv_cache_offset": ValueKind.OFFSET,
    "deq_scale": ValueKind.DEQ_SCALE,
    "g_idx": ValueKind.GROUP_INDEX, "weight_g_idx": ValueKind.GROUP_INDEX,
}
_FLOATS = frozenset({"float16", "bfloat16", "float32", "float64"})


def kind_of(name: str, dtype: str) -> ValueKind | None:
    """The check a tensor gets, from its name's last component and its canonical dtype (None: none)."""
    parent, _, suffix = name.rpartition(".")
    kind = _BY_SUFFIX.get(suffix)
    if kind is None and suffix in ("scale", "offset") and parent.rpartition(".")[2].startswith("fa_"):
        # ModelSlim's FA3 entries (fa_q/fa_k/fa_v.scale/offset); other ``.scale`` tensors are norms
        kind = ValueKind.DIVISOR if suffix == "scale" else ValueKind.OFFSET
    if kind is ValueKind.WEIGHT_SCALE and dtype == "uint8":
        return ValueKind.E8M0
    if kind is ValueKind.DEQ_SCALE:
        return kind if dtype == "int64" else ValueKind.DIVISOR if dtype in _FLOATS else None
    if kind in (ValueKind.WEIGHT_SCALE, ValueKind.DIVISOR, ValueKind.OFFSET):
        # int64 weight scales are fp32 bits (W4A8 clip variant); integer offsets are code values
        if dtype == "int64" and kind is ValueKind.WEIGHT_SCALE:
            return ValueKind.DEQ_SCALE
        return kind if dtype in _FLOATS or kind is ValueKind.OFFSET else None
    if kind is ValueKind.GROUP_INDEX:
        return kind if dtype in ("int32", "int64") else None
    return None


def _first(mask: np.ndarray) -> tuple[int, ...]:
    import numpy as np

    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def check_values(name: str, kind: ValueKind, values: np.ndarray, *, groups: int | None = None,
                 file: str | None = None) -> Reason | None:
    """The first problem of ``values`` (numpy, any shape) as a ``tensor.bad_value`` reason, or None.

    ``values`` is float32/float64 for float tensors, the raw integers otherwise. ``groups``: the
    number of groups a ``g_idx`` may point to (unchecked upper bound when None).
    """
    import numpy as np

    v = np.asarray(values)
    if v.size == 0:
        return None

    def bad(mask: np.ndarray, what: str, hint: str) -> Reason | None:
        if not bool(mask.any()):
            return None
        idx = _first(mask)
        at = list(idx) if idx else []
        return reason(Code.TENSOR_VALUE, f"tensor '{name}' {what}: {int(mask.sum())} value(s), first at index "
                      f"{at} ({v[idx] if idx else v.item()!r})", file=file, where=name, hint=hint)

    corrupt = "the checkpoint is corrupt or was written wrong; re-download or re-export it"
    if kind is ValueKind.E8M0:
        return bad(v == 0xFF, "holds the E8M0 NaN byte 0xFF", corrupt)
    if kind is ValueKind.DEQ_SCALE:
        bits = (v.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
        return bad(~np.isfinite(bits) | (bits == 0), "holds float32 bit patterns that are not finite non-zero "
                   "scales", corrupt)
    if kind is ValueKind.GROUP_INDEX:
        top = groups if groups is not None else np.iinfo(np.int64).max
        return bad((v < 0) | (v >= top), f"holds group indices outside [0, {top})", corrupt)
    f = v.astype(np.float64)
    if (r := bad(~np.isfinite(f), "holds NaN or infinite values", corrupt)) is not None:
        return r
    if kind is ValueKind.WEIGHT_SCALE:
        if not bool((f != 0).any()):
            return reason(Code.TENSOR_VALUE, f"tensor '{name}' is all zeros: every weight it scales would be zero",
                          file=file, where=name, hint=corrupt)
        return None
    if kind is ValueKind.DIVISOR:
        return bad(f <= 0, "holds zero or negative scales (activations are divided by them)", corrupt)
    if kind is ValueKind.OFFSET:
        return bad((f < -256) | (f > 255), "holds offsets outside the 8-bit code range [-256, 255]", corrupt)
    return None  # pragma: no cover - exhaustive over ValueKind


_NUMPY = {"float16": "<f2", "float32": "<f4", "float64": "<f8", "int8": "i1", "uint8": "u1", "int16": "<i2",
          "int32": "<i4", "int64": "<i8"}


def _decode(raw: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray | None:
    import numpy as np

    if dtype == "bfloat16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    code = _NUMPY.get(dtype)
    return None if code is None else np.frombuffer(raw, code).reshape(shape)


def _groups(name: str, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> int | None:
    """The number of groups a ``g_idx`` may point to: rows of GPTQ ``scales [ng, N]`` or columns of
    compressed-tensors ``weight_scale [N, ng]``."""
    module = name.rpartition(".")[0]
    if (s := tensors.get(f"{module}.scales")) is not None and len(s[1]) == 2:
        return s[1][0]
    if (s := tensors.get(f"{module}.weight_scale")) is not None and len(s[1]) == 2:
        return s[1][1]
    return None


@dataclass(frozen=True)
class Scan:
    """What :func:`scan_values` found: every bad tensor, and how much it read."""

    reasons: tuple[Reason, ...]
    checked: int
    bytes_read: int
    skipped: str | None = None


def scan_values(model_dir: Path) -> Scan:
    """Check the values of every scale, offset and group-index tensor of a safetensors checkpoint,
    reading only those tensors' bytes (a seek and a read each; weights are never read)."""
    from quantspec.checkpoint.inventory import read_inventory

    inv = read_inventory(model_dir)
    if inv.kind != "safetensors":
        return Scan((), 0, 0, skipped="GGUF block scales live inside the weight blocks; nothing separate to check")
    shapes = {n: (t.dtype, t.shape) for n, t in inv.tensors.items()}
    wanted: dict[str, list[str]] = {}
    for name, t in inv.tensors.items():
        if kind_of(name, t.dtype) is not None:
            wanted.setdefault(t.file, []).append(name)
    reasons: list[Reason] = []
    checked = read = 0
    for fname, names in sorted(wanted.items()):
        path = model_dir / fname
        with path.open("rb") as fh:
            for name in sorted(names, key=lambda n: inv.tensors[n].offset):
                info = inv.tensors[name]
                fh.seek(info.offset)
                raw = fh.read(info.nbytes)
                read += len(raw)
                values = _decode(raw, info.dtype, info.shape)
                kind = kind_of(name, info.dtype)
                if values is None or kind is None:
                    continue
                checked += 1
                problem = check_values(name, kind, values, groups=_groups(name, shapes), file=str(path))
                if problem is not None:
                    reasons.append(problem)
    return Scan(tuple(reasons), checked, read)
