"""Building executable modules and float tensors from a plan, one layer at a time.

Layers are visited in the order of the files that hold them (file by file, then layer by
layer), each layer reads only its own tensors, builds its module (which repacks them to the
NPU layout) and drops the checkpoint copies; a file is closed as soon as no later layer needs
it. Everything goes into local dictionaries; the caller publishes them only when every layer
has been built, so a failure leaves nothing half-loaded behind.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from quantspec.description import QuantSpec
from quantspec.errors import Code, InvalidCheckpoint, QuantspecError, reason
from quantspec.plan import LayerStatus, Plan, PlannedLayer, pack_factor
from quantspec.runtime.executables import executable_class
from quantspec.runtime.loader.reader import Reader
from quantspec.runtime.loader.tp import Parallel, TensorParallel, local_dims, parallel_of, shard_tensors
from quantspec.runtime.moe.base import ExpertGroup, GroupName, QuantizedExperts, Stacker
from quantspec.runtime.moe.ep import ExpertParallelExperts
from quantspec.runtime.ops.base import Ops
from quantspec.runtime.schemes.base import LinearScheme, check_tensor_values
from quantspec.schemes import FLOAT_SPECS, SchemeSpec, lookup_spec
from quantspec.vocab import Backend, Executable, FormatFamily, LayerKind, MatrixLayer, ParallelMode

#: Float dtypes a float tensor is cast from (to the model dtype); other dtypes are kept.
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Layer kinds whose float weight is sharded like a linear under tensor parallelism.
_SHARDED_FLOAT = (LayerKind.LINEAR,)


def _trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``, or a no-op elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return lambda: libc.malloc_trim(0)
    except OSError:
        return lambda: None


#: Hand the transient buffers of the layer just built back to the OS. glibc serves the
#: megabyte-sized checkpoint copies from its heap once its dynamic mmap threshold has grown,
#: and freed heap pages stay resident: without this, peak RSS drifts to ~1.5x the result.
release_freed_memory = _trim()


#: Units built concurrently (two: one reads while the other repacks).
PARALLEL_UNITS = 2
#: Units submitted ahead of the one the driver waits for. Results are taken in order; with only
#: :data:`PARALLEL_UNITS` submitted, a worker that finished a small unit idled until the head
#: (often a large one) was done (measured: 1.3 busy cores of 2). A few queued units keep both busy;
#: they hold only their own tensors, which are part of the result.
LOOKAHEAD_UNITS = 6


def _one_intra_op_thread() -> None:
    """Run the torch ops of this builder thread on one thread (set per thread under OpenMP).

    The builder already runs :data:`PARALLEL_UNITS` units at once; an op splitting itself over
    every core on top of that oversubscribes the machine, and OpenMP's barriers then wait on
    descheduled threads (measured: the blocked int8 transpose fell from ~1.3 GB/s to 0.02-0.3 GB/s
    with two intra-op threads while other processes were running).
    """
    torch.set_num_threads(1)


@dataclass
class Built:
    """What loading produced (local until every layer succeeded)."""

    modules: dict[str, nn.Module] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    parallel: dict[str, Parallel] = field(default_factory=dict)
    #: Alternative module spellings -> loaded module name (GGUF's several Hugging Face names).
    aliases: dict[str, str] = field(default_factory=dict)


def _is_moe(unit: list[PlannedLayer]) -> bool:
    return unit[0].kind in (LayerKind.MOE_W13, LayerKind.MOE_W2)


def named(module: str, exc: QuantspecError) -> InvalidCheckpoint:
    """A scheme's error with ``where`` made a full tensor name (schemes only know suffixes)."""
    fixed = [r if r.where and r.where.startswith(module) else r.model_copy(
        update={"where": f"{module}.{r.where}" if r.where else module}) for r in exc.reasons]
    return InvalidCheckpoint(fixed)


class Builder:
    """Builds one plan component (a model, or one Diffusers component) from its reader."""

    def __init__(self, *, plan: Plan, layers: list[PlannedLayer], family: FormatFamily, reader: Reader,
                 prefix: str, model_dtype: torch.dtype, ops: Ops, tp: TensorParallel,
                 tick: Callable[[int], None], ep_rank: int = 0) -> None:
        self.plan = plan
        self.layers = layers
        self.family = family
        self.reader = reader
        self.prefix = prefix
        self.dtype = model_dtype
        self.ops = ops
        self.tp = tp
        self.tick = tick
        #: This rank's index among ``plan.ep`` expert-parallel ranks.
        self.ep_rank = ep_rank
        self.out = Built()
        #: Tensors are moved to the NPU before repacking, so the transforms run on the device.
        self.device = torch.device("npu" if ops.backend is Backend.NPU else "cpu")

    # ------------------------------------------------------------------ driver
    def run(self) -> Built:
        """Build every layer, streaming files in order."""
        self._leftovers()  # first: the files they live in may be released during the loop
        units = self._units()
        files = self.reader.files
        last_use: dict[str, int] = {}
        for i, (_, unit) in enumerate(units):
            for layer in unit:
                for t in layer.tensors:
                    if t in files:
                        last_use[files[t]] = i
        closing: dict[int, list[str]] = {}
        for f, i in last_use.items():
            closing.setdefault(i, []).append(f)
        # Two units are built at once (reads and torch ops release the GIL): one reads while the
        # other repacks, with a few more queued behind them. Results are taken in order, so files
        # close and errors surface in order.
        with ThreadPoolExecutor(max_workers=PARALLEL_UNITS, thread_name_prefix="quantspec-load",
                                initializer=_one_intra_op_thread) as pool:
            pending: deque[tuple[Future[None], bool]] = deque()
            submitted = 0
            for i, (_, unit) in enumerate(units):
                while submitted < len(units) and (not pending or submitted < i + LOOKAHEAD_UNITS):
                    moe = _is_moe(units[submitted][1])
                    if pending and moe and any(m for _, m in pending):
                        break  # never two MoE layers at once: each holds a whole layer of experts
                    pending.append((pool.submit(self._build_named, units[submitted][1]), moe))
                    submitted += 1
                try:
                    pending.popleft()[0].result()
                except BaseException:
                    for fut, _ in pending:
                        fut.cancel()
                    raise
                self.tick(sum(len(layer.tensors) for layer in unit))
                release_freed_memory()
                for fname in closing.get(i, []):
                    self.reader.release(fname)
        return self.out

    def _build_named(self, unit: list[PlannedLayer]) -> None:
        try:
            self._build(unit)
        except QuantspecError as exc:
            raise named(self.prefix + unit[0].module, exc) from None

    def _get(self, name: str) -> Tensor:
        """A tensor from the reader, on the backend's device; scales, offsets and group indices are
        value-checked first (:mod:`quantspec.tensor_values`)."""
        t = self.reader.read(name)
        check_tensor_values(name, t, file=self.reader.files.get(name))
        return t if t.device == self.device else t.to(self.device)

    def _units(self) -> list[tuple[tuple[int, str], list[PlannedLayer]]]:
        """Layers grouped into build units (a MoE's w13 + w2 together), ordered by file."""
        order = {f: i for i, f in enumerate(sorted(set(self.reader.files.values())))}
        moe: dict[str, list[PlannedLayer]] = {}
        units: list[list[PlannedLayer]] = []
        for layer in self.layers:
            if layer.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):
                if layer.module not in moe:
                    moe[layer.module] = []
                    units.append(moe[layer.module])
                moe[layer.module].append(layer)
            else:
                units.append([layer])

        def key(unit: list[PlannedLayer]) -> tuple[int, str]:
            idx = [order[f] for layer in unit for f in layer.files if f in order]  # the plan says where
            return (min(idx) if idx else -1, unit[0].module)

        return sorted(((key(u), u) for u in units), key=lambda p: p[0])

    def _read(self, names: Iterable[str], module: str) -> dict[str, Tensor]:
        """Tensors of ``module`` among ``names``, keyed by suffix."""
        cut = len(module) + 1
        return {name[cut:]: self._get(name) for name in names if name.startswith(module + ".")}

    # ------------------------------------------------------------------ per layer
    def _build(self, unit: list[PlannedLayer]) -> None:
        """Build one unit as its plan says: MoE groups (w13 and w2 together), the executable class the
        plan names, or float tensors (``FloatTensors``, and layers with no executable: norms)."""
        first = unit[0]
        if first.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):
            self._moe(unit)
        elif first.executable is None or first.executable is Executable.FLOAT_TENSORS:
            self._float(first)
        else:
            self._linear(first)

    def _spec(self, quant: QuantSpec | None, layer: MatrixLayer) -> SchemeSpec:
        if quant is None or quant.scheme is None:
            return FLOAT_SPECS[layer]
        spec = lookup_spec(self.family, quant.scheme, layer, quant.weight.layout)
        if spec is None:
            raise InvalidCheckpoint(reason(Code.PLAN_NO_SCHEME, f"no tensor contract for {self.family.value} "
                                           f"{quant.scheme.value} {layer.value} ({quant.weight.layout.value})"))
        return spec

    def _dims(self, spec: SchemeSpec, tensors: dict[str, Tensor], quant: QuantSpec | None,
              name: str) -> tuple[int, int]:
        w = tensors.get(spec.weight_role)
        if w is None:
            raise InvalidCheckpoint(reason(Code.TENSOR_MISSING, f"{name}.{spec.weight_role} is missing",
                                           where=f"{name}.{spec.weight_role}"))
        n, k = spec.dims(tuple(w.shape), pack_factor(quant))
        if n is None or k is None:
            raise InvalidCheckpoint(reason(Code.TENSOR_SHAPE, f"{name}.{spec.weight_role} shape {list(w.shape)} "
                                           f"contradicts the plan", where=f"{name}.{spec.weight_role}"))
        return n, k

    def _linear(self, layer: PlannedLayer) -> None:
        quant = layer.quant
        assert quant is not None and quant.scheme is not None and layer.executable is not None
        spec = self._spec(quant, MatrixLayer.LINEAR)
        cls = executable_class(layer.executable)
        if not issubclass(cls, LinearScheme):
            raise InvalidCheckpoint(reason(Code.PLAN_NO_SCHEME, f"{layer.name}: the plan's executable "
                                           f"{layer.executable.value} is not a linear scheme", where=layer.name))
        par = parallel_of(layer)
        for shard in layer.shards or (layer.module,):
            tensors = self._read(layer.tensors, shard)
            n, k = self._dims(spec, tensors, quant, shard)
            tensors = shard_tensors(tensors, layer=shard, spec=spec, quant=quant, n=n, k=k, par=par, tp=self.tp)
            n_loc, k_loc = local_dims(shard, n, k, par, self.tp)
            try:
                module = cls.from_checkpoint(tensors, quant, out_features=n_loc, in_features=k_loc,
                                             model_dtype=self.dtype, ops=self.ops)
            except QuantspecError as exc:
                raise named(self.prefix + shard, exc) from None
            name = self.prefix + shard
            self.out.modules[name] = module
            self.out.parallel[name] = par
            del tensors

    def _float(self, layer: PlannedLayer) -> None:
        par = parallel_of(layer) if layer.kind in _SHARDED_FLOAT else Parallel.REPLICATED
        modules = layer.shards or (layer.module,)
        seen: set[str] = set()
        for module in modules:
            tensors = self._read(layer.tensors, module)
            seen.update(f"{module}.{s}" for s in tensors)
            if par is not Parallel.REPLICATED and "weight" in tensors and tensors["weight"].dim() == 2:
                n, k = tensors["weight"].shape
                tensors = shard_tensors(tensors, layer=module, spec=FLOAT_SPECS[MatrixLayer.LINEAR], quant=None,
                                        n=n, k=k, par=par, tp=self.tp)
                self.out.parallel[self.prefix + module] = par
            for suffix, t in tensors.items():
                self.out.tensors[f"{self.prefix}{module}.{suffix}"] = self._cast(t)
        for name in layer.tensors:  # KV-cache entries of an attention layer: names relative to no shard
            if name not in seen:
                self.out.tensors[self.prefix + name] = self._cast(self._get(name))

    def _cast(self, t: Tensor) -> Tensor:
        return t.to(self.dtype) if t.dtype in _FLOATS else t

    def _leftovers(self) -> None:
        """Checkpoint tensors no layer claims (buffers such as ``rotary_emb.inv_freq``): kept as stored."""
        claimed = {t for layer in self.layers for t in layer.tensors}
        for name in self.reader.files:
            if name not in claimed:
                self.out.tensors[self.prefix + name] = self._cast(self._get(name))

    # ------------------------------------------------------------------ MoE
    def _moe(self, unit: list[PlannedLayer]) -> None:
        by_kind = {layer.kind: layer for layer in unit}
        w13, w2 = by_kind.get(LayerKind.MOE_W13), by_kind.get(LayerKind.MOE_W2)
        module = unit[0].module
        if w13 is None or w2 is None:
            raise InvalidCheckpoint(reason(Code.TENSOR_MISSING, f"MoE layer {module} needs both w13 (gate+up) and "
                                           f"w2 (down) weight groups", where=module))
        local = _local_experts(w13, self.ep_rank)
        g13 = self._group(w13, "w13", local)
        g2 = self._group(w2, "w2", local)
        name = self.prefix + module
        experts = QuantizedExperts(g13, g2, ops=self.ops, model_dtype=self.dtype)
        if w13.parallel is ParallelMode.EXPERT:
            self.out.modules[name] = ExpertParallelExperts(experts, local_ids=local, num_experts=len(w13.experts),
                                                           ep_size=len(w13.experts_per_rank))
            self.out.parallel[name] = Parallel.REPLICATED  # the module reduces its own output
        else:
            self.out.modules[name] = experts
            self.out.parallel[name] = Parallel.ROW if self.tp.active else Parallel.REPLICATED

    def _group(self, layer: PlannedLayer, group: GroupName, local: tuple[int, ...]) -> ExpertGroup:
        quant = layer.quant
        spec = self._spec(quant, MatrixLayer.MOE)
        cls = executable_class(layer.executable or Executable.FLOAT_EXPERTS)
        if not issubclass(cls, ExpertGroup):
            raise InvalidCheckpoint(reason(Code.PLAN_NO_SCHEME, f"{layer.name}: the plan's executable "
                                           f"{cls.__name__} is not an expert group", where=layer.name))
        par = (Parallel.REPLICATED if layer.parallel is ParallelMode.EXPERT  # experts whole on their rank
               else Parallel.COLUMN if group == "w13" else Parallel.ROW)
        experts = list(local)
        stacker = Stacker(len(experts), device=self.device)
        fused = {p: self._get(f"{layer.module}.{p}") for p in layer.shards
                 if f"{layer.module}.{p}" in self.reader.files}
        fused.update({p: self._get(f"{layer.module}.{p}.weight") for p in layer.shards
                      if f"{layer.module}.{p}.weight" in self.reader.files})
        # expert module -> its tensor names (a scan of every name per expert would be quadratic)
        by_module: dict[str, list[str]] = {}
        for name in layer.tensors:
            by_module.setdefault(name.rpartition(".")[0], []).append(name)
        n_total = k_loc = 0
        for pos, e in enumerate(experts):
            projs: list[tuple[str, dict[str, Tensor]]] = []
            if fused:
                for p in layer.shards:
                    w = fused[p][e]  # global id: the fused tensor holds every expert
                    halves = w.chunk(2, 0) if p == "gate_up_proj" else (w,)
                    projs += [(f"{layer.module}.{p}[{e}]", {"weight": h}) for h in halves]
            else:
                projs = [(f"{layer.module}.{e}.{p}", self._read(by_module.get(f"{layer.module}.{e}.{p}", ()),
                                                                  f"{layer.module}.{e}.{p}"))
                         for p in layer.shards]
            sharded = []
            n_total = 0
            for where, tensors in projs:
                n, k = self._dims(spec, tensors, quant, where)
                sharded.append(shard_tensors(tensors, layer=where, spec=spec, quant=quant, n=n, k=k, par=par,
                                             tp=self.tp, moe_group=group))
                n_loc, k_loc = local_dims(where, n, k, par, self.tp)
                n_total += n_loc
            try:
                stacker.put(pos, cls.decode(sharded, quant, n=n_loc, k=k_loc, group=group, model_dtype=self.dtype,
                                             ops=self.ops))
            except QuantspecError as exc:
                raise named(f"{self.prefix}{layer.module}.{e}", exc) from None
            del projs, sharded
        del fused
        built = cls.finish(stacker.out, quant, n=n_total, k=k_loc, group=group, model_dtype=self.dtype, ops=self.ops)
        return built


def _local_experts(layer: PlannedLayer, ep_rank: int) -> tuple[int, ...]:
    """The experts of ``layer`` this rank holds: all of them, or its slice of the plan's placement."""
    if layer.parallel is not ParallelMode.EXPERT or not layer.experts_per_rank:
        return layer.experts
    start = sum(layer.experts_per_rank[:ep_rank])
    return layer.experts[start:start + layer.experts_per_rank[ep_rank]]


def accepted_layers(plan: Plan, component: str | None) -> list[PlannedLayer]:
    """The plan's layers of one component (all of them are accepted once the plan is)."""
    return [layer for layer in plan.layers if layer.component == component and layer.status is LayerStatus.ACCEPTED]


__all__ = ["Builder", "Built", "accepted_layers", "named", "release_freed_memory"]
