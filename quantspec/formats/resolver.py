"""Fast resolution of many modules against one description (same answers as ``resolve``).

``CheckpointDescription.resolve`` scans the rules in order, which is what the semantics are,
but a ModelSlim or GGUF description has one EXACT rule per module: resolving every module of a
DeepSeek-size model that way is quadratic (minutes). :class:`Resolver` indexes the EXACT rules
by pattern and scans only the other rules that come before the indexed one, so the first
matching rule, and therefore the answer, is the same.
"""

from __future__ import annotations

from quantspec.description import CheckpointDescription, Resolution
from quantspec.vocab import MatchKind


class Resolver:
    """Resolve modules against ``desc`` in (amortised) constant time for exact rules."""

    def __init__(self, desc: CheckpointDescription) -> None:
        self.desc = desc
        self._exact: dict[str, int] = {}
        self._scan: list[int] = []
        for i, rule in enumerate(desc.rules):
            if rule.match.kind is MatchKind.EXACT and not rule.match.negate:
                for pattern in rule.match.patterns:
                    self._exact.setdefault(pattern, i)
            else:
                self._scan.append(i)

    def resolve(self, module: str, module_class: str | None = "Linear") -> Resolution:
        """Same result as ``desc.resolve(module, module_class)``."""
        rules = self.desc.rules
        first_exact = self._exact.get(module)
        for i in self._scan:
            if first_exact is not None and i > first_exact:
                break
            if rules[i].match.matches(module, module_class):
                return Resolution(quant=rules[i].quant, matched=True, origin=rules[i].origin)
        if first_exact is not None:
            rule = rules[first_exact]
            return Resolution(quant=rule.quant, matched=True, origin=rule.origin)
        # no rule matched: the description's own default handling
        return self.desc.model_copy(update={"rules": ()}).resolve(module, module_class)
