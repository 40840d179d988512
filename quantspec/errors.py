"""Errors and findings.

Everything quantspec reports, fatal or not, is a :class:`Reason`: a stable dotted code, a
human message, the file and the location inside it (a JSON pointer, a tensor or a layer
name), and a hint saying what to do. Fatal problems raise one exception type,
:class:`QuantspecError`, which carries every reason found, not only the first::

    QuantspecError                  exit code 2 unless said otherwise
    ├── InvalidInput                unreadable or malformed input (files, arguments)
    │   ├── InvalidMatrix           support_matrix.yaml does not validate
    │   └── InvalidCheckpoint       a checkpoint description or tensor file is malformed
    ├── PlanRejected                exit 1: the plan rejects layers (load_quantized)
    ├── BackendUnavailable          the npu backend cannot be used here (no torch_npu)
    └── KernelArgumentError         an op received arguments its contract forbids
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Code(StrEnum):
    """Stable error and finding codes. Never renumber or rename: users grep for these."""

    # input / files
    FILE_NOT_FOUND = "input.file_not_found"
    NOT_A_DIRECTORY = "input.not_a_directory"
    INVALID_JSON = "input.invalid_json"
    INVALID_YAML = "input.invalid_yaml"
    NOT_UTF8 = "input.not_utf8"
    DUPLICATE_KEY = "input.duplicate_key"
    FILE_TOO_LARGE = "input.file_too_large"
    SYMLINK_ESCAPE = "input.symlink_escape"
    PATH_ESCAPE = "input.path_escape"
    #: A path that cannot name a file: NUL or control characters, too long, a symlink loop.
    BAD_PATH = "input.bad_path"
    #: A FIFO, device, socket or directory where a regular file is expected.
    NOT_A_FILE = "input.not_a_file"
    PERMISSION = "input.permission_denied"
    USAGE = "input.usage"
    WRITE_FAILED = "input.write_failed"
    OUTPUT_EXISTS = "input.output_exists"

    # installation
    #: A file quantspec ships as package data is missing (a broken install).
    PACKAGE_DATA = "install.package_data_missing"

    # support matrix
    MATRIX_SCHEMA = "matrix.schema"
    MATRIX_DUPLICATE = "matrix.duplicate_entry"
    MATRIX_UNKNOWN_VALUE = "matrix.unknown_value"
    MATRIX_VERSION = "matrix.unsupported_schema_version"
    MATRIX_NO_ENTRY = "matrix.no_entry"
    MATRIX_UNSUPPORTED = "matrix.unsupported"
    MATRIX_UNTESTED = "matrix.untested"
    MATRIX_IN_PROGRESS = "matrix.in_progress"
    #: ``naming.yaml`` (the planner's module-naming data) does not validate.
    NAMING_SCHEMA = "naming.schema"

    # checkpoint descriptions
    FORMAT_SCHEMA = "format.schema"
    FORMAT_MISSING_FIELD = "format.missing_field"
    FORMAT_WRONG_TYPE = "format.wrong_type"
    FORMAT_UNKNOWN_VALUE = "format.unknown_value"
    FORMAT_UNSUPPORTED = "format.unsupported_format"
    FORMAT_CONFLICT = "format.sources_disagree"
    FORMAT_INVALID_PATTERN = "format.invalid_pattern"
    FORMAT_NOTE = "format.note"
    #: A description the engines do not read under its name (``quant_model_description_<type>.json``).
    FORMAT_MISNAMED = "format.misnamed_description"

    # tensors / safetensors / gguf
    TENSOR_HEADER = "tensor.bad_header"
    TENSOR_MISSING = "tensor.missing"
    TENSOR_DTYPE = "tensor.dtype_mismatch"
    TENSOR_SHAPE = "tensor.shape_mismatch"
    TENSOR_VALUE = "tensor.bad_value"
    TENSOR_TRUNCATED = "tensor.truncated"
    TENSOR_PICKLE = "tensor.pickle_refused"

    # planning
    PLAN_NO_SCHEME = "plan.no_scheme"
    PLAN_SHARD_MISMATCH = "plan.shard_mismatch"
    PLAN_EXPERT_MISMATCH = "plan.expert_mismatch"
    PLAN_QUANTIZED_EMBEDDING = "plan.quantized_embedding"
    PLAN_QUANTIZED_ROUTER = "plan.quantized_router"
    PLAN_PRODUCER_DEFECT = "plan.producer_defect"
    PLAN_CONSTRAINT = "plan.kernel_constraint"
    PLAN_TP = "plan.tensor_parallel"
    #: A rank's weights, KV cache and reserve exceed its device memory.
    PLAN_DOES_NOT_FIT = "plan.does_not_fit"
    #: An expert-parallel placement rule of an engine (``plan/parallel.yaml``).
    PLAN_EXPERT_PARALLEL = "plan.expert_parallel"
    PLAN_REQUIREMENT = "plan.requirement"
    #: No longer emitted (each kind of warning has its own code below); kept so the code stays stable.
    PLAN_WARNING = "plan.warning"
    #: An explicit fallback of the policy was applied (ND layout, dequantize at load, K permutation).
    PLAN_FALLBACK = "plan.fallback"
    #: An untested or in-progress matrix cell accepted by --allow-untested.
    PLAN_UNTESTED_ACCEPTED = "plan.untested_accepted"
    #: A router the description names quantized is stored float: planned float.
    PLAN_ROUTER_FLOAT = "plan.router_float"
    #: The model dtype was inferred from the tensors (config.json has none).
    PLAN_DTYPE_INFERRED = "plan.dtype_inferred"
    #: The tensors settle a layout the description's label does not (int4 storage).
    PLAN_LAYOUT_FROM_TENSORS = "plan.layout_from_tensors"
    #: A group size inferred from the tensors (the description has none).
    PLAN_GROUP_INFERRED = "plan.group_inferred"
    #: Weight files that the index does not list (engines that glob would load them).
    PLAN_STRAY_FILES = "plan.stray_weight_files"
    #: KV-cache tensors present without a KV-cache declaration in the description.
    PLAN_UNDECLARED_KV = "plan.undeclared_kv_cache"

    # runtime
    BACKEND_UNAVAILABLE = "runtime.backend_unavailable"
    KERNEL_ARGUMENT = "runtime.kernel_argument"
    RUNTIME_BAD_TENSOR = "runtime.bad_tensor"
    RUNTIME_LOAD = "runtime.load_failed"

    # repack (quantspec repack wan)
    REPACK_RENAME_COLLISION = "repack.rename_collision"
    REPACK_LAYOUT = "repack.layout"
    REPACK_UNDESCRIBED_TENSOR = "repack.undescribed_tensor"
    REPACK_DUPLICATE_TENSOR = "repack.duplicate_tensor"
    REPACK_INDEX_MISMATCH = "repack.index_mismatch"


#: The reason for a quantized embedding in a diffusion model (the seed: "SGLang does not support
#: quantized embeddings; disable embedding quantization when using msmodelslim").
DIFFUSION_EMBEDDING_MESSAGE = "quantized embeddings are not supported; disable embedding quantization in msModelSlim"


class Reason(BaseModel):
    """One finding: what is wrong, where, and what to do about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    message: str
    #: The file the finding is about, when there is one.
    file: str | None = None
    #: Location inside the file (a JSON pointer such as ``/quantization_config/bits``),
    #: or a tensor, layer or matrix entry name.
    where: str | None = None
    hint: str | None = None

    def render(self) -> str:
        """One-line human rendering: ``[code] message (at file#where) hint: ...``."""
        loc = ""
        if self.file and self.where:
            loc = f" (at {self.file}#{self.where})" if self.where.startswith("/") else (
                f" (at {self.file}: {self.where})"
            )
        elif self.file or self.where:
            loc = f" (at {self.file or self.where})"
        tail = f"\n    hint: {self.hint}" if self.hint else ""
        return f"[{self.code.value}] {self.message}{loc}{tail}"


class QuantspecError(Exception):
    """Base of every quantspec exception; carries all the reasons found."""

    exit_code: int = 2

    def __init__(self, reasons: Reason | Iterable[Reason]) -> None:
        self.reasons: tuple[Reason, ...] = (reasons,) if isinstance(reasons, Reason) else tuple(reasons)
        if not self.reasons:
            raise ValueError("a QuantspecError needs at least one reason")
        super().__init__("\n".join(r.render() for r in self.reasons))

    @property
    def code(self) -> Code:
        """Code of the first reason (convenience for tests and callers)."""
        return self.reasons[0].code


class InvalidInput(QuantspecError):
    """Unreadable or malformed input: files, arguments, options."""


class InvalidMatrix(InvalidInput):
    """The support matrix file does not validate."""


class InvalidCheckpoint(InvalidInput):
    """A checkpoint description or tensor file is malformed."""


class PlanRejected(QuantspecError):
    """The plan rejects one or more layers; raised by ``load_quantized`` before any weight is read."""

    exit_code = 1


class BackendUnavailable(QuantspecError):
    """The requested op backend cannot run on this machine."""


class KernelArgumentError(QuantspecError):
    """An op received arguments that its documented contract forbids."""


def reason(
    code: Code,
    message: str,
    *,
    file: str | None = None,
    where: str | None = None,
    hint: str | None = None,
) -> Reason:
    """Build a :class:`Reason` (a short keyword-only constructor)."""
    return Reason(code=code, message=message, file=file, where=where, hint=hint)
