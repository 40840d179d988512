"""MoE routers: planned float, as both engines build them, whatever the description says.

vLLM-Ascend and SGLang construct every MoE router (``mlp.gate``, ``block_sparse_moe.gate``,
``shared_expert_gate``...) with ``quant_config=None``, and AutoGPTQ/AutoAWQ never quantize one
(shared/reference/ERRATA.md, "Model structure"). So:

- a router whose tensors are float is planned float even when a GPTQ/AWQ/auto-round config
  without a skip list, or a description entry, calls it quantized; the plan notes the
  disagreement when the description names it;
- a router whose tensors ARE quantized (msModelSlim quantizes ``mlp.gate`` unless it is excluded)
  is rejected: no engine runs it, and replacing the router module breaks the MoE block.

DeepSeek-style routers carry ``e_score_correction_bias``; it belongs to the router and is
counted in its bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantspec.errors import Code, reason
from quantspec.plan.contract import check_module
from quantspec.schemes import FLOAT_DTYPES, FLOAT_SPECS, ROUTER_SPEC
from quantspec.vocab import FormatFamily, MatrixLayer

if TYPE_CHECKING:
    from quantspec.plan.discover import LinearUnit
    from quantspec.plan.model import PlannedLayer
    from quantspec.plan.planner import Planner
    from quantspec.plan.verdict import Verdict

_EXCLUDE_HINT: dict[FormatFamily, str] = {
    FormatFamily.MODELSLIM: "re-export with the router kept float: add '*mlp.gate' (and '*shared_expert_gate') to "
                            "the recipe's exclude list (v1) or to disable_names (old API)",
    FormatFamily.COMPRESSED_TENSORS: "re-export with the router in the recipe's ignore list "
                                     "(e.g. 're:.*mlp.gate$')",
}


def plan_router(planner: Planner, u: LinearUnit, v: Verdict) -> PlannedLayer:
    """Plan one router: float if its tensors are float, else rejected with the producer's fix."""
    fam = planner.s.desc.format
    shard = u.shards[0]
    params = u.params[shard]
    quant, matched = planner.resolver.quant_of(shard, "Linear")
    weight = params.get("weight")
    unknown = sorted(r for r in params if r not in {role.name for role in ROUTER_SPEC.roles})
    if weight is None or weight.dtype not in FLOAT_DTYPES or unknown:
        v.label = quant.label if matched and quant is not None else "quantized"
        v.tensors = [t.name for t in params.values()]
        stored = "no float weight" if weight is None else f"weight {weight.dtype}"
        v.reasons.append(reason(
            Code.PLAN_QUANTIZED_ROUTER,
            f"router {u.name} is quantized ({stored}" + (f", {', '.join(unknown)}" if unknown else "") + "); "
            "vLLM-Ascend and SGLang build MoE routers unquantized and cannot load it",
            where=u.name,
            hint=_EXCLUDE_HINT.get(fam, "re-export with the MoE router kept float"),
        ))
        return planner.build(v, shards=())
    # A default (a GPTQ/AWQ config without a module list) does not name the router: no note then.
    if matched and quant is not None and not planner.resolver.by_default(shard, "Linear"):
        v.warnings.append(reason(
            Code.PLAN_ROUTER_FLOAT,
            f"{planner.s.desc.source} names router {u.name} {quant.label}, but its weight is stored {weight.dtype}: "
            "planned float, as the engines build routers (quant_config=None)", where=u.name,
        ))
    v.label = "FLOAT"
    # The plain float spec unless the correction bias is there (its bytes count only when it is).
    spec = ROUTER_SPEC if "e_score_correction_bias" in params else FLOAT_SPECS[MatrixLayer.LINEAR]
    v.spec = spec
    c = check_module(spec, shard, params, quant=None, model_dtype=planner.s.model_dtype)
    v.reasons += c.reasons
    v.tensors = [t.name for t in c.used]
    v.n, v.k = c.n, c.k
    if c.n is not None and c.k is not None:
        v.members.append((shard.rpartition(".")[2], c.n, c.k))
    planner.finish(v, row_parallel=False)
    return planner.build(v, shards=())
