"""The planner: every discovered layer resolved to an executable NPU scheme or rejected.

For each layer: the quantization the description asks for (shards of a fused layer and all
experts of a MoE weight group must agree), the matrix status of that scheme on the target
(``untested``/``in_progress`` only with ``--allow-untested``), the scheme's tensor contract
against the headers, tensor-parallel divisibility, then the matrix's kernel constraints.
Every failing check adds a reason; nothing stops at the first. The planner never raises for
an unsupported layer: it returns it rejected.
"""

from __future__ import annotations

from quantspec.checkpoint.inventory import LOADABLE_DTYPES, Inventory
from quantspec.description import KVCacheQuant
from quantspec.errors import DIFFUSION_EMBEDDING_MESSAGE, Code, reason
from quantspec.formats import modelslim
from quantspec.plan.constraints import CheckContext, run_constraints
from quantspec.plan.contract import check_module, loaded_bytes, quant_env, stored_bytes
from quantspec.plan.discover import AttentionUnit, LinearUnit, Naming, discover, naming, natural_key
from quantspec.plan.model import LayerStatus, PlannedLayer
from quantspec.plan.moe import plan_moe
from quantspec.plan.refine import refine
from quantspec.plan.router import plan_router
from quantspec.plan.verdict import Setting, Verdict, agreement_key, label_of
from quantspec.schemes import FLOAT_SPECS, lookup_spec, why_no_spec
from quantspec.vocab import Domain, FormatFamily, LayerKind, Layout, MatrixLayer, ParallelMode, Status

#: Layouts whose codes are packed along N (column splits must keep whole words) or along K.
PACKED_ALONG_N = frozenset({Layout.AWQ_GEMM})
PACKED_ALONG_K = frozenset({Layout.GPTQ, Layout.CT_PACKED})


class Planner:
    """Plans one checkpoint (or one pipeline component) for one target."""

    def __init__(self, setting: Setting, inventory: Inventory) -> None:
        self.s = setting
        self.inv = inventory
        self.nm: Naming = naming()
        self.resolver = setting.desc.resolver()

    # ------------------------------------------------------------------ entry point
    def plan(self) -> list[PlannedLayer]:
        """Plan every layer, in natural name order (MoE w13 before w2)."""

        disc = discover(self.inv.tensors, self.s.model_type)
        layers = [self.linear(u) for u in disc.linears]
        layers += [plan_moe(self, u) for u in disc.moes]
        layers += self.attention(disc.attention)
        order = {LayerKind.MOE_W13: 0, LayerKind.MOE_W2: 1}
        layers.sort(key=lambda layer: (natural_key(layer.module), order.get(layer.kind, 0)))
        return layers

    # ------------------------------------------------------------------ linear-like layers
    def linear(self, u: LinearUnit) -> PlannedLayer:
        """Plan a linear, fused linear, embedding, lm_head, router, norm or other module."""
        v = Verdict(u.name, u.kind)
        if u.kind in (LayerKind.NORM, LayerKind.OTHER):
            infos = [t for p in u.params.values() for t in p.values()]
            v.tensors = [t.name for t in infos]
            v.unit_bytes = stored_bytes(infos)
            v.label = "FLOAT"
            # Norms and other modules stay float; a description that quantizes one (a conv, a
            # 3-D weight) names something no NPU scheme runs, and must not be dropped silently.
            quant, matched = self.resolver.quant_of(u.name, "Norm" if u.kind is LayerKind.NORM else "Other")
            if matched and quant is not None:
                v.label = quant.label
                v.reasons.append(reason(
                    Code.PLAN_NO_SCHEME, f"{u.name} is {quant.label} in {self.s.desc.source} but is not a linear, "
                    f"MoE or embedding layer: no NPU scheme runs it quantized", where=u.name,
                    hint="export this module unquantized (FLOAT)"))
            return self.build(v, shards=())
        if u.kind is LayerKind.ROUTER:
            return plan_router(self, u, v)
        cls = "Embedding" if u.kind is LayerKind.EMBEDDING else "Linear"
        res = [(s, self.resolver.resolve(s, cls)) for s in u.shards]
        missing = [s for s, r in res if not r.matched]
        if missing:
            for s in missing:
                v.reasons.append(reason(
                    Code.PLAN_NO_SCHEME, f"{s} has no entry in {self.s.desc.source}", where=s,
                    hint="engines fail on a module without an entry; add its '<module>.weight' entry "
                         "(\"FLOAT\" to keep it unquantized)",
                ))
            return self.build(v, shards=u.shards if u.fused else ())
        keys = {agreement_key(r.quant) for _, r in res}
        if len(keys) > 1:
            desc = ", ".join(f"{s.rpartition('.')[2]} is {label_of(r.quant)}" for s, r in res)
            v.reasons.append(reason(
                Code.PLAN_SHARD_MISMATCH, f"shards of fused layer {u.name} disagree: {desc}", where=u.name,
                hint="every shard of a fused layer must have the same quantization (engines silently pick one "
                     "or fail at load); re-export with a uniform scheme",
            ))
            v.label = "mixed"
            v.tensors = [t.name for p in u.params.values() for t in p.values()]
            return self.build(v, shards=u.shards)
        v.quant, notes = refine(res[0][1].quant, self.s.desc.format, u.shards[0], u.params[u.shards[0]])
        v.warnings += notes
        mlayer = u.kind.matrix_layer or MatrixLayer.LINEAR
        self.scheme_for(v, mlayer)
        if v.spec is not None:
            for s in u.shards:
                c = check_module(v.spec, s, u.params[s], quant=v.quant, model_dtype=self.s.model_dtype)
                v.reasons += c.reasons
                v.tensors += [t.name for t in c.used]
                if c.n is not None and c.k is not None:
                    v.members.append((s.rpartition(".")[2], c.n, c.k))
                    w = u.params[s].get(v.spec.weight_role)
                    v.weight_dtype = v.weight_dtype or (w.dtype if w else "")
            if len(v.members) == len(u.shards):
                v.n = sum(n for _, n, _ in v.members)
                v.k = v.members[0][2]
        self.finish(v, row_parallel=self.nm.is_row_parallel(u.name))
        return self.build(v, shards=u.shards if u.fused else ())

    # ------------------------------------------------------------------ scheme, matrix, contract
    def scheme_for(self, v: Verdict, mlayer: MatrixLayer, kv: KVCacheQuant | None = None) -> None:
        """Find the spec and the matrix status of ``v.quant`` (or ``kv``) on the target; record reasons."""
        q = v.quant
        v.label = kv.label if kv else label_of(q)
        if q is None and kv is None:
            v.spec = FLOAT_SPECS.get(mlayer)
            return
        fam, ver, gen = self.s.desc.format, self.s.matrix.matrix_version, self.s.target
        if q is not None and self.s.domain is Domain.DIFFUSION and (
            mlayer is MatrixLayer.EMBEDDING or self.nm.is_diffusion_embedding(v.name)
        ):
            v.reasons.append(reason(
                Code.PLAN_QUANTIZED_EMBEDDING, DIFFUSION_EMBEDDING_MESSAGE, where=v.name,
                hint=f"{v.name} is {v.label}; re-export it FLOAT (the engines run diffusion embedders unquantized)",
            ))
            return
        scheme = kv.scheme if kv else q.scheme if q else None
        layout = q.weight.layout if q else Layout.MODELSLIM_INT8
        if scheme is None:
            why = modelslim.unmapped_hint(v.label) if fam is FormatFamily.MODELSLIM else None
            v.reasons.append(reason(
                Code.PLAN_NO_SCHEME, f"{v.label} ({fam.value}) has no NPU scheme in quantspec", where=v.name,
                hint=f"{why}; re-quantize with a scheme of the support matrix (`quantspec matrix`)" if why
                else "re-quantize with a scheme of the support matrix (`quantspec matrix`)",
            ))
            return
        cell = f"{scheme.value} {mlayer.value} ({fam.value})"
        if mlayer is MatrixLayer.EMBEDDING and self.s.matrix.lookup(fam, scheme, mlayer) is None:
            v.reasons.append(reason(
                Code.PLAN_QUANTIZED_EMBEDDING, "quantized embeddings are not supported", where=v.name,
                hint=f"{v.name} is {v.label}; {fam.value} has no embedding row in support matrix {ver}: "
                     "export the embedding unquantized (FLOAT)",
            ))
            return
        entry = self.s.matrix.lookup(fam, scheme, mlayer)
        if entry is None:
            v.reasons.append(reason(
                Code.MATRIX_NO_ENTRY, f"{cell} has no entry in support matrix {ver}", where=v.name,
                hint="no engine is known to run this combination",
            ))
            return
        v.entry = entry
        status = entry.status.get(gen)
        if self.s.domain is Domain.DIFFUSION and entry.diffusion is not None:
            status = entry.diffusion.status.get(gen)
        v.status = status
        if status is Status.UNSUPPORTED:
            req = ", ".join(r.render() for r in entry.requirements)
            v.reasons.append(reason(
                Code.MATRIX_UNSUPPORTED,
                f"{cell} is unsupported on {gen.value} (support matrix {ver})" + (f"; requires {req}" if req else ""),
                where=v.name, hint=entry.notes,
            ))
        elif status in (Status.UNTESTED, Status.IN_PROGRESS):
            code = Code.MATRIX_UNTESTED if status is Status.UNTESTED else Code.MATRIX_IN_PROGRESS
            msg = f"{cell} is {status.value.replace('_', ' ')} on {gen.value} (support matrix {ver})"
            if status in self.s.policy.accepted_statuses:
                v.warnings.append(reason(Code.PLAN_UNTESTED_ACCEPTED, f"{msg}; accepted by --allow-untested",
                                         where=v.name))
            else:
                v.reasons.append(reason(code, msg, where=v.name,
                                        hint="pass --allow-untested to accept untested and in-progress cells"))
        v.spec = lookup_spec(fam, scheme, mlayer, layout)
        if v.spec is None and status is not Status.UNSUPPORTED:
            v.reasons.append(reason(
                Code.PLAN_NO_SCHEME, f"{cell} has no tensor contract for the {layout.value} layout",
                where=v.name, hint=why_no_spec(fam, scheme, mlayer, layout),
            ))

    def finish(self, v: Verdict, *, row_parallel: bool) -> None:
        """Tensor-parallel split, kernel constraints and bytes after load."""
        if v.spec is None or v.n is None or v.k is None:
            v.unit_bytes = None if v.spec is not None else v.unit_bytes
            return
        n_local, k_local = self.tp_split(v, row_parallel)
        v.n_local, v.k_local = n_local, k_local
        if v.entry is not None and v.quant is not None:
            ctx = CheckContext(
                layer=v.name, kind=v.kind, entry=v.entry, quant=v.quant, n=v.n, k=v.k, n_local=n_local,
                k_local=k_local, tp=self.s.tp, model_dtype=self.s.model_dtype, weight_dtype=v.weight_dtype,
                policy=self.s.policy, members=v.members,
            )
            out = run_constraints(ctx)
            v.reasons += out.reasons
            v.warnings += out.warnings
            v.transforms += out.transforms
        total = 0
        for _, n, k in v.members or [("", v.n, v.k)]:
            b = loaded_bytes(v.spec, quant_env(v.quant, n, k), self.s.model_dtype)
            if b is None:
                v.unit_bytes = None
                return
            total += b
        v.unit_bytes = total

    def parallel_mode(self, v: Verdict) -> ParallelMode:
        """How tensor parallelism splits a layer, as the engines build it."""
        if self.s.ep > 1 and v.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):
            return ParallelMode.EXPERT
        if v.kind is LayerKind.MOE_W13:
            return ParallelMode.COLUMN
        if v.kind is LayerKind.MOE_W2:
            return ParallelMode.ROW
        if v.kind in (LayerKind.EMBEDDING, LayerKind.LM_HEAD):
            return ParallelMode.VOCAB
        if v.kind is LayerKind.LINEAR:
            if self.nm.is_replicated(v.name):
                return ParallelMode.REPLICATED
            return ParallelMode.ROW if self.nm.is_row_parallel(v.name) else ParallelMode.COLUMN
        return ParallelMode.REPLICATED

    def tp_split(self, v: Verdict, row_parallel: bool) -> tuple[int, int]:
        """Per-rank (N, K) and TP divisibility / group-alignment reasons."""
        tp, n, k = self.s.tp, v.n or 0, v.k or 0
        if self.s.ep > 1 and v.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):
            return n, k  # expert parallelism: each rank holds its experts whole
        if tp == 1 or v.kind in (LayerKind.ROUTER, LayerKind.ATTENTION) or (
            v.kind is LayerKind.LINEAR and self.nm.is_replicated(v.name)
        ):
            return n, k
        if v.kind in (LayerKind.EMBEDDING, LayerKind.LM_HEAD):
            return -(-n // tp), k  # vocab-parallel: engines pad the vocabulary
        q = v.quant
        layout = q.weight.layout if q else Layout.FLOAT
        pf = 32 // q.weight.bits if q and 32 % q.weight.bits == 0 else 1
        group = q.weight.group_size if q and q.weight.group_size and q.weight.group_size > 0 else None
        row = row_parallel or v.kind is LayerKind.MOE_W2
        what = "intermediate size" if v.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2) else ("K" if row else "N")
        if not row:
            for member, mn, _ in v.members or [(v.name, n, k)]:
                if mn % tp:
                    v.reasons.append(reason(Code.PLAN_TP, f"{what} {mn} of {member} is not divisible by tp={tp}",
                                            where=v.name, hint="column-parallel layers split N across ranks"))
                elif layout in PACKED_ALONG_N and (mn // tp) % pf:
                    v.reasons.append(reason(Code.PLAN_TP, f"N/tp = {mn // tp} of {member} splits packed int32 words "
                                            f"({pf} codes each)", where=v.name))
            return n // tp, k
        if k % tp:
            v.reasons.append(reason(Code.PLAN_TP, f"{what} {k} is not divisible by tp={tp}", where=v.name,
                                    hint="row-parallel layers split K across ranks"))
            return n, k
        k_local = k // tp
        if group and k_local % group:
            v.reasons.append(reason(
                Code.PLAN_TP, f"K/tp = {k_local} is not a multiple of the group size {group}: a rank would split a "
                f"quantization group", where=v.name, hint="choose a tp that keeps K/tp on group boundaries"))
        elif layout in PACKED_ALONG_K and k_local % pf:
            v.reasons.append(reason(Code.PLAN_TP, f"K/tp = {k_local} splits packed int32 words ({pf} codes each)",
                                    where=v.name))
        return n, k_local

    # ------------------------------------------------------------------ attention / KV cache
    def attention(self, units: dict[str, AttentionUnit]) -> list[PlannedLayer]:
        """One ``attention`` layer per attention module the KV-cache entries cover."""
        out: list[PlannedLayer] = []
        covered: set[str] = set()
        for kv in self.s.desc.kv_cache:
            modules = kv.modules or tuple(sorted(units, key=natural_key))
            for module in modules:
                covered.add(module)
                out.append(self.kv_layer(kv, module, units.get(module)))
        for name, unit in units.items():
            if name in covered:
                continue
            v = Verdict(name, LayerKind.ATTENTION, label="FLOAT")
            v.tensors = sorted(t.name for t in unit.params.values())
            v.warnings.append(reason(
                Code.PLAN_UNDECLARED_KV, "KV-cache tensors are present but the description declares no KV-cache "
                "quantization: they are not used", where=name))
            out.append(self.build(v, shards=()))
        return out

    def kv_layer(self, kv: KVCacheQuant, module: str, unit: AttentionUnit | None) -> PlannedLayer:
        """Plan one attention module's KV-cache quantization."""
        v = Verdict(module, LayerKind.ATTENTION, label=kv.label)
        self.scheme_for(v, MatrixLayer.ATTENTION, kv)
        if v.spec is not None:
            params = unit.params if unit else {}
            c = check_module(v.spec, module, params, quant=None, model_dtype=self.s.model_dtype)
            v.reasons += c.reasons
            v.tensors = [t.name for t in c.used]
            v.unit_bytes = stored_bytes(c.used)
            v.transforms = list(v.spec.transforms)
        return self.build(v, shards=(), kv=kv)

    # ------------------------------------------------------------------ result
    def build(self, v: Verdict, *, shards: tuple[str, ...], experts: tuple[int, ...] = (),
              kv: KVCacheQuant | None = None) -> PlannedLayer:
        """Freeze a verdict into a :class:`PlannedLayer` (constructed without re-validation)."""
        infos = self.inv.tensors
        if self.inv.kind == "safetensors":
            odd = sorted({infos[t].dtype for t in v.tensors if t in infos} - LOADABLE_DTYPES)
            if odd:
                v.reasons.append(reason(
                    Code.TENSOR_DTYPE, f"{v.name} reads {', '.join(odd)} tensors, which quantspec's runtime cannot "
                    "build (no torch dtype)", where=v.name,
                    hint="no NPU scheme of the support matrix stores these dtypes; re-export in a supported scheme"))
        accepted = not v.reasons
        spec = v.spec
        comp = self.s.component
        bytes_ = None if v.unit_bytes is None else v.unit_bytes * v.units
        scheme = (v.quant.scheme if v.quant else None) or (kv.scheme if kv else None)
        transforms = (*(spec.transforms if spec and not kv else ()), *v.transforms)
        return PlannedLayer.model_construct(
            name=f"{comp}/{v.name}" if comp else v.name,
            kind=v.kind,
            status=LayerStatus.ACCEPTED if accepted else LayerStatus.REJECTED,
            scheme=scheme,
            label=v.label,
            component=comp,
            module=v.name,
            matrix_entry=v.entry.key if v.entry else None,
            matrix_status=v.status,
            quant=v.quant if accepted else None,
            executable=spec.executable if accepted and spec else None,
            kernels=spec.kernels if accepted and spec else (),
            transforms=tuple(dict.fromkeys(transforms)) if accepted else (),
            bytes_after_load=bytes_ if accepted else None,
            kv_cache=kv,
            n=v.n,
            k=v.k,
            parallel=self.parallel_mode(v),
            n_local=v.n_local if v.n_local is not None or v.n is None else v.n,
            k_local=v.k_local if v.k_local is not None or v.k is None else v.k,
            shards=shards,
            experts=experts,
            experts_per_rank=v.experts_per_rank,
            tensors=tuple(v.tensors),
            files=tuple(sorted({infos[t].file for t in v.tensors if t in infos})),
            warnings=tuple(v.warnings),
            reasons=tuple(v.reasons),
        )

