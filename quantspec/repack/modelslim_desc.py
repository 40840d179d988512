"""The parts of a ModelSlim ``quant_model_description.json`` that a repack touches.

The file is a flat JSON object mixing *header* keys (``model_quant_type``, ``version``,
``group_size``, ``metadata``, ``optional``, ``timestep_policy``, ...) with one *entry* per
tensor (``"blocks.0.self_attn.q.weight": "W8A8_MXFP8"``). A key is a header key when it is
a known header name, has no dot (tensor names always have one: ``head.modulation``), or its
value is not a string (``metadata`` and ``optional`` are objects, ``group_size`` a number).
Header keys are copied unchanged; entry keys are renamed like the tensors they describe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quantspec._io import read_json
from quantspec.errors import DIFFUSION_EMBEDDING_MESSAGE, Code, InvalidCheckpoint, Reason, reason

#: Header keys msModelSlim writes (LLM and diffusion exports) and SGLang reads.
HEADER_KEYS: frozenset[str] = frozenset({
    "model_quant_type",
    "version",
    "group_size",
    "metadata",
    "optional",
    "timestep_policy",
    "is_rot_used",
    "fa_quant_type",
    "kv_quant_type",
    "kv_cache_type",
    "reduce_quant_type",
    "mxfp4_scale_alg",
    "mxfp4_dst_type_max",
    "ignore",
    "packed_modules_mapping",
})

#: The value of an entry whose tensor stays in floating point.
FLOAT = "FLOAT"
#: safetensors dtypes of unquantized tensors.
FLOAT_DTYPES: frozenset[str] = frozenset({"F16", "BF16", "F32", "F64"})

#: Wan modules that are embeddings or embedders (patch embedding Conv3d, the time, text and
#: image condition embedders). SGLang builds them unquantized; see docs/repack.md.
EMBEDDING_MODULES: tuple[str, ...] = (
    "patch_embedding",
    "time_embedding",
    "text_embedding",
    "time_projection",
    "img_emb",
)
EMBEDDING_MESSAGE = DIFFUSION_EMBEDDING_MESSAGE


def is_header_key(key: str, value: Any) -> bool:
    """Whether a top-level key of the description is a header key rather than a tensor entry."""
    return key in HEADER_KEYS or "." not in key or not isinstance(value, str)


def read_description(path: Path) -> dict[str, Any]:
    """Read a description strictly (UTF-8, no duplicate keys) and check it is a JSON object."""
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise InvalidCheckpoint(reason(Code.FORMAT_WRONG_TYPE, "description must be a JSON object",
                                       file=str(path)))
    return doc


def entries(doc: Mapping[str, Any]) -> dict[str, str]:
    """The per-tensor entries of a description (header keys left out)."""
    return {k: v for k, v in doc.items() if not is_header_key(k, v)}


def is_embedding_tensor(name: str) -> bool:
    """Whether a Wan tensor belongs to an embedding or an embedder module.

    Matched on the original Wan name: the first segment is one of :data:`EMBEDDING_MODULES`,
    or any module segment (not the parameter name) contains ``embed``.
    """
    parts = name.split(".")
    return parts[0] in EMBEDDING_MODULES or any("embed" in p for p in parts[:-1])


def embedding_reasons(doc: Mapping[str, Any], dtypes: Mapping[str, str], *, file: str) -> list[Reason]:
    """One reason per quantized tensor of an embedding module.

    Quantized means described as anything but ``FLOAT``, or stored in a non-float dtype
    (int8/fp8/uint8 codes, scales): the second catches a description that disagrees with
    the weights.
    """
    described = entries(doc)
    problems: list[Reason] = []
    for name in sorted(set(described) | set(dtypes)):
        if not is_embedding_tensor(name):
            continue
        value, dtype = described.get(name, FLOAT), dtypes.get(name)
        if value == FLOAT and (dtype is None or dtype in FLOAT_DTYPES):
            continue
        what = f"described as {value!r}" if value != FLOAT else f"stored as {dtype}"
        problems.append(reason(Code.PLAN_QUANTIZED_EMBEDDING, EMBEDDING_MESSAGE, file=file, where=name,
                               hint=f"{name!r} is {what}; requantize with the embedding layers left in float"))
    return problems


def match_reasons(doc: Mapping[str, Any], tensor_names: set[str], *, description: str,
                  weights: str) -> list[Reason]:
    """Every entry without a tensor and every tensor without an entry, all at once."""
    described = set(entries(doc))
    missing = [
        reason(Code.TENSOR_MISSING, "description entry has no tensor in the weight files",
               file=description, where=name, hint=f"no tensor of that name in {weights}")
        for name in sorted(described - tensor_names)
    ]
    undescribed = [
        reason(Code.REPACK_UNDESCRIBED_TENSOR, "tensor has no entry in the description",
               file=weights, where=name, hint=f"add the entry to {description} or re-export with msModelSlim")
        for name in sorted(tensor_names - described)
    ]
    return missing + undescribed


def renamed_description(doc: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The description with every entry key renamed; header keys and key order are kept."""
    return {k if is_header_key(k, v) else mapping[k]: v for k, v in doc.items()}


def dumps(doc: Mapping[str, Any]) -> str:
    """Serialise a description the way msModelSlim does (indented, UTF-8 kept)."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
