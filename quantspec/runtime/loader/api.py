"""``load_quantized``: plan, refuse or stream, build, return a :class:`QuantizedModel`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from quantspec.checkpoint.inventory import read_inventory
from quantspec.errors import Code, InvalidInput, PlanRejected, Reason, reason
from quantspec.plan import Plan, PlanComponent
from quantspec.runtime.loader.build import Builder, Built, accepted_layers
from quantspec.runtime.loader.model import QuantizedModel
from quantspec.runtime.loader.progress import progress_bar
from quantspec.runtime.loader.reader import TensorReader, refuse_pickle
from quantspec.runtime.loader.target import backend_ops, resolve_dtype, resolve_target
from quantspec.runtime.loader.tp import TensorParallel
from quantspec.runtime.ops.base import Ops
from quantspec.vocab import DefectId, Executable, FormatFamily, NpuGen


def rejection(plan: Plan) -> PlanRejected:
    """Every reason of every rejected layer, as one exception."""
    reasons: list[Reason] = list(plan.rejections)
    for layer in plan.rejected_layers():
        reasons += [r if r.where else r.model_copy(update={"where": layer.name}) for r in layer.reasons]
    if not reasons:  # a rejected layer always has reasons; keep the error meaningful regardless
        reasons.append(reason(Code.PLAN_NO_SCHEME, "the plan rejects the checkpoint"))
    return PlanRejected(reasons)


def check_executable(plan: Plan) -> None:
    """Every accepted layer's executable must be one this runtime has; refused before any weight is read."""
    from quantspec.runtime.executables import registered_executables

    have = registered_executables()
    missing: list[Reason] = []
    for layer in plan.layers:
        ex = layer.executable
        if ex is None or ex is Executable.FLOAT_TENSORS or ex in have:
            continue
        missing.append(reason(Code.PLAN_NO_SCHEME, f"the plan names executable {ex.value}, which this quantspec "
                              "runtime does not have", where=layer.name,
                              hint="plan and load with the same quantspec version (see docs/loading.md)"))
    if missing:
        raise PlanRejected(missing)


def _components(plan: Plan) -> list[tuple[PlanComponent, str | None]]:
    """(component, name prefix) to load: the single model, or each quantized pipeline component."""
    if not any(layer.component is not None for layer in plan.layers):
        return [(c, None) for c in plan.components[:1]]
    return [(c, c.name) for c in plan.components if c.format is not FormatFamily.UNQUANTIZED]


def load_quantized(
    model_dir: str | Path,
    device: str = "npu",
    *,
    target: NpuGen | str | None = None,
    dtype: torch.dtype | str | None = None,
    tp_rank: int = 0,
    tp_size: int = 1,
    allow_untested: bool = False,
    quantization: str | None = None,
    producer_fixes: Iterable[DefectId | str] = (),
    ep_rank: int = 0,
    ep_size: int = 1,
    progress: bool = True,
) -> QuantizedModel:
    """Plan ``model_dir``, then stream its weights into executable modules.

    * ``device``: ``"npu"`` (torch_npu; raises BackendUnavailable without it) or ``"cpu"``
      (the op emulation).
    * ``target``: NPU generation the plan gates schemes for; default: detected from the NPU's
      SoC version on ``"npu"``, ``a2`` on ``"cpu"`` (see docs/loading.md).
    * ``dtype``: model (activation) dtype; default config.json's ``torch_dtype``/``dtype``, else bf16.
    * ``tp_rank``/``tp_size``: load only this rank's tensor-parallel shard.
    * ``allow_untested``: accept ``untested``/``in_progress`` matrix cells.
    * ``quantization``: ``"mxfp8"`` quantizes an unquantized checkpoint online (A5 only).
    * ``producer_fixes``: known producer defects to repair as the plan records it (``--producer-fix``).
    * ``ep_rank``/``ep_size``: expert parallelism (with ``tp_size`` 1): this rank's routed experts only;
      the MoE modules all-reduce over the default ``torch.distributed`` group.
    * ``progress``: draw a progress bar when stderr is a terminal.

    Raises :class:`~quantspec.errors.PlanRejected` with every reason before reading any weight
    when the plan rejects a layer, and :class:`~quantspec.errors.InvalidCheckpoint` naming the
    tensor or file for damaged input; nothing is returned or kept on failure.
    """
    root = Path(model_dir)
    if not 0 <= tp_rank < tp_size:
        raise InvalidInput(reason(Code.USAGE, f"tp_rank {tp_rank} is not in [0, tp_size={tp_size})"))
    ops = backend_ops(device)
    gen = resolve_target(target, ops)
    if root.is_dir():
        refuse_pickle(root)
    from quantspec.plan import plan as make_plan

    plan = make_plan(root, target=gen, tp=tp_size, ep=ep_size, allow_untested=allow_untested,
                     quantization=quantization, producer_fixes=producer_fixes)
    return load_plan(plan, device=device, tp_rank=tp_rank, ep_rank=ep_rank, dtype=dtype, progress=progress,
                     _ops=ops)


def load_plan(
    plan: Plan,
    device: str = "npu",
    *,
    tp_rank: int = 0,
    ep_rank: int = 0,
    dtype: torch.dtype | str | None = None,
    progress: bool = True,
    _ops: Ops | None = None,
) -> QuantizedModel:
    """Build exactly what ``plan`` says: for every accepted layer the executable it names, split as its
    parallel mode says for ``tp_rank`` of ``plan.tp``, from the files its tensors are in.

    The loader decides nothing the plan did not: no scheme lookup, no fallback. A plan made
    elsewhere (``quantspec plan --format json``, ``Plan.model_validate_json``) loads the same.
    Raises :class:`~quantspec.errors.PlanRejected` for a plan that rejects layers or names an
    executable this runtime lacks, before any weight is read.
    """
    if not 0 <= tp_rank < plan.tp:
        raise InvalidInput(reason(Code.USAGE, f"tp_rank {tp_rank} is not in [0, plan.tp={plan.tp})",
                                  hint="plan with --tp N for N ranks"))
    if not 0 <= ep_rank < plan.ep:
        raise InvalidInput(reason(Code.USAGE, f"ep_rank {ep_rank} is not in [0, plan.ep={plan.ep})"))
    if plan.ep > 1 and plan.tp > 1:
        raise InvalidInput(reason(Code.USAGE, f"the plan combines tp={plan.tp} with ep={plan.ep}; expert-parallel "
                                  "loading runs with tp 1 in this quantspec", hint="plan with --tp 1 --ep M"))
    ops = _ops or backend_ops(device)
    if not plan.accepted:
        raise rejection(plan)
    check_executable(plan)
    require_for = getattr(ops, "require_for", None)  # the npu backend: dtypes of this torch_npu build
    if require_for is not None:
        require_for(layer.scheme for layer in plan.layers if layer.scheme is not None)
    tp_size = plan.tp
    tp = TensorParallel(rank=tp_rank, size=tp_size)
    comps = _components(plan)
    for comp, _ in comps:
        refuse_pickle(Path(comp.path))
    loaded = {name for _, name in comps}
    total = sum(len(layer.tensors) for layer in plan.layers if layer.component in loaded)
    out = Built()
    model_dtype = resolve_dtype(dtype, plan.model_dtype)
    with progress_bar(total, enabled=progress) as tick:
        for comp, name in comps:
            comp_dtype = resolve_dtype(dtype, comp.model_dtype or plan.model_dtype)
            inv = read_inventory(Path(comp.path))
            if inv.kind != "safetensors":
                from quantspec.runtime.loader.gguf import load_gguf_component

                built = load_gguf_component(plan, comp, inv, name=name, model_dtype=comp_dtype, ops=ops, tp=tp,
                                            tick=tick)
            else:
                with TensorReader(Path(comp.path), inv.tensors) as reader:
                    built = Builder(plan=plan, layers=accepted_layers(plan, name), family=comp.format, reader=reader,
                                    prefix=f"{name}." if name else "", model_dtype=comp_dtype, ops=ops, tp=tp,
                                    tick=tick, ep_rank=ep_rank).run()
            out.modules.update(built.modules)
            out.tensors.update(built.tensors)
            out.parallel.update(built.parallel)
            out.aliases.update({f"{name}.{k}" if name else k: v for k, v in built.aliases.items()})
    return QuantizedModel(plan=plan, modules=out.modules, tensors=out.tensors, parallel=out.parallel, tp=tp,
                          model_dtype=model_dtype, ops=ops, aliases=out.aliases)
