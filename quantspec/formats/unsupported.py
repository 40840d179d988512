"""Quantization formats quantspec recognises but does not support on Ascend NPUs.

They are rejected **by name** (``format.unsupported_format``, listing the supported formats)
instead of being loaded as float or failing on a missing tensor later: bitsandbytes, MLX,
native fp8 (DeepSeek block FP8), NVIDIA ModelOpt (NVFP4/FP8), gpt-oss MXFP4 and any
``quant_method`` nobody knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from quantspec.errors import InvalidCheckpoint
from quantspec.formats.base import RawModel, unsupported


class BitsAndBytesConfig(RawModel):
    """transformers ``BitsAndBytesConfig`` as serialised (``quant_method: "bitsandbytes"``)."""

    quant_method: str | None = None
    load_in_4bit: bool | None = None
    load_in_8bit: bool | None = None
    bnb_4bit_quant_type: str | None = None
    bnb_4bit_use_double_quant: bool | None = None
    llm_int8_skip_modules: list[str] | None = None


class Fp8Config(RawModel):
    """Native fp8 (``quant_method: "fp8"``; DeepSeek-V3 style ``weight_block_size``)."""

    quant_method: str
    fmt: str | None = None
    activation_scheme: str | None = None
    weight_block_size: list[int] | None = None


class Mxfp4Config(RawModel):
    """gpt-oss MXFP4 (``quant_method: "mxfp4"``); experts are fused 3-D blocks."""

    quant_method: str
    modules_to_not_convert: list[str] | None = None


class ModelOptQuantization(RawModel):
    """NVIDIA ModelOpt ``hf_quant_config.json`` ``quantization`` object."""

    quant_algo: str | None = None
    kv_cache_quant_algo: str | None = None
    group_size: int | None = None
    exclude_modules: list[str] | None = None


class MlxQuantization(RawModel):
    """mlx-lm ``config.json`` ``quantization`` object (global bits/group plus per-module overrides)."""

    bits: int | None = None
    group_size: int | None = None
    mode: str | None = None


def _safe(model: type[RawModel], data: Mapping[str, Any]) -> RawModel | None:
    try:
        return model.model_validate(dict(data))
    except ValidationError:
        return None


def _bnb_detail(qc: Mapping[str, Any]) -> str:
    raw = _safe(BitsAndBytesConfig, qc)
    if isinstance(raw, BitsAndBytesConfig):
        if raw.load_in_4bit:
            return f"4-bit {raw.bnb_4bit_quant_type or 'fp4'}"
        if raw.load_in_8bit:
            return "8-bit LLM.int8"
    return ""


def is_bitsandbytes(qc: Mapping[str, Any]) -> bool:
    """bitsandbytes is detected from ``load_in_4bit``/``load_in_8bit`` as well as its method name."""
    method = qc.get("quant_method")
    if isinstance(method, str) and method.startswith("bitsandbytes"):
        return True
    return qc.get("load_in_4bit") is True or qc.get("load_in_8bit") is True


def identify(qc: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(name, detail)`` of the unsupported format ``qc`` is, or None when it is none of them."""
    method = qc.get("quant_method")
    if is_bitsandbytes(qc):
        return "bitsandbytes", _bnb_detail(qc)
    if method == "fp8":
        raw = _safe(Fp8Config, qc)
        block = raw.weight_block_size if isinstance(raw, Fp8Config) else None
        return "fp8", f"block {block[0]}x{block[1]} FP8, DeepSeek style" if block and len(block) == 2 else "native FP8"
    if method == "mxfp4":
        return "gpt-oss MXFP4 (quant_method mxfp4)", "fused 3-D expert blocks"
    section = qc.get("quantization")
    if isinstance(section, Mapping) and "quant_algo" in section:  # a whole hf_quant_config.json
        qc = section
    if method == "modelopt" or "quant_algo" in qc:
        algo = qc.get("quant_algo")
        return "NVIDIA ModelOpt", str(algo) if isinstance(algo, str) else ""
    return None


def recognise(qc: Mapping[str, Any], *, file: str, where: str | None) -> InvalidCheckpoint | None:
    """The rejection for ``qc`` when it is a known unsupported format, else None."""
    found = identify(qc)
    if found is None:
        return None
    return unsupported(found[0], file=file, where=where, detail=found[1])


def recognise_modelopt_file(data: Any, *, file: str) -> InvalidCheckpoint:
    """The rejection for an ``hf_quant_config.json`` (ModelOpt)."""
    section = data.get("quantization") if isinstance(data, Mapping) else None
    raw = _safe(ModelOptQuantization, section) if isinstance(section, Mapping) else None
    algo = raw.quant_algo if isinstance(raw, ModelOptQuantization) else None
    return unsupported("NVIDIA ModelOpt", file=file, where="/quantization" if section is not None else None,
                       detail=algo or "")


def is_mlx(config: Mapping[str, Any]) -> bool:
    """mlx-lm writes a top-level ``quantization`` object with ``bits`` and ``group_size``."""
    section = config.get("quantization")
    return isinstance(section, Mapping) and "bits" in section and "group_size" in section


def reject_mlx(config: Mapping[str, Any], *, file: str) -> InvalidCheckpoint:
    """The rejection for an MLX checkpoint."""
    section = config.get("quantization")
    raw = _safe(MlxQuantization, section) if isinstance(section, Mapping) else None
    detail = ""
    if isinstance(raw, MlxQuantization) and raw.bits is not None:
        detail = f"{raw.bits}-bit group {raw.group_size} {raw.mode or 'affine'}"
    return unsupported("MLX", file=file, where="/quantization", detail=detail)


def unknown_method(method: object, *, file: str, where: str | None) -> InvalidCheckpoint:
    """The rejection for a ``quant_method`` no known producer writes."""
    return unsupported(f"quant_method {method!r}", file=file, where=where, detail="unknown quantization method")
