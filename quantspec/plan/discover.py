"""Layer discovery: group checkpoint tensors into the layers the planner decides on.

Tensors are grouped by module (name minus the last component). Then, using the naming data
in ``naming.yaml``:

- per-expert MoE tensors (``<experts>.<e>.<proj>.*``) and fused 3-D expert tensors become
  two units per MoE layer, ``moe_w13`` (gate + up) and ``moe_w2`` (down);
- shards of a fused module (``q_proj``/``k_proj``/``v_proj`` -> ``qkv_proj``) become one
  linear unit when at least two shards are present;
- KV-cache params (``k_proj.kv_cache_scale``, ``fa_k.scale``) go to their attention module;
- every other module is classified by name: embedding, lm_head, router, norm, linear (2-D
  weight) or other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from quantspec.checkpoint.inventory import TensorInfo
from quantspec.vocab import LayerKind

#: Tensors of one module: param name (relative to the module) -> info.
Params = dict[str, TensorInfo]


@dataclass(frozen=True)
class Naming:
    """Compiled naming conventions (see ``naming.yaml``)."""

    packed: Mapping[str, Mapping[str, tuple[str, ...]]]
    containers: frozenset[str]
    per_expert: tuple[tuple[tuple[str, ...], str], ...]
    fused_3d: Mapping[str, str]
    gguf_fused_3d: Mapping[str, str]
    row_parallel: tuple[str, ...]
    #: Linears replicated under tensor parallelism (module-name suffixes).
    replicated: tuple[str, ...]
    embeddings: frozenset[str]
    diffusion_embeddings: frozenset[str]
    lm_heads: tuple[str, ...]
    routers: tuple[str, ...]
    norms: tuple[str, ...]
    kv_params: frozenset[str]
    kv_submodules: frozenset[str]
    weight_params: tuple[str, ...]
    #: per-expert projection -> "w13" | "w2"
    expert_group: Mapping[str, str] = field(default_factory=dict)

    def packed_for(self, model_type: str | None) -> dict[str, tuple[str, ...]]:
        """Fused module -> shards for a model type (the defaults plus its own entries)."""
        out = dict(self.packed.get("default", {}))
        if model_type:
            out.update(self.packed.get(model_type, {}))
        return out

    def is_diffusion_embedding(self, module: str) -> bool:
        """Whether a diffusion-transformer module belongs to its patch or condition embedders."""
        return not self.diffusion_embeddings.isdisjoint(module.split("."))

    def is_row_parallel(self, module: str) -> bool:
        """Whether a linear splits K (not N) under tensor parallelism."""
        return any(module == s or module.endswith("." + s) for s in self.row_parallel)

    def is_replicated(self, module: str) -> bool:
        """Whether every tensor-parallel rank holds a linear whole (MLA's down projections)."""
        return any(module == s or module.endswith("." + s) for s in self.replicated)


@lru_cache(maxsize=1)
def naming() -> Naming:
    """The bundled naming data, loaded once."""
    text = resources.files("quantspec.plan").joinpath("naming.yaml").read_text(encoding="utf-8")
    return parse_naming(text, file="quantspec/plan/naming.yaml")


def parse_naming(text: str, *, file: str) -> Naming:
    """Validate naming data (:class:`~quantspec.plan.naming_model.NamingFile`) and compile it;
    raises :class:`~quantspec.errors.InvalidInput` (``naming.schema``) naming the file and path."""
    from pydantic import ValidationError

    from quantspec.errors import Code, InvalidInput, reason
    from quantspec.plan.naming_model import NamingFile

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: start-up time
    try:
        f = NamingFile.model_validate(yaml.load(text, Loader=loader))
    except ValidationError as exc:
        raise InvalidInput([
            reason(Code.NAMING_SCHEMA, err["msg"], file=file,
                   where="/" + "/".join(str(p) for p in err["loc"]) if err["loc"] else "/")
            for err in exc.errors()]) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(reason(Code.NAMING_SCHEMA, f"invalid YAML: {exc}", file=file)) from None
    per_expert = tuple((p.w13, p.w2) for p in f.moe.per_expert)
    groups: dict[str, str] = {}
    for w13, w2 in per_expert:
        groups.update(dict.fromkeys(w13, "w13"))
        groups[w2] = "w2"
    return Naming(
        packed={k: dict(v) for k, v in f.packed_modules.items()},
        containers=frozenset(f.moe.containers),
        per_expert=per_expert,
        fused_3d=dict(f.moe.fused_3d),
        gguf_fused_3d=dict(f.moe.gguf_fused_3d),
        row_parallel=f.row_parallel,
        replicated=f.replicated,
        embeddings=frozenset(f.embeddings),
        diffusion_embeddings=frozenset(f.diffusion_embeddings),
        lm_heads=f.lm_heads,
        routers=f.routers,
        norms=f.norms,
        kv_params=frozenset(f.attention.kv_params),
        kv_submodules=frozenset(f.attention.kv_submodules),
        weight_params=f.weight_params,
        expert_group=groups,
    )


@dataclass
class LinearUnit:
    """A linear-like layer (linear, lm_head, router, embedding, norm, other): one or more shards."""

    name: str
    kind: LayerKind
    #: Module names resolved against the description (the fused layer's shards, or itself).
    shards: tuple[str, ...]
    params: dict[str, Params]
    fused: bool = False


@dataclass
class MoEUnit:
    """One weight group (w13 or w2) of one MoE layer, across every expert."""

    name: str
    kind: LayerKind
    #: Projection names in this group (``gate_proj``, ``up_proj``) or fused 3-D names.
    projs: tuple[str, ...]
    #: expert id -> proj -> (module name, params); for fused 3-D tensors expert ids are absent.
    experts: dict[int, dict[str, tuple[str, Params]]]
    #: proj -> (module name, params) of fused 3-D tensors ``[E, N, K]``.
    fused3d: dict[str, tuple[str, Params]] = field(default_factory=dict)


@dataclass
class AttentionUnit:
    """An attention module's KV-cache / FA tensors (relative names such as ``k_proj.kv_cache_scale``)."""

    name: str
    params: Params


@dataclass
class Discovery:
    """All units of a checkpoint, in natural name order."""

    linears: list[LinearUnit]
    moes: list[MoEUnit]
    attention: dict[str, AttentionUnit]


_GGUF_BLOCK_RE = re.compile(r"^(?P<blk>.+)\.(?P<p>ffn_[a-z_]+_exps)$")
_NUM_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return tuple(int(p) if p.isdigit() else p for p in _NUM_RE.split(name))


def discover(tensors: Mapping[str, TensorInfo], model_type: str | None) -> Discovery:
    """Group tensors into units (see the module docstring)."""
    nm = naming()
    modules: dict[str, Params] = {}
    attention: dict[str, AttentionUnit] = {}
    # Both loops below run once per tensor / module (136k / 46k for DeepSeek-V3): the naming
    # sets are bound to locals and the common case is tested first.
    kv_params, kv_submodules, containers, fused_3d = nm.kv_params, nm.kv_submodules, nm.containers, nm.fused_3d
    slow = kv_params | set(fused_3d)
    for name, info in tensors.items():
        module, _, param = name.rpartition(".")
        params = modules.get(module)
        if params is not None and param not in slow:
            params[param] = info  # fast path: a module already known to be an ordinary one
            continue
        parent, _, last = module.rpartition(".")
        if param in kv_params and parent:
            _attn(attention, parent).params[f"{last}.{param}"] = info
            continue
        if last in kv_submodules and parent:
            _attn(attention, parent).params[f"{last}.{param}"] = info
            continue
        if last in containers and param in fused_3d:
            # transformers v5 style: the 3-D tensor is a parameter of the experts module.
            modules.setdefault(name, {})["weight"] = info
            continue
        modules.setdefault(module, {})[param] = info

    moes: dict[tuple[str, str], MoEUnit] = {}
    packed = nm.packed_for(model_type)
    shard_of: dict[str, tuple[str, tuple[str, ...]]] = {s: (f, shards) for f, shards in packed.items() for s in shards}
    fused: dict[tuple[str, str], dict[str, Params]] = {}
    plain: list[tuple[str, Params]] = []
    #: container module -> {group: its unit's expert map}, or None when it is not a container.
    expert_maps: dict[str, dict[str, dict[int, dict[str, tuple[str, Params]]]] | None] = {}
    group_of = nm.expert_group.get
    for module, params in modules.items():
        parent, _, last = module.rpartition(".")
        grp = group_of(last)
        if grp is not None:
            # <container>.<e>.<proj>: string splits, not a regex, on ~50k expert modules.
            container, _, e = parent.rpartition(".")
            if container in expert_maps:
                maps = expert_maps[container]
            else:
                maps = expert_maps[container] = {} if container.rpartition(".")[2] in containers else None
            if maps is not None and e.isdigit():
                experts = maps.get(grp)
                if experts is None:  # units are created on first use: a group may be absent
                    experts = maps[grp] = _moe(moes, container, grp).experts
                n = int(e)
                if n in experts:
                    experts[n][last] = (module, params)
                else:
                    experts[n] = {last: (module, params)}
                continue
        if parent.rpartition(".")[2] in nm.containers and last in nm.fused_3d and _is_3d(params, nm):
            _moe(moes, parent, nm.fused_3d[last]).fused3d[last] = (module, params)
            continue
        g = _GGUF_BLOCK_RE.match(module)
        if g and g.group("p") in nm.gguf_fused_3d:
            unit = _moe(moes, f"{g.group('blk')}.ffn_exps", nm.gguf_fused_3d[g.group("p")])
            unit.fused3d[g.group("p")] = (module, params)
            continue
        if last in shard_of and parent:
            fname, _ = shard_of[last]
            fused.setdefault((parent, fname), {})[module] = params
            continue
        plain.append((module, params))

    linears: list[LinearUnit] = []
    for (parent, fname), members in fused.items():
        if len(members) >= 2 and f"{parent}.{fname}" not in modules:
            order = packed[fname]
            shards = tuple(sorted(members, key=lambda m: order.index(m.rpartition(".")[2])))
            linears.append(LinearUnit(f"{parent}.{fname}", LayerKind.LINEAR, shards, members, fused=True))
        else:
            plain.extend(members.items())
    for module, params in plain:
        kind = classify(module, params, nm)
        linears.append(LinearUnit(module, kind, (module,), {module: params}))
    linears.sort(key=lambda u: natural_key(u.name))
    moe_list = sorted(moes.values(), key=lambda u: (natural_key(u.name), u.kind is LayerKind.MOE_W2))
    for unit in moe_list:
        unit.projs = tuple(sorted({p for e in unit.experts.values() for p in e} | set(unit.fused3d),
                                  key=lambda p: _proj_order(p, nm)))
    return Discovery(linears, moe_list, attention)


def _proj_order(proj: str, nm: Naming) -> int:
    for w13, w2 in nm.per_expert:
        if proj in w13:
            return w13.index(proj)
        if proj == w2:
            return 0
    return 0


def _attn(units: dict[str, AttentionUnit], name: str) -> AttentionUnit:
    unit = units.get(name)
    if unit is None:
        unit = units[name] = AttentionUnit(name, {})
    return unit


def _moe(units: dict[tuple[str, str], MoEUnit], container: str, group: str) -> MoEUnit:
    key = (container, group)
    unit = units.get(key)
    if unit is None:
        kind = LayerKind.MOE_W13 if group == "w13" else LayerKind.MOE_W2
        unit = units[key] = MoEUnit(container, kind, (), {})
    return unit


def _is_3d(params: Params, nm: Naming) -> bool:
    return any(p in params and len(params[p].shape) == 3 for p in nm.weight_params)


def weight_of(params: Params, nm: Naming | None = None) -> TensorInfo | None:
    """The module's primary weight tensor, if any."""
    for p in (nm or naming()).weight_params:
        info = params.get(p)
        if info is not None:
            return info
    return None


def classify(module: str, params: Params, nm: Naming | None = None) -> LayerKind:
    """Kind of a non-MoE module, from its name and its weight."""
    nm = nm or naming()
    last = module.rpartition(".")[2]
    if last in nm.embeddings:
        return LayerKind.EMBEDDING
    if any(module == s or module.endswith("." + s) for s in nm.lm_heads):
        return LayerKind.LM_HEAD
    if any(n in last.lower() for n in nm.norms):
        return LayerKind.NORM
    weight = weight_of(params, nm)
    if any(module == s or module.endswith("." + s) for s in nm.routers):
        return LayerKind.ROUTER
    if weight is None or len(weight.shape) != 2:
        return LayerKind.OTHER
    return LayerKind.LINEAR
