"""Known producer defects (``defects.yaml``): data with one checker per id.

A defect is identified from the checkpoint's own metadata (description header, ``config.json``,
the planned layers' tensors). A ``reject`` defect adds a ``plan.producer_defect`` reason to each
affected layer; a ``warn`` defect becomes a plan finding. A defect with a ``repair`` can instead be
repaired when the caller asks for it by id (``--producer-fix ID``, recorded in the plan's
policy): the affected layers are accepted with the repair in their quantization, transforms and
warnings, so that the loader applies it because the plan says so. Each message names the producer, what is
wrong and the fix, so that a user never loads a checkpoint a producer is known to write wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from quantspec.description import CheckpointDescription
from quantspec.errors import Code, Reason, reason
from quantspec.plan.bundled import load_bundled
from quantspec.plan.model import PlannedLayer
from quantspec.transforms import Transform
from quantspec.vocab import DefectId, FormatFamily, LayerKind, ZeroPoint


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
    #: What ``--producer-fix <id>`` does instead of rejecting (None: no repair exists).
    repair: str | None = None


class DefectTable(BaseModel):
    """The ``defects.yaml`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defects: tuple[Defect, ...]


@lru_cache(maxsize=1)
def load_defects() -> DefectTable:
    """The bundled defect table (validated; a test fails on a checker without data or the reverse)."""
    return load_bundled("defects.yaml", DefectTable)


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


def _zero_plus_one(layer: PlannedLayer, d: Defect) -> PlannedLayer:
    """Decode the stored zero points as stored + 1 (the GPTQ v1 convention the producer actually wrote)."""
    q = layer.quant
    if q is None or q.weight.zero_point is not ZeroPoint.TRUE:
        return layer
    w = q.weight.model_copy(update={"zero_point": ZeroPoint.MINUS_ONE})
    return layer.model_copy(update={
        "quant": q.model_copy(update={"weight": w}),
        "transforms": (*layer.transforms, Transform.ZEROS_PLUS_1_PRODUCER_FIX),
    })


#: The repair of each repairable defect (``repair`` in ``defects.yaml``; a test binds the two).
REPAIRS: dict[DefectId, Callable[[PlannedLayer, Defect], PlannedLayer]] = {
    DefectId.AUTO_ROUND_MODEL_FREE_ASYM_ZERO_POINT: _zero_plus_one,
}


def check_defects(ctx: Context, fixes: tuple[DefectId, ...] = ()) -> tuple[list[PlannedLayer], list[Reason]]:
    """The layers with each ``reject`` defect's reason added (and rejected), or repaired when its id is in
    ``fixes``; and the ``warn`` findings."""
    from quantspec.plan.model import LayerStatus

    by_layer: dict[str, list[Reason]] = {}
    repairs: dict[str, list[Defect]] = {}
    findings: list[Reason] = []
    for d in load_defects().defects:
        for name in CHECKERS[d.id](ctx):
            r = reason(Code.PLAN_PRODUCER_DEFECT, f"{d.producer} defect {d.id.value}: {d.problem}",
                       where=name, hint=d.fix)
            if d.severity == "warn" or name is None:
                findings.append(r)
            elif d.id in fixes and d.id in REPAIRS:
                repairs.setdefault(name, []).append(d)
            else:
                by_layer.setdefault(name, []).append(r)
    if not by_layer and not repairs:
        return ctx.layers, findings
    out = []
    for planned in ctx.layers:
        layer = planned
        for d in repairs.get(layer.name, ()):
            layer = REPAIRS[d.id](layer, d)
            layer = layer.model_copy(update={"warnings": (*layer.warnings, reason(
                Code.PLAN_PRODUCER_DEFECT, f"{d.producer} defect {d.id.value} repaired by --producer-fix: {d.repair}",
                where=layer.name, hint=d.fix))})
        extra = by_layer.get(layer.name)
        out.append(layer if not extra else layer.model_copy(update={
            "status": LayerStatus.REJECTED, "reasons": (*layer.reasons, *extra), "quant": None,
            "executable": None, "kernels": (), "transforms": (), "bytes_after_load": None}))
    return out, findings
