"""Executable MoE experts: routing, two grouped matmuls and SwiGLU, all through the op layer.

:class:`QuantizedExperts` follows transformers v5's experts interface
``forward(hidden_states [T, H], top_k_index [T, k], top_k_weights [T, k]) -> [T, H]`` (as in
``Qwen3MoeExperts`` / ``MixtralExperts``), so it can replace ``model.layers.N.mlp.experts``.
The forward is the Ascend MoE pipeline (sglang_ascend.md 4.3, vllm_ascend.md 4.3,
torch_npu_ops.md 6): ``npu_moe_init_routing_v2`` (dropless, per-expert token counts) ->
``w13`` grouped matmul -> ``npu_swiglu`` (``silu(gate) * up``, gate first as in transformers'
``gate_up_proj``) -> ``w2`` grouped matmul -> ``npu_moe_finalize_routing`` (row-major indices,
``drop_pad_mode=2``) weighting each expert's output by its routing weight.

Each weight group (``w13`` = gate + up, ``w2`` = down) is an :class:`ExpertGroup` built
separately, so the two may use different schemes. A group class is registered per matrix key
``(FormatFamily, SchemeId)`` of :data:`~quantspec.vocab.MatrixLayer.MOE` (None scheme: float).
Building is incremental: :meth:`ExpertGroup.decode` turns one expert's checkpoint tensors
(one mapping per projection, gate before up) into canonical per-expert tensors that a
:class:`Stacker` writes into preallocated ``[E, ...]`` buffers, then :meth:`ExpertGroup.finish`
applies the grouped-layout transforms (transpose to ``[E, K, N]``, NZ cast, int4 packing...).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Literal, Self

import torch
from torch import Tensor, nn

from quantspec.description import QuantSpec
from quantspec.errors import Code, InvalidInput, reason
from quantspec.runtime.executables import record
from quantspec.runtime.ops.base import Ops
from quantspec.runtime.schemes.base import MODEL_DTYPES, check_model_dtype
from quantspec.vocab import FormatFamily, MatrixLayer, SchemeId

GroupName = Literal["w13", "w2"]


class Stacker:
    """Writes per-expert tensors into ``[E, ...]`` buffers allocated on the first expert."""

    def __init__(self, experts: int, device: torch.device | None = None) -> None:
        self.experts = experts
        self.device = device or torch.device("cpu")
        self.out: dict[str, Tensor] = {}

    def put(self, e: int, tensors: Mapping[str, Tensor | None]) -> None:
        """Store expert ``e``'s tensors (shapes must match expert 0's)."""
        for key, t in tensors.items():
            if t is None:
                continue
            buf = self.out.get(key)
            if buf is None:
                buf = self.out[key] = torch.empty((self.experts, *t.shape), dtype=t.dtype, device=self.device)
            if tuple(buf.shape[1:]) != tuple(t.shape) or buf.dtype != t.dtype:
                raise InvalidInput(reason(
                    Code.TENSOR_SHAPE, f"expert {e}: {key} is {t.dtype} {tuple(t.shape)}, expert 0 has "
                    f"{buf.dtype} {tuple(buf.shape[1:])}", where=key, hint="every expert must have the same layout"))
            buf[e].copy_(t)


class ExpertGroup(nn.Module):
    """One MoE weight group of every expert in the grouped layout, with its grouped matmul."""

    keys: ClassVar[tuple[tuple[FormatFamily, SchemeId | None], ...]] = ()
    #: Model (activation) dtypes the group's kernels accept; None accepts any.
    model_dtypes: ClassVar[tuple[torch.dtype, ...] | None] = MODEL_DTYPES

    def __init__(self, *, experts: int, n: int, k: int, model_dtype: torch.dtype, ops: Ops) -> None:
        super().__init__()
        self.experts = experts
        #: Output features (w13: 2 x intermediate) and input features of one expert.
        self.n = n
        self.k = k
        self.model_dtype = model_dtype
        self.ops = ops

    @classmethod
    @abstractmethod
    def decode(
        cls, projs: Sequence[Mapping[str, Tensor]], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> dict[str, Tensor | None]:
        """Canonical tensors of one expert from its projections' checkpoint tensors (gate first).

        ``n`` and ``k`` are one projection's (this rank's) output and input features.
        """

    @classmethod
    def finish(
        cls, stacked: dict[str, Tensor], quant: QuantSpec | None, *, n: int, k: int, group: GroupName,
        model_dtype: torch.dtype, ops: Ops,
    ) -> Self:
        """Build the module from the stacked ``[E, ...]`` canonical tensors (``n``: all projections).

        Checks the model dtype against :attr:`model_dtypes`, builds the module and hands the
        tensors to the class's :meth:`_finish`.
        """
        if cls.model_dtypes is not None:
            check_model_dtype(model_dtype, cls.model_dtypes)
        experts = next(iter(stacked.values())).size(0)
        self = cls(experts=experts, n=n, k=k, model_dtype=model_dtype, ops=ops)
        self._finish(stacked, quant, group)
        return self

    @abstractmethod
    def _finish(self, stacked: dict[str, Tensor], quant: QuantSpec | None, group: GroupName) -> None:
        """Repack the stacked tensors into the grouped layout and register them as buffers."""

    @abstractmethod
    def forward(self, x: Tensor, group_list: Tensor) -> Tensor:
        """``[M, K]`` routed rows (model dtype, sorted by expert) to ``[M, N]``; ``group_list``: counts."""

    def extra_repr(self) -> str:
        return f"experts={self.experts}, n={self.n}, k={self.k}, dtype={self.model_dtype}"


_GROUPS: dict[tuple[FormatFamily, SchemeId | None], type[ExpertGroup]] = {}


def register_moe(
    family: FormatFamily, scheme: SchemeId | None
) -> Callable[[type[ExpertGroup]], type[ExpertGroup]]:
    """Class decorator: register an expert-group class for ``(family, scheme, moe)``."""

    def deco(cls: type[ExpertGroup]) -> type[ExpertGroup]:
        key = (family, scheme)
        if key in _GROUPS and _GROUPS[key] is not cls:
            raise ValueError(f"MoE group {key} registered twice")
        _GROUPS[key] = cls
        cls.keys = (*cls.keys, key)
        record(cls)
        return cls

    return deco


def moe_group_for(family: FormatFamily, scheme: SchemeId | None) -> type[ExpertGroup]:
    """The expert-group class of matrix key ``(family, scheme, moe)``; float when ``scheme`` is None."""
    key = (FormatFamily.UNQUANTIZED, None) if scheme is None else (family, scheme)
    try:
        return _GROUPS[key]
    except KeyError:
        raise InvalidInput(reason(
            Code.PLAN_NO_SCHEME,
            f"no runtime MoE scheme for ({family.value}, {scheme.value if scheme else 'float'}, "
            f"{MatrixLayer.MOE.value})", hint="the support matrix marks this cell unsupported, or the runtime lacks it",
        )) from None


def registered_moe() -> dict[tuple[FormatFamily, SchemeId | None], type[ExpertGroup]]:
    """Every registered MoE key and its class."""
    return dict(_GROUPS)


class QuantizedExperts(nn.Module):
    """MoE experts of one layer: ``w13`` and ``w2`` groups run on the routing and grouped-matmul ops."""

    def __init__(self, w13: ExpertGroup, w2: ExpertGroup, *, ops: Ops, model_dtype: torch.dtype) -> None:
        super().__init__()
        if w13.experts != w2.experts or w13.n != 2 * w2.k:
            raise InvalidInput(reason(
                Code.TENSOR_SHAPE, f"w13 ({w13.experts} experts, N={w13.n}) and w2 ({w2.experts} experts, "
                f"K={w2.k}) do not fit: w13 N must be twice w2 K", where="experts"))
        self.w13 = w13
        self.w2 = w2
        self.num_experts = w13.experts
        self.hidden_dim = w2.n
        self.ops = ops
        self.model_dtype = model_dtype

    def forward(self, hidden_states: Tensor, top_k_index: Tensor, top_k_weights: Tensor) -> Tensor:
        """Route ``[T, H]`` tokens to their top-k experts and combine the outputs with their weights."""
        ops, e = self.ops, self.num_experts
        t, kk = top_k_index.shape
        x = hidden_states.to(self.model_dtype)
        expanded, row_idx, counts, _ = ops.npu_moe_init_routing_v2(
            x, top_k_index.to(torch.int32), active_num=t * kk, expert_num=e, expert_tokens_num_type=1,
            expert_tokens_num_flag=True, active_expert_range=[0, e], quant_mode=-1, row_idx_type=0,
        )
        h = ops.npu_swiglu(self.w13(expanded, counts))
        y = self.w2(h, counts)
        out = ops.npu_moe_finalize_routing(
            y, None, None, None, top_k_weights.to(y.dtype), row_idx, top_k_index.to(torch.int32), drop_pad_mode=2,
        )
        return out.to(hidden_states.dtype)

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, hidden_dim={self.hidden_dim}"
