"""auto-round (``quant_method: "auto-round"``): GPTQ- or AWQ-packed checkpoints.

``packing_format`` selects the tensor layout and zero convention: ``auto_round:auto_gptq``
(the default; GPTQ layout, zero minus one, no ``g_idx``), ``auto_round`` and
``auto_round:gptqmodel`` (GPTQ layout, true zero), ``auto_round:auto_awq`` (AWQ GEMM).
Other packings (compressed-tensors, fp8, nv_fp, mx_fp, mlx, gguf exports) are recognised and
get no scheme.

Matching follows vLLM's ``get_layer_config``: an ``extra_config`` key equal to the module name
first, then keys containing regex characters applied with ``re.search``; modules outside
``block_name_to_quantize`` (``startswith``) stay float; ``bits >= 16`` means float.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import JsonValue

from quantspec.description import ActQuant, CheckpointDescription, Matcher, QuantSpec, Rule
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
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, ZeroPoint


class AutoRoundConfig(RawModel):
    """Raw auto-round ``quantization_config`` (defaults are dropped by the exporter)."""

    quant_method: str | None = None
    packing_format: str | None = None
    bits: int
    group_size: int | None = None
    sym: bool | None = None
    data_type: str | None = None
    act_bits: int | None = None
    act_group_size: int | None = None
    act_sym: bool | None = None
    act_data_type: str | None = None
    act_dynamic: bool | None = None
    super_bits: int | None = None
    super_group_size: int | None = None
    block_name_to_quantize: str | list[str] | None = None
    to_quant_block_names: str | list[str] | None = None
    extra_config: dict[str, dict[str, JsonValue]] | None = None
    autoround_version: str | None = None


DEFAULT_PACKING = "auto_round:auto_gptq"
#: packing_format -> (layout, zero convention).
PACKINGS: dict[str, tuple[Layout, ZeroPoint]] = {
    "auto_round:auto_gptq": (Layout.GPTQ, ZeroPoint.MINUS_ONE),
    "auto_round": (Layout.GPTQ, ZeroPoint.TRUE),
    "auto_round:gptqmodel": (Layout.GPTQ, ZeroPoint.TRUE),
    "auto_round:auto_awq": (Layout.AWQ_GEMM, ZeroPoint.TRUE),
}
_REGEX_CHARS = frozenset("*+?^$()[]{}|\\")
_FLOAT_TYPES = frozenset({"fp", "float", "fp16", "bf16", "float16", "bfloat16"})


class _Setting:
    """One (possibly overridden) auto-round setting."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.v = values

    def spec(self, packing: str) -> QuantSpec | None:
        bits, data_type = self.v.get("bits"), str(self.v.get("data_type") or "int").lower()
        if not isinstance(bits, int) or bits >= 16 or data_type in _FLOAT_TYPES:
            return None
        group = self.v.get("group_size")
        group = group if isinstance(group, int) else None
        sym = self.v.get("sym") is not False
        layout, zero = PACKINGS.get(packing, (Layout.GPTQ, ZeroPoint.TRUE))
        label = f"auto-round {data_type}{bits} {group_label(group)} {'sym' if sym else 'asym'} ({packing})"
        activation = self._activation()
        known = packing in PACKINGS and data_type == "int" and int_element(bits) is not None
        scheme = weight_only_scheme(bits) if known and activation is None else None
        weight = int_weight(bits, group, symmetric=sym, zero_point=zero, layout=layout)
        return QuantSpec(scheme=scheme, label=label, weight=weight, activation=activation)

    def _activation(self) -> ActQuant | None:
        bits = self.v.get("act_bits")
        if not isinstance(bits, int) or bits >= 16:
            return None
        element = int_element(bits) if str(self.v.get("act_data_type") or "int") == "int" else None
        group = self.v.get("act_group_size")
        return ActQuant(
            element=element or ElementType.FP8_E4M3, bits=max(1, bits), dynamic=self.v.get("act_dynamic") is not False,
            granularity=Granularity.GROUP if isinstance(group, int) and group > 0 else Granularity.TOKEN,
            group_size=group if isinstance(group, int) and group > 0 else None,
            symmetric=self.v.get("act_sym") is not False,
        )


def _blocks(value: str | list[str] | None) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else (value or [])
    return tuple(s.strip() for s in items if s.strip())


def normalise(raw: AutoRoundConfig, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Normalise a parsed auto-round config."""
    findings: list[Reason] = []
    errors: list[Reason] = []
    packing = (raw.packing_format or DEFAULT_PACKING).lower()
    if packing not in PACKINGS:
        findings.append(reason(Code.FORMAT_NOTE, f"packing_format {packing!r} has no NPU scheme in quantspec",
                               file=file, where=pointer(prefix, "packing_format")))
    glob = {k: getattr(raw, k) for k in ("bits", "group_size", "sym", "data_type", "act_bits", "act_group_size",
                                          "act_sym", "act_data_type", "act_dynamic")}
    base = _Setting(glob).spec(packing)
    exact: list[Rule] = []
    regex: list[Rule] = []
    for key, override in (raw.extra_config or {}).items():
        where = pointer(prefix, "extra_config", key)
        spec = _Setting({**glob, **override}).spec(packing)
        exact.append(Rule(match=Matcher(kind=MatchKind.EXACT, patterns=(key,)), quant=spec, origin=where))
        if _REGEX_CHARS.intersection(key):
            try:
                re.compile(key)
            except re.error as exc:
                errors.append(reason(Code.FORMAT_INVALID_PATTERN, f"invalid regex {key!r}: {exc}", file=file,
                                     where=where, hint="extra_config regex keys are applied with re.search"))
                continue
            regex.append(Rule(match=Matcher(kind=MatchKind.REGEX_SEARCH, patterns=(key,)), quant=spec, origin=where))
    rules = exact + regex
    # vLLM leaves ParallelLMHead unquantized unless extra_config lists it (matched above).
    rules.append(Rule(match=Matcher(kind=MatchKind.EXACT, patterns=("lm_head",)), quant=None,
                      origin=pointer(prefix, "extra_config")))
    blocks = _blocks(raw.block_name_to_quantize) or _blocks(raw.to_quant_block_names)
    if blocks:
        key = "block_name_to_quantize" if raw.block_name_to_quantize else "to_quant_block_names"
        rules.append(Rule(match=Matcher(kind=MatchKind.PREFIX, patterns=blocks, negate=True), quant=None,
                          origin=pointer(prefix, key)))
    if errors:
        raise InvalidCheckpoint(errors)
    return CheckpointDescription(
        format=FormatFamily.AUTO_ROUND, source=source, producer_version=raw.autoround_version,
        rules=tuple(rules), default=base,
        extras=extras_of(raw, ("extra_config", *glob)),
        findings=tuple(findings),
    )


def read(data: Any, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Parse and normalise an auto-round config given as decoded JSON."""
    raw = parse_raw(AutoRoundConfig, data, file=file, prefix=prefix)
    return normalise(raw, file=file, source=source, prefix=prefix)
