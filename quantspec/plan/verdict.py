"""The planner's working state: the setting it plans against and the verdict it builds per layer.

Kept apart from :mod:`quantspec.plan.planner` so that the per-kind planners (``moe``, ``router``)
use these types without importing the planner (which imports them): no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quantspec.description import CheckpointDescription, QuantSpec
from quantspec.errors import Reason
from quantspec.matrix import MatrixEntry, SupportMatrix
from quantspec.plan.model import PlanPolicy
from quantspec.schemes import SchemeSpec
from quantspec.transforms import Transform
from quantspec.vocab import Domain, LayerKind, NpuGen, SchemeId, Status


@dataclass
class Setting:
    """Everything the planner decides against, besides the tensors."""

    desc: CheckpointDescription
    matrix: SupportMatrix
    target: NpuGen
    tp: int = 1
    #: Expert-parallel ranks the routed experts are placed on (1: no expert parallelism).
    ep: int = 1
    policy: PlanPolicy = field(default_factory=PlanPolicy)
    domain: Domain = Domain.LLM
    model_type: str | None = None
    model_dtype: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    component: str | None = None


def agreement_key(quant: QuantSpec | None) -> object:
    """What shards/experts must share. GGUF dequantizes each tensor, so only the scheme counts."""
    if quant is None:
        return "FLOAT"
    if quant.scheme is SchemeId.GGUF:
        return SchemeId.GGUF
    return quant


def label_of(quant: QuantSpec | None) -> str:
    """Producer label of a quantization, ``FLOAT`` for none."""
    return quant.label if quant is not None else "FLOAT"


@dataclass
class Verdict:
    """The accumulating decision for one layer."""

    name: str
    kind: LayerKind
    quant: QuantSpec | None = None
    reasons: list[Reason] = field(default_factory=list)
    warnings: list[Reason] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)
    spec: SchemeSpec | None = None
    entry: MatrixEntry | None = None
    status: Status | None = None
    n: int | None = None
    k: int | None = None
    #: (member, N, K) of shards / w13 projections.
    members: list[tuple[str, int, int]] = field(default_factory=list)
    tensors: list[str] = field(default_factory=list)
    #: Bytes after load per unit and the unit count (experts).
    unit_bytes: int | None = 0
    units: int = 1
    weight_dtype: str = ""
    label: str | None = None
    #: One tensor-parallel rank's N and K (set by ``finish``).
    n_local: int | None = None
    k_local: int | None = None
    #: Routed experts on each expert-parallel rank (MoE layers with ``--ep``).
    experts_per_rank: tuple[int, ...] = ()
