"""compressed-tensors (llm-compressor): ``quant_method: "compressed-tensors"``.

``config_groups`` maps group names to a ``QuantizationScheme`` (``targets``, ``weights``,
``input_activations``, ``format``) or, for presets, a preset name to a list of targets.
``QuantizationScheme`` and ``QuantizationArgs`` forbid unknown keys (as the library does);
``scale_dtype``/``zp_dtype`` (0.12+) are declared so files from newer versions parse.

Matching keeps the library's semantics (``utils/match.py``): ``ignore`` first (exact name,
``re:`` with ``re.match``, or class name), then targets ordered exact name > regex > class
name. The ``Linear`` class target therefore needs the module class when resolving.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import JsonValue, field_validator

from quantspec.description import ActQuant, CheckpointDescription, KVCacheQuant, Matcher, QuantSpec, Rule, WeightQuant
from quantspec.errors import Code, InvalidCheckpoint, Reason, reason
from quantspec.formats.base import RawModel, StrictRawModel, extras_of, int_element, parse_raw, pointer
from quantspec.formats.ct_presets import preset_body
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, MatchKind, SchemeId, ZeroPoint


class QuantType(StrEnum):
    """``QuantizationArgs.type``."""

    INT = "int"
    FLOAT = "float"


class Strategy(StrEnum):
    """``QuantizationArgs.strategy``."""

    TENSOR = "tensor"
    CHANNEL = "channel"
    GROUP = "group"
    BLOCK = "block"
    TOKEN = "token"
    TENSOR_GROUP = "tensor_group"
    ATTN_HEAD = "attn_head"


class QuantizationArgs(StrictRawModel):
    """``QuantizationArgs`` (extra keys forbidden, as in compressed-tensors)."""

    num_bits: int = 8
    type: QuantType = QuantType.INT
    symmetric: bool = True
    group_size: int | None = None
    strategy: Strategy | None = None
    block_structure: list[int] | str | None = None
    dynamic: bool | str = False
    actorder: str | bool | None = None
    scale_dtype: str | None = None
    zp_dtype: str | None = None
    observer: str | None = None
    observer_kwargs: dict[str, JsonValue] | None = None

    @field_validator("type", "strategy", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class QuantizationScheme(StrictRawModel):
    """One ``config_groups`` entry."""

    targets: list[str]
    weights: QuantizationArgs | None = None
    input_activations: QuantizationArgs | None = None
    output_activations: QuantizationArgs | None = None
    format: str | None = None
    #: Ascend extension read by SGLang (``config_groups.group_1``): the W4A8 MoE clip variant.
    activation_use_clip: bool | None = None


class CompressedTensorsConfig(RawModel):
    """Raw ``quantization_config`` (``QuantizationConfig`` ignores unknown keys)."""

    quant_method: str | None = None
    config_groups: dict[str, QuantizationScheme | list[str]] | None = None
    format: str | None = None
    quantization_status: str | None = None
    ignore: list[str] | None = None
    kv_cache_scheme: QuantizationArgs | None = None
    global_compression_ratio: float | None = None
    version: str | None = None
    sparsity_config: dict[str, JsonValue] | None = None
    transform_config: dict[str, JsonValue] | None = None


LAYOUTS: dict[str, Layout] = {
    "pack-quantized": Layout.CT_PACKED,
    "int-quantized": Layout.CT_INT,
    "naive-quantized": Layout.CT_INT,
    "float-quantized": Layout.CT_FLOAT,
    "mxfp8-quantized": Layout.MX_FP8,
    "mxfp4-pack-quantized": Layout.MX_FP4,
    "nvfp4-pack-quantized": Layout.CT_PACKED,
}
_GRANULARITY = {
    Strategy.TENSOR: Granularity.TENSOR, Strategy.CHANNEL: Granularity.CHANNEL, Strategy.GROUP: Granularity.GROUP,
    Strategy.BLOCK: Granularity.BLOCK, Strategy.TOKEN: Granularity.TOKEN,
    Strategy.TENSOR_GROUP: Granularity.TENSOR_GROUP, Strategy.ATTN_HEAD: Granularity.HEAD,
}


def strategy_of(args: QuantizationArgs) -> Strategy:
    """The explicit strategy, or the library's inference from ``group_size``."""
    if args.strategy is not None:
        return args.strategy
    if args.group_size is None:
        return Strategy.TENSOR
    return Strategy.CHANNEL if args.group_size < 0 else Strategy.GROUP


def element_of(args: QuantizationArgs) -> ElementType:
    """Element type of the quantized values."""
    if args.type is QuantType.FLOAT:
        return ElementType.FP4_E2M1 if args.num_bits <= 4 else ElementType.FP8_E4M3
    return int_element(args.num_bits) or ElementType.INT8


def infer_format(scheme: QuantizationScheme) -> str:
    """llm-compressor's ``infer_module_format`` priority order, for groups without a format."""
    w, a = scheme.weights, scheme.input_activations
    if w is None:
        return "dense"
    if w.type is QuantType.FLOAT and w.num_bits == 4 and w.group_size == 32:
        return "mxfp4-pack-quantized"
    if w.type is QuantType.FLOAT and w.num_bits == 8 and w.group_size == 32 and (w.scale_dtype or "").endswith("uint8"):
        return "mxfp8-quantized"
    if w.type is QuantType.FLOAT and w.num_bits == 4 and w.group_size == 16:
        return "nvfp4-pack-quantized"
    if w.type is QuantType.INT and a is not None:
        return "int-quantized"
    if w.type is QuantType.INT and (a is None or a.type is not QuantType.FLOAT):
        return "pack-quantized"
    if w.type is QuantType.FLOAT and a is not None:
        return "float-quantized"
    return "naive-quantized"


def _scale_dtype(args: QuantizationArgs) -> str | None:
    return args.scale_dtype.removeprefix("torch.") if args.scale_dtype else None


def weight_quant(w: QuantizationArgs, fmt: str) -> WeightQuant:
    """WeightQuant of a group's ``weights`` stored in ``fmt``."""
    strat = strategy_of(w)
    block = None
    if strat is Strategy.BLOCK and isinstance(w.block_structure, list) and len(w.block_structure) == 2:
        block = (w.block_structure[0], w.block_structure[1])
    return WeightQuant(
        element=element_of(w), bits=max(1, min(w.num_bits, 32)), granularity=_GRANULARITY[strat],
        group_size=w.group_size if w.group_size and w.group_size > 0 else None, block=block,
        symmetric=w.symmetric, zero_point=ZeroPoint.NONE if w.symmetric else ZeroPoint.SIGNED,
        layout=LAYOUTS.get(fmt, Layout.FLOAT), scale_dtype=_scale_dtype(w),
        act_order=w.actorder in ("group", "dynamic", True),
    )


def act_quant(a: QuantizationArgs, *, clip: bool = False) -> ActQuant:
    """ActQuant of a group's ``input_activations`` (``clip``: the group's ``activation_use_clip``)."""
    strat = strategy_of(a)
    return ActQuant(
        element=element_of(a), bits=max(1, min(a.num_bits, 16)), dynamic=a.dynamic is True or a.dynamic == "local",
        granularity=_GRANULARITY[strat], symmetric=a.symmetric,
        group_size=a.group_size if a.group_size and a.group_size > 0 else None, clip=clip,
    )


def scheme_of(w: QuantizationArgs, a: QuantizationArgs | None, fmt: str) -> SchemeId | None:
    """The NPU scheme of a group, following vLLM-Ascend's ``_detect_quant_type`` and SGLang's NPU path."""
    w_strat = strategy_of(w)
    if w.type is QuantType.INT:
        if a is None:
            if fmt == "pack-quantized" and w.num_bits in (4, 8) and w_strat in (Strategy.GROUP, Strategy.CHANNEL):
                return SchemeId.W4A16 if w.num_bits == 4 else SchemeId.W8A16
            return None
        if not w.symmetric or a.type is not QuantType.INT or a.num_bits != 8 or not a.symmetric:
            return None
        a_strat = strategy_of(a)
        if w.num_bits == 8 and w_strat in (Strategy.CHANNEL, Strategy.TENSOR):
            if a_strat is Strategy.TOKEN and a.dynamic is True:
                return SchemeId.W8A8_DYNAMIC
            if a_strat is Strategy.TENSOR and a.dynamic is False:
                return SchemeId.W8A8_STATIC
        if w.num_bits == 4 and w_strat in (Strategy.CHANNEL, Strategy.GROUP) and a_strat is Strategy.TOKEN \
                and a.dynamic is True:
            return SchemeId.W4A8_DYNAMIC
        return None
    if w.type is QuantType.FLOAT and w.num_bits == 8 and a is not None and a.type is QuantType.FLOAT:
        if fmt == "mxfp8-quantized":
            return SchemeId.W8A8_MXFP8
        if w_strat is Strategy.CHANNEL and strategy_of(a) is Strategy.TOKEN and a.dynamic is True:
            return SchemeId.W8A8_FP8_DYNAMIC
    return None


def _label(w: QuantizationArgs, a: QuantizationArgs | None, fmt: str) -> str:
    def one(x: QuantizationArgs) -> str:
        kind = "int" if x.type is QuantType.INT else "fp"
        group = f" g{x.group_size}" if x.group_size and x.group_size > 0 else ""
        dyn = " dynamic" if x.dynamic is True else (" local" if x.dynamic == "local" else "")
        sym = "" if x.symmetric else " asym"
        return f"{kind}{x.num_bits} {strategy_of(x).value}{group}{sym}{dyn}"

    acts = f" / act {one(a)}" if a is not None else ""
    return f"compressed-tensors w {one(w)}{acts} ({fmt})"


def group_spec(scheme: QuantizationScheme, global_format: str | None) -> QuantSpec | None:
    """QuantSpec of one group (None when it quantizes no weights)."""
    w, a = scheme.weights, scheme.input_activations
    if w is None:
        return None
    fmt = scheme.format or (global_format if global_format not in (None, "mixed-precision") else None) \
        or infer_format(scheme)
    clip = " activation_use_clip" if scheme.activation_use_clip and a is not None else ""
    return QuantSpec(scheme=scheme_of(w, a, fmt), label=_label(w, a, fmt) + clip, weight=weight_quant(w, fmt),
                     activation=act_quant(a, clip=scheme.activation_use_clip is True) if a is not None else None)


def _split(patterns: list[str]) -> tuple[list[str], list[str]]:
    names = [p for p in patterns if not p.startswith("re:")]
    return names, [p[3:] for p in patterns if p.startswith("re:")]


def _check_regexes(regexes: list[str], where: str, file: str, errors: list[Reason]) -> list[str]:
    ok: list[str] = []
    for r in regexes:
        try:
            re.compile(r)
            ok.append(r)
        except re.error as exc:
            errors.append(reason(Code.FORMAT_INVALID_PATTERN, f"invalid regex 're:{r}': {exc}", file=file, where=where,
                                 hint="'re:' patterns are Python regexes applied with re.match"))
    return ok


def _rules_for(patterns: list[str], quant: QuantSpec | None, where: str, file: str,
               errors: list[Reason]) -> tuple[list[Rule], list[Rule], list[Rule]]:
    names, regexes = _split(patterns)
    regexes = _check_regexes(regexes, where, file, errors)

    def rule(kind: MatchKind, patterns: list[str]) -> list[Rule]:
        if not patterns:
            return []
        return [Rule(match=Matcher(kind=kind, patterns=tuple(patterns)), quant=quant, origin=where)]

    # A plain entry is compared with the module name and with its class name (utils/match.py).
    return rule(MatchKind.EXACT, names), rule(MatchKind.REGEX_MATCH, regexes), rule(MatchKind.CLASS_NAME, names)


def normalise(raw: CompressedTensorsConfig, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Normalise a parsed compressed-tensors config."""
    errors: list[Reason] = []
    findings: list[Reason] = []
    _check_sparsity(raw, file=file, prefix=prefix)
    ignore_rules = _rules_for(raw.ignore or [], None, pointer(prefix, "ignore"), file, errors)
    exact: list[Rule] = []
    rx: list[Rule] = []
    cls: list[Rule] = []
    for name, group in (raw.config_groups or {}).items():
        where = pointer(prefix, "config_groups", name)
        if isinstance(group, list):  # preset: "W4A16": ["Linear"]
            body = preset_body(name)
            scheme = None if body is None else QuantizationScheme.model_validate({"targets": [], **body})
            if scheme is None:
                errors.append(reason(Code.FORMAT_UNKNOWN_VALUE, f"unknown compressed-tensors preset {name!r}",
                                     file=file, where=where, hint="a list value names a preset scheme such as W4A16"))
                continue
            scheme = scheme.model_copy(update={"targets": group})
        else:
            scheme = group
            if group.activation_use_clip is not None and name != "group_1":
                findings.append(reason(
                    Code.FORMAT_NOTE, f"activation_use_clip is set on {name!r}; SGLang reads it only from 'group_1'",
                    file=file, where=pointer(where, "activation_use_clip")))
        e, r, c = _rules_for(scheme.targets, group_spec(scheme, raw.format), pointer(where, "targets"), file, errors)
        exact += e
        rx += r
        cls += c
    if errors:
        raise InvalidCheckpoint(errors)
    if not raw.config_groups:
        findings.append(reason(Code.FORMAT_NOTE, "no config_groups: nothing is quantized", file=file,
                               where=prefix or "/"))
    kv: tuple[KVCacheQuant, ...] = ()
    if raw.kv_cache_scheme is not None:
        k = raw.kv_cache_scheme
        kv = (KVCacheQuant(
            scheme=None, label=f"compressed-tensors kv {'int' if k.type is QuantType.INT else 'fp'}{k.num_bits} "
                               f"{strategy_of(k).value}", element=element_of(k), bits=k.num_bits,
            granularity=_GRANULARITY[strategy_of(k)], dynamic=k.dynamic is True, symmetric=k.symmetric,
            origin=pointer(prefix, "kv_cache_scheme"),
        ),)
    rules = [*ignore_rules[0], *ignore_rules[1], *ignore_rules[2], *exact, *rx, *cls]
    return CheckpointDescription(
        format=FormatFamily.COMPRESSED_TENSORS, source=source, producer_version=raw.version,
        rules=tuple(rules), default=None, kv_cache=kv,
        extras=extras_of(raw, ("config_groups", "ignore", "kv_cache_scheme")), findings=tuple(findings),
    )


_DENSE_SPARSITY = frozenset({"dense", ""})


def _check_sparsity(raw: CompressedTensorsConfig, *, file: str, prefix: str) -> None:
    fmt = (raw.sparsity_config or {}).get("format")
    if isinstance(fmt, str) and fmt not in _DENSE_SPARSITY:
        from quantspec.formats.base import unsupported

        raise unsupported(f"compressed-tensors sparse ({fmt})", file=file,
                          where=pointer(prefix, "sparsity_config", "format"),
                          detail="compressed sparse weights cannot be loaded densely")


def read(data: Any, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Parse and normalise a compressed-tensors config given as decoded JSON."""
    raw = parse_raw(CompressedTensorsConfig, data, file=file, prefix=prefix)
    return normalise(raw, file=file, source=source, prefix=prefix)
