"""Pydantic model of ``support_matrix.yaml``.

The matrix answers "what runs where, under which conditions" as data: one entry per
(format family, scheme, layer type), with a status per NPU generation, the diffusion-model
status where the seed gives one, the NPU kernels used, requirements and kernel constraints,
each with its source. ``schemas/support_matrix.schema.json`` is generated from this model.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from quantspec.vocab import FormatFamily, MatrixLayer, Mode, NpuGen, SchemeId, Status

SCHEMA_VERSION = 2
_MATRIX_VERSION_RE = re.compile(r"^\d{4}\.\d{2}\.\d+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusByGen(_Frozen):
    """Status on each NPU generation."""

    a2: Status
    a3: Status
    a5: Status

    def get(self, gen: NpuGen) -> Status:
        """Status on ``gen``."""
        return Status(getattr(self, gen.value))


class DiffusionSupport(_Frozen):
    """Diffusion-model support of a scheme (the seed's diffusion table and column)."""

    status: StatusByGen
    mode: Mode
    #: How the scheme is selected, e.g. ``--quantization mxfp8``.
    trigger: str


class RequirementKind(StrEnum):
    """What a requirement constrains."""

    SOC = "soc"
    CANN = "cann"
    TORCH_NPU = "torch_npu"


class Requirement(_Frozen):
    """A software or hardware prerequisite, e.g. CANN >= 8.0.RC3."""

    kind: RequirementKind
    #: For ``soc`` a generation (``a5``); for versions the minimum version.
    value: str
    source: str

    def render(self) -> str:
        """Human wording, e.g. ``CANN >= 8.0.RC3``."""
        if self.kind is RequirementKind.SOC:
            return f"Ascend {self.value.upper()}"
        name = "CANN" if self.kind is RequirementKind.CANN else "torch_npu"
        return f"{name} >= {self.value}"


class ConstraintId(StrEnum):
    """Kernel constraints the planner knows how to check (one checker per id, bound by a test)."""

    #: NZ (FRACTAL_NZ) alignment of the weight's last two dims; violating it falls back to ND.
    NZ_ALIGNMENT = "nz_alignment"
    #: ``antiquant_group_size`` must be a multiple of ``multiple`` and smaller than K.
    ANTIQUANT_GROUP = "antiquant_group"
    #: int4 weights in NZ accept only these group sizes (``values``).
    INT4_NZ_GROUP = "int4_nz_group"
    #: The grouped A8W4 kernel: per-group scales only with group size ``group`` and K <= ``k_max``.
    A8W4_GROUP = "a8w4_group"
    #: MX block size ``block`` along K, K a multiple of ``k_multiple`` (scales in pairs).
    MX_BLOCK = "mx_block"
    #: A dimension (``dim``: ``k`` or ``n``) must be a multiple of ``multiple``.
    DIM_MULTIPLE = "dim_multiple"
    #: Allowed weight bit widths (``values``).
    WEIGHT_BITS = "weight_bits"
    #: Allowed model dtypes (``values``), e.g. W8A8 static needs fp16 or bf16.
    MODEL_DTYPE = "model_dtype"
    #: Tensor-parallel size must not exceed ``max``.
    MAX_TP = "max_tp"
    #: GPTQ act-order (non-trivial ``g_idx``) is executed by permuting K at load.
    ACT_ORDER = "act_order"
    #: Weights are dequantized to fp16/bf16 at load: no memory saving.
    DEQUANT_AT_LOAD = "dequant_at_load"
    #: Every expert of a MoE layer and every shard of a fused layer must share the scheme.
    UNIFORM_SHARDS = "uniform_shards"


class _Params(_Frozen):
    """Parameters of one constraint kind: unknown keys are refused (a typo is an error, not a default)."""


class NzAlignmentParams(_Params):
    """``dtype`` of the weight NZ is checked for (default: the stored weight dtype)."""

    dtype: Literal["int8", "int4", "uint8", "int32", "float16", "bfloat16"] | None = None


class MultipleParams(_Params):
    """A multiple (``antiquant_group``: of the group size)."""

    multiple: int = Field(32, ge=1)


class ValuesParams(_Params):
    """Allowed integer values (group sizes, bit widths)."""

    values: tuple[int, ...] = Field(min_length=1)


class DtypeValuesParams(_Params):
    """Allowed model dtypes."""

    values: tuple[Literal["float16", "bfloat16", "float32"], ...] = Field(min_length=1)


class A8W4GroupParams(_Params):
    """The grouped A8W4 kernel's group size and K limit."""

    group: int = Field(256, ge=1)
    k_max: int = Field(18432, ge=1)


class MxBlockParams(_Params):
    """MX block size along K and the multiple K must be."""

    block: int = Field(32, ge=1)
    k_multiple: int = Field(64, ge=1)


class DimMultipleParams(_Params):
    """Dimensions (``k``, ``n``) that must be multiples of ``multiple``."""

    dims: tuple[Literal["k", "n"], ...] = Field(("k",), min_length=1)
    multiple: int = Field(ge=1)


class MaxParams(_Params):
    """An upper bound."""

    max: int = Field(ge=1)


class NoParams(_Params):
    """A constraint without parameters."""


class _ConstraintBase(_Frozen):
    text: str
    source: str


class NzAlignment(_ConstraintBase):
    """NZ (FRACTAL_NZ) alignment of the weight's last two dims; violating it falls back to ND."""

    id: Literal[ConstraintId.NZ_ALIGNMENT]
    params: NzAlignmentParams = NzAlignmentParams()


class AntiquantGroup(_ConstraintBase):
    """``antiquant_group_size`` must be a multiple of ``multiple`` and smaller than K."""

    id: Literal[ConstraintId.ANTIQUANT_GROUP]
    params: MultipleParams = MultipleParams()


class Int4NzGroup(_ConstraintBase):
    """int4 weights in NZ accept only these group sizes."""

    id: Literal[ConstraintId.INT4_NZ_GROUP]
    params: ValuesParams = ValuesParams(values=(64, 128))


class A8W4Group(_ConstraintBase):
    """The grouped A8W4 kernel: per-group scales only with ``group`` and K <= ``k_max``."""

    id: Literal[ConstraintId.A8W4_GROUP]
    params: A8W4GroupParams = A8W4GroupParams()


class MxBlock(_ConstraintBase):
    """MX block size along K, K a multiple of ``k_multiple``."""

    id: Literal[ConstraintId.MX_BLOCK]
    params: MxBlockParams = MxBlockParams()


class DimMultiple(_ConstraintBase):
    """Dimensions that must be multiples of ``multiple``."""

    id: Literal[ConstraintId.DIM_MULTIPLE]
    params: DimMultipleParams


class WeightBits(_ConstraintBase):
    """Allowed weight bit widths."""

    id: Literal[ConstraintId.WEIGHT_BITS]
    params: ValuesParams


class ModelDtype(_ConstraintBase):
    """Allowed model dtypes."""

    id: Literal[ConstraintId.MODEL_DTYPE]
    params: DtypeValuesParams


class MaxTp(_ConstraintBase):
    """Tensor-parallel size at most ``max``."""

    id: Literal[ConstraintId.MAX_TP]
    params: MaxParams


class ActOrder(_ConstraintBase):
    """Act-order weights run by permuting K at load."""

    id: Literal[ConstraintId.ACT_ORDER]
    params: NoParams = NoParams()


class DequantAtLoad(_ConstraintBase):
    """Weights dequantized at load (no memory saving)."""

    id: Literal[ConstraintId.DEQUANT_AT_LOAD]
    params: NoParams = NoParams()


class UniformShards(_ConstraintBase):
    """Every expert and every shard of a fused layer shares the scheme."""

    id: Literal[ConstraintId.UNIFORM_SHARDS]
    params: NoParams = NoParams()


#: One kernel constraint, its parameters typed by its ``id`` (a discriminated union): a parameter
#: the kind does not have, or a value of the wrong type, is refused with its path in the file.
Constraint = Annotated[
    NzAlignment | AntiquantGroup | Int4NzGroup | A8W4Group | MxBlock | DimMultiple | WeightBits | ModelDtype
    | MaxTp | ActOrder | DequantAtLoad | UniformShards,
    Field(discriminator="id"),
]


class MatrixEntry(_Frozen):
    """Support of one (format family, scheme, layer type)."""

    family: FormatFamily
    scheme: SchemeId
    layer: MatrixLayer
    #: The seed's wording in its "Quantization scheme" column, e.g. ``W8A8 dynamic``.
    label: str
    #: Value of the per-tensor entries in ``quant_model_description.json`` (ModelSlim).
    quant_type: str | None = None
    #: Scheme class named by the seed (SGLang), e.g. ``ModelSlimW8A8Int8``.
    scheme_class: str | None = None
    status: StatusByGen
    diffusion: DiffusionSupport | None = None
    #: torch_npu kernels the executable scheme calls.
    kernels: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    #: Ids of ``sources`` that back this entry.
    sources: tuple[str, ...] = Field(min_length=1)
    notes: str | None = None

    @property
    def key(self) -> str:
        """Stable entry id, ``family/scheme/layer``."""
        return f"{self.family.value}/{self.scheme.value}/{self.layer.value}"

    def constraint(self, cid: ConstraintId) -> Constraint | None:
        """The constraint with id ``cid``, if the entry has one."""
        return next((c for c in self.constraints if c.id is cid), None)


class ChangelogItem(_Frozen):
    """One released matrix version."""

    version: str
    date: str
    changes: tuple[str, ...] = Field(min_length=1)


class Source(_Frozen):
    """A document that backs matrix statements."""

    title: str
    ref: str


class SupportMatrix(_Frozen):
    """The whole support matrix: versioned, sourced entries."""

    schema_version: Literal[2]
    #: ``YYYY.MM.patch``.
    matrix_version: str
    changelog: tuple[ChangelogItem, ...] = Field(min_length=1)
    sources: dict[str, Source]
    entries: tuple[MatrixEntry, ...]

    _index_cache: dict[tuple[FormatFamily, SchemeId, MatrixLayer], MatrixEntry] | None = PrivateAttr(
        default=None
    )

    @field_validator("matrix_version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not _MATRIX_VERSION_RE.match(value):
            raise ValueError(f"matrix_version {value!r} is not of the form YYYY.MM.patch")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SupportMatrix:
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.entries):
            if entry.key in seen:
                raise ValueError(
                    f"duplicate entry {entry.key} at /entries/{i} (first at /entries/{seen[entry.key]})"
                )
            seen[entry.key] = i
            for src in entry.sources:
                if src not in self.sources:
                    raise ValueError(f"entry {entry.key} cites unknown source {src!r}")
        if self.changelog[0].version != self.matrix_version:
            raise ValueError("the first changelog item must describe the current matrix_version")
        return self

    def lookup(self, family: FormatFamily, scheme: SchemeId, layer: MatrixLayer) -> MatrixEntry | None:
        """The entry for (family, scheme, layer), or None when the matrix has no row."""
        return self._index().get((family, scheme, layer))

    def _index(self) -> dict[tuple[FormatFamily, SchemeId, MatrixLayer], MatrixEntry]:
        if self._index_cache is None:
            self._index_cache = {(e.family, e.scheme, e.layer): e for e in self.entries}
        return self._index_cache

    def select(
        self,
        *,
        family: FormatFamily | None = None,
        layer: MatrixLayer | None = None,
        scheme: SchemeId | None = None,
    ) -> tuple[MatrixEntry, ...]:
        """Entries matching every given filter, in file order."""
        return tuple(
            e
            for e in self.entries
            if (family is None or e.family is family)
            and (layer is None or e.layer is layer)
            and (scheme is None or e.scheme is scheme)
        )
