"""Checking a module's checkpoint tensors against a scheme's tensor contract (headers only)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from quantspec.checkpoint.inventory import GGML_DEQUANTIZABLE, TensorInfo
from quantspec.description import QuantSpec
from quantspec.errors import Code, Reason, reason
from quantspec.plan.discover import Params
from quantspec.schemes import DTYPE_BITS, FLOAT_DTYPES, DtypeRule, SchemeSpec, TensorRole

_GGML_OK = GGML_DEQUANTIZABLE | FLOAT_DTYPES


@dataclass
class ContractResult:
    """Outcome of one module's contract check."""

    n: int | None = None
    k: int | None = None
    reasons: list[Reason] = field(default_factory=list)
    used: list[TensorInfo] = field(default_factory=list)


def quant_env(quant: QuantSpec | None, n: int, k: int) -> dict[str, int]:
    """Symbol values for shape expressions: N, K, b, pf, G, ng."""
    bits = quant.weight.bits if quant else 16
    group = quant.weight.group_size if quant and quant.weight.group_size and quant.weight.group_size > 0 else 0
    g = group or k
    env = {"N": n, "K": k, "b": bits, "G": g, "ng": math.ceil(k / g) if g else 1}
    if 32 % bits == 0:
        env["pf"] = 32 // bits
    return env


def pack_factor(quant: QuantSpec | None) -> int:
    """Codes per int32 word (0 when the bit width does not divide 32)."""
    bits = quant.weight.bits if quant else 16
    return 32 // bits if 32 % bits == 0 else 0


def allowed_dtypes(role: TensorRole, model_dtype: str | None) -> tuple[frozenset[str], str]:
    """Allowed dtypes of a role and a short explanation for messages."""
    match role.dtype:
        case DtypeRule.EXACT:
            return frozenset(role.dtypes), ""
        case DtypeRule.MODEL:
            return (frozenset({model_dtype}) if model_dtype else FLOAT_DTYPES), " (the model dtype)"
        case DtypeRule.FLOAT:
            return FLOAT_DTYPES, ""
        case DtypeRule.DEQ_SCALE:
            if model_dtype == "bfloat16":
                return frozenset({"float32"}), " for a bfloat16 model"
            if model_dtype == "float16":
                return frozenset({"int64"}), " for a float16 model"
            return frozenset({"float32", "int64"}), ""
        case DtypeRule.GGML:
            return _GGML_OK, " (a GGML type the NPU path dequantizes)"
    return frozenset(), ""  # pragma: no cover - exhaustive


def check_module(
    spec: SchemeSpec,
    module: str,
    params: Params,
    *,
    quant: QuantSpec | None,
    model_dtype: str | None,
    moe_group: str | None = None,
    leading: tuple[str, ...] = (),
) -> ContractResult:
    """Check ``params`` (the module's tensors by relative name) against ``spec``.

    ``leading`` names extra leading dims (``("E",)`` for fused 3-D experts); their sizes are
    taken from the weight. Every failing role is reported, not only the first.
    """
    out = ContractResult()
    env: dict[str, int] = {}
    lead: tuple[int, ...] = ()
    if spec.weight_role:
        w = params.get(spec.weight_role)
        if w is None:
            out.reasons.append(reason(
                Code.TENSOR_MISSING, f"{module}.{spec.weight_role} is missing ({spec.layout.value} layout)",
                file=None, where=module, hint="the checkpoint does not hold the tensors this scheme reads",
            ))
            return out
        if len(w.shape) != 2 + len(leading):
            out.reasons.append(reason(
                Code.TENSOR_SHAPE,
                f"{module}.{spec.weight_role} has {len(w.shape)} dims {list(w.shape)}, expected {2 + len(leading)}",
                where=module,
            ))
            return out
        lead = w.shape[: len(leading)]
        n, k = spec.dims(w.shape, pack_factor(quant))
        if n is None or k is None:
            out.reasons.append(reason(
                Code.TENSOR_SHAPE,
                f"{module}.{spec.weight_role} shape {list(w.shape)} does not give integer N, K "
                f"(N = {spec.n_from}, K = {spec.k_from})", where=module,
            ))
            return out
        out.n, out.k = n, k
        env = quant_env(quant, n, k)
    grouped = bool(quant and quant.weight.group_size and quant.weight.group_size > 0)
    for role in spec.roles:
        if (role.moe_group and role.moe_group != moe_group) or (role.grouped_only and not grouped):
            continue
        t = params.get(role.name)
        if t is None:
            if role.required:
                out.reasons.append(reason(Code.TENSOR_MISSING, f"{module}.{role.name} is missing", where=module,
                                          hint=f"{spec.executable} needs it ({spec.layout.value} layout)"))
            continue
        out.used.append(t)
        allowed, why = allowed_dtypes(role, model_dtype)
        if t.dtype not in allowed:
            out.reasons.append(reason(
                Code.TENSOR_DTYPE,
                f"{module}.{role.name} is {t.dtype}, expected {' or '.join(sorted(allowed))}{why}",
                where=t.name,
            ))
        fns = role.shape_fns
        if fns is None:
            continue
        dims: list[int | None] = [fn(env) for fn in fns]
        expected = (*lead, *dims)
        if None in dims:
            out.reasons.append(reason(
                Code.TENSOR_SHAPE,
                f"{module}.{role.name} shape {list(t.shape)}: expected [{', '.join(map(str, role.shape or ()))}] "
                f"is not integral for N={env.get('N')}, K={env.get('K')}", where=t.name,
            ))
        elif t.shape != expected:
            exprs = ", ".join([*leading, *(str(d) for d in role.shape or ())])
            out.reasons.append(reason(
                Code.TENSOR_SHAPE,
                f"{module}.{role.name} is {list(t.shape)}, expected [{exprs}] = {list(expected)}", where=t.name,
            ))
    return out


def loaded_bytes(spec: SchemeSpec, env: dict[str, int], model_dtype: str | None) -> int | None:
    """Bytes of the spec's loaded tensors for one module (None when a shape is undefined)."""
    total_bits = 0
    model_bits = DTYPE_BITS.get(model_dtype or "bfloat16", 16)
    for lt in spec.loaded:
        count = 1
        for fn in lt.shape_fns:
            v = fn(env)
            if v is None:
                return None
            count *= v
        total_bits += count * (model_bits if lt.bits == "model" else lt.bits)
    return total_bits // 8


def stored_bytes(tensors: Iterable[TensorInfo]) -> int:
    """Bytes of tensors as stored (dtype x shape; GGML block types are counted as 1 byte/elem)."""
    total = 0
    for t in tensors:
        count = 1
        for d in t.shape:
            count *= d
        total += count * DTYPE_BITS.get(t.dtype, 8) // 8
    return total


def signature(params: Params) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """Comparable (name, dtype, shape) signature of a module's tensors."""
    return tuple(sorted((p, t.dtype, t.shape) for p, t in params.items()))
