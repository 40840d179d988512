"""msModelSlim ``quant_model_description.json`` (Ascend's own format).

The file is a flat object: a few header keys (``model_quant_type``, ``version``,
``group_size``, ``kv_cache_type``...) and one entry **per tensor** naming its quantization
type (``"model.layers.0.mlp.down_proj.weight": "W8A8_DYNAMIC"``). As in vLLM-Ascend and
SGLang, only the ``<module>.weight`` entry decides a module's scheme; the other entries are
recorded in ``declared_tensors`` and the C8 / FAKQuant entries name the attention modules
whose KV cache is quantized. A module without an entry is not assumed float
(``requires_entry``): engines fail on it, so the planner reports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from quantspec.description import (
    ActQuant,
    CheckpointDescription,
    KVCacheQuant,
    Matcher,
    QuantSpec,
    Rule,
    WeightQuant,
)
from quantspec.errors import Code, Reason, reason
from quantspec.formats.base import RawModel, escape_pointer, parse_raw, pointer
from quantspec.vocab import (
    ElementType,
    FormatFamily,
    Granularity,
    Layout,
    MatchKind,
    SchemeId,
    ZeroPoint,
)

FILENAME = "quant_model_description.json"
#: Older msModelSlim exports and MindIE: ``quant_model_description_<type>.json`` (read by no engine).
MISNAMED_GLOB = "quant_model_description_*.json"

#: Label that keeps a tensor unquantized.
FLOAT_LABEL = "FLOAT"


class ModelSlimDescription(RawModel):
    """Raw ``quant_model_description.json``: declared header keys plus one entry per tensor.

    Per-tensor entries are the extra keys (``extra="allow"``); their values are type labels.
    ``null`` header values mean "absent" (legacy exports write ``"fa_quant_type": null``).
    """

    model_quant_type: str | None = None
    version: str | None = None
    group_size: int | None = None
    kv_cache_type: str | None = None
    kv_quant_type: str | None = None
    fa_quant_type: str | None = None
    reduce_quant_type: str | None = None
    indexer_quant_type: str | None = None
    metadata: dict[str, JsonValue] | None = None
    optional: dict[str, JsonValue] | None = None
    is_rot_used: bool | None = None
    max_supported_tp: int | None = None
    # diffusion (Wan2.2 MXFP4) exports
    timestep_policy: dict[str, JsonValue] | None = None
    mxfp4_scale_alg: int | None = None
    mxfp4_dst_type_max: float | None = None
    # non-standard keys SGLang reads when present
    ignore: list[str] | None = None
    packed_modules_mapping: dict[str, list[str]] | None = None
    # legacy msModelSlim / msit metadata, read by nobody
    w_bit: int | None = None
    a_bit: int | None = None
    w_sym: bool | None = None
    is_dynamic: bool | None = None
    dev_type: str | None = None
    anti_method: str | None = None
    act_method: int | None = None
    fraction: float | None = None
    # injected by vLLM-Ascend's compressed-tensors W4A8 adapter; seen in dumped descriptions
    ascend_quant_method: str | None = None
    weight_strategy: str | None = None
    # settings that msModelSlim's example scripts append to the header (producer settings, read
    # by no engine): reported as notes
    co_sparse: bool | None = None
    do_smooth: bool | None = None
    use_sigma: bool | None = None
    sigma_factor: float | None = None
    is_lowbit: bool | None = None
    mm_tensor: bool | None = None
    open_outlier: bool | None = None

    def tensor_entries(self) -> dict[str, Any]:
        """The per-tensor entries (every key the model does not declare), in file order."""
        return self.extra_keys()


#: Header keys (the declared fields); everything else is a tensor entry.
HEADER_KEYS: tuple[str, ...] = tuple(ModelSlimDescription.model_fields)
#: Producer settings msModelSlim's example scripts write into the header (notes, not errors).
PRODUCER_SETTINGS: tuple[str, ...] = ("co_sparse", "do_smooth", "use_sigma", "sigma_factor", "is_lowbit",
                                      "mm_tensor", "open_outlier")

_INT8_CHANNEL = {"element": ElementType.INT8, "bits": 8, "granularity": Granularity.CHANNEL}
_TOKEN_INT8 = ActQuant(element=ElementType.INT8, bits=8, dynamic=True, granularity=Granularity.TOKEN)
_MX_GROUP = 32


def _offset_weight(**kw: Any) -> WeightQuant:
    # ModelSlim writes a float ``weight_offset`` beside ``weight_scale`` for integer weights.
    return WeightQuant(symmetric=False, zero_point=ZeroPoint.FLOAT_OFFSET, **kw)


def _mx_act(element: ElementType, bits: int) -> ActQuant:
    return ActQuant(element=element, bits=bits, dynamic=True, granularity=Granularity.GROUP, group_size=_MX_GROUP)


def _mx_weight(element: ElementType, bits: int, layout: Layout, group: int | None) -> WeightQuant:
    return WeightQuant(
        element=element, bits=bits, granularity=Granularity.GROUP, group_size=group or _MX_GROUP,
        layout=layout, scale_dtype="e8m0",
    )


def label_spec(label: str, *, version: str | None, group_size: int | None) -> QuantSpec | None:
    """The :class:`QuantSpec` of one ModelSlim type label; None for unknown labels."""
    group = group_size if group_size and group_size > 0 else None
    int4_gran = Granularity.GROUP if group else Granularity.CHANNEL
    match label:
        case "W8A8":
            return QuantSpec(
                scheme=SchemeId.W8A8_STATIC, label=label,
                weight=_offset_weight(layout=Layout.MODELSLIM_INT8, **_INT8_CHANNEL),
                activation=ActQuant(element=ElementType.INT8, bits=8, dynamic=False,
                                    granularity=Granularity.TENSOR, symmetric=False),
            )
        case "W8A8_DYNAMIC":
            return QuantSpec(scheme=SchemeId.W8A8_DYNAMIC, label=label,
                             weight=_offset_weight(layout=Layout.MODELSLIM_INT8, **_INT8_CHANNEL),
                             activation=_TOKEN_INT8)
        case "W8A16":
            return QuantSpec(scheme=SchemeId.W8A16, label=label,
                             weight=_offset_weight(layout=Layout.MODELSLIM_INT8, **_INT8_CHANNEL))
        case "W4A8_DYNAMIC":
            # version "1.0.0" marks the int4-pairs-per-int8 layout with a precomputed scale_bias.
            layout = Layout.MODELSLIM_INT4X2 if version == "1.0.0" else Layout.MODELSLIM_INT4
            return QuantSpec(scheme=SchemeId.W4A8_DYNAMIC, label=label,
                             weight=_offset_weight(element=ElementType.INT4, bits=4, granularity=int4_gran,
                                                   group_size=group, layout=layout),
                             activation=_TOKEN_INT8)
        case "W4A4_DYNAMIC":
            return QuantSpec(scheme=SchemeId.W4A4_DYNAMIC, label=label,
                             weight=_offset_weight(element=ElementType.INT4, bits=4,
                                                   granularity=Granularity.CHANNEL, layout=Layout.MODELSLIM_INT4),
                             activation=ActQuant(element=ElementType.INT4, bits=4, dynamic=True,
                                                 granularity=Granularity.TOKEN))
        case "W8A8_MXFP8":
            return QuantSpec(scheme=SchemeId.W8A8_MXFP8, label=label,
                             weight=_mx_weight(ElementType.FP8_E4M3, 8, Layout.MX_FP8, group),
                             activation=_mx_act(ElementType.FP8_E4M3, 8))
        case "W4A8_MXFP":
            return QuantSpec(scheme=SchemeId.W4A8_MXFP, label=label,
                             weight=_mx_weight(ElementType.FP4_E2M1, 4, Layout.MX_FP4, group),
                             activation=_mx_act(ElementType.FP8_E4M3, 8))
        case "W4A4_MXFP4":
            return QuantSpec(scheme=SchemeId.W4A4_MXFP4, label=label,
                             weight=_mx_weight(ElementType.FP4_E2M1, 4, Layout.MX_FP4, group),
                             activation=_mx_act(ElementType.FP4_E2M1, 4))
        case "W8A8_MIX":
            # pdmix: the W8A8 static tensors plus weight_scale/weight_offset (ascendv1.py on_w8a8_pd_mix).
            return QuantSpec(scheme=SchemeId.W8A8_MIX, label=label,
                             weight=_offset_weight(layout=Layout.MODELSLIM_INT8, **_INT8_CHANNEL),
                             activation=_TOKEN_INT8)
        case "WFP8AFP8_DYNAMIC" | "W8A8FP8_DYNAMIC":
            # What msModelSlim writes is WFP8AFP8_DYNAMIC (ascendv1.py on_wfp8afp8_dynamic_per_channel);
            # W8A8FP8_DYNAMIC is vLLM-Ascend's internal name for it, accepted as an alias. fp8
            # weight [N, K] with per-channel weight_scale: the ModelSlim int8 tensor layout with an
            # fp8 element type.
            return QuantSpec(scheme=SchemeId.W8A8_FP8_DYNAMIC, label=label,
                             weight=WeightQuant(element=ElementType.FP8_E4M3, bits=8,
                                                granularity=Granularity.CHANNEL, layout=Layout.MODELSLIM_INT8),
                             activation=ActQuant(element=ElementType.FP8_E4M3, bits=8, dynamic=True,
                                                 granularity=Granularity.TOKEN))
    return None


#: Labels msModelSlim writes that no NPU scheme of quantspec implements, with the recipe option
#: that produced them (the hint of the planner's rejection).
UNMAPPED_HINTS: dict[str, str] = {
    "W4A16": "msModelSlim's W4A16 (old API, w_bit=4 a_bit=16; the v1 saver has no W4A16 handler) has no "
             "scheme in quantspec yet (vLLM-Ascend runs it for MoE experts: AscendW4A16FusedMoEMethod); "
             "re-quantize with W8A8_DYNAMIC or W4A8_DYNAMIC, or export W4A16 as GPTQ/AWQ",
    "W16A16S": "W16A16S is msModelSlim's sparse weight format (quant_type W16A16S), run by MindIE only",
    "W8A8S": "W8A8S is a sparse-quantization export (co_sparse / quant_type W8A8S), run by MindIE only",
    "W8A8SC": "W8A8SC is a compressed sparse export (co_sparse with weight compression), run by MindIE only",
    "W4A4_MXFP4_DUALSCALE": "produced by weight scope 'dual_scale' (method 'dualscale'); use scope 'per_block' "
                            "for plain W4A4_MXFP4",
    "W4A4_MXFP4_SVD": "produced by the SVD residual processor ('svd_quant'); drop it from the recipe",
    "W8A8_TIMESTEP": "a diffusion timestep-wise export (timestep_quant); no LLM engine runs it",
    "W8A8_PER_CHANNEL": "legacy diffusion label; re-export with the ascendv1 saver",
    "W8A8_PER_TENSOR": "legacy diffusion label; re-export with the ascendv1 saver",
    "W4A16_MXFP4": "weight-only MXFP4 has no engine path; use W4A8_MXFP or W4A4_MXFP4",
    "W4A8_MXFP4": "not an ascendv1 label; W4A8_MXFP is the W4A8 MX type",
}
#: FlatQuant and SVD exports rename the label of every quantized type (ascendv1.py: a
#: ``_FLATQUANT`` / ``_SVD`` infix or suffix); no engine runs them.
_WRAPPED_HINT = ("written by the {proc} processor of msModelSlim (the label carries '{infix}'); the engines "
                 "run no {proc} kernels: drop the processor from the recipe")
#: Labels ModelSlim writes that no NPU scheme of quantspec implements (reported as notes).
KNOWN_UNMAPPED: frozenset[str] = frozenset(UNMAPPED_HINTS)


def unmapped_hint(label: str) -> str | None:
    """Why a known msModelSlim label has no scheme, naming the recipe option that produced it."""
    if label in UNMAPPED_HINTS:
        return UNMAPPED_HINTS[label]
    for infix, proc in (("FLATQUANT", "FlatQuant ('flatquant')"), ("_SVD", "SVD residual ('svd_quant')")):
        if infix in label:
            return _WRAPPED_HINT.format(proc=proc, infix=infix.strip("_"))
    return None

_WA_RE = re.compile(r"^W(\d+)A(\d+)")


def _unmapped_spec(label: str) -> QuantSpec:
    """A scheme-less spec for a label we cannot map: the bit width from ``W<b>A<b>`` when present."""
    m = _WA_RE.match(label)
    bits = int(m.group(1)) if m else 0
    element = {2: ElementType.INT2, 3: ElementType.INT3, 4: ElementType.INT4, 8: ElementType.INT8}.get(bits)
    if element is None:
        weight = WeightQuant(element=ElementType.FLOAT, bits=16, granularity=Granularity.TENSOR, layout=Layout.FLOAT)
    else:
        weight = _offset_weight(element=element, bits=bits, granularity=Granularity.CHANNEL,
                                layout=Layout.MODELSLIM_INT4 if bits == 4 else Layout.MODELSLIM_INT8)
    return QuantSpec(scheme=None, label=label, weight=weight)


_C8_RE = re.compile(r"^(?P<attn>.+)\.[^.]+\.kv_cache_(?:scale|offset)$")
_FA_RE = re.compile(r"^(?P<attn>.+)\.fa_[qkv]\.(?:scale|offset)$")


def normalise(raw: ModelSlimDescription, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Normalise a parsed description into a :class:`CheckpointDescription`."""
    return _normalise(raw, raw.tensor_entries(), file=file, source=source, prefix=prefix)


def _normalise(
    raw: ModelSlimDescription, entries: Mapping[str, Any], *, file: str, source: str, prefix: str
) -> CheckpointDescription:
    # This loop runs once per tensor (136k for DeepSeek-V3), so it does the least per entry:
    # modules are grouped by type label into one EXACT rule per label (the rule derives each
    # module's JSON pointer, ``Rule.origins``), pointers are built only for findings and each
    # label's first entry, and the C8 / FA regexes run only on keys containing their literal part.
    findings: list[Reason] = []
    extras: dict[str, JsonValue] = {}
    for key in HEADER_KEYS:
        value = getattr(raw, key)
        if value is not None:  # null means absent (vLLM-Ascend's `!= ""` test is fooled by null)
            extras[key] = value
    settings = [k for k in PRODUCER_SETTINGS if getattr(raw, k) is not None]
    if settings:
        findings.append(reason(
            Code.FORMAT_NOTE, f"producer settings in the header ({', '.join(settings)}): msModelSlim's example "
            "scripts write them; no engine reads them", file=file, where=_ptr(prefix, settings[0]),
        ))
    declared: list[str] = []
    specs: dict[str, QuantSpec | None] = {}
    #: type label -> its modules in file order, and the pointer of its first entry
    modules: dict[str, list[str]] = {}
    label_ptr: dict[str, str] = {}
    reported: set[str] = set()
    c8: list[str] = []
    fa: list[str] = []
    first_ptr: dict[str, str] = {}
    root = f"{prefix}/"
    declare = declared.append
    for key, value in entries.items():
        if value.__class__ is not str and not isinstance(value, str):
            if value is None:
                continue
            extras[key] = value
            findings.append(reason(
                Code.FORMAT_UNKNOWN_VALUE,
                f"unknown key {key!r} with a non-string value; kept as a header key",
                file=file, where=_ptr(prefix, key),
                hint="tensor entries map a tensor name to a type label such as \"W8A8\"",
            ))
            continue
        declare(key)
        if key.endswith(".weight"):  # never a C8 / FA entry (those end in scale / offset)
            mods = modules.get(value)
            if mods is None:
                ptr = label_ptr[value] = root + key.replace("~", "~0").replace("/", "~1")  # pointer(), inlined
                specs[value] = None if value == FLOAT_LABEL else _spec_or_unmapped(
                    value, raw, findings, reported, file=file, where=ptr)
                mods = modules[value] = []
            mods.append(key[:-7])
        elif "kv_cache_" in key and (m := _C8_RE.match(key)):
            c8.append(m.group("attn"))
            if "c8" not in first_ptr:
                first_ptr["c8"] = _ptr(prefix, key)
        elif ".fa_" in key and (m := _FA_RE.match(key)):
            fa.append(m.group("attn"))
            if "fa" not in first_ptr:
                first_ptr["fa"] = _ptr(prefix, key)
    kv = _kv_items(raw, c8, fa, first_ptr, findings, file=file, prefix=prefix)
    # Each module's entry is ``<module>.weight``, so its pointer is ``root + module + ".weight"``
    # with the module escaped (``.weight`` needs no escaping): what ``Rule.origin_of`` builds.
    exact = MatchKind.EXACT
    rules = [Rule(match=Matcher(kind=exact, patterns=tuple(mods)), quant=specs[label], origin=label_ptr[label],
                  origins=(root, ".weight")) for label, mods in modules.items()]
    return CheckpointDescription(
        format=FormatFamily.MODELSLIM,
        source=source,
        producer_version=raw.version,
        rules=tuple(rules),
        default=None,
        requires_entry=True,
        declared_tensors=tuple(declared),
        kv_cache=kv,
        extras=extras,
        findings=tuple(findings),
    )


def _ptr(prefix: str, key: str) -> str:
    """``pointer(prefix, key)`` for one string key, without the general helper's overhead."""
    return f"{prefix}/{escape_pointer(key)}"


def _spec_or_unmapped(
    label: str, raw: ModelSlimDescription, findings: list[Reason], reported: set[str], *, file: str, where: str
) -> QuantSpec:
    spec = label_spec(label, version=raw.version, group_size=raw.group_size)
    if spec is not None:
        return spec
    if label not in reported:
        reported.add(label)
        if (why := unmapped_hint(label)) is not None:
            findings.append(reason(
                Code.FORMAT_NOTE,
                f"ModelSlim type {label!r} has no NPU scheme in quantspec; modules using it will be rejected",
                file=file, where=where, hint=why,
            ))
        else:
            findings.append(reason(
                Code.FORMAT_UNKNOWN_VALUE,
                f"unknown ModelSlim quantization type {label!r}; kept, but no scheme implements it",
                file=file, where=where,
                hint="known types: FLOAT, W8A8, W8A8_DYNAMIC, W8A8_MIX, W8A16, W4A8_DYNAMIC, W4A4_DYNAMIC, "
                     "W8A8_MXFP8, W4A8_MXFP, W4A4_MXFP4, WFP8AFP8_DYNAMIC",
            ))
    return _unmapped_spec(label)


def _kv_items(
    raw: ModelSlimDescription,
    c8: list[str],
    fa: list[str],
    first_ptr: Mapping[str, str],
    findings: list[Reason],
    *,
    file: str,
    prefix: str,
) -> tuple[KVCacheQuant, ...]:
    items: list[KVCacheQuant] = []
    kv_type = raw.kv_cache_type or raw.kv_quant_type
    kv_key = "kv_cache_type" if raw.kv_cache_type else "kv_quant_type"
    if c8:
        items.append(KVCacheQuant(
            scheme=SchemeId.KV_C8, label=kv_type or "C8", element=ElementType.INT8, bits=8,
            granularity=Granularity.CHANNEL, symmetric=False, modules=tuple(dict.fromkeys(c8)),
            origin=pointer(prefix, kv_key) if kv_type else first_ptr["c8"],
        ))
        if not kv_type:
            findings.append(reason(
                Code.FORMAT_NOTE, "C8 kv_cache_scale/offset entries are present but kv_cache_type is not set",
                file=file, where=first_ptr["c8"],
                hint="engines enable the C8 KV cache only when kv_cache_type is \"C8\"",
            ))
    elif kv_type:
        findings.append(reason(
            Code.FORMAT_NOTE, f"{kv_key} is {kv_type!r} but no *.kv_cache_scale entries name the attention layers",
            file=file, where=pointer(prefix, kv_key),
        ))
    if fa:
        items.append(KVCacheQuant(
            scheme=SchemeId.FA_KQUANT, label=raw.fa_quant_type or "FAKQuant", element=ElementType.INT8, bits=8,
            granularity=Granularity.HEAD, symmetric=False, modules=tuple(dict.fromkeys(fa)),
            origin=pointer(prefix, "fa_quant_type") if raw.fa_quant_type else first_ptr["fa"],
        ))
    elif raw.fa_quant_type:
        findings.append(reason(
            Code.FORMAT_NOTE, f"fa_quant_type is {raw.fa_quant_type!r} but no *.fa_k.scale entries name the layers",
            file=file, where=pointer(prefix, "fa_quant_type"),
        ))
    return tuple(items)


def read(data: Any, *, file: str, source: str, prefix: str = "") -> CheckpointDescription:
    """Parse and normalise a ModelSlim description given as decoded JSON."""
    if not isinstance(data, Mapping):
        parse_raw(ModelSlimDescription, data, file=file, prefix=prefix)  # raises the usual error
    # Only the header keys are validated: tensor entries are ``extra`` keys of any type, which
    # the model accepts as they are, and copying 100k+ of them through validation costs more
    # than the rest of parsing. The entries are handed to the normaliser directly.
    header = {k: data[k] for k in HEADER_KEYS if k in data}
    raw = parse_raw(ModelSlimDescription, header, file=file, prefix=prefix)
    entries = dict(data)
    for key in header:
        del entries[key]
    return _normalise(raw, entries, file=file, source=source, prefix=prefix)


def looks_like_modelslim(data: Mapping[str, Any]) -> bool:
    """Whether a ``quantization_config`` without ``quant_method`` is a legacy ModelSlim map.

    Legacy msit exports put the whole per-tensor map into ``config.json`` (vLLM-Ascend #633):
    tensor names ending in ``.weight`` mapped to ModelSlim type labels.
    """
    if "model_quant_type" in data:
        return True
    return any(isinstance(v, str) and k.endswith(".weight") and is_known_label(v) for k, v in data.items())


def is_known_label(label: str) -> bool:
    """Whether ``label`` is a ModelSlim type label (mapped or not)."""
    if label == FLOAT_LABEL or unmapped_hint(label) is not None:
        return True
    return label_spec(label, version=None, group_size=None) is not None
