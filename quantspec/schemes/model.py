"""Tensor contracts of the executable NPU schemes.

A :class:`SchemeSpec` says, for one (format family, scheme, matrix layer, on-disk layout),
which checkpoint tensors a module must carry (names relative to the module, dtypes and
shapes as expressions over ``N``/``K``...), how the logical ``N`` and ``K`` are read from the
primary weight, which torch_npu kernels run it, which weight transforms happen at load, how
many bytes the loaded tensors take, and the name of the executable scheme class the runtime
registers under the same key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from quantspec.schemes.expr import DimFn, compile_dim, compile_shape
from quantspec.transforms import Transform
from quantspec.vocab import Executable, FormatFamily, Layout, MatrixLayer, SchemeId

FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32"})
#: Bits per element of the canonical dtype names (inventory names, see ``plan.inventory``).
DTYPE_BITS: dict[str, int] = {
    "bool": 8, "int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32,
    "int64": 64, "uint64": 64, "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64,
    "float8_e4m3fn": 8, "float8_e5m2": 8, "float8_e4m3fnuz": 8, "float8_e5m2fnuz": 8,
    "float8_e8m0fnu": 8, "float4_e2m1fn_x2": 8, "float6_e2m3": 6, "float6_e3m2": 6,
}


class DtypeRule(StrEnum):
    """How a tensor role's dtype is decided."""

    #: One of the role's ``dtypes``.
    EXACT = "exact"
    #: The model dtype (``torch_dtype`` of config.json); any float when unknown.
    MODEL = "model"
    #: Any of float16, bfloat16, float32 (or the description's ``scale_dtype``).
    FLOAT = "float"
    #: ModelSlim W8A8 ``deq_scale``: float32 for bf16 models, int64 for fp16 models.
    DEQ_SCALE = "deq_scale"
    #: A GGML block type (or F16/BF16/F32) the NPU dequantizer accepts.
    GGML = "ggml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorRole(_Frozen):
    """One checkpoint tensor of a module, e.g. ``weight_scale`` fp ``[N, 1]``."""

    #: Name relative to the module (``weight``, ``k_proj.kv_cache_scale``...).
    name: str
    dtype: DtypeRule
    dtypes: tuple[str, ...] = ()
    #: Dimension expressions; None accepts any shape (KV scales: ``[1]`` or per channel).
    shape: tuple[str | int, ...] | None
    required: bool = True
    #: Required only for group-wise quantization (``group_size`` > 0), absent otherwise.
    grouped_only: bool = False
    #: For MoE: the role exists only for this weight group.
    moe_group: Literal["w13", "w2"] | None = None

    _shape_fns: tuple[DimFn, ...] | None = PrivateAttr(default=None)

    def model_post_init(self, __context: object) -> None:
        """Compile the shape once."""
        if self.shape is not None:
            self._shape_fns = compile_shape(self.shape)

    @property
    def shape_fns(self) -> tuple[DimFn, ...] | None:
        """Compiled shape expressions."""
        return self._shape_fns


class LoadedTensor(_Frozen):
    """A tensor as resident on the NPU after load (for ``bytes_after_load``)."""

    name: str
    #: Bits per element, or ``"model"`` for the model dtype.
    bits: int | Literal["model"]
    shape: tuple[str | int, ...]

    _shape_fns: tuple[DimFn, ...] = PrivateAttr(default=())

    def model_post_init(self, __context: object) -> None:
        """Compile the shape once."""
        self._shape_fns = compile_shape(self.shape)

    @property
    def shape_fns(self) -> tuple[DimFn, ...]:
        """Compiled shape expressions."""
        return self._shape_fns


class SchemeSpec(_Frozen):
    """The contract and execution recipe of one executable scheme."""

    family: FormatFamily
    #: None for the float (unquantized) specs.
    scheme: SchemeId | None
    layer: MatrixLayer
    layout: Layout
    #: Executable scheme class name; the runtime registers its class under the same key.
    executable: Executable
    #: Role whose shape gives ``N`` and ``K`` (``weight``, ``qweight``, ``weight_packed``).
    weight_role: str
    #: Expressions over the weight's dims ``s0``, ``s1`` (and ``pf``) giving ``N`` and ``K``.
    n_from: str
    k_from: str
    roles: tuple[TensorRole, ...]
    kernels: tuple[str, ...]
    transforms: tuple[Transform, ...] = ()
    loaded: tuple[LoadedTensor, ...] = ()

    _n_fn: DimFn | None = PrivateAttr(default=None)
    _k_fn: DimFn | None = PrivateAttr(default=None)

    def model_post_init(self, __context: object) -> None:
        """Compile the N/K expressions once."""
        self._n_fn = compile_dim(self.n_from)
        self._k_fn = compile_dim(self.k_from)

    @property
    def key(self) -> tuple[FormatFamily, SchemeId | None, MatrixLayer]:
        """The matrix key this spec implements."""
        return (self.family, self.scheme, self.layer)

    def role(self, name: str) -> TensorRole | None:
        """The role called ``name``, if any."""
        return next((r for r in self.roles if r.name == name), None)

    def dims(self, weight_shape: tuple[int, ...], pf: int) -> tuple[int | None, int | None]:
        """``(N, K)`` from the primary weight's last two dims."""
        if len(weight_shape) < 2:
            return (None, None)
        env = {"s0": weight_shape[-2], "s1": weight_shape[-1], "pf": pf}
        assert self._n_fn is not None and self._k_fn is not None
        return (self._n_fn(env), self._k_fn(env))
