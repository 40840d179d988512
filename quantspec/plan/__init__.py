"""The planner: a metadata-only dry run that resolves every layer to an NPU scheme or rejects it.

``plan(model_dir, target="a3")`` reads tensor headers (never data), the quantization
description and config.json, and returns a :class:`Plan`. Pure layer: never imports torch.
The runtime imports only what this package exports (a test checks).
"""

from quantspec.plan.api import plan, policy_for
from quantspec.plan.contract import pack_factor, quant_env
from quantspec.plan.discover import naming
from quantspec.plan.model import (
    Fallback,
    LayerStatus,
    Plan,
    PlanComponent,
    PlannedLayer,
    PlanPolicy,
    PlanSummary,
    SchemeCount,
)

__all__ = [
    "Fallback",
    "LayerStatus",
    "Plan",
    "PlanComponent",
    "PlanPolicy",
    "PlanSummary",
    "PlannedLayer",
    "SchemeCount",
    "naming",
    "pack_factor",
    "plan",
    "policy_for",
    "quant_env",
]
