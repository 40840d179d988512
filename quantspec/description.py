"""The format-neutral checkpoint description (the IR between format modules and the planner).

Each format module (``quantspec.formats.<format>``) reads its producer's file into a raw
model faithful to that file, then normalises it into a :class:`CheckpointDescription`.
Nothing format-specific passes this boundary: the planner sees only rules that map module
names to a :class:`QuantSpec` (or to "stays float"), with each producer's own matching
semantics kept in :class:`Matcher`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from quantspec.errors import Reason
from quantspec.vocab import (
    ElementType,
    FormatFamily,
    Granularity,
    Layout,
    MatchKind,
    Mode,
    SchemeId,
    ZeroPoint,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WeightQuant(_Frozen):
    """How a module's weight is stored."""

    element: ElementType
    bits: int = Field(ge=1, le=32)
    granularity: Granularity
    #: Elements per scale along K, for ``group`` granularity.
    group_size: int | None = None
    #: ``[rows, cols]`` of a scale block, for ``block`` granularity.
    block: tuple[int, int] | None = None
    symmetric: bool = True
    zero_point: ZeroPoint = ZeroPoint.NONE
    layout: Layout
    #: Scale dtype as stored (``float16``, ``bfloat16``, ``float32``, ``e8m0``, ``int64``);
    #: None when it follows the model dtype.
    scale_dtype: str | None = None
    #: Activation-order quantization: ``g_idx`` may be non-monotone.
    act_order: bool = False
    #: GGML type name (``Q4_K``...) when ``element`` is ``ggml``.
    ggml_type: str | None = None


class ActQuant(_Frozen):
    """How a module's input activations are quantized at run time."""

    element: ElementType
    bits: int = Field(ge=1, le=16)
    dynamic: bool
    granularity: Granularity
    symmetric: bool = True
    group_size: int | None = None
    #: compressed-tensors W4A8 "activation clip" variant.
    clip: bool = False


class QuantSpec(_Frozen):
    """The quantization of one module, as the checkpoint describes it."""

    #: The NPU scheme this maps to; None when the quantization is recognised but no
    #: scheme of the matrix implements it (the planner rejects it, naming ``label``).
    scheme: SchemeId | None
    #: The producer's own name for it, e.g. ``W8A8_DYNAMIC`` or ``gptq int4 g128 sym``.
    label: str
    weight: WeightQuant
    activation: ActQuant | None = None


class Matcher(_Frozen):
    """A set of module-name patterns with one producer's matching semantics."""

    kind: MatchKind
    patterns: tuple[str, ...] = Field(min_length=1)
    #: Match the modules that match none of the patterns (e.g. "outside the quantized blocks").
    negate: bool = False

    def matches(self, module: str, module_class: str | None = None) -> bool:
        """Whether ``module`` (of class ``module_class``) matches."""
        hit = any(_match_one(self.kind, p, module, module_class) for p in self.patterns)
        return hit != self.negate


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _match_one(kind: MatchKind, pattern: str, module: str, module_class: str | None) -> bool:
    match kind:
        case MatchKind.EXACT:
            return module == pattern
        case MatchKind.SUBSTRING:
            return pattern in module
        case MatchKind.PREFIX:
            return module.startswith(pattern)
        case MatchKind.SUFFIX:
            return module.endswith(pattern)
        case MatchKind.REGEX_MATCH:
            return _compiled(pattern).match(module) is not None
        case MatchKind.REGEX_SEARCH:
            return _compiled(pattern).search(module) is not None
        case MatchKind.REGEX_FULLMATCH:
            return _compiled(pattern).fullmatch(module) is not None
        case MatchKind.CLASS_NAME:
            return module_class is not None and pattern == module_class
    return False  # pragma: no cover - exhaustive over MatchKind


class Rule(_Frozen):
    """If ``match`` matches a module, the module is quantized as ``quant`` (None: stays float)."""

    match: Matcher
    quant: QuantSpec | None
    #: Where the rule comes from: a JSON pointer into the source file.
    origin: str


class KVCacheQuant(_Frozen):
    """KV-cache or attention quantization (ModelSlim C8 / FAKQuant, compressed-tensors kv_cache_scheme)."""

    scheme: SchemeId | None
    label: str
    element: ElementType
    bits: int
    granularity: Granularity
    dynamic: bool = False
    symmetric: bool = True
    #: Attention modules the entries cover; empty means every attention module.
    modules: tuple[str, ...] = ()
    origin: str


class Resolution(_Frozen):
    """Outcome of resolving one module against a description."""

    #: The quantization, or None when the module stays float.
    quant: QuantSpec | None
    #: False when no rule matched and the description requires explicit entries.
    matched: bool
    #: Origin of the rule that decided (``default`` when none matched).
    origin: str


class CheckpointDescription(_Frozen):
    """Format-neutral description of a quantized checkpoint (or of an online request)."""

    format: FormatFamily
    #: The file it was read from, relative to the model folder (or ``<request>`` for online).
    source: str
    mode: Mode = Mode.OFFLINE
    #: Version of the producer or of the description format, when the file says.
    producer_version: str | None = None
    #: Ordered rules; the first matching rule decides.
    rules: tuple[Rule, ...] = ()
    #: Quantization of modules no rule matched (None: they stay float).
    default: QuantSpec | None = None
    #: Module classes the default applies to (compressed-tensors "Linear", ...).
    default_classes: tuple[str, ...] = ("Linear",)
    #: True when every module must have its own entry (ModelSlim, GGUF): an unmatched module is
    #: reported as missing, not assumed float.
    requires_entry: bool = False
    #: Tensor names the description itself lists (ModelSlim per-tensor keys, GGUF tensor infos).
    declared_tensors: tuple[str, ...] | None = None
    kv_cache: tuple[KVCacheQuant, ...] = ()
    #: Header keys kept as read (ModelSlim ``model_quant_type``, ``timestep_policy``, ...).
    extras: dict[str, JsonValue] = Field(default_factory=dict)
    #: Non-fatal findings of the format module (unknown values kept, disagreements, ...).
    findings: tuple[Reason, ...] = ()

    def resolve(self, module: str, module_class: str | None = "Linear") -> Resolution:
        """The quantization of ``module``: first matching rule, else the default."""
        for rule in self.rules:
            if rule.match.matches(module, module_class):
                return Resolution(quant=rule.quant, matched=True, origin=rule.origin)
        if self.requires_entry:
            return Resolution(quant=None, matched=False, origin="default")
        applies = module_class is None or module_class in self.default_classes
        return Resolution(quant=self.default if applies else None, matched=True, origin="default")

    def summary(self) -> dict[str, Any]:
        """Small JSON-able overview (format, scheme labels and counts) for CLIs."""
        labels: dict[str, int] = {}
        for r in self.rules:
            key = r.quant.label if r.quant else "FLOAT"
            labels[key] = labels.get(key, 0) + 1
        if self.default is not None:
            labels[f"{self.default.label} (default)"] = labels.get(f"{self.default.label} (default)", 0) + 1
        return {"format": self.format.value, "source": self.source, "mode": self.mode.value, "rules": labels}
