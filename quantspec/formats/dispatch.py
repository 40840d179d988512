"""Dispatch a ``quantization_config`` object to its format module by ``quant_method``.

transformers dispatches on ``quant_method`` too, except for bitsandbytes (``load_in_4bit``).
Objects without ``quant_method`` are legacy ModelSlim maps (msit exports, vLLM-Ascend #633),
AutoGPTQ ``quantize_config.json`` / old AutoAWQ ``quant_config.json`` side files, or unknown.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from quantspec.description import CheckpointDescription
from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.formats import modelslim, unsupported
from quantspec.formats.base import pointer
from quantspec.formats.specs import METHODS, READERS, SUPPORTED_FORMATS
from quantspec.vocab import FormatFamily


def _method_without_key(data: Mapping[str, Any], default_method: str | None) -> str | None:
    if modelslim.looks_like_modelslim(data):
        return "modelslim"
    if "config_groups" in data:
        return "compressed-tensors"  # bare llm-compressor configs omit quant_method
    if "w_bit" in data or "q_group_size" in data or ("zero_point" in data and "bits" in data):
        return "awq"  # old AutoAWQ quant_config.json
    if "bits" in data and ("desc_act" in data or "damp_percent" in data or "sym" in data):
        return default_method if default_method in ("gptq", "auto-round") else "gptq"
    return None


def family_of(data: Any, *, default_method: str | None = None) -> tuple[FormatFamily | None, str | None]:
    """``(family, None)`` for a supported config, ``(None, name)`` for a recognised unsupported one."""
    if not isinstance(data, Mapping):
        return None, "non-object quantization config"
    found = unsupported.identify(data)
    if found is not None:
        return None, found[0]
    method = data.get("quant_method")
    if method is None:
        guessed = _method_without_key(data, default_method)
        if guessed == "modelslim":
            return FormatFamily.MODELSLIM, None
        if guessed is None:
            return None, "quantization config without quant_method"
        method = guessed
    if isinstance(method, str) and method.lower() in METHODS:
        return METHODS[method.lower()], None
    return None, f"quant_method {method!r}"


def read_quant_config(
    data: Any, *, file: str, source: str, prefix: str = "", default_method: str | None = None
) -> CheckpointDescription:
    """Parse and normalise one quantization-config object; raise for unsupported or malformed ones."""
    if not isinstance(data, Mapping):
        raise InvalidCheckpoint(reason(
            Code.FORMAT_WRONG_TYPE, "the quantization config must be a JSON object", file=file, where=prefix or "/",
        ))
    rejection = unsupported.recognise(data, file=file, where=prefix or None)
    if rejection is not None:
        raise rejection
    family, _ = family_of(data, default_method=default_method)
    if family is None:
        method = data.get("quant_method")
        if method is None:
            raise InvalidCheckpoint(reason(
                Code.FORMAT_UNSUPPORTED,
                "quantization config has no quant_method and matches no known producer",
                file=file, where=prefix or "/",
                hint="add quant_method; supported formats: " + ", ".join(SUPPORTED_FORMATS),
            ))
        raise unsupported.unknown_method(method, file=file, where=pointer(prefix, "quant_method"))
    module = importlib.import_module(READERS[family])
    result: CheckpointDescription = module.read(data, file=file, source=source, prefix=prefix)
    return result
