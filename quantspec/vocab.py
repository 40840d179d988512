"""Closed vocabularies shared by every layer of quantspec.

Every value that appears in the support matrix, a checkpoint description or a plan is a
member of one of these enums. Producers' own strings (``"W8A8_DYNAMIC"``,
``quant_method="auto-round"``) are translated into them exactly once, inside the format
module that reads them; nothing downstream compares raw strings.
"""

from __future__ import annotations

from enum import StrEnum


class NpuGen(StrEnum):
    """Ascend NPU generation (A2 = 910B, A3 = 910C / 910_93, A5 = Ascend 950)."""

    A2 = "a2"
    A3 = "a3"
    A5 = "a5"


class Status(StrEnum):
    """Support status of a matrix cell.

    ``untested`` is the seed's "TBD" (a code path exists, nobody has validated it on that
    generation); ``in_progress`` is the seed's "WIP".
    """

    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"
    UNTESTED = "untested"
    IN_PROGRESS = "in_progress"


class FormatFamily(StrEnum):
    """Producer format of a checkpoint description."""

    MODELSLIM = "modelslim"
    AWQ = "awq"
    GPTQ = "gptq"
    AUTO_ROUND = "auto_round"
    COMPRESSED_TENSORS = "compressed_tensors"
    GGUF = "gguf"
    #: An unquantized checkpoint quantized to MXFP8 at load time (``--quantization mxfp8``).
    MXFP8_ONLINE = "mxfp8_online"
    #: No quantization description at all: a float checkpoint.
    UNQUANTIZED = "unquantized"


class SchemeId(StrEnum):
    """Quantization scheme, named by weight and activation precision (format-neutral)."""

    W4A4_DYNAMIC = "w4a4_dynamic"
    W8A8_STATIC = "w8a8_static"
    W8A8_DYNAMIC = "w8a8_dynamic"
    #: msModelSlim pdmix (``W8A8_MIX``): static int8 tensors plus a per-channel weight scale, so that
    #: a prefill node runs per-token dynamic activations and a decode node the static kernel.
    W8A8_MIX = "w8a8_mix"
    W8A8_MXFP8 = "w8a8_mxfp8"
    W4A8_DYNAMIC = "w4a8_dynamic"
    W4A16 = "w4a16"
    W8A16 = "w8a16"
    W4A8_MXFP = "w4a8_mxfp"
    W4A4_MXFP4 = "w4a4_mxfp4"
    W8A8_FP8_DYNAMIC = "w8a8_fp8_dynamic"
    #: Any GGML block type; dequantized to fp16/bf16 at load on Ascend.
    GGUF = "gguf"
    #: ModelSlim C8: int8 KV cache with per-channel scale/offset.
    KV_C8 = "kv_c8"
    #: ModelSlim FAKQuant: MLA K-cache quantization (FA3).
    FA_KQUANT = "fa_kquant"


class MatrixLayer(StrEnum):
    """Layer type as the support matrix distinguishes it."""

    LINEAR = "linear"
    MOE = "moe"
    EMBEDDING = "embedding"
    ATTENTION = "attention"


class LayerKind(StrEnum):
    """Kind of a planned layer. MoE experts are split into w13 (gate+up) and w2 (down)."""

    LINEAR = "linear"
    MOE_W13 = "moe_w13"
    MOE_W2 = "moe_w2"
    EMBEDDING = "embedding"
    LM_HEAD = "lm_head"
    ATTENTION = "attention"
    ROUTER = "router"
    NORM = "norm"
    OTHER = "other"

    @property
    def matrix_layer(self) -> MatrixLayer | None:
        """The matrix row type that governs this kind, or None for always-float kinds."""
        return _KIND_TO_MATRIX.get(self)


_KIND_TO_MATRIX: dict[LayerKind, MatrixLayer] = {
    LayerKind.LINEAR: MatrixLayer.LINEAR,
    LayerKind.LM_HEAD: MatrixLayer.LINEAR,
    LayerKind.ROUTER: MatrixLayer.LINEAR,
    LayerKind.MOE_W13: MatrixLayer.MOE,
    LayerKind.MOE_W2: MatrixLayer.MOE,
    LayerKind.EMBEDDING: MatrixLayer.EMBEDDING,
    LayerKind.ATTENTION: MatrixLayer.ATTENTION,
}


class ParallelMode(StrEnum):
    """How a layer is split across tensor-parallel ranks (as the engines build it)."""

    #: Split along N (output features): qkv, gate/up, MoE w13.
    COLUMN = "column"
    #: Split along K (input features): o_proj, down_proj, MoE w2.
    ROW = "row"
    #: Whole on every rank: routers, attention/KV entries, norms, MLA's down projections.
    REPLICATED = "replicated"
    #: Split along the vocabulary (embeddings, lm_head; engines pad it to a multiple of tp).
    VOCAB = "vocab"
    #: Routed experts placed whole on expert-parallel ranks (``--ep``).
    EXPERT = "expert"


class Domain(StrEnum):
    """Model domain: the seed tracks diffusion-model support separately from LLMs."""

    LLM = "llm"
    DIFFUSION = "diffusion"


class Mode(StrEnum):
    """Whether quantization happened before (offline) or during (online) loading."""

    OFFLINE = "offline"
    ONLINE = "online"


class ElementType(StrEnum):
    """Numeric type of stored weight codes or quantized activations."""

    INT2 = "int2"
    INT3 = "int3"
    INT4 = "int4"
    INT8 = "int8"
    FP8_E4M3 = "fp8_e4m3"
    FP8_E5M2 = "fp8_e5m2"
    FP4_E2M1 = "fp4_e2m1"
    #: A GGML block type (the exact type is in ``WeightQuant.ggml_type``).
    GGML = "ggml"
    FLOAT = "float"

    @property
    def bits(self) -> int | None:
        """Bit width of one element, when fixed."""
        return _BITS.get(self)


_BITS: dict[ElementType, int] = {
    ElementType.INT2: 2,
    ElementType.INT3: 3,
    ElementType.INT4: 4,
    ElementType.INT8: 8,
    ElementType.FP8_E4M3: 8,
    ElementType.FP8_E5M2: 8,
    ElementType.FP4_E2M1: 4,
}


class Granularity(StrEnum):
    """How many elements share one scale."""

    TENSOR = "tensor"
    CHANNEL = "channel"
    GROUP = "group"
    BLOCK = "block"
    TOKEN = "token"
    #: A per-tensor global scale times per-group local scales (NVFP4 style).
    TENSOR_GROUP = "tensor_group"
    #: Scale per attention head (KV cache).
    HEAD = "head"


class ZeroPoint(StrEnum):
    """Zero-point convention of the stored weights."""

    #: Symmetric: no zero point is applied.
    NONE = "none"
    #: The stored value is the zero point itself (AWQ, GPTQ v2, auto-round ``auto_round``).
    TRUE = "true"
    #: The stored value is the zero point minus one (GPTQ v1, auto-round ``auto_gptq``).
    MINUS_ONE = "minus_one"
    #: A signed integer zero point (compressed-tensors asymmetric).
    SIGNED = "signed"
    #: A float offset tensor, dequant ``(q - offset) * scale`` (ModelSlim ``weight_offset``).
    FLOAT_OFFSET = "float_offset"


class Layout(StrEnum):
    """On-disk layout of a quantized weight: names, packing and orientation of tensors."""

    #: ModelSlim int8 ``weight [N, K]`` with per-channel ``weight_scale``/``weight_offset``.
    MODELSLIM_INT8 = "modelslim_int8"
    #: ModelSlim int4 values, one signed int4 per int8 byte, ``weight [N, K]``.
    MODELSLIM_INT4 = "modelslim_int4"
    #: ModelSlim int4 pairs packed two per int8 along the output dim (``version 1.0.0``).
    MODELSLIM_INT4X2 = "modelslim_int4x2"
    #: MX: ``weight`` float8_e4m3fn ``[N, K]`` with uint8 E8M0 ``weight_scale [N, K/32]``.
    MX_FP8 = "mx_fp8"
    #: MX: ``weight`` uint8 ``[N, K/2]`` packed FP4 E2M1 with uint8 E8M0 scales.
    MX_FP4 = "mx_fp4"
    AWQ_GEMM = "awq_gemm"
    AWQ_GEMV = "awq_gemv"
    AWQ_GEMV_FAST = "awq_gemv_fast"
    AWQ_MARLIN = "awq_marlin"
    #: GPTQ ``qweight`` packed along K, ``qzeros`` packed along N, ``scales [G, N]``.
    GPTQ = "gptq"
    #: compressed-tensors ``pack-quantized``: ``weight_packed [N, ceil(K*b/32)]`` int32.
    CT_PACKED = "ct_packed"
    #: compressed-tensors ``int-quantized`` / ``naive-quantized``: int8 ``weight [N, K]``.
    CT_INT = "ct_int"
    #: compressed-tensors ``float-quantized``: fp8 ``weight [N, K]``.
    CT_FLOAT = "ct_float"
    #: GGML blocks, one tensor per weight with its own ggml type.
    GGML = "ggml"
    #: A float weight (fp16/bf16/fp32) to be quantized at load time.
    FLOAT = "float"


class MatchKind(StrEnum):
    """How a module-name pattern matches; each producer uses its own semantics."""

    EXACT = "exact"
    SUBSTRING = "substring"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    #: ``re.match``: anchored at the start only (compressed-tensors ``re:``, GPTQModel ``dynamic``).
    REGEX_MATCH = "regex_match"
    #: ``re.search`` (auto-round ``extra_config`` regexes).
    REGEX_SEARCH = "regex_search"
    #: ``re.fullmatch``.
    REGEX_FULLMATCH = "regex_fullmatch"
    #: The module's class name (compressed-tensors targets such as ``"Linear"``).
    CLASS_NAME = "class_name"


class Executable(StrEnum):
    """The runtime classes a planned layer executes with (the value is the class name).

    The plan names one per accepted layer; the loader builds exactly that class
    (``quantspec.runtime.executables``). ``FLOAT_TENSORS`` is no module: the layer's tensors are
    loaded (cast to the model dtype when float) into the model's own module. A test binds every
    member to a registered class and every registered class to a member.
    """

    CT_W8A8_DYNAMIC = "CompressedTensorsW8A8Dynamic"
    CT_W8A8_FP8_DYNAMIC = "CompressedTensorsW8A8Fp8Dynamic"
    CT_W8A8_STATIC = "CompressedTensorsW8A8Static"
    FLOAT_EXPERTS = "FloatExperts"
    FLOAT_TENSORS = "FloatTensors"
    GGUF_LINEAR = "GgufLinear"
    INT8_DYNAMIC_EXPERTS = "Int8DynamicExperts"
    MS_MXFP8 = "ModelSlimMxFp8"
    MS_W4A4_DYNAMIC = "ModelSlimW4A4Dynamic"
    MS_W4A4_MXFP4 = "ModelSlimW4A4Mxfp4"
    MS_W4A8_MXFP = "ModelSlimW4A8Mxfp"
    MS_W8A16 = "ModelSlimW8A16"
    MS_W8A8_DYNAMIC = "ModelSlimW8A8Dynamic"
    MS_W8A8_FP8_DYNAMIC = "ModelSlimW8A8Fp8Dynamic"
    MS_W8A8_MIX = "ModelSlimW8A8Mix"
    MS_W8A8_STATIC = "ModelSlimW8A8Static"
    MXFP4_W4A4_EXPERTS = "MxFp4W4A4Experts"
    MXFP4_W4A8_EXPERTS = "MxFp4W4A8Experts"
    MXFP8_EXPERTS = "MxFp8Experts"
    ONLINE_MXFP8 = "OnlineMxFp8"
    ONLINE_MXFP8_EXPERTS = "OnlineMxFp8Experts"
    W4A4_EXPERTS = "W4A4Experts"
    W4A8_EXPERTS = "W4A8Experts"
    WEIGHT_ONLY_EXPERTS = "WeightOnlyExperts"
    WEIGHT_ONLY_LINEAR = "WeightOnlyLinear"


class DefectId(StrEnum):
    """Known producer defects (``plan/defects.yaml``), one checker each."""

    MSMODELSLIM_DROPS_ROUTER_BUFFERS = "msmodelslim_drops_router_buffers"
    MSMODELSLIM_V1_FLOAT_MODEL_QUANT_TYPE = "msmodelslim_v1_float_model_quant_type"
    AUTO_ROUND_MODEL_FREE_ASYM_ZERO_POINT = "auto_round_model_free_asym_zero_point"


class Backend(StrEnum):
    """Op backend of the runtime."""

    NPU = "npu"
    CPU = "cpu"
