"""GPTQ (AutoGPTQ, optimum/transformers ``GPTQConfig``, GPTQModel): ``quant_method: "gptq"``.

Weights are ``qweight`` packed along K, ``qzeros`` packed along N, ``scales [G, N]`` and
``g_idx``. ``checkpoint_format`` decides the zero-point convention: ``gptq`` (v1, and the
default when absent) stores zero minus one, ``gptq_v2`` / ``gptq_p`` store the zero itself.

Per-module overrides follow vLLM's reading (``gptq_utils.get_dynamic_override``): ``dynamic``
keys are regexes applied with ``re.match``; ``-:`` means "not quantized", ``+:`` or no prefix
overrides ``bits``/``group_size``/``desc_act``/``sym``; the first matching key in file order
wins. ``lm_head`` is float unless ``lm_head: true``; ``modules_in_block_to_quantize`` entries
are substrings of the modules that are quantized.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import JsonValue

from quantspec.description import CheckpointDescription, Matcher, QuantSpec, Rule
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason
from quantspec.formats.base import (
    RawModel,
    extras_of,
    group_label,
    int_element,
    int_weight,
    parse_raw,
    pointer,
    weight_only_scheme,
)
from quantspec.vocab import FormatFamily, Layout, MatchKind, ZeroPoint


class GptqConfig(RawModel):
    """Raw GPTQ ``quantization_config`` / ``quantize_config.json`` (union of the producers' keys)."""

    quant_method: str | None = None
    method: str | None = None
    bits: int
    group_size: int | None = None
    desc_act: bool | None = None
    sym: bool | None = None
    static_groups: bool | None = None
    true_sequential: bool | None = None
    damp_percent: float | None = None
    checkpoint_format: str | None = None
    format: str | None = None
    pack_dtype: str | None = None
    lm_head: bool | None = None
    dynamic: dict[str, dict[str, JsonValue]] | None = None
    meta: dict[str, JsonValue] | None = None
    rotation: str | None = None
    model_name_or_path: str | None = None
    model_file_base_name: str | None = None
    is_marlin_format: bool | None = None
    modules_in_block_to_quantize: list[list[str]] | list[str] | None = None
    block_name_to_quantize: str | list[str] | None = None
    module_name_preceding_first_block: list[str] | None = None
    autoround_version: str | None = None


#: Formats whose stored zero is the true zero (no v1 off-by-one).
V2_FORMATS = frozenset({"gptq_v2", "gptq_p"})
#: Formats with the standard GPTQ tensors (gptq_p equals them for 2/4/8 bits only).
GPTQ_LAYOUT_FORMATS = frozenset({"gptq", "gptq_v2", "gptq_p"})
_PLANAR_SAME = frozenset({2, 4, 8})
_OVERRIDE_KEYS = frozenset({"bits", "group_size", "desc_act", "sym"})


def checkpoint_format(raw: GptqConfig) -> str:
    """The effective ``checkpoint_format`` (GPTQModel's ``format`` alias; legacy ``is_marlin_format``)."""
    if raw.checkpoint_format:
        return raw.checkpoint_format.lower()
    if raw.format:
        return raw.format.lower()
    return "marlin" if raw.is_marlin_format else "gptq"


def gptq_spec(bits: int, group_size: int | None, *, sym: bool, desc_act: bool, static_groups: bool,
              fmt: str) -> QuantSpec:
    """QuantSpec of one GPTQ setting; scheme None when the NPU kernels cannot take it."""
    act_order = desc_act and not static_groups
    zero = ZeroPoint.TRUE if fmt in V2_FORMATS else ZeroPoint.MINUS_ONE
    standard = fmt in GPTQ_LAYOUT_FORMATS and (fmt != "gptq_p" or bits in _PLANAR_SAME)
    label = f"gptq int{bits} {group_label(group_size)} {'sym' if sym else 'asym'}"
    if act_order:
        label += " act_order"
    if fmt != "gptq":
        label += f" ({fmt})"
    scheme = weight_only_scheme(bits) if standard and int_element(bits) else None
    weight = int_weight(bits, group_size, symmetric=sym, zero_point=zero, layout=Layout.GPTQ,
                        act_order=act_order)
    return QuantSpec(scheme=scheme, label=label, weight=weight)


def normalise(raw: GptqConfig, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Normalise a parsed GPTQ config."""
    findings: list[Reason] = []
    errors: list[Reason] = []
    fmt = checkpoint_format(raw)
    sym = True if raw.sym is None else raw.sym
    if raw.sym is None:
        findings.append(reason(Code.FORMAT_NOTE, "'sym' is absent; assumed true as the producers do",
                               file=file, where=prefix or "/"))
    base = gptq_spec(raw.bits, raw.group_size, sym=sym, desc_act=bool(raw.desc_act),
                     static_groups=bool(raw.static_groups), fmt=fmt)
    if fmt not in GPTQ_LAYOUT_FORMATS:
        findings.append(reason(Code.FORMAT_UNKNOWN_VALUE, f"checkpoint_format {fmt!r} has no NPU layout in quantspec",
                               file=file, where=pointer(prefix, "checkpoint_format")))
    if not sym and fmt not in V2_FORMATS:
        findings.append(reason(
            Code.FORMAT_NOTE, "asymmetric GPTQ v1: zeros stored as zero-1 are lossy where the true zero is 0",
            file=file, where=pointer(prefix, "sym"), hint="prefer a gptq_v2 export for asymmetric models",
        ))
    rules = _dynamic_rules(raw, fmt, sym, file=file, prefix=prefix, errors=errors)
    if not raw.lm_head:
        rules.append(Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("lm_head",)), quant=None,
                          origin=pointer(prefix, "lm_head")))
    blocks = _flatten(raw.modules_in_block_to_quantize)
    if blocks:
        rules.append(Rule(match=Matcher(kind=MatchKind.SUBSTRING, patterns=tuple(blocks), negate=True),
                          quant=None, origin=pointer(prefix, "modules_in_block_to_quantize")))
    if errors:
        raise InvalidCheckpoint(errors)
    return CheckpointDescription(
        format=FormatFamily.GPTQ, source=source, producer_version=_version(raw),
        rules=tuple(rules), default=base, extras=extras_of(raw, _INTERPRETED), findings=tuple(findings),
    )


def _dynamic_rules(raw: GptqConfig, fmt: str, sym: bool, *, file: str, prefix: str,
                   errors: list[Reason]) -> list[Rule]:
    rules: list[Rule] = []
    for key, override in (raw.dynamic or {}).items():
        where = pointer(prefix, "dynamic", key)
        negative = key.startswith("-:")
        pattern = key[2:] if key.startswith(("-:", "+:")) else key
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(reason(Code.FORMAT_INVALID_PATTERN, f"invalid regex {pattern!r}: {exc}",
                                 file=file, where=where, hint="dynamic keys are Python regexes applied with re.match"))
            continue
        matcher = Matcher(kind=MatchKind.REGEX_MATCH, patterns=(pattern,))
        if negative:
            rules.append(Rule(match=matcher, quant=None, origin=where))
            continue
        values = {k: v for k, v in override.items() if k in _OVERRIDE_KEYS}
        bits, group, o_sym, o_desc = (values.get("bits", raw.bits), values.get("group_size", raw.group_size),
                                      values.get("sym", sym), values.get("desc_act", bool(raw.desc_act)))
        if not (isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 32
                and (group is None or isinstance(group, int)) and isinstance(o_sym, bool)
                and isinstance(o_desc, bool)):
            errors.append(reason(Code.FORMAT_WRONG_TYPE, "dynamic override values have the wrong types",
                                 file=file, where=where, hint="bits/group_size are integers, sym/desc_act booleans"))
            continue
        spec = gptq_spec(bits, group, sym=o_sym, desc_act=o_desc, static_groups=bool(raw.static_groups), fmt=fmt)
        rules.append(Rule(match=matcher, quant=spec, origin=where))
    return rules


def _flatten(value: list[list[str]] | list[str] | None) -> list[str]:
    out: list[str] = []
    for item in value or []:
        out.extend(item if isinstance(item, list) else [item])
    return out


def _version(raw: GptqConfig) -> str | None:
    quantizer = (raw.meta or {}).get("quantizer")
    if isinstance(quantizer, list) and quantizer and isinstance(quantizer[0], str):
        return quantizer[0]
    return raw.autoround_version


_INTERPRETED = ("bits", "group_size", "desc_act", "sym", "static_groups", "checkpoint_format", "format",
                "lm_head", "dynamic", "modules_in_block_to_quantize", "is_marlin_format")


def read(data: Any, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Parse and normalise a GPTQ config given as decoded JSON."""
    return normalise(parse_raw(GptqConfig, data, file=file, prefix=prefix), file=file, source=source, prefix=prefix)
