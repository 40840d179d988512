"""The result of :func:`~quantspec.load_quantized`: executable modules, float tensors, installation.

:meth:`QuantizedModel.install` puts the loaded checkpoint into an ``nn.Module`` of the same
architecture, typically a transformers model built from ``config.json`` on the meta device:

1. every executable module replaces the submodule of the same name (checkpoint aliases such as
   Mixtral's ``block_sparse_moe`` -> ``mlp`` are applied; MoE experts replace the whole
   ``experts`` submodule, whatever its parameters, e.g. v5's fused ``gate_up_proj``/``down_proj``);
   separate checkpoint shards (``q_proj``/``k_proj``/``v_proj``) of a module that the model fuses
   (``qkv_proj``) are installed as one :class:`ConcatLinear`;
2. every remaining parameter and persistent buffer is filled from the float tensors (meta
   parameters are materialized); a missing ``lm_head.weight`` is tied to the input embeddings
   when the config ties them;
3. modules left with non-persistent meta buffers (rotary ``inv_freq``) are re-created from
   their ``config`` on the cpu.

Anything the checkpoint does not provide raises :class:`~quantspec.errors.InvalidInput` naming it,
and every change made so far is undone: a failed ``install`` leaves the model as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from quantspec.errors import Code, InvalidInput, reason
from quantspec.plan import Plan, naming
from quantspec.runtime.loader.tp import Parallel, TensorParallel
from quantspec.runtime.ops.base import Ops
from quantspec.runtime.schemes.base import LinearScheme

M = TypeVar("M", bound=nn.Module)

#: Checkpoint module-name spellings -> the transformers v5 module names (data, not code).
ALIASES: tuple[tuple[str, str], ...] = ((".block_sparse_moe.", ".mlp."),)


def to_model_name(name: str) -> str:
    """A checkpoint name in the transformers module namespace."""
    for old, new in ALIASES:
        name = name.replace(old, new)
    return name


class ConcatLinear(nn.Module):
    """Shards of a fused linear (``q_proj``, ``k_proj``, ``v_proj``) run separately and concatenated."""

    def __init__(self, shards: Iterable[nn.Module]) -> None:
        super().__init__()
        self.shards = nn.ModuleList(shards)

    def forward(self, x: Tensor) -> Tensor:
        """Outputs of every shard, concatenated along the last dim in shard order."""
        return torch.cat([s(x) for s in self.shards], dim=-1)


def _get(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


class _Journal:
    """Undo log of an installation: a failed ``install`` leaves the model as it found it."""

    def __init__(self) -> None:
        self.undo: list[tuple[dict[str, object], str, object]] = []

    def put(self, table: dict[str, Any], key: str, value: object) -> None:
        """``table[key] = value``, remembering the previous value."""
        self.undo.append((table, key, table.get(key, _ABSENT)))
        table[key] = value

    def rollback(self) -> None:
        """Restore every changed entry, newest first."""
        for table, key, old in reversed(self.undo):
            if old is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = old
        self.undo.clear()


_ABSENT = object()


def _set(model: nn.Module, name: str, module: nn.Module, journal: _Journal) -> None:
    parent, _, leaf = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    if leaf not in owner._modules:
        raise InvalidInput(reason(Code.USAGE, f"{name} is not a submodule of the model", where=name))
    journal.put(owner._modules, leaf, module)


class QuantizedModel:
    """A loaded quantized checkpoint: the plan, executable modules and float tensors."""

    def __init__(self, *, plan: Plan, modules: dict[str, nn.Module], tensors: dict[str, Tensor],
                 parallel: dict[str, Parallel], tp: TensorParallel, model_dtype: torch.dtype, ops: Ops,
                 aliases: dict[str, str] | None = None) -> None:
        #: The plan the checkpoint was loaded with.
        self.plan = plan
        #: Checkpoint module name (``model.layers.0.self_attn.q_proj``, ``model.layers.3.mlp.experts``)
        #: -> executable module; Diffusers components prefix their names with ``<component>.``.
        self.modules = modules
        #: How each sharded module or float weight splits under tensor parallelism.
        self.parallel = parallel
        self.tp = tp
        self.model_dtype = model_dtype
        self.ops = ops
        self._tensors = tensors
        #: Other module spellings the checkpoint's tensors may be installed under (GGUF).
        self.aliases = dict(aliases or {})

    def state_dict(self) -> dict[str, Tensor]:
        """Float tensors under their checkpoint names plus every module's processed tensors
        (``<module>.<buffer>``, e.g. ``...q_proj.weight`` int8 ``[K, N]``, ``...q_proj.weight_scale``)."""
        out = dict(self._tensors)
        for name, module in self.modules.items():
            for buf, t in module.named_buffers():
                out[f"{name}.{buf}"] = t
        return out

    @property
    def float_tensors(self) -> dict[str, Tensor]:
        """The float (and other unquantized) tensors by checkpoint name."""
        return dict(self._tensors)

    def __repr__(self) -> str:
        return (f"QuantizedModel({len(self.modules)} modules, {len(self._tensors)} float tensors, "
                f"target={self.plan.target.value}, tp={self.tp.rank}/{self.tp.size})")

    # ------------------------------------------------------------------ install
    def install(self, model: M, *, component: str | None = None) -> M:
        """Swap the executable modules into ``model`` and fill its float weights (see module docstring).

        ``component`` selects a Diffusers component (``transformer``) of a pipeline load.
        Returns ``model``.
        """
        if self.tp.active:
            raise InvalidInput(reason(
                Code.USAGE, f"install() needs an unsharded load; this one is rank {self.tp.rank} of {self.tp.size}",
                hint="with tp_size > 1 use .modules in your engine and all-reduce row-parallel outputs"))
        pre = f"{component}." if component else ""
        modules = {k[len(pre):]: v for k, v in self.modules.items() if k.startswith(pre)}
        tensors = {to_model_name(k[len(pre):]): v for k, v in self._tensors.items() if k.startswith(pre)}
        for alt, loaded in self.aliases.items():
            if not alt.startswith(pre):
                continue
            alt_name, loaded_name = to_model_name(alt[len(pre):]), to_model_name(loaded[len(pre):])
            for name in [n for n in tensors if n.startswith(loaded_name + ".")]:
                tensors.setdefault(alt_name + name[len(loaded_name):], tensors[name])
        journal = _Journal()
        try:
            self._swap(model, modules, journal)
            self._fill(model, tensors, journal)
            self._rebuild_meta_buffers(model, journal)
        except BaseException:
            journal.rollback()
            raise
        return model

    def _swap(self, model: nn.Module, modules: dict[str, nn.Module], journal: _Journal) -> None:
        pending: dict[str, nn.Module] = {}
        for name, module in modules.items():
            target = to_model_name(name)
            existing = _get(model, target)
            if existing is None:
                pending[target] = module
                continue
            if isinstance(module, LinearScheme) and not isinstance(existing, nn.Linear):
                # Replacing e.g. a transformers MoE router (its forward returns a tuple) with a linear
                # would break the model at the first forward, far from the cause.
                raise InvalidInput(reason(
                    Code.USAGE, f"{target} is a {type(existing).__name__}, not a linear: the quantized "
                    f"{type(module).__name__} loaded for it cannot replace it", where=target,
                    hint="the checkpoint quantizes a module the model does not run as a linear (a MoE router?); "
                         "re-export it float"))
            _set(model, target, module, journal)
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        for fused, shards in naming().packed_for(model_type).items():
            parents = {n.rpartition(".")[0] for n in pending if n.rpartition(".")[2] in shards}
            for parent in parents:
                names = [f"{parent}.{s}" for s in shards]
                if all(n in pending for n in names) and _get(model, f"{parent}.{fused}") is not None:
                    _set(model, f"{parent}.{fused}", ConcatLinear(pending.pop(n) for n in names), journal)
        if pending:
            missing = sorted(pending)
            raise InvalidInput(reason(
                Code.USAGE, f"the model has no submodule for {len(missing)} loaded module(s): {', '.join(missing[:5])}",
                where=missing[0], hint="build the model from the checkpoint's config.json (same architecture)"))

    def _fill(self, model: nn.Module, tensors: dict[str, Tensor], journal: _Journal) -> None:
        missing: list[str] = []
        for name, param in list(model.named_parameters(remove_duplicate=False)):
            if not self._assign(model, name, tensors, journal, is_param=True, current=param):
                missing.append(name)
        persistent: set[str] = set()
        for mod_name, mod in model.named_modules(remove_duplicate=False):
            persistent.update(f"{mod_name}.{b}" if mod_name else b for b in mod._buffers
                              if b not in mod._non_persistent_buffers_set)
        for name, buf in list(model.named_buffers(remove_duplicate=False)):
            if name in tensors:
                self._assign(model, name, tensors, journal, is_param=False, current=buf)
            elif name in persistent and buf.is_meta:
                missing.append(name)
        if missing:
            missing = self._tie(model, missing, journal)
        if missing:
            raise InvalidInput(reason(
                Code.TENSOR_MISSING, f"{len(missing)} weight(s) of the model are not in the checkpoint: "
                f"{', '.join(missing[:5])}", where=missing[0],
                hint="the model and the checkpoint do not match (architecture or config)"))

    def _assign(self, model: nn.Module, name: str, tensors: dict[str, Tensor], journal: _Journal, *,
                is_param: bool, current: Tensor) -> bool:
        t = tensors.get(name)
        if t is None:
            return False
        if tuple(t.shape) != tuple(current.shape):
            raise InvalidInput(reason(Code.TENSOR_SHAPE, f"{name}: checkpoint {list(t.shape)} != model "
                                      f"{list(current.shape)}", where=name))
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        if is_param:
            journal.put(owner._parameters, leaf, nn.Parameter(t, requires_grad=False))
        else:
            journal.put(owner._buffers, leaf, t)
        return True

    def _tie(self, model: nn.Module, missing: list[str], journal: _Journal) -> list[str]:
        """Tie a missing output embedding to the input embedding when the config says so."""
        cfg = getattr(model, "config", None)
        get_in = getattr(model, "get_input_embeddings", None)
        get_out = getattr(model, "get_output_embeddings", None)
        if cfg is None or get_in is None or get_out is None:
            return missing
        tie = getattr(cfg, "tie_word_embeddings", False)
        text_cfg = getattr(cfg, "get_text_config", None)
        if not tie and callable(text_cfg):
            tie = getattr(text_cfg(), "tie_word_embeddings", False)
        out_mod, in_mod = get_out(), get_in()
        if not tie or out_mod is None or in_mod is None:
            return missing
        out_name = next((n for n, m in model.named_modules() if m is out_mod), None)
        if out_name is None or f"{out_name}.weight" not in missing:
            return missing
        journal.put(out_mod._parameters, "weight", in_mod.weight)
        return [m for m in missing if m != f"{out_name}.weight"]

    def _rebuild_meta_buffers(self, model: nn.Module, journal: _Journal) -> None:
        for name, mod in list(model.named_modules()):
            if not any(b is not None and b.is_meta for b in mod._buffers.values()):
                continue
            cfg = getattr(mod, "config", None)
            if cfg is None or not name:
                raise InvalidInput(reason(Code.TENSOR_MISSING, f"{name or 'model'} keeps meta buffers "
                                          f"({', '.join(mod._buffers)}) that the checkpoint does not provide",
                                          where=name, hint="build the model on the cpu instead of the meta device"))
            with torch.device("cpu"):
                _set(model, name, type(mod)(cfg), journal)
