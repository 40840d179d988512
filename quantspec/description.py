"""The format-neutral checkpoint description (the IR between format modules and the planner).

Each format module (``quantspec.formats.<format>``) reads its producer's file into a raw
model faithful to that file, then normalises it into a :class:`CheckpointDescription`.
Nothing format-specific passes this boundary: the planner sees only rules that map module
names to a :class:`QuantSpec` (or to "stays float"), with each producer's own matching
semantics kept in :class:`Matcher`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

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
    #: Where the rule comes from: a JSON pointer into the source file (for a rule with
    #: ``origins``, the origin of its first pattern).
    origin: str
    #: For an EXACT rule that stands for one file entry per module (ModelSlim groups its per-tensor
    #: entries by type label: one rule per label instead of one per module), ``(head, tail)``: the
    #: origin of module ``m`` is ``head + m + tail``, ``m`` escaped as a JSON pointer token, so
    #: that each module still names its own entry. None: every pattern has ``origin``.
    origins: tuple[str, str] | None = None

    @model_validator(mode="after")
    def _origins_need_exact(self) -> Rule:
        if self.origins is not None and (self.match.kind is not MatchKind.EXACT or self.match.negate):
            raise ValueError("per-pattern origins need a non-negated EXACT matcher")
        return self

    def origin_of(self, module: str) -> str:
        """The origin that decided ``module`` (which this rule matches)."""
        if self.origins is None:
            return self.origin
        head, tail = self.origins
        return f"{head}{module.replace('~', '~0').replace('/', '~1')}{tail}"


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
        """The quantization of ``module``: first matching rule, else the default.

        This is the reference semantics, a scan of every rule; to resolve a whole model use
        :meth:`resolver`, which gives the same answers with EXACT rules indexed.
        """
        for rule in self.rules:
            if rule.match.matches(module, module_class):
                return Resolution(quant=rule.quant, matched=True, origin=rule.origin_of(module))
        if self.requires_entry:
            return Resolution(quant=None, matched=False, origin="default")
        applies = module_class is None or module_class in self.default_classes
        return Resolution(quant=self.default if applies else None, matched=True, origin="default")

    def resolver(self) -> Resolver:
        """The indexed :class:`Resolver` of this description, built once and cached.

        The cache lives in the instance ``__dict__`` outside the fields, so equality, hashing
        and dumps ignore it; ``model_copy`` copies it along, so it is reused only while it was
        built from this instance's own rules and default (a copy with new rules gets its own).
        """
        cached = self.__dict__.get(_RESOLVER_KEY)
        if isinstance(cached, Resolver) and cached.serves(self):
            return cached
        built = Resolver(self)
        self.__dict__[_RESOLVER_KEY] = built
        return built

    def summary(self) -> dict[str, Any]:
        """Small JSON-able overview (format, scheme labels and counts) for CLIs."""
        labels: dict[str, int] = {}
        for r in self.rules:
            key = r.quant.label if r.quant else "FLOAT"
            # a rule with per-pattern origins stands for one entry per pattern
            labels[key] = labels.get(key, 0) + (len(r.match.patterns) if r.origins is not None else 1)
        if self.default is not None:
            labels[f"{self.default.label} (default)"] = labels.get(f"{self.default.label} (default)", 0) + 1
        return {"format": self.format.value, "source": self.source, "mode": self.mode.value, "rules": labels}


#: Key of the cached resolver in a description's ``__dict__`` (not a field: see ``resolver()``).
_RESOLVER_KEY = "_quantspec_resolver"


_MATCH = attrgetter("match")
_KIND = attrgetter("kind")
_NEGATE = attrgetter("negate")
_PATTERNS = attrgetter("patterns")
_FIRST = itemgetter(0)


class Resolver:
    """:meth:`CheckpointDescription.resolve`'s answers for many modules, EXACT rules indexed.

    ``resolve`` scans the rules in order, which is what the semantics are; but ModelSlim and
    GGUF descriptions list every module in EXACT rules (tens of thousands of modules for a
    DeepSeek-V3-sized model), so resolving every module by a scan is quadratic. Here the EXACT rules are indexed
    by pattern and only the other rules that come *before* the indexed one are scanned, so the
    first matching rule, and therefore the answer, is the same (tests compare the two with
    hypothesis and on every planner fixture). Get one with :meth:`CheckpointDescription.resolver`.
    """

    __slots__ = ("_classes", "_default", "_exact", "_others", "_requires_entry", "_resolutions", "_rules")

    def __init__(self, desc: CheckpointDescription) -> None:
        self._rules = desc.rules
        self._default = desc.default
        self._classes = desc.default_classes
        self._requires_entry = desc.requires_entry
        #: pattern -> index of the first non-negated EXACT rule listing it.
        self._exact: dict[str, int] = {}
        #: indices of every other rule, in order: they may match before an indexed one.
        self._others: list[int] = []
        #: rule index (-1: unmatched, -2 / -3: the default for a class it does / does not apply
        #: to) -> its Resolution; frozen objects, so one per outcome is shared by every module.
        self._resolutions: dict[int, Resolution] = {}
        matchers = list(map(_MATCH, self._rules))
        patterns = list(map(_PATTERNS, matchers))
        if set(map(_KIND, matchers)) <= {MatchKind.EXACT} and not any(map(_NEGATE, matchers)):
            # EXACT rules only (ModelSlim, GGUF: tens of thousands of modules), indexed with
            # C-level maps; filled from the last rule backwards so that the first rule wins.
            n = len(patterns)
            if set(map(len, patterns)) <= {1}:  # one module per rule (GGUF)
                self._exact = dict(zip(map(_FIRST, reversed(patterns)), range(n - 1, -1, -1), strict=True))
                return
            exact = self._exact
            for i in range(n - 1, -1, -1):  # one rule per type label (ModelSlim): a few rules
                exact.update(dict.fromkeys(patterns[i], i))
            return
        exact, others = self._exact, self._others
        for i, m in enumerate(matchers):
            if m.kind is MatchKind.EXACT and not m.negate:
                for p in m.patterns:
                    if p not in exact:
                        exact[p] = i
            else:
                others.append(i)

    def serves(self, desc: CheckpointDescription) -> bool:
        """Whether this resolver was built from ``desc``'s rules and default (by identity)."""
        return (self._rules is desc.rules and self._default is desc.default
                and self._classes is desc.default_classes and self._requires_entry is desc.requires_entry)

    def _index(self, module: str, module_class: str | None) -> int:
        """Index of the deciding rule, or a negative code for the default (see ``_resolutions``)."""
        rules = self._rules
        i = self._exact.get(module, len(rules))
        for j in self._others:
            if j >= i:
                break
            if rules[j].match.matches(module, module_class):
                return j
        if i < len(rules):
            return i
        if self._requires_entry:
            return -1
        return -2 if module_class is None or module_class in self._classes else -3

    def quant_of(self, module: str, module_class: str | None = "Linear") -> tuple[QuantSpec | None, bool]:
        """``(quant, matched)`` of :meth:`resolve`, without building a :class:`Resolution` (hot path)."""
        i = self._exact.get(module) if not self._others else None
        if i is not None:  # the common case of ModelSlim / GGUF: no other rule can come first
            return self._rules[i].quant, True
        i = self._index(module, module_class)
        if i >= 0:
            return self._rules[i].quant, True
        return (self._default if i == -2 else None), i != -1

    def by_default(self, module: str, module_class: str | None = "Linear") -> bool:
        """Whether ``module`` resolves to the description's default, not to a rule naming it."""
        if not self._others and module in self._exact:
            return False
        return self._index(module, module_class) == -2

    def quants(self, modules: Iterable[str], module_class: str | None = "Linear"
               ) -> tuple[list[QuantSpec | None], list[str]]:
        """:meth:`quant_of` of many modules: their quants, and those of them that are unmatched.

        The planner resolves every expert of every MoE layer (tens of thousands of modules); for
        descriptions made of EXACT rules only, that is one dict lookup per module here.
        """
        modules = list(modules)
        if not self._others:
            rules, get = self._rules, self._exact.get
            idx = list(map(get, modules, repeat(-1)))
            if -1 not in idx:
                return [rules[i].quant for i in idx], []
        quants: list[QuantSpec | None] = []
        unmatched: list[str] = []
        for module in modules:
            quant, matched = self.quant_of(module, module_class)
            quants.append(quant)
            if not matched:
                unmatched.append(module)
        return quants, unmatched

    def resolve(self, module: str, module_class: str | None = "Linear") -> Resolution:
        """The same :class:`Resolution` as ``CheckpointDescription.resolve(module, module_class)``."""
        i = self._index(module, module_class)
        if i >= 0 and self._rules[i].origins is not None:  # each module has its own origin
            rule = self._rules[i]
            return Resolution(quant=rule.quant, matched=True, origin=rule.origin_of(module))
        res = self._resolutions.get(i)
        if res is None:
            if i >= 0:
                rule = self._rules[i]
                res = Resolution(quant=rule.quant, matched=True, origin=rule.origin)
            else:
                res = Resolution(quant=self._default if i == -2 else None, matched=i != -1, origin="default")
            self._resolutions[i] = res
        return res
