"""Fast, exact-equivalent module resolution against a :class:`CheckpointDescription`.

``CheckpointDescription.resolve`` scans the rules in order; ModelSlim and GGUF descriptions
hold one EXACT rule per module (tens of thousands for a DeepSeek-V3-sized model), so a scan
per module would be quadratic. :class:`Resolver` indexes the EXACT rules by name and scans
only the non-exact rules that precede the exact hit, which keeps "first matching rule wins"
semantics (a test compares it with ``resolve`` on every fixture).
"""

from __future__ import annotations

from typing import NamedTuple

from quantspec.description import CheckpointDescription, QuantSpec, Rule
from quantspec.vocab import MatchKind


class Resolved(NamedTuple):
    """Outcome of resolving one module (a cheap tuple; see ``description.Resolution``)."""

    quant: QuantSpec | None
    matched: bool
    origin: str


class Resolver:
    """Resolve module names against a description with an exact-name index."""

    def __init__(self, desc: CheckpointDescription) -> None:
        self._desc = desc
        self._rules: tuple[Rule, ...] = desc.rules
        self._exact: dict[str, int] = {}
        self._others: list[int] = []
        for i, rule in enumerate(desc.rules):
            m = rule.match
            if m.kind is MatchKind.EXACT and not m.negate:
                for p in m.patterns:
                    self._exact.setdefault(p, i)
            else:
                self._others.append(i)

    def quant_of(self, module: str, module_class: str | None = "Linear") -> tuple[QuantSpec | None, bool]:
        """``(quant, matched)`` of ``module``: the hot path of :meth:`resolve` without the origin."""
        rules = self._rules
        i = self._exact.get(module, len(rules))
        for j in self._others:
            if j >= i:
                break
            if rules[j].match.matches(module, module_class):
                i = j
                break
        if i < len(rules):
            return rules[i].quant, True
        if self._desc.requires_entry:
            return None, False
        applies = module_class is None or module_class in self._desc.default_classes
        return (self._desc.default if applies else None), True

    def resolve(self, module: str, module_class: str | None = "Linear") -> Resolved:
        """Same answer as ``CheckpointDescription.resolve(module, module_class)``."""
        rules = self._rules
        i = self._exact.get(module, len(rules))
        for j in self._others:
            if j >= i:
                break
            if rules[j].match.matches(module, module_class):
                i = j
                break
        if i < len(rules):
            rule = rules[i]
            return Resolved(rule.quant, True, rule.origin)
        if self._desc.requires_entry:
            return Resolved(None, False, "default")
        applies = module_class is None or module_class in self._desc.default_classes
        return Resolved(self._desc.default if applies else None, True, "default")
