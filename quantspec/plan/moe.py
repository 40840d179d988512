"""Planning one MoE weight group (w13 = gate + up, or w2 = down) across EVERY expert.

Engines look at expert 0 only; here every expert's modules are resolved and every expert's
tensors are compared with the first expert's (which is checked against the contract), so a
single odd expert is named. w13 and w2 are planned independently: they may use different
schemes (e.g. W4A8_DYNAMIC w13 with W8A8_DYNAMIC w2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from itertools import chain
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, Any

from quantspec.description import QuantSpec
from quantspec.errors import Code, reason
from quantspec.plan.config import config_int
from quantspec.plan.contract import check_module
from quantspec.plan.discover import MoEUnit, Params
from quantspec.plan.model import PlannedLayer
from quantspec.plan.parallel import EpContext, check_ep, placement
from quantspec.plan.refine import clip_problems, refine
from quantspec.plan.verdict import Verdict, agreement_key, label_of
from quantspec.vocab import LayerKind, MatrixLayer

if TYPE_CHECKING:
    from quantspec.plan.planner import Planner

#: config.json keys that give the number of routed experts.
EXPERT_COUNT_KEYS = ("n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts", "n_experts")
#: A fused 3-D projection -> the per-expert module names a description uses for it.
_FUSED_TO_PER_EXPERT = {"gate_up_proj": ("gate_proj", "up_proj")}
_SHOW = 8


def expert_count(config: Mapping[str, Any]) -> int | None:
    """Routed experts per MoE layer according to config.json (text_config too), if stated."""
    return config_int(config, *EXPERT_COUNT_KEYS)


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:_SHOW]))
    return shown + (f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else "")


def plan_moe(p: Planner, u: MoEUnit) -> PlannedLayer:
    """Plan one weight group of one MoE layer."""
    v = Verdict(u.name, u.kind)
    group = "w13" if u.kind is LayerKind.MOE_W13 else "w2"
    if u.fused3d:
        first = next(iter(u.fused3d.values()))[1]
        weight = next((first[w] for w in p.nm.weight_params if w in first), None)
        n_exp = weight.shape[0] if weight is not None and weight.shape else 0
        ids = list(range(n_exp))
        per_expert = [(proj, name) for proj in u.fused3d for name in _FUSED_TO_PER_EXPERT.get(proj, (proj,))]
        if group == "w13":
            covered = {name for _, name in per_expert}
            lacking = [proj for proj in p.nm.per_expert[0][0] if proj not in covered]
            if lacking:
                v.reasons.append(reason(
                    Code.TENSOR_MISSING, f"{u.name} has no stacked {' / '.join(lacking)} tensor for w13 "
                    f"(found {', '.join(u.fused3d)})", where=u.name,
                    hint="w13 needs both the gate and the up projection of every expert"))
    else:
        ids = sorted(u.experts)
        per_expert = [(proj, proj) for proj in u.projs]
        expected = expert_count(p.s.config) or (ids[-1] + 1 if ids else 0)
        absent = [e for e in range(expected) if e not in u.experts]
        if absent:
            v.reasons.append(reason(
                Code.TENSOR_MISSING, f"experts {_ids(absent)} of {u.name} ({group}) are missing "
                f"({expected} expected)", where=u.name, hint="every routed expert must be in the checkpoint"))
        incomplete = {proj: [e for e in ids if proj not in u.experts[e]] for proj in u.projs}
        for proj, es in incomplete.items():
            if es:
                v.reasons.append(reason(Code.TENSOR_MISSING, f"{proj} of experts {_ids(es)} of {u.name} is missing",
                                        where=u.name))
    # ---------------------------------------------------------------- resolution of every expert
    names = [n for _, n in per_expert]
    # quant per (expert, proj); grouped by object identity first (descriptions share one QuantSpec
    # object per label), so equality/hashing of specs runs on a handful of objects, not per expert.
    res: dict[str, list[QuantSpec | None]] = {}
    unmatched: list[str] = []
    for name in names:
        res[name], missing = p.resolver.quants([f"{u.name}.{e}.{name}" for e in ids])
        unmatched += missing
    if unmatched:
        v.reasons.append(reason(
            Code.PLAN_NO_SCHEME, f"{len(unmatched)} expert module(s) of {u.name} have no entry in "
            f"{p.s.desc.source}: {', '.join(unmatched[:3])}", where=u.name,
            hint="every expert module needs its '<module>.weight' entry"))
        return p.build(v, shards=u.projs, experts=tuple(ids))
    # Distinct agreement keys get small integer ids; counting and comparing ints is cheap, and the
    # per-expert steps below are C-level maps over the column (256 experts x 61 layers).
    canon: list[object] = []
    quant_of: list[QuantSpec | None] = []
    majority: dict[str, int] = {}
    key_of: dict[str, list[int]] = {}
    for name in names:
        col = res[name]
        col_ids = list(map(id, col))
        by_id: dict[int, int] = {}
        for qid, quant in dict(zip(col_ids, col, strict=True)).items():  # distinct objects, first-seen order
            key = agreement_key(quant)
            idx = next((j for j, c in enumerate(canon) if c == key), len(canon))
            if idx == len(canon):
                canon.append(key)
                quant_of.append(quant)
            by_id[qid] = idx
        keys = list(map(by_id.__getitem__, col_ids))
        key_of[name] = keys
        majority[name] = Counter(keys).most_common(1)[0][0] if keys else 0
    if len(set(majority.values())) > 1:
        desc = ", ".join(f"{n} is {label_of(quant_of[majority[n]])}" for n in names)
        v.reasons.append(reason(
            Code.PLAN_SHARD_MISMATCH, f"{group} projections of {u.name} disagree: {desc}", where=u.name,
            hint="gate and up projections are one fused weight (w13) and must share one quantization"))
    odd: list[str] = []
    odd_ids: list[int] = []
    uniform = all(keys.count(majority[n]) == len(keys) for n, keys in key_of.items())  # the usual case
    odd_idx = [] if uniform else sorted({i for n in names for i, k in enumerate(key_of[n]) if k != majority[n]})
    for i in odd_idx:
        e = ids[i]
        bad = [f"{n} {label_of(res[n][i])}" for n in names if key_of[n][i] != majority[n]]
        if bad:
            odd_ids.append(e)
            odd.append(f"expert {e} ({', '.join(bad)})")
    if odd:
        maj = label_of(quant_of[majority[names[0]]])
        shown = "; ".join(odd[:_SHOW]) + (f"; and {len(odd) - _SHOW} more" if len(odd) > _SHOW else "")
        v.reasons.append(reason(
            Code.PLAN_EXPERT_MISMATCH,
            f"experts of {u.name} ({group}) disagree: {len(ids) - len(odd_ids)} of {len(ids)} experts are {maj}; "
            f"{shown}", where=u.name,
            hint="every expert of a MoE layer must share one quantization (engines check only expert 0)"))
    if v.reasons and any(r.code in (Code.PLAN_SHARD_MISMATCH, Code.PLAN_EXPERT_MISMATCH) for r in v.reasons):
        v.label = "mixed" if len(set(majority.values())) > 1 else label_of(
            quant_of[majority[names[0]]])
        return p.build(v, shards=u.projs, experts=tuple(ids))
    v.quant = quant_of[majority[names[0]]]
    experts0 = u.experts.get(ids[0], {}) if ids and not u.fused3d else {}
    expert0: tuple[str, Params] | None = next((experts0[pr] for pr in u.projs if pr in experts0), None)
    if expert0 is not None:
        v.quant, notes = refine(v.quant, p.s.desc.format, expert0[0], expert0[1])
        v.warnings += notes
        v.reasons += clip_problems(v.quant, p.s.desc.format, expert0[0], expert0[1])
    p.scheme_for(v, MatrixLayer.MOE)
    if v.spec is not None:
        _contract(p, v, u, ids, group)
    if p.s.ep > 1 and ids:
        rejections, warnings = check_ep(u.name, EpContext(
            experts=len(ids), ep=p.s.ep, tp=p.s.tp, target=p.s.target, hidden=config_int(p.s.config, "hidden_size"),
            top_k=config_int(p.s.config, "num_experts_per_tok")))
        v.reasons += rejections
        if group == "w13":  # one finding per MoE layer
            v.warnings += warnings
        v.experts_per_rank = placement(len(ids), p.s.ep) if not rejections else ()
    p.finish(v, row_parallel=group == "w2")
    return p.build(v, shards=u.projs, experts=tuple(ids))


def _contract(p: Planner, v: Verdict, u: MoEUnit, ids: list[int], group: str) -> None:
    """Contract of the first expert; every other expert's tensors must match it exactly."""
    assert v.spec is not None
    if u.fused3d:
        for proj, (module, params) in u.fused3d.items():
            c = check_module(v.spec, module, params, quant=v.quant, model_dtype=p.s.model_dtype, moe_group=group,
                             leading=("E",))
            v.reasons += c.reasons
            v.tensors += [t.name for t in c.used]
            if c.n is not None and c.k is not None:
                v.members.append((proj, c.n, c.k))
        v.units = len(ids)
    else:
        if not ids:
            return
        e0 = ids[0]
        for proj in u.projs:
            if proj not in u.experts[e0]:
                continue
            module0, params0 = u.experts[e0][proj]
            c = check_module(v.spec, module0, params0, quant=v.quant, model_dtype=p.s.model_dtype, moe_group=group)
            v.reasons += c.reasons
            if c.n is not None and c.k is not None:
                v.members.append((proj, c.n, c.k))
            rels = [t.name[len(module0) + 1:] for t in c.used]
            sig0 = _signature(params0)
            odd: list[int] = []
            first_diff = ""
            tensors = v.tensors
            present = [got[1] for got in map(methodcaller("get", proj), map(u.experts.__getitem__, ids)) if got]
            if set(rels) <= sig0.keys() and _uniform(present, sig0):
                # The usual case, checked with C-level maps: every expert has exactly the first
                # expert's tensors, so its names are those of the same params (an inventory is keyed
                # by tensor name, so ``params[r].name`` is ``f"{module}.{r}"``, as below).
                if rels:
                    rows = map(itemgetter(*rels), present)
                    tensors += map(_NAME, chain.from_iterable(rows) if len(rels) > 1 else rows)
                continue
            for e in ids:
                got = u.experts[e].get(proj)
                if got is None:
                    continue
                module, params = got
                tensors += map(f"{module}.".__add__, rels)
                if e == e0:
                    continue
                sig = _signature(params)
                if sig != sig0:
                    odd.append(e)
                    first_diff = first_diff or _diff(sig0, sig, e0, e)
            if odd:
                v.reasons.append(reason(
                    Code.TENSOR_SHAPE, f"{proj} tensors of experts {_ids(odd)} of {u.name} differ from expert {e0}: "
                    f"{first_diff}", where=u.name,
                    hint="every expert must have identical tensor names, dtypes and shapes"))
        v.units = len(ids)
    if len(v.members) == len(u.projs) and v.members:
        v.n = sum(n for _, n, _ in v.members)
        v.k = v.members[0][2]
        w = None
        for _, params in ([u.experts[ids[0]][m] for m in u.projs if m in u.experts[ids[0]]]
                          if not u.fused3d else list(u.fused3d.values())):
            w = params.get(v.spec.weight_role)
            break
        v.weight_dtype = w.dtype if w else ""
        if u.fused3d:
            # finish() computes bytes per member; fused 3-D members hold all experts already.
            v.units = len(ids)


#: (dtype, shape) of a TensorInfo, as a C-level call (the signature is taken for every expert).
_DTYPE_SHAPE = itemgetter(1, 2)


def _signature(params: Params) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{param: (dtype, shape)}`` of one module, what every expert must share with the first."""
    return dict(zip(params, map(_DTYPE_SHAPE, params.values()), strict=True))


#: A TensorInfo's full name, dtype and shape.
_NAME, _DTYPE, _SHAPE = itemgetter(0), itemgetter(1), itemgetter(2)


def _uniform(modules: list[Params], sig0: dict[str, tuple[str, tuple[int, ...]]]) -> bool:
    """Whether every module has exactly the params, dtypes and shapes of ``sig0``.

    Equivalent to ``_signature(m) == sig0`` for each module, but a few C-level passes per param
    over all experts instead of a signature per expert; ``list.count`` compares on identity
    first, and the inventory shares one shape tuple among the tensors that have that shape.
    """
    n = len(modules)
    if set(map(len, modules)) - {len(sig0)}:
        return False
    try:
        for param, (dtype, shape) in sig0.items():
            col = list(map(itemgetter(param), modules))
            if list(map(_DTYPE, col)).count(dtype) != n or list(map(_SHAPE, col)).count(shape) != n:
                return False
    except KeyError:  # a module lacks one of the params
        return False
    return True


def _diff(sig0: dict[str, tuple[str, tuple[int, ...]]], sig: dict[str, tuple[str, tuple[int, ...]]],
          e0: int, e: int) -> str:
    for name in sorted(set(sig0) | set(sig)):
        a, b = sig0.get(name), sig.get(name)
        if a == b:
            continue
        if a is None or b is None:
            return f"expert {e} {'lacks' if b is None else 'has an extra'} {name}"
        return f"expert {e} {name} is {b[0]} {list(b[1])}, expert {e0} has {a[0]} {list(a[1])}"
    return "tensor sets differ"
