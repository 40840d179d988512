"""The plan: every layer of a checkpoint accepted (with how it runs) or rejected (with why).

A :class:`Plan` is what ``quantspec plan`` prints and what the loader executes: for each
accepted layer it names the quantization (:class:`~quantspec.description.QuantSpec`), the
executable scheme class registered by the runtime under the matrix key, the NPU kernels, the
weight transforms done at load, the bytes after load and the checkpoint tensors it reads.
``schemas/plan.schema.json`` is generated from these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantspec.description import KVCacheQuant, QuantSpec
from quantspec.errors import Reason
from quantspec.transforms import Transform
from quantspec.vocab import (
    DefectId,
    Domain,
    Executable,
    FormatFamily,
    LayerKind,
    NpuGen,
    ParallelMode,
    SchemeId,
    Status,
)

PLAN_VERSION: Literal[1] = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LayerStatus(StrEnum):
    """Outcome of planning one layer."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Fallback(StrEnum):
    """Explicit fallbacks the planner may apply; each use is recorded as a layer warning."""

    #: A weight that is not FRACTAL_NZ-aligned (or an int4 group the NZ kernel refuses) stays ND.
    ND_LAYOUT = "nd_layout"
    #: GGUF weights are dequantized to the model dtype at load (no memory saving).
    DEQUANTIZE_AT_LOAD = "dequantize_at_load"
    #: Act-order (desc_act) weights: K is permuted at load and activations at each call.
    PERMUTE_K = "permute_k"


class PlanPolicy(_Frozen):
    """What the planner accepts. Nothing outside this policy is ever applied silently."""

    #: Accept ``untested`` and ``in_progress`` matrix cells (``--allow-untested``).
    allow_untested: bool = False
    #: Matrix statuses accepted on the target.
    accepted_statuses: tuple[Status, ...] = (Status.SUPPORTED,)
    #: Fallbacks the planner is allowed to apply (each use shows up in the layer's warnings).
    fallbacks: tuple[Fallback, ...] = (Fallback.ND_LAYOUT, Fallback.DEQUANTIZE_AT_LOAD, Fallback.PERMUTE_K)
    #: Known producer defects to repair instead of reject (``--producer-fix``); each repaired layer
    #: says so in its warnings and transforms.
    producer_fixes: tuple[DefectId, ...] = ()


class PlannedLayer(_Frozen):
    """One layer's decision."""

    name: str
    kind: LayerKind
    status: LayerStatus
    #: The NPU scheme; None for float layers and for layers without a scheme.
    scheme: SchemeId | None = None
    #: The producer's label (``W8A8_DYNAMIC``, ``gptq int4 g128 sym``, ``FLOAT``).
    label: str | None = None
    #: Component of a Diffusers pipeline (``transformer``); None for a single model.
    component: str | None = None
    #: Module name inside its checkpoint (``name`` without the component prefix).
    module: str
    #: Matrix entry key (``modelslim/w8a8_dynamic/linear``) and its status on the target.
    matrix_entry: str | None = None
    matrix_status: Status | None = None
    #: The quantization the loader applies (accepted quantized layers).
    quant: QuantSpec | None = None
    #: Executable scheme class name the runtime registers under the matrix key.
    executable: Executable | None = None
    kernels: tuple[str, ...] = ()
    transforms: tuple[Transform, ...] = ()
    bytes_after_load: int | None = None
    #: KV-cache / attention quantization of an ``attention`` layer.
    kv_cache: KVCacheQuant | None = None
    #: Logical output / input features (per expert for MoE), and the expert count.
    n: int | None = None
    k: int | None = None
    #: How tensor parallelism splits the layer, and one rank's N and K (equal to ``n``/``k`` at
    #: tp 1 and for replicated layers).
    parallel: ParallelMode | None = None
    n_local: int | None = None
    k_local: int | None = None
    #: Fused-module shards (module names) or, for MoE, the projections of this weight group.
    shards: tuple[str, ...] = ()
    #: Expert ids of a MoE weight group.
    experts: tuple[int, ...] = ()
    #: Routed experts on each expert-parallel rank (``--ep``; vLLM's linear expert map), else empty.
    experts_per_rank: tuple[int, ...] = ()
    #: Names of the checkpoint tensors the layer reads (dtypes and shapes are in the headers).
    tensors: tuple[str, ...] = ()
    #: The weight files (relative to the component's folder) that hold those tensors.
    files: tuple[str, ...] = ()
    warnings: tuple[Reason, ...] = ()
    #: Every reason for a rejection (empty when accepted).
    reasons: tuple[Reason, ...] = ()


class SchemeCount(_Frozen):
    """Accepted and rejected layer counts of one scheme label."""

    accepted: int = 0
    rejected: int = 0


class PlanSummary(_Frozen):
    """Totals of a plan."""

    layers: int
    accepted: int
    rejected: int
    warnings: int
    #: label (``W8A8_DYNAMIC``/``FLOAT``/...) -> counts.
    by_scheme: dict[str, SchemeCount]
    #: Sum of ``bytes_after_load`` over accepted layers.
    bytes_after_load: int


class PlanComponent(_Frozen):
    """One component of a Diffusers pipeline (or the single model)."""

    name: str
    path: str
    format: FormatFamily
    source: str
    model_type: str | None = None
    model_dtype: str | None = None


class RankMemory(_Frozen):
    """One rank's memory, in bytes."""

    rank: int
    #: Weights after load on this rank (TP split, replicated layers whole, experts as placed).
    weights: int
    #: KV cache for ``MemoryPlan.max_tokens`` tokens.
    kv_cache: int
    #: Stated allowance for activations, workspace and communication buffers.
    reserve: int
    total: int
    #: Device memory, when known.
    capacity: int | None = None
    headroom: int | None = None


class MemoryPlan(_Frozen):
    """Per-rank memory of the plan against the device (``quantspec/plan/memory.py``)."""

    ranks_count: int
    #: The SKU whose memory is the capacity (``devices.yaml``), if one applies.
    device: str | None = None
    capacity: int | None = None
    max_tokens: int
    #: KV-cache bytes one rank stores per token (None when config.json does not say).
    kv_bytes_per_token: int | None = None
    reserve: int
    ranks: tuple[RankMemory, ...]
    #: Whether every rank fits; None when the device memory is unknown.
    fits: bool | None = None
    note: str


class Plan(_Frozen):
    """The planner's verdict on a checkpoint for one target."""

    plan_version: Literal[1] = PLAN_VERSION
    quantspec_version: str
    matrix_version: str
    target: NpuGen
    tp: int = Field(ge=1)
    #: Expert-parallel size the routed experts are placed over (``--ep``).
    ep: int = Field(1, ge=1)
    format: FormatFamily
    #: Description source file (relative to the model folder).
    source: str
    domain: Domain
    model_type: str | None = None
    model_dtype: str | None = None
    policy: PlanPolicy
    components: tuple[PlanComponent, ...] = ()
    layers: tuple[PlannedLayer, ...]
    #: Findings about the inputs (description notes, stray files); they do not reject layers.
    findings: tuple[Reason, ...] = ()
    #: Problems of the checkpoint as a whole that no engine gets past (a description under a name
    #: the engines do not read); any of them rejects the plan, whatever its layers say.
    rejections: tuple[Reason, ...] = ()
    summary: PlanSummary
    #: Per-rank memory (None for Diffusers pipelines).
    memory: MemoryPlan | None = None

    @property
    def accepted(self) -> bool:
        """True when every layer is accepted and nothing rejects the checkpoint as a whole."""
        return self.summary.rejected == 0 and not self.rejections

    def rejected_layers(self) -> tuple[PlannedLayer, ...]:
        """The rejected layers."""
        return tuple(layer for layer in self.layers if layer.status is LayerStatus.REJECTED)

    def layer(self, name: str) -> PlannedLayer:
        """The layer called ``name`` (KeyError when absent)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def summarize(layers: tuple[PlannedLayer, ...]) -> PlanSummary:
    """Totals of a list of planned layers."""
    by: dict[str, list[int]] = {}
    acc = warn = total_bytes = 0
    for layer in layers:
        counts = by.setdefault(layer.label or "FLOAT", [0, 0])
        if layer.status is LayerStatus.ACCEPTED:
            acc += 1
            counts[0] += 1
            total_bytes += layer.bytes_after_load or 0
        else:
            counts[1] += 1
        warn += len(layer.warnings)
    return PlanSummary(
        layers=len(layers), accepted=acc, rejected=len(layers) - acc, warnings=warn,
        by_scheme={k: SchemeCount(accepted=a, rejected=r) for k, (a, r) in sorted(by.items())},
        bytes_after_load=total_bytes,
    )
