"""``quantspec.plan(model_dir, target=...)``: plan a checkpoint folder or a Diffusers pipeline."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quantspec._io import read_json_once
from quantspec.checkpoint.inventory import Inventory, read_inventory
from quantspec.errors import Code, InvalidInput, Reason, reason
from quantspec.matrix import SupportMatrix, load_matrix
from quantspec.plan.defects import Context as DefectContext
from quantspec.plan.defects import check_defects
from quantspec.plan.model import PLAN_VERSION, Plan, PlanComponent, PlannedLayer, PlanPolicy, summarize
from quantspec.plan.planner import Planner
from quantspec.plan.verdict import Setting
from quantspec.schemes import FLOAT_DTYPES
from quantspec.vocab import DefectId, Domain, FormatFamily, NpuGen, Status

_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


#: Findings about the inputs that reject the whole plan (:attr:`Plan.rejections`).
BLOCKING = frozenset({Code.FORMAT_MISNAMED})


def policy_for(allow_untested: bool, producer_fixes: tuple[DefectId, ...] = ()) -> PlanPolicy:
    """The planning policy: supported cells only, or also untested / in-progress ones; and the
    producer defects to repair instead of reject."""
    statuses = (Status.SUPPORTED, Status.UNTESTED, Status.IN_PROGRESS) if allow_untested else (Status.SUPPORTED,)
    return PlanPolicy(allow_untested=allow_untested, accepted_statuses=statuses, producer_fixes=producer_fixes)


def _producer_fixes(names: Iterable[DefectId | str]) -> tuple[DefectId, ...]:
    from quantspec.plan.defects import REPAIRS

    out: list[DefectId] = []
    for name in names:
        try:
            d = DefectId(name)
        except ValueError:
            d = None
        if d is None or d not in REPAIRS:
            known = ", ".join(sorted(i.value for i in REPAIRS))
            raise InvalidInput(reason(Code.USAGE, f"--producer-fix: {name!r} is not a repairable producer defect",
                                      hint=f"one of: {known} (see docs/planner.md, producer defects)"))
        if d not in out:
            out.append(d)
    return tuple(out)


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.exists() and not path.is_symlink():
        return {}  # a FIFO, folder or dangling link of that name is refused by read_json
    data = read_json_once(path, root=model_dir)  # detection parsed it already
    return data if isinstance(data, dict) else {}


def _model_type(config: dict[str, Any], inv: Inventory) -> str | None:
    for cfg in (config, config.get("text_config") or {}):
        if isinstance(cfg, dict) and isinstance(cfg.get("model_type"), str):
            return str(cfg["model_type"])
    return inv.architecture


def _model_dtype(config: dict[str, Any], inv: Inventory, findings: list[Reason], where: str) -> str | None:
    for cfg in (config, config.get("text_config") or {}):
        if isinstance(cfg, dict):
            for key in ("torch_dtype", "dtype"):
                value = cfg.get(key)
                if isinstance(value, str):
                    value = value.removeprefix("torch.")
                    return _DTYPE_ALIASES.get(value, value)
    # No dtype in config.json (Diffusers components): the dtype most float tensors are stored in.
    counts = Counter(t.dtype for t in inv.tensors.values() if t.dtype in FLOAT_DTYPES)
    if counts and inv.kind == "safetensors":
        dtype = counts.most_common(1)[0][0]
        findings.append(reason(
            Code.PLAN_DTYPE_INFERRED, f"config.json gives no torch_dtype; model dtype taken as {dtype}, the dtype of "
            f"most float tensors", file=where, hint="set torch_dtype in config.json to make it explicit"))
        return dtype
    return None


def _plan_one(model_dir: Path, *, target: NpuGen, tp: int, ep: int, policy: PlanPolicy, matrix: SupportMatrix,
              quantization: str | None, component: str | None, domain: Domain | None
              ) -> tuple[PlanComponent, list[PlannedLayer], list[Reason], Domain]:
    from quantspec.formats import read_description  # formats imports its parsers lazily too

    desc = read_description(model_dir, quantization=quantization)
    inv = read_inventory(model_dir)
    config = _config(model_dir)
    findings: list[Reason] = [*desc.findings, *inv.findings]
    dom = domain or (Domain.DIFFUSION if "_class_name" in config or "_diffusers_version" in config else Domain.LLM)
    model_type = _model_type(config, inv)
    model_dtype = _model_dtype(config, inv, findings, str(model_dir / "config.json"))
    setting = Setting(desc=desc, matrix=matrix, target=target, tp=tp, ep=ep, policy=policy, domain=dom,
                      model_type=model_type, model_dtype=model_dtype, config=config, component=component)
    layers = Planner(setting, inv).plan()
    layers, defects = check_defects(DefectContext(desc=desc, config=config, layers=layers), policy.producer_fixes)
    findings += defects
    comp = PlanComponent(name=component or model_dir.name, path=str(model_dir), format=desc.format,
                         source=desc.source, model_type=model_type, model_dtype=model_dtype)
    return comp, layers, findings, dom


def plan(
    model_dir: str | Path,
    *,
    target: NpuGen | str,
    tp: int = 1,
    ep: int = 1,
    max_tokens: int | None = None,
    device: str | None = None,
    device_memory: float | None = None,
    allow_untested: bool = False,
    quantization: str | None = None,
    matrix: SupportMatrix | None = None,
    producer_fixes: Iterable[DefectId | str] = (),
) -> Plan:
    """Plan ``model_dir`` for ``target`` from metadata only (no tensor data, no torch).

    Every layer is accepted (scheme, executable class, kernels, transforms, bytes after load,
    warnings) or rejected with all its reasons. Raises :class:`~quantspec.errors.InvalidInput`
    only for unreadable or malformed input; unsupported layers are rejections, not errors.
    A Diffusers pipeline folder (``model_index.json``) is planned component by component.
    ``producer_fixes`` names known producer defects to repair instead of reject (recorded in
    ``plan.policy``; see ``quantspec/plan/defects.yaml``).
    """
    # Planning allocates hundreds of thousands of small acyclic objects (header entries, tensor
    # infos, rules); the cyclic GC would rescan them repeatedly for nothing (~30% of the time on
    # a DeepSeek-V3-sized checkpoint). It is paused for the call and restored afterwards.
    enabled = gc.isenabled()
    gc.disable()
    try:
        plan_ = _plan(model_dir, target=target, tp=tp, ep=ep, allow_untested=allow_untested,
                      quantization=quantization, matrix=matrix, producer_fixes=_producer_fixes(producer_fixes))
        return _with_memory(plan_, Path(model_dir), max_tokens=max_tokens, device=device, device_memory=device_memory)
    finally:
        if enabled:
            gc.enable()


def _with_memory(p: Plan, root: Path, *, max_tokens: int | None, device: str | None,
                 device_memory: float | None) -> Plan:
    """The plan with its per-rank memory section (and a ``plan.does_not_fit`` rejection)."""
    from quantspec.plan.memory import plan_memory

    if any(layer.component is not None for layer in p.layers):
        return p  # pipelines: per-component devices are not modelled
    if max_tokens is not None and max_tokens < 0:
        raise InvalidInput(reason(Code.USAGE, f"--max-tokens must be >= 0, got {max_tokens}"))
    mem, rejections = plan_memory(p.layers, _config(root), tp=p.tp, ep=p.ep, target=p.target,
                                  model_dtype=p.model_dtype, max_tokens=max_tokens, device=device,
                                  device_memory_gib=device_memory)
    return p.model_copy(update={"memory": mem, "rejections": (*p.rejections, *rejections)})


def _plan(model_dir: str | Path, *, target: NpuGen | str, tp: int, ep: int, allow_untested: bool,
          quantization: str | None,
          matrix: SupportMatrix | None, producer_fixes: tuple[DefectId, ...]) -> Plan:
    from quantspec import __version__

    root = Path(model_dir)
    if not root.is_dir():
        raise InvalidInput(reason(Code.NOT_A_DIRECTORY, "not a directory", file=str(root)))
    try:
        gen = NpuGen(target)
    except ValueError:
        raise InvalidInput(reason(Code.USAGE, f"unknown target {target!r}",
                                  hint=f"one of {', '.join(g.value for g in NpuGen)}")) from None
    if tp < 1:
        raise InvalidInput(reason(Code.USAGE, f"--tp must be >= 1, got {tp}"))
    policy = policy_for(allow_untested, producer_fixes)
    matrix = matrix or load_matrix()
    if ep < 1:
        raise InvalidInput(reason(Code.USAGE, f"--ep must be >= 1, got {ep}"))
    kw: dict[str, Any] = {"target": gen, "tp": tp, "ep": ep, "policy": policy, "matrix": matrix,
                          "quantization": quantization}
    if (root / "model_index.json").is_file():
        from quantspec.formats import pipeline_components

        comps: list[PlanComponent] = []
        layers: list[PlannedLayer] = []
        findings: list[Reason] = []
        for name, path in sorted(pipeline_components(root).items()):
            if not any(path.glob("*.safetensors")) and not any(path.glob("*.gguf")):
                continue  # tokenizers, schedulers: nothing to plan
            comp, comp_layers, comp_findings, _ = _plan_one(path, component=name, domain=Domain.DIFFUSION, **kw)
            comps.append(comp)
            layers += comp_layers
            findings += comp_findings
        quantized = [c for c in comps if c.format is not FormatFamily.UNQUANTIZED]
        main = quantized[0] if quantized else (comps[0] if comps else None)
        fmt = main.format if main else FormatFamily.UNQUANTIZED
        source = f"{main.name}/{main.source}" if main else "<none>"
        return _assemble(gen=gen, tp=tp, ep=ep, policy=policy, matrix=matrix, fmt=fmt, source=source,
                         domain=Domain.DIFFUSION, main=main, comps=comps, layers=layers, findings=findings,
                         version=__version__)
    comp, layers, findings, dom = _plan_one(root, component=None, domain=None, **kw)
    return _assemble(gen=gen, tp=tp, ep=ep, policy=policy, matrix=matrix, fmt=comp.format, source=comp.source,
                     domain=dom, main=comp, comps=[comp], layers=layers, findings=findings, version=__version__)


def _assemble(*, gen: NpuGen, tp: int, ep: int, policy: PlanPolicy, matrix: SupportMatrix, fmt: FormatFamily,
              source: str, domain: Domain, main: PlanComponent | None, comps: list[PlanComponent],
              layers: list[PlannedLayer], findings: list[Reason], version: str) -> Plan:
    frozen = tuple(layers)
    blocking = tuple(r for r in findings if r.code in BLOCKING)
    findings = [r for r in findings if r.code not in BLOCKING]
    return Plan.model_construct(
        plan_version=PLAN_VERSION, quantspec_version=version, matrix_version=matrix.matrix_version, target=gen, tp=tp,
        ep=ep, format=fmt, source=source, domain=domain, model_type=main.model_type if main else None,
        model_dtype=main.model_dtype if main else None, policy=policy, components=tuple(comps), layers=frozen,
        findings=tuple(findings), rejections=blocking, summary=summarize(frozen),
    )
