"""Known producer defects (``defects.yaml``): data with one checker per id.

A defect is identified from the checkpoint's own metadata (description header, ``config.json``,
the planned layers' tensors). A ``reject`` defect adds a ``plan.producer_defect`` reason to each
affected layer; a ``warn`` defect becomes a plan finding. Each message names the producer, what is
wrong and the fix, so that a user never loads a checkpoint a producer is known to write wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from quantspec.description import CheckpointDescription
from quantspec.errors import Code, Reason, reason
from quantspec.plan.model import PlannedLayer
from quantspec.vocab import FormatFamily, LayerKind


class DefectId(StrEnum):
    """Known producer defects (one checker each)."""

    MSMODELSLIM_DROPS_ROUTER_BUFFERS = "msmodelslim_drops_router_buffers"
    MSMODELSLIM_V1_FLOAT_MODEL_QUANT_TYPE = "msmodelslim_v1_float_model_quant_type"
    AUTO_ROUND_MODEL_FREE_ASYM_ZERO_POINT = "auto_round_model_free_asym_zero_point"


class Defect(BaseModel):
    """One known producer defect, as ``defects.yaml`` states it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: DefectId
    producer: str
    versions: str
    identify: str
    problem: str
    fix: str
    severity: Literal["reject", "warn"]
    source: str


class DefectTable(BaseModel):
    """The ``defects.yaml`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defects: tuple[Defect, ...]


@lru_cache(maxsize=1)
def load_defects() -> DefectTable:
    """The bundled defect table (validated; a test fails on a checker without data or the reverse)."""
    from quantspec.matrix.load import _load_yaml

    text = resources.files("quantspec.plan").joinpath("defects.yaml").read_text(encoding="utf-8")
    return DefectTable.model_validate(_load_yaml(text))


@dataclass(frozen=True)
class Context:
    """What a checker may look at: the description, ``config.json`` and the planned layers."""

    desc: CheckpointDescription
    config: dict[str, Any]
    layers: list[PlannedLayer]


#: A checker returns the names of the affected layers (empty: the defect is absent); ``None``
#: names the checkpoint as a whole.
Checker = Callable[[Context], list[str | None]]


#: Model types whose routers are noaux_tc (with an ``e_score_correction_bias`` buffer) even when
#: config.json does not say ``topk_method`` (transformers' DeepSeek-V3 config has no such key).
NOAUX_TC_MODEL_TYPES = frozenset({"deepseek_v3", "deepseek_v32", "kimi_k2", "glm4_moe"})


def _drops_router_buffers(ctx: Context) -> list[str | None]:
    if ctx.desc.format is not FormatFamily.MODELSLIM:
        return []
    noaux = ctx.config.get("topk_method", "noaux_tc" if ctx.config.get("model_type") in NOAUX_TC_MODEL_TYPES
                           else None)
    if noaux != "noaux_tc":
        return []
    return [layer.name for layer in ctx.layers if layer.kind is LayerKind.ROUTER
            and not any(t.endswith(".e_score_correction_bias") for t in layer.tensors)]


def _v1_float_model_quant_type(ctx: Context) -> list[str | None]:
    extras = ctx.desc.extras
    if ctx.desc.format is not FormatFamily.MODELSLIM or extras.get("model_quant_type") != "FLOAT":
        return []
    labels = {rule.quant.label for rule in ctx.desc.rules if rule.quant is not None}
    return [None] if labels == {"W4A8_DYNAMIC"} else []


def _version(text: object) -> tuple[int, ...] | None:
    """``"0.15.1"`` -> ``(0, 15, 1)``; None when it is not a plain dotted release."""
    parts = str(text).split(".")[:3]
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def _auto_round_model_free_asym(ctx: Context) -> list[str | None]:
    x = ctx.desc.extras
    if ctx.desc.format is not FormatFamily.AUTO_ROUND or x.get("model_free") is not True:
        return []
    if str(x.get("packing_format", "")).lower() != "auto_round":
        return []
    version = _version(x.get("autoround_version"))
    if version is None or not (0, 13, 0) <= version < (0, 16, 0):
        return []
    # Every asymmetric layer carries the shifted zero points (symmetric ones store none).
    return [layer.name for layer in ctx.layers if layer.quant is not None and not layer.quant.weight.symmetric]


CHECKERS: dict[DefectId, Checker] = {
    DefectId.MSMODELSLIM_DROPS_ROUTER_BUFFERS: _drops_router_buffers,
    DefectId.MSMODELSLIM_V1_FLOAT_MODEL_QUANT_TYPE: _v1_float_model_quant_type,
    DefectId.AUTO_ROUND_MODEL_FREE_ASYM_ZERO_POINT: _auto_round_model_free_asym,
}


def check_defects(ctx: Context) -> tuple[list[PlannedLayer], list[Reason]]:
    """The layers with each ``reject`` defect's reason added (and rejected), and the ``warn`` findings."""
    from quantspec.plan.model import LayerStatus

    by_layer: dict[str, list[Reason]] = {}
    findings: list[Reason] = []
    for d in load_defects().defects:
        for name in CHECKERS[d.id](ctx):
            r = reason(Code.PLAN_PRODUCER_DEFECT, f"{d.producer} defect {d.id.value}: {d.problem}",
                       where=name, hint=d.fix)
            if d.severity == "warn" or name is None:
                findings.append(r)
            else:
                by_layer.setdefault(name, []).append(r)
    if not by_layer:
        return ctx.layers, findings
    out = []
    for layer in ctx.layers:
        extra = by_layer.get(layer.name)
        out.append(layer if not extra else layer.model_copy(update={
            "status": LayerStatus.REJECTED, "reasons": (*layer.reasons, *extra), "quant": None,
            "executable": None, "kernels": (), "transforms": (), "bytes_after_load": None}))
    return out, findings
