"""Tensor-parallel sharding derived from the scheme contracts.

Which way a layer splits is the plan's decision (``PlannedLayer.parallel``, from the planner's
``naming.yaml``: row-parallel suffixes such as ``o_proj``/``down_proj``, replicated MLA down
projections, column otherwise; MoE ``w13`` column, ``w2`` row); the loader follows it. Embeddings
and lm_head (vocab-parallel in the engines), routers, norms and KV-cache tensors load whole.

How a tensor splits is derived from its role's shape expression in :mod:`quantspec.schemes`:
a dim whose expression uses ``N`` splits on column-parallel layers, one that uses ``K`` or
``ng`` on row-parallel ones. The local size is the expression evaluated with the local N/K;
when the full size is not exactly ``tp`` local sizes the split would cut a quantization group
or a packed word, and loading stops naming the layer and the tensor. A dim whose size does not
change with the split (per-channel scales under a K split) is replicated. A few tensors carry
their own rule (:data:`SPECIAL`): ModelSlim's ``quant_bias`` and float biases of row-parallel
layers are kept on rank 0 only (the all-reduce would add them ``tp`` times), W4A8 ``w2``
``scale_bias [N, 16]`` hands ``16 // tp`` of its 16 slices to each rank, and act-order
``g_idx`` values are rebased to the local groups.
"""

from __future__ import annotations

import re
from enum import StrEnum

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from quantspec.description import QuantSpec
from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.plan import PlannedLayer, quant_env
from quantspec.schemes import SchemeSpec, TensorRole
from quantspec.schemes.expr import compile_dim
from quantspec.vocab import ParallelMode


class Parallel(StrEnum):
    """How a layer is split across tensor-parallel ranks."""

    COLUMN = "column"
    ROW = "row"
    REPLICATED = "replicated"


class TensorParallel(BaseModel):
    """This process's rank and the tensor-parallel world size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int = Field(default=0, ge=0)
    size: int = Field(default=1, ge=1)

    @property
    def active(self) -> bool:
        """True when weights are split (size > 1)."""
        return self.size > 1


#: Tensors with their own rule: name -> rule (see the module docstring).
SPECIAL = {
    "quant_bias": "rank0_on_row",
    "bias": "rank0_on_row",
    "scale_bias": "tp_slices_on_row",
    "g_idx": "rebase_groups_on_row",
    "weight_g_idx": "rebase_groups_on_row",
}
#: W4A8 ``w2`` ``scale_bias`` is stored as this many TP slices (vllm_ascend.md 2.7).
SCALE_BIAS_SLICES = 16
_ATOM = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def parallel_of(layer: PlannedLayer) -> Parallel:
    """Column, row or replicated, as the plan decided (vocab-parallel layers load whole here)."""
    match layer.parallel:
        case ParallelMode.COLUMN:
            return Parallel.COLUMN
        case ParallelMode.ROW:
            return Parallel.ROW
    return Parallel.REPLICATED


def _tp_error(layer: str, message: str, hint: str | None = None) -> InvalidCheckpoint:
    return InvalidCheckpoint(
        reason(
            Code.PLAN_TP,
            message,
            where=layer,
            hint=hint
            or "choose a tp size that keeps every rank on group and pack "
            "boundaries (`quantspec plan --tp N` checks it)",
        )
    )


def local_dims(layer: str, n: int, k: int, par: Parallel, tp: TensorParallel) -> tuple[int, int]:
    """The rank's ``(N, K)``; raises when the split is not even."""
    if not tp.active or par is Parallel.REPLICATED:
        return n, k
    full = n if par is Parallel.COLUMN else k
    if full % tp.size:
        what = "N" if par is Parallel.COLUMN else "K"
        raise _tp_error(layer, f"{layer}: {what} = {full} is not divisible by tp={tp.size}")
    return (n // tp.size, k) if par is Parallel.COLUMN else (n, k // tp.size)


def _role(spec: SchemeSpec | None, name: str, moe_group: str | None) -> TensorRole | None:
    if spec is None:
        return None
    roles = [r for r in spec.roles if r.name == name and r.moe_group in (None, moe_group)]
    return next((r for r in roles if r.moe_group == moe_group), roles[0] if roles else None)


def shard_tensors(
    tensors: dict[str, Tensor],
    *,
    layer: str,
    spec: SchemeSpec | None,
    quant: QuantSpec | None,
    n: int,
    k: int,
    par: Parallel,
    tp: TensorParallel,
    moe_group: str | None = None,
    lead: int = 0,
    halves: int = 1,
) -> dict[str, Tensor]:
    """This rank's part of one module's tensors (keyed by suffix), per the module docstring.

    ``lead`` leading dims (the expert dim of fused 3-D tensors) are kept whole; ``halves`` > 1
    splits each of that many equal parts of the N dims separately (fused ``gate_up_proj``).
    """
    if not tp.active or par is Parallel.REPLICATED:
        return tensors
    n_loc, k_loc = local_dims(layer, n, k, par, tp)
    full_env = quant_env(quant, n // halves, k)
    loc_env = quant_env(quant, n_loc // halves, k_loc)
    if par is Parallel.ROW and "G" in full_env and full_env["G"] < k:
        loc_env["G"] = full_env["G"]
        loc_env["ng"] = -(-k_loc // full_env["G"])
        if k_loc % full_env["G"]:
            raise _tp_error(layer, f"{layer}: K/tp = {k_loc} is not a multiple of the group size {full_env['G']}")
    split_syms = {"N"} if par is Parallel.COLUMN else {"K", "ng"}
    out: dict[str, Tensor] = {}
    for suffix, stored in tensors.items():
        t = stored
        rule = SPECIAL.get(suffix) if par is Parallel.ROW else None
        if rule == "rank0_on_row":
            if tp.rank == 0:
                out[suffix] = t
            continue
        if rule == "tp_slices_on_row" and moe_group == "w2" and t.dim() == lead + 2 and t.size(-1) == SCALE_BIAS_SLICES:
            if SCALE_BIAS_SLICES % tp.size:
                raise _tp_error(
                    layer,
                    f"{layer}.{suffix}: {SCALE_BIAS_SLICES} TP slices do not split over tp={tp.size}",
                    hint=f"W4A8 MoE supports tp sizes dividing {SCALE_BIAS_SLICES}",
                )
            per = SCALE_BIAS_SLICES // tp.size
            out[suffix] = t.narrow(-1, tp.rank * per, per).contiguous()
            continue
        role = _role(spec, suffix, moe_group)
        if role is None or role.shape is None:
            out[suffix] = t
            continue
        if t.dim() != lead + len(role.shape):
            raise InvalidCheckpoint(
                reason(
                    Code.TENSOR_SHAPE,
                    f"{layer}.{suffix} has {t.dim()} dims, the contract "
                    f"{list(role.shape)} needs {len(role.shape) - lead}",
                    where=f"{layer}.{suffix}",
                )
            )
        for axis, expr in enumerate(role.shape):
            if isinstance(expr, int) or not (set(_ATOM.findall(expr)) & split_syms):
                continue
            fn = compile_dim(expr)
            full, loc = fn(full_env), fn(loc_env)
            dim = lead + axis
            parts = halves if par is Parallel.COLUMN else 1
            if full is None or t.size(dim) != full * parts:
                raise InvalidCheckpoint(
                    reason(
                        Code.TENSOR_SHAPE,
                        f"{layer}.{suffix} dim {axis} is {t.size(dim)}, the plan says {expr} = "
                        f"{None if full is None else full * parts}",
                        where=f"{layer}.{suffix}",
                    )
                )
            if loc == full:
                continue
            if loc is None or full != loc * tp.size:
                raise _tp_error(
                    layer,
                    f"{layer}.{suffix}: splitting dim {axis} ({expr} = {full}) over tp={tp.size} "
                    f"breaks a quantization group or a packed word",
                )
            chunks = t.chunk(parts, dim) if parts > 1 else (t,)
            t = (
                torch.cat([c.narrow(dim, tp.rank * loc, loc) for c in chunks], dim)
                if parts > 1
                else (t.narrow(dim, tp.rank * loc, loc))
            )
            if rule == "rebase_groups_on_row":
                t = t - tp.rank * loc_env["ng"]
        out[suffix] = t.contiguous()
    return out
