"""Expert parallelism: where the routed experts of a MoE layer go, and the engines' rules for it.

With ``--ep M`` the routed experts of every MoE layer are split over M ranks whole (no tensor
split of an expert, as vLLM-Ascend runs EP); the placement is vLLM's linear expert map: each rank
holds ``E // M`` experts and the first ``E % M`` ranks one more. The engines' rules are data
(``parallel.yaml``, with sources); a violated rule is a finding naming the rule, the numbers and
the engine that enforces it (``plan.expert_parallel``), a rejection where no engine runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict

from quantspec.errors import Code, Reason, reason


class EpRuleId(StrEnum):
    """Expert-parallel rules (one checker each)."""

    EP_AT_MOST_EXPERTS = "ep_at_most_experts"
    EP_EVEN_SPLIT = "ep_even_split"
    EP_DIVIDES_TP = "ep_divides_tp"


class EpRule(BaseModel):
    """One rule as ``parallel.yaml`` states it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EpRuleId
    engine: str
    text: str
    severity: Literal["reject", "warn"]
    source: str


class EpRules(BaseModel):
    """The ``parallel.yaml`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[EpRule, ...]


@lru_cache(maxsize=1)
def load_rules() -> EpRules:
    """The bundled expert-parallel rules (validated)."""
    from quantspec.matrix.load import _load_yaml

    text = resources.files("quantspec.plan").joinpath("parallel.yaml").read_text(encoding="utf-8")
    return EpRules.model_validate(_load_yaml(text))


def placement(experts: int, ep: int) -> tuple[int, ...]:
    """Routed experts per rank under vLLM's linear expert map (the remainder on the first ranks)."""
    base, extra = divmod(experts, ep)
    return tuple(base + (1 if r < extra else 0) for r in range(ep))


def _at_most(experts: int, ep: int, tp: int) -> str | None:
    return None if ep <= experts else f"{experts} routed experts cannot fill ep={ep} ranks"


def _even(experts: int, ep: int, tp: int) -> str | None:
    if experts % ep == 0 or ep > experts:
        return None
    counts = placement(experts, ep)
    hi, lo = max(counts), min(counts)
    return (f"{experts} experts over ep={ep} do not split evenly: {counts.count(hi)} ranks hold {hi} and "
            f"{counts.count(lo)} hold {lo}")


def _divides_tp(experts: int, ep: int, tp: int) -> str | None:
    return None if tp % ep == 0 else f"ep={ep} does not divide tp={tp}"


CHECKERS: dict[EpRuleId, Callable[[int, int, int], str | None]] = {
    EpRuleId.EP_AT_MOST_EXPERTS: _at_most,
    EpRuleId.EP_EVEN_SPLIT: _even,
    EpRuleId.EP_DIVIDES_TP: _divides_tp,
}


def check_ep(layer: str, experts: int, ep: int, tp: int) -> tuple[list[Reason], list[Reason]]:
    """(rejections, warnings) of the rules for one MoE layer of ``experts`` routed experts."""
    rejections: list[Reason] = []
    warnings: list[Reason] = []
    for rule in load_rules().rules:
        problem = CHECKERS[rule.id](experts, ep, tp)
        if problem is None:
            continue
        r = reason(Code.PLAN_EXPERT_PARALLEL, f"{problem} [rule {rule.id.value}, {rule.engine}]", where=layer,
                   hint=rule.text)
        (rejections if rule.severity == "reject" else warnings).append(r)
    return rejections, warnings
