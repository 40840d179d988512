"""Expert parallelism: where the routed experts of a MoE layer go, and the engines' rules for it.

With ``--ep M`` the routed experts of every MoE layer are split over M ranks whole (no tensor
split of an expert, as vLLM-Ascend runs EP); the placement is vLLM's linear expert map: each rank
holds ``E // M`` experts and the first ``E % M`` ranks one more. The engines' rules are data
(``parallel.yaml``, with sources); a violated rule is a finding naming the rule, the numbers and
the engine that enforces it (``plan.expert_parallel``), a rejection where no engine runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from quantspec.errors import Code, Reason, reason
from quantspec.plan.bundled import load_bundled
from quantspec.vocab import NpuGen


class EpRuleId(StrEnum):
    """Expert-parallel rules (one checker each)."""

    EP_AT_MOST_EXPERTS = "ep_at_most_experts"
    EP_EVEN_SPLIT = "ep_even_split"
    EP_DIVIDES_TP = "ep_divides_tp"
    MC2_EXPERT_SPLIT = "mc2_expert_split"
    MC2_HIDDEN = "mc2_hidden"
    MC2_TOP_K = "mc2_top_k"
    MC2_TP_DOMAIN = "mc2_tp_domain"


@dataclass(frozen=True)
class EpContext:
    """What the rules look at: one MoE layer's routed experts and the model's dims, the split, the target."""

    experts: int
    ep: int
    tp: int
    target: NpuGen
    hidden: int | None = None
    top_k: int | None = None


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
    return load_bundled("parallel.yaml", EpRules)


def placement(experts: int, ep: int) -> tuple[int, ...]:
    """Routed experts per rank under vLLM's linear expert map (the remainder on the first ranks)."""
    base, extra = divmod(experts, ep)
    return tuple(base + (1 if r < extra else 0) for r in range(ep))


def _at_most(c: EpContext) -> str | None:
    return None if c.ep <= c.experts else f"{c.experts} routed experts cannot fill ep={c.ep} ranks"


def _even(c: EpContext) -> str | None:
    if c.experts % c.ep == 0 or c.ep > c.experts:
        return None
    counts = placement(c.experts, c.ep)
    hi, lo = max(counts), min(counts)
    return (f"{c.experts} experts over ep={c.ep} do not split evenly: {counts.count(hi)} ranks hold {hi} and "
            f"{counts.count(lo)} hold {lo}")


def _divides_tp(c: EpContext) -> str | None:
    return None if c.tp % c.ep == 0 else f"ep={c.ep} does not divide tp={c.tp}"


def _mc2_split(c: EpContext) -> str | None:
    return None if c.experts % c.ep == 0 or c.ep > c.experts else \
        f"MC2 dispatch: {c.experts} experts % ep={c.ep} != 0"


def _mc2_hidden(c: EpContext) -> str | None:
    h = c.hidden
    if h is None or c.target is NpuGen.A5:
        return None
    if c.target is NpuGen.A2 and (h > 7168 or h % 32):
        return f"MC2 dispatch on a2: hidden size {h} is not a multiple of 32 up to 7168"
    if c.target is NpuGen.A3 and h != 7168:
        return f"MC2 dispatch on a3: hidden size {h} is not 7168"
    return None


def _mc2_top_k(c: EpContext) -> str | None:
    limit = {NpuGen.A2: 16, NpuGen.A3: 8}.get(c.target)
    if c.top_k is None or limit is None or c.top_k <= limit:
        return None
    return f"MC2 dispatch on {c.target.value}: top-k {c.top_k} exceeds {limit}"


def _mc2_tp(c: EpContext) -> str | None:
    limit = {NpuGen.A2: 1, NpuGen.A3: 2}.get(c.target)
    if limit is None or c.tp <= limit:
        return None
    return f"MC2 dispatch on {c.target.value}: a TP domain of {c.tp} exceeds {limit}"


CHECKERS: dict[EpRuleId, Callable[[EpContext], str | None]] = {
    EpRuleId.EP_AT_MOST_EXPERTS: _at_most,
    EpRuleId.EP_EVEN_SPLIT: _even,
    EpRuleId.EP_DIVIDES_TP: _divides_tp,
    EpRuleId.MC2_EXPERT_SPLIT: _mc2_split,
    EpRuleId.MC2_HIDDEN: _mc2_hidden,
    EpRuleId.MC2_TOP_K: _mc2_top_k,
    EpRuleId.MC2_TP_DOMAIN: _mc2_tp,
}


def check_ep(layer: str, ctx: EpContext) -> tuple[list[Reason], list[Reason]]:
    """(rejections, warnings) of the rules for one MoE layer."""
    rejections: list[Reason] = []
    warnings: list[Reason] = []
    for rule in load_rules().rules:
        problem = CHECKERS[rule.id](ctx)
        if problem is None:
            continue
        r = reason(Code.PLAN_EXPERT_PARALLEL, f"{problem} [rule {rule.id.value}, {rule.engine}]", where=layer,
                   hint=rule.text)
        (rejections if rule.severity == "reject" else warnings).append(r)
    return rejections, warnings
