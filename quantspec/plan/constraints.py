"""Kernel-constraint checkers: one per :class:`~quantspec.matrix.ConstraintId`.

The matrix says which constraints apply to an entry (with parameters); each checker here
turns one into rejections, warnings and weight transforms for one layer. Dimensions are the
per-rank ones (``n_local``/``k_local``) once tensor parallelism has split the layer.
Fallbacks (ND layout, dequantize at load, K permutation) are applied only when the plan's
policy lists them, and every use is a warning on the layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from quantspec.description import QuantSpec
from quantspec.errors import Code, Reason, reason
from quantspec.matrix import Constraint, ConstraintId, MatrixEntry
from quantspec.matrix.model import (
    A8W4Group,
    AntiquantGroup,
    DimMultiple,
    Int4NzGroup,
    MaxTp,
    ModelDtype,
    MxBlock,
    NzAlignment,
    WeightBits,
)
from quantspec.plan.model import Fallback, PlanPolicy
from quantspec.transforms import Transform
from quantspec.vocab import LayerKind


@dataclass
class CheckContext:
    """What a checker may look at for one layer."""

    layer: str
    kind: LayerKind
    entry: MatrixEntry
    quant: QuantSpec
    #: Logical dims (per expert for MoE) and the per-rank dims after the TP split.
    n: int
    k: int
    n_local: int
    k_local: int
    tp: int
    model_dtype: str | None
    #: Stored dtype of the primary weight.
    weight_dtype: str
    policy: PlanPolicy
    #: (member name, N, K) of fused shards or w13 projections.
    members: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass
class CheckOutcome:
    """Rejections, warnings and transforms produced by checkers."""

    reasons: list[Reason] = field(default_factory=list)
    warnings: list[Reason] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)


Checker = Callable[[CheckContext, Constraint, CheckOutcome], None]


def _reject(ctx: CheckContext, c: Constraint, out: CheckOutcome, detail: str,
            code: Code = Code.PLAN_CONSTRAINT) -> None:
    out.reasons.append(reason(code, f"{detail} [rule {c.id.value} of {ctx.entry.key}]", where=ctx.layer,
                              hint=c.text))


def _fallback(ctx: CheckContext, c: Constraint, out: CheckOutcome, fb: Fallback, *, detail: str,
              transform: Transform) -> None:
    if fb not in ctx.policy.fallbacks:
        _reject(ctx, c, out, f"{detail}; the policy does not allow the {fb.value} fallback")
        return
    out.warnings.append(reason(Code.PLAN_FALLBACK, f"{detail} [rule {c.id.value}]", where=ctx.layer, hint=c.text))
    out.transforms.append(transform)


def _group(q: QuantSpec) -> int | None:
    g = q.weight.group_size
    return g if g and g > 0 else None


def check_nz_alignment(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """NZ needs the [K, N] weight's dims aligned (int8: K%16, N%32; packed int4: K%16, N%64)."""
    assert isinstance(c, NzAlignment)
    dtype = c.params.dtype or ctx.weight_dtype
    n_mult = {"int8": 32, "int4": 64, "uint8": 64, "int32": 64}.get(dtype, 16)
    k, n = ctx.k_local, ctx.n_local
    if k % 16 == 0 and n % n_mult == 0:
        out.transforms.append(Transform.CAST_WEIGHT_TO_FRACTAL_NZ)
        return
    _fallback(ctx, c, out, Fallback.ND_LAYOUT,
              detail=f"weight [K, N] = [{k}, {n}] is not FRACTAL_NZ-aligned ({dtype} needs K % 16 == 0 and "
              f"N % {n_mult} == 0): kept in ND", transform=Transform.KEEP_WEIGHT_ND_NOT_NZ_ALIGNED)


def check_antiquant_group(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """npu_weight_quant_batchmatmul: group a multiple of ``multiple`` and ``multiple <= G < K``."""
    assert isinstance(c, AntiquantGroup)
    m = c.params.multiple
    g = _group(ctx.quant)
    if g is None or g % m or not m <= g < ctx.k_local:
        shown = "per-channel" if g is None else str(g)
        _reject(ctx, c, out, f"antiquant group size {shown} must be a multiple of {m} with {m} <= group < "
                              f"K = {ctx.k_local}")


def check_int4_nz_group(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """int4 weights in FRACTAL_NZ accept only the listed antiquant group sizes; others stay ND."""
    if ctx.quant.weight.bits != 4:
        return
    assert isinstance(c, Int4NzGroup)
    values = list(c.params.values)
    g = _group(ctx.quant)
    if g is None or g in values:
        out.transforms.append(Transform.CAST_INT4_WEIGHT_TO_FRACTAL_NZ)
        return
    _fallback(ctx, c, out, Fallback.ND_LAYOUT,
              detail=f"int4 group size {g} is not one of {values} that FRACTAL_NZ accepts: weight kept in ND",
              transform=Transform.KEEP_INT4_WEIGHT_ND_GROUP_SIZE)


def check_a8w4_group(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """Grouped A8W4 (aclnnGroupedMatmulV5): per-channel, or per-group at exactly ``group`` with K <= ``k_max``."""
    assert isinstance(c, A8W4Group)
    group, k_max = c.params.group, c.params.k_max
    g = _group(ctx.quant)
    if g is None:
        return
    if g != group:
        _reject(ctx, c, out, f"per-group A8W4 needs group size {group}, got {g}")
    if ctx.k_local > k_max:
        _reject(ctx, c, out, f"per-group A8W4 needs K <= {k_max}, got K = {ctx.k_local}")


def check_mx_block(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """MX scales: block ``block`` along K, and K a multiple of ``k_multiple`` (scales in pairs)."""
    assert isinstance(c, MxBlock)
    block, k_mult = c.params.block, c.params.k_multiple
    g = _group(ctx.quant)
    if g is not None and g != block:
        _reject(ctx, c, out, f"MX block size {g} is not {block}")
    if ctx.k_local % k_mult:
        _reject(ctx, c, out, f"K = {ctx.k_local} is not a multiple of {k_mult}")


def check_dim_multiple(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """Listed dims (``k``/``n``) must be multiples of ``multiple``."""
    assert isinstance(c, DimMultiple)
    mult = c.params.multiple
    for d in c.params.dims:
        value = ctx.k_local if d == "k" else ctx.n_local
        if value % mult:
            _reject(ctx, c, out, f"{str(d).upper()} = {value} is not a multiple of {mult}")


def check_weight_bits(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """The weight bit width must be one of ``values``."""
    assert isinstance(c, WeightBits)
    values = list(c.params.values)
    if ctx.quant.weight.bits not in values:
        _reject(ctx, c, out, f"{ctx.quant.weight.bits}-bit weights are not supported (allowed: {values})")


def check_model_dtype(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """The model dtype (config.json ``torch_dtype``) must be one of ``values``."""
    assert isinstance(c, ModelDtype)
    values = list(c.params.values)
    if ctx.model_dtype is None:
        _reject(ctx, c, out, f"the model dtype is unknown (config.json has no torch_dtype); needs one of {values}")
    elif ctx.model_dtype not in values:
        _reject(ctx, c, out, f"model dtype {ctx.model_dtype} is not one of {values}")


def check_max_tp(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """Tensor-parallel size must not exceed ``max``."""
    assert isinstance(c, MaxTp)
    limit = c.params.max
    if ctx.tp > limit:
        _reject(ctx, c, out, f"tensor-parallel size {ctx.tp} exceeds {limit}", Code.PLAN_TP)


def check_act_order(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """Act-order checkpoints run by permuting K at load (an explicit, recorded fallback)."""
    if ctx.quant.weight.act_order:
        _fallback(ctx, c, out, Fallback.PERMUTE_K,
                  detail="act-order (desc_act) weights: K is permuted by g_idx at load and activations at each call",
                  transform=Transform.PERMUTE_K_BY_G_IDX_ACT_ORDER)


def check_dequant_at_load(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """GGUF weights are dequantized at load: recorded as a warning, never silently."""
    dt = "fp16" if ctx.model_dtype == "float16" else "bf16"
    _fallback(ctx, c, out, Fallback.DEQUANTIZE_AT_LOAD, detail=f"GGUF is dequantized to {dt} at load: no memory saving",
              transform=Transform.DEQUANTIZE_TO_FP16 if dt == "fp16" else Transform.DEQUANTIZE_TO_BF16)


def check_uniform_shards(ctx: CheckContext, c: Constraint, out: CheckOutcome) -> None:
    """Shards of one fused weight (fused linears, w13 gate+up) must share K (and N for w13)."""
    if len(ctx.members) < 2:
        return
    ks = {k for _, _, k in ctx.members}
    if len(ks) > 1:
        desc = ", ".join(f"{m} K={k}" for m, _, k in ctx.members)
        _reject(ctx, c, out, f"shards disagree on the input size: {desc}")
    if ctx.kind is LayerKind.MOE_W13 and len({n for _, n, _ in ctx.members}) > 1:
        desc = ", ".join(f"{m} N={n}" for m, n, _ in ctx.members)
        _reject(ctx, c, out, f"gate and up projections disagree on the output size: {desc}")


#: One checker per constraint id (a test binds this to ConstraintId).
CHECKERS: dict[ConstraintId, Checker] = {
    ConstraintId.NZ_ALIGNMENT: check_nz_alignment,
    ConstraintId.ANTIQUANT_GROUP: check_antiquant_group,
    ConstraintId.INT4_NZ_GROUP: check_int4_nz_group,
    ConstraintId.A8W4_GROUP: check_a8w4_group,
    ConstraintId.MX_BLOCK: check_mx_block,
    ConstraintId.DIM_MULTIPLE: check_dim_multiple,
    ConstraintId.WEIGHT_BITS: check_weight_bits,
    ConstraintId.MODEL_DTYPE: check_model_dtype,
    ConstraintId.MAX_TP: check_max_tp,
    ConstraintId.ACT_ORDER: check_act_order,
    ConstraintId.DEQUANT_AT_LOAD: check_dequant_at_load,
    ConstraintId.UNIFORM_SHARDS: check_uniform_shards,
}


def run_constraints(ctx: CheckContext) -> CheckOutcome:
    """Run every constraint of the context's matrix entry; all failures are collected."""
    out = CheckOutcome()
    for c in ctx.entry.constraints:
        CHECKERS[c.id](ctx, c, out)
    return out
