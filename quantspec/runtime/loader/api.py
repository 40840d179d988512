"""``load_quantized``: plan, refuse or stream, build, return a :class:`QuantizedModel`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from quantspec.errors import Code, InvalidInput, PlanRejected, Reason, reason
from quantspec.plan.inventory import read_inventory
from quantspec.plan.model import Plan, PlanComponent
from quantspec.runtime.loader.build import Builder, Built, accepted_layers
from quantspec.runtime.loader.model import QuantizedModel
from quantspec.runtime.loader.progress import progress_bar
from quantspec.runtime.loader.reader import TensorReader, refuse_pickle
from quantspec.runtime.loader.target import backend_ops, resolve_dtype, resolve_target
from quantspec.runtime.loader.tp import TensorParallel
from quantspec.vocab import DefectId, FormatFamily, LayerKind, NpuGen, SchemeId


def rejection(plan: Plan) -> PlanRejected:
    """Every reason of every rejected layer, as one exception."""
    reasons: list[Reason] = list(plan.rejections)
    for layer in plan.rejected_layers():
        reasons += [r if r.where else r.model_copy(update={"where": layer.name}) for r in layer.reasons]
    if not reasons:  # a rejected layer always has reasons; keep the error meaningful regardless
        reasons.append(reason(Code.PLAN_NO_SCHEME, "the plan rejects the checkpoint"))
    return PlanRejected(reasons)


def check_executable(plan: Plan) -> None:
    """Every accepted quantized layer must have a runtime class; refused before any weight is read."""
    from quantspec.runtime.moe import registered_moe
    from quantspec.runtime.schemes import registered_linear

    linear, moe = registered_linear(), registered_moe()
    fmt = {c.name: c.format for c in plan.components}
    missing: list[Reason] = []
    for layer in plan.layers:
        q = layer.quant
        if q is None or q.scheme is None or q.scheme is SchemeId.GGUF:
            continue
        family = fmt.get(layer.component or "", plan.format) if layer.component else plan.format
        if layer.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):
            ok = (family, q.scheme) in moe
        elif layer.kind in (LayerKind.LINEAR, LayerKind.LM_HEAD, LayerKind.ROUTER):
            ok = (family, q.scheme) in linear
        else:
            continue
        if not ok:
            missing.append(reason(Code.PLAN_NO_SCHEME, f"{layer.kind.value} {family.value} {q.scheme.value} has no "
                                  f"executable in this quantspec runtime", where=layer.name,
                                  hint="see docs/loading.md for the schemes load_quantized runs"))
    if missing:
        raise PlanRejected(missing)


def _components(plan: Plan, root: Path) -> list[tuple[PlanComponent, str | None]]:
    """(component, name prefix) to load: the single model, or each quantized pipeline component."""
    if not (root / "model_index.json").is_file():
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

    plan = make_plan(root, target=gen, tp=tp_size, allow_untested=allow_untested, quantization=quantization,
                     producer_fixes=producer_fixes)
    if not plan.accepted:
        raise rejection(plan)
    check_executable(plan)
    require_for = getattr(ops, "require_for", None)  # the npu backend: dtypes of this torch_npu build
    if require_for is not None:
        require_for(layer.scheme for layer in plan.layers if layer.scheme is not None)
    tp = TensorParallel(rank=tp_rank, size=tp_size)
    comps = _components(plan, root)
    for comp, _ in comps:
        if comp.path != str(root):
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
                with TensorReader(Path(comp.path), {n: t.file for n, t in inv.tensors.items()}) as reader:
                    built = Builder(plan=plan, layers=accepted_layers(plan, name), family=comp.format, reader=reader,
                                    prefix=f"{name}." if name else "", model_dtype=comp_dtype, ops=ops, tp=tp,
                                    tick=tick).run()
            out.modules.update(built.modules)
            out.tensors.update(built.tensors)
            out.parallel.update(built.parallel)
            out.aliases.update({f"{name}.{k}" if name else k: v for k, v in built.aliases.items()})
    return QuantizedModel(plan=plan, modules=out.modules, tensors=out.tensors, parallel=out.parallel, tp=tp,
                          model_dtype=model_dtype, ops=ops, aliases=out.aliases)
