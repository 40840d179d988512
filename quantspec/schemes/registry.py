"""The registry of scheme specs, keyed by (FormatFamily, SchemeId, MatrixLayer) then Layout.

Every matrix cell that is not ``unsupported`` on every generation has at least one spec here
(a test binds the two). Shapes follow ``nn.Linear``: ``N`` output features, ``K`` input
features; MoE specs describe one expert's projection (``N``/``K`` of gate, up or down) and
fused 3-D expert tensors get a leading ``E``. Symbols: ``G`` group size (``K`` for
per-channel), ``ng`` number of groups, ``pf`` codes per int32 word (``32 // bits``).
"""

from __future__ import annotations

from collections.abc import Iterable

from quantspec.schemes.model import DtypeRule, LoadedTensor, SchemeSpec, TensorRole
from quantspec.transforms import Transform
from quantspec.vocab import Executable, FormatFamily, Layout, MatrixLayer, SchemeId

F = FormatFamily
X = Executable
T = Transform
S = SchemeId
L = MatrixLayer

#: The runtime class each key executes with (:class:`~quantspec.vocab.Executable`, whose value is
#: the class name in ``quantspec.runtime.executables``). Several keys share a class where the
#: runtime registers one class for many keys (tests/test_matrix_binding.py binds the two).
_EXECUTABLE: dict[tuple[FormatFamily, SchemeId, MatrixLayer], Executable] = {
    (F.MODELSLIM, S.W8A8_DYNAMIC, L.LINEAR): X.MS_W8A8_DYNAMIC,
    (F.MODELSLIM, S.W8A8_STATIC, L.LINEAR): X.MS_W8A8_STATIC,
    (F.MODELSLIM, S.W8A8_MIX, L.LINEAR): X.MS_W8A8_MIX,
    (F.MODELSLIM, S.W8A16, L.LINEAR): X.MS_W8A16,
    (F.MODELSLIM, S.W4A4_DYNAMIC, L.LINEAR): X.MS_W4A4_DYNAMIC,
    (F.MODELSLIM, S.W8A8_MXFP8, L.LINEAR): X.MS_MXFP8,
    (F.MODELSLIM, S.W4A8_MXFP, L.LINEAR): X.MS_W4A8_MXFP,
    (F.MODELSLIM, S.W4A4_MXFP4, L.LINEAR): X.MS_W4A4_MXFP4,
    (F.MODELSLIM, S.W8A8_FP8_DYNAMIC, L.LINEAR): X.MS_W8A8_FP8_DYNAMIC,
    (F.MODELSLIM, S.W8A8_DYNAMIC, L.MOE): X.INT8_DYNAMIC_EXPERTS,
    (F.MODELSLIM, S.W4A4_DYNAMIC, L.MOE): X.W4A4_EXPERTS,
    (F.MODELSLIM, S.W4A8_DYNAMIC, L.MOE): X.W4A8_EXPERTS,
    (F.MODELSLIM, S.W8A8_MXFP8, L.MOE): X.MXFP8_EXPERTS,
    (F.MODELSLIM, S.W4A8_MXFP, L.MOE): X.MXFP4_W4A8_EXPERTS,
    (F.MODELSLIM, S.W4A4_MXFP4, L.MOE): X.MXFP4_W4A4_EXPERTS,
    (F.AWQ, S.W4A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.AWQ, S.W8A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.AWQ, S.W4A16, L.MOE): X.WEIGHT_ONLY_EXPERTS,
    (F.GPTQ, S.W4A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.GPTQ, S.W8A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.GPTQ, S.W4A16, L.MOE): X.WEIGHT_ONLY_EXPERTS,
    (F.GPTQ, S.W8A16, L.MOE): X.WEIGHT_ONLY_EXPERTS,
    (F.AUTO_ROUND, S.W4A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.AUTO_ROUND, S.W8A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.AUTO_ROUND, S.W4A16, L.MOE): X.WEIGHT_ONLY_EXPERTS,
    (F.AUTO_ROUND, S.W8A16, L.MOE): X.WEIGHT_ONLY_EXPERTS,
    (F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, L.LINEAR): X.CT_W8A8_DYNAMIC,
    (F.COMPRESSED_TENSORS, S.W8A8_STATIC, L.LINEAR): X.CT_W8A8_STATIC,
    (F.COMPRESSED_TENSORS, S.W4A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.COMPRESSED_TENSORS, S.W8A16, L.LINEAR): X.WEIGHT_ONLY_LINEAR,
    (F.COMPRESSED_TENSORS, S.W8A8_FP8_DYNAMIC, L.LINEAR): X.CT_W8A8_FP8_DYNAMIC,
    (F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, L.MOE): X.INT8_DYNAMIC_EXPERTS,
    (F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, L.MOE): X.W4A8_EXPERTS,
    (F.COMPRESSED_TENSORS, S.W4A16, L.MOE): X.WEIGHT_ONLY_EXPERTS,
    (F.GGUF, S.GGUF, L.LINEAR): X.GGUF_LINEAR,
    (F.GGUF, S.GGUF, L.MOE): X.FLOAT_EXPERTS,
    (F.MXFP8_ONLINE, S.W8A8_MXFP8, L.LINEAR): X.ONLINE_MXFP8,
    (F.MXFP8_ONLINE, S.W8A8_MXFP8, L.MOE): X.ONLINE_MXFP8_EXPERTS,
}
#: The executable of layers with no runtime module (attention/KV-cache entries, embeddings,
#: unquantized linears): their tensors are loaded, cast to the model dtype when float (GGUF
#: dequantized), and installed into the model's own modules.
LOADED_AS_FLOAT = Executable.FLOAT_TENSORS
#: The runtime class of unquantized MoE experts (registered under ``(unquantized, None)``).
FLOAT_MOE = Executable.FLOAT_EXPERTS


def executable_name(family: FormatFamily, scheme: SchemeId | None, layer: MatrixLayer) -> Executable:
    """Name of the runtime class that executes a key, e.g. ``ModelSlimW8A8Static``, or
    :data:`LOADED_AS_FLOAT` for layers whose tensors are loaded as float (attention, embedding)."""
    if scheme is None:
        return FLOAT_MOE if layer is L.MOE else LOADED_AS_FLOAT
    if layer in (L.ATTENTION, L.EMBEDDING):
        return LOADED_AS_FLOAT
    return _EXECUTABLE[(family, scheme, layer)]


def _r(name: str, dtype: DtypeRule, shape: tuple[str | int, ...] | None, *dtypes: str,
       required: bool = True, grouped_only: bool = False, moe_group: str | None = None) -> TensorRole:
    return TensorRole.model_validate(
        {"name": name, "dtype": dtype, "dtypes": dtypes, "shape": shape, "required": required,
         "grouped_only": grouped_only, "moe_group": moe_group}
    )


def _ld(name: str, bits: int | str, *shape: str | int) -> LoadedTensor:
    return LoadedTensor.model_validate({"name": name, "bits": bits, "shape": shape})


E, FL, MD, DQ, GG = DtypeRule.EXACT, DtypeRule.FLOAT, DtypeRule.MODEL, DtypeRule.DEQ_SCALE, DtypeRule.GGML
BIAS = _r("bias", FL, ("N",), required=False)

# ---------------------------------------------------------------- kernels (as in the matrix)
K_DYN = ("npu_dynamic_quant", "npu_quant_matmul", "npu_format_cast")
K_STATIC = ("npu_quantize", "npu_quant_matmul", "npu_format_cast")
K_W4A4 = ("npu_dynamic_quant", "npu_convert_weight_to_int4pack", "npu_quant_matmul")
K_MX = ("npu_dynamic_mx_quant", "npu_quant_matmul")
K_WQBMM = ("npu_weight_quant_batchmatmul",)
K_WQBMM4 = ("npu_convert_weight_to_int4pack", "npu_weight_quant_batchmatmul")
_MOE_HEAD, _MOE_TAIL = ("npu_moe_init_routing_v2",), ("npu_moe_finalize_routing",)
K_MOE_INT = (*_MOE_HEAD, "npu_dynamic_quant", "npu_grouped_matmul", "npu_swiglu", *_MOE_TAIL)
K_MOE_INT4PACK = (*_MOE_HEAD, "npu_convert_weight_to_int4pack", "npu_grouped_matmul", "npu_swiglu",
                  *_MOE_TAIL)
K_MOE_WNA16 = (*_MOE_HEAD, "npu_grouped_matmul", "npu_swiglu", *_MOE_TAIL)
K_MOE_MX = (*_MOE_HEAD, "npu_dynamic_mx_quant", "npu_grouped_matmul", *_MOE_TAIL)

# ---------------------------------------------------------------- role sets
MS_INT8 = (_r("weight", E, ("N", "K"), "int8"), _r("weight_scale", FL, ("N", 1)),
           _r("weight_offset", FL, ("N", 1), required=False), BIAS)
MS_INT8_ASYM = (_r("weight", E, ("N", "K"), "int8"), _r("weight_scale", FL, ("N", 1)),
                _r("weight_offset", FL, ("N", 1)), BIAS)
# msModelSlim's v0 exporter writes weight_scale/weight_offset (folded into deq_scale, unused); the
# v1 saver (ascendv1.py on_w8a8_static) does not. The float ``bias`` v1 writes beside quant_bias is
# already folded into quant_bias: read, never added again.
MS_STATIC = (
    _r("weight", E, ("N", "K"), "int8"), _r("weight_scale", FL, ("N", 1), required=False),
    _r("weight_offset", FL, ("N", 1), required=False), _r("input_scale", FL, (1,)),
    _r("input_offset", E, (1,), "float16", "bfloat16", "float32", "int8"),
    _r("quant_bias", E, ("N",), "int32"), _r("deq_scale", DQ, ("N",)), BIAS,
)
# pdmix (ascendv1.py on_w8a8_pd_mix): the static tensors plus weight_scale/weight_offset; quantspec
# runs the dynamic path (weight + weight_scale), as vLLM-Ascend does outside a decode node.
MS_MIX = (*MS_STATIC[:1], _r("weight_scale", FL, ("N", 1)), *MS_STATIC[2:])
MS_INT4 = (_r("weight", E, ("N", "K"), "int8"), _r("weight_scale", FL, ("N", 1)),
           _r("weight_offset", FL, ("N", 1), required=False), BIAS)
MS_INT4X2 = (_r("weight", E, ("N/2", "K"), "int8"), _r("weight_scale", FL, ("N", 1)),
             _r("weight_offset", FL, ("N", 1), required=False), BIAS)
MS_W4A8_MOE_EXTRA = (
    _r("scale_bias", FL, ("N", 1), required=False, moe_group="w13"),
    _r("scale_bias", FL, ("N", 16), required=False, moe_group="w2"),
    # msModelSlim's old API (safe_tensor) writes a second-level scale [N, K/G] (G = K: [N, 1]) and
    # an int64 second-level offset (zeros: W4A8 weights are symmetric); both are read when present.
    _r("weight_scale_second", FL, ("N", "ng"), required=False),
    _r("weight_offset_second", E, ("N", "ng"), "float16", "bfloat16", "float32", "int64", required=False),
)
MX8 = (_r("weight", E, ("N", "K"), "float8_e4m3fn"), _r("weight_scale", E, ("N", "ceil(K/32)"), "uint8"), BIAS)
MX4 = (_r("weight", E, ("N", "K/2"), "uint8"), _r("weight_scale", E, ("N", "ceil(K/32)"), "uint8"), BIAS)
FP8_CH = (_r("weight", E, ("N", "K"), "float8_e4m3fn"), _r("weight_scale", FL, ("N", 1)),
          _r("weight_offset", FL, ("N", 1), required=False), BIAS)
AWQ_GEMM = (_r("qweight", E, ("K", "N/pf"), "int32"), _r("qzeros", E, ("ng", "N/pf"), "int32"),
            _r("scales", FL, ("ng", "N")), BIAS)
GPTQ_ROLES = (_r("qweight", E, ("K/pf", "N"), "int32"), _r("qzeros", E, ("ng", "N/pf"), "int32"),
              _r("scales", FL, ("ng", "N")), _r("g_idx", E, ("K",), "int32", required=False), BIAS)
CT_PACKED = (
    _r("weight_packed", E, ("N", "ceil(K/pf)"), "int32"), _r("weight_scale", FL, ("N", "ng")),
    _r("weight_shape", E, (2,), "int32", "int64"),
    _r("weight_zero_point", E, ("ceil(N/pf)", "ng"), "int32", required=False),
    _r("weight_g_idx", E, ("K",), "int32", required=False), BIAS,
)
CT_INT = (_r("weight", E, ("N", "K"), "int8"), _r("weight_scale", FL, ("N", "ng")),
          _r("weight_zero_point", E, ("N", "ng"), "int8", required=False), BIAS)
CT_INT_STATIC = (*CT_INT, _r("input_scale", FL, (1,)),
                 _r("input_zero_point", E, (1,), "int8", required=False))
GGUF_W = (_r("weight", GG, ("N", "K")), BIAS)
FLOAT_W = (_r("weight", FL, ("N", "K")), BIAS)

# ---------------------------------------------------------------- loaded tensors
LD_INT8 = (_ld("weight", 8, "K", "N"), _ld("weight_scale", 32, "N"), _ld("weight_offset", 32, "N"))
# W8A8 static keeps no weight scale/offset (folded into deq_scale) and no float bias (in quant_bias).
LD_STATIC = (LD_INT8[0], _ld("deq_scale", 64, "N"), _ld("quant_bias", 32, "N"), _ld("input_scale", "model", "K"),
             _ld("input_offset", "model", "K"))
LD_INT4 = (_ld("weight", 32, "K", "N/8"), _ld("weight_scale", 32, "N"), _ld("weight_offset", 32, "N"))
LD_W4A8 = (_ld("weight", 32, "K", "N/8"), _ld("weight_scale", 64, "N"), _ld("scale_bias", 32, "N"))
LD_MX8 = (_ld("weight", 8, "K", "N"), _ld("weight_scale", 8, "ceil(K/64)", "N", 2))
LD_MX4 = (_ld("weight", 8, "K/2", "N"), _ld("weight_scale", 8, "ceil(K/64)", "N", 2))
LD_WNA16 = (_ld("weight", 32, "K", "N/pf"), _ld("scales", "model", "ng", "N"), _ld("zeros", "model", "ng", "N"))
LD_FLOAT = (_ld("weight", "model", "N", "K"),)

T_T = T.TRANSPOSE_WEIGHT_TO_K_N
T_I4 = T.REPACK_INT4_INT32

SPECS: dict[tuple[FormatFamily, SchemeId, MatrixLayer], dict[Layout, SchemeSpec]] = {}


def _add(family: FormatFamily, scheme: SchemeId, layer: MatrixLayer, layouts: Iterable[Layout], *,
         roles: tuple[TensorRole, ...], kernels: tuple[str, ...], weight: str = "weight",
         n_from: str = "s0", k_from: str = "s1", transforms: tuple[str, ...] = (),
         loaded: tuple[LoadedTensor, ...] = ()) -> None:
    for layout in layouts:
        spec = SchemeSpec(
            family=family, scheme=scheme, layer=layer, layout=layout,
            executable=executable_name(family, scheme, layer), weight_role=weight, n_from=n_from,
            k_from=k_from, roles=roles, kernels=kernels, transforms=transforms, loaded=loaded,
        )
        SPECS.setdefault((family, scheme, layer), {})[layout] = spec


LMS8, LMS4, LMS4X2 = [Layout.MODELSLIM_INT8], [Layout.MODELSLIM_INT4], [Layout.MODELSLIM_INT4X2]

# ModelSlim, linear
_add(F.MODELSLIM, S.W8A8_DYNAMIC, L.LINEAR, LMS8, roles=MS_INT8, kernels=K_DYN, transforms=(T_T,), loaded=LD_INT8)
_add(F.MODELSLIM, S.W8A8_STATIC, L.LINEAR, LMS8, roles=MS_STATIC, kernels=K_STATIC,
     transforms=(T_T, T.REPEAT_INPUT_SCALE_INPUT_OFFSET_OVER_K), loaded=LD_STATIC)
_add(F.MODELSLIM, S.W8A8_MIX, L.LINEAR, LMS8, roles=MS_MIX, kernels=K_DYN,
     transforms=(T_T, T.PER_TOKEN_DYNAMIC_PATH), loaded=LD_INT8[:2])
_add(F.MODELSLIM, S.W8A16, L.LINEAR, LMS8, roles=MS_INT8_ASYM,
     kernels=("npu_weight_quant_batchmatmul", "npu_format_cast"),
     transforms=(T_T,), loaded=LD_INT8)
_add(F.MODELSLIM, S.W4A4_DYNAMIC, L.LINEAR, LMS4, roles=MS_INT4, kernels=K_W4A4, transforms=(T_T, T_I4), loaded=LD_INT4)
_add(F.MODELSLIM, S.W4A4_DYNAMIC, L.LINEAR, LMS4X2, roles=MS_INT4X2, kernels=K_W4A4, n_from="s0*2",
     transforms=(T_T, T.VIEW_INT4X2_BYTES_AS_INT32), loaded=LD_INT4)
_add(F.MODELSLIM, S.W8A8_MXFP8, L.LINEAR, [Layout.MX_FP8], roles=MX8, kernels=K_MX,
     transforms=(T.TRANSPOSE_WEIGHT_TO_K_N_STRIDED_VIEW, T.RESHAPE_SCALE_TO_K_64_N_2), loaded=LD_MX8)
_add(F.MODELSLIM, S.W4A8_MXFP, L.LINEAR, [Layout.MX_FP4], roles=MX4,
     kernels=("npu_dynamic_mx_quant", "npu_format_cast", "npu_quant_matmul"), k_from="s1*2",
     transforms=(T.CAST_FP4_WEIGHT_TO_FRACTAL_NZ, T.TRANSPOSE_WEIGHT_TO_K_2_N, T.RESHAPE_SCALE_TO_K_64_N_2),
     loaded=LD_MX4)
_add(F.MODELSLIM, S.W4A4_MXFP4, L.LINEAR, [Layout.MX_FP4], roles=MX4, kernels=K_MX, k_from="s1*2",
     transforms=(T.TRANSPOSE_WEIGHT_TO_K_2_N_STRIDED_VIEW, T.RESHAPE_SCALE_TO_K_64_N_2), loaded=LD_MX4)
_add(F.MODELSLIM, S.W8A8_FP8_DYNAMIC, L.LINEAR, [Layout.CT_FLOAT, Layout.MODELSLIM_INT8], roles=FP8_CH,
     kernels=("npu_dynamic_quant", "npu_quant_matmul"), transforms=(T_T,), loaded=LD_INT8)

# ModelSlim, MoE (one expert's projection; w13 = gate+up, w2 = down)
_add(F.MODELSLIM, S.W8A8_DYNAMIC, L.MOE, LMS8, roles=MS_INT8, kernels=(*K_MOE_INT, "npu_format_cast"),
     transforms=(T.STACK_EXPERTS_TO_E_N_K, T.TRANSPOSE_TO_E_K_N), loaded=LD_INT8)
_add(F.MODELSLIM, S.W4A4_DYNAMIC, L.MOE, LMS4, roles=MS_INT4, kernels=K_MOE_INT,
     transforms=(T.STACK_EXPERTS_TO_E_N_K, T.PACK_INT4_PAIRS_ALONG_N, T.TRANSPOSE_TO_E_K_N,
                 T.SCALE_FP32_BITS_TO_INT64), loaded=LD_INT4)
_add(F.MODELSLIM, S.W4A4_DYNAMIC, L.MOE, LMS4X2, roles=MS_INT4X2, kernels=K_MOE_INT, n_from="s0*2",
     transforms=(T.STACK_EXPERTS_TO_E_N_2_K, T.TRANSPOSE_TO_E_K_N_2, T.SCALE_FP32_BITS_TO_INT64),
     loaded=LD_INT4)
# What W4A8Experts does (runtime/moe/groups_int4.py): int4 values per expert, repacked 8 per int32
# along N, scales (folding weight_scale_second when grouped) as int64 fp32 bits [E, G, N].
_T_W4A8 = (T.REPACK_INT4_EXPERTS_ALONG_N,
           T.SCALE_AS_INT64_BITS_EGN)
_add(F.MODELSLIM, S.W4A8_DYNAMIC, L.MOE, LMS4X2, roles=(*MS_INT4X2, *MS_W4A8_MOE_EXTRA), kernels=K_MOE_INT,
     n_from="s0*2", transforms=(T.UNPACK_INT4_PAIRS_ALONG_N, *_T_W4A8, T.SUM_SCALE_BIAS_TP_SLICES),
     loaded=LD_W4A8)
_add(F.MODELSLIM, S.W4A8_DYNAMIC, L.MOE, LMS4, roles=(*MS_INT4, *MS_W4A8_MOE_EXTRA), kernels=K_MOE_INT,
     transforms=(*_T_W4A8, T.COMPUTE_SCALE_BIAS_8_SUM_W_SCALE), loaded=LD_W4A8)
_add(F.MODELSLIM, S.W8A8_MXFP8, L.MOE, [Layout.MX_FP8], roles=MX8, kernels=(*K_MOE_MX[:-1], "npu_swiglu", *_MOE_TAIL),
     transforms=(T.STACK_EXPERTS_TO_E_N_K, T.CAST_TO_FRACTAL_NZ_BEFORE_TRANSPOSE,
                 T.RESHAPE_SCALE_TO_E_K_64_N_2),
     loaded=LD_MX8)
_add(F.MODELSLIM, S.W4A8_MXFP, L.MOE, [Layout.MX_FP4], roles=MX4, kernels=K_MOE_MX, k_from="s1*2",
     transforms=(T.STACK_EXPERTS_TO_E_N_K_2, T.CAST_FP4_WEIGHT_TO_FRACTAL_NZ, T.RESHAPE_SCALE_TO_E_K_64_N_2),
     loaded=LD_MX4)
_add(F.MODELSLIM, S.W4A4_MXFP4, L.MOE, [Layout.MX_FP4], roles=MX4, kernels=K_MOE_MX, k_from="s1*2",
     transforms=(T.STACK_EXPERTS_TO_E_N_K_2, T.TRANSPOSE_STRIDED_VIEW, T.RESHAPE_SCALE_TO_E_K_64_N_2),
     loaded=LD_MX4)

# ModelSlim, attention / KV cache (names relative to the attention module)
_KV = ("float16", "bfloat16", "float32", "int8")
_add(F.MODELSLIM, S.KV_C8, L.ATTENTION, LMS8, weight="",
     kernels=("npu_fused_infer_attention_score", "npu_scatter_pa_kv_cache"),
     roles=(_r("k_proj.kv_cache_scale", FL, None), _r("k_proj.kv_cache_offset", E, None, *_KV),
            _r("v_proj.kv_cache_scale", FL, None), _r("v_proj.kv_cache_offset", E, None, *_KV)),
     transforms=(T.RESHAPE_SCALES_TO_KV_HEADS_1_HEAD_SIZE, T.INT8_KV_CACHE))
_add(F.MODELSLIM, S.FA_KQUANT, L.ATTENTION, LMS8, weight="", kernels=("npu_fused_infer_attention_score",),
     roles=(_r("fa_k.scale", FL, None), _r("fa_k.offset", E, None, *_KV, required=False),
            _r("fa_q.scale", FL, None, required=False), _r("fa_q.offset", E, None, *_KV, required=False),
            _r("fa_v.scale", FL, None, required=False), _r("fa_v.offset", E, None, *_KV, required=False)),
     transforms=(T.DERIVE_FAK_DESCALE_FROM_FA_K_SCALE, T.INT8_K_CACHE_FP8_E4M3_ON_A5))

# AWQ / GPTQ / auto-round (weight-only)
_T_AWQ = (T.UNPACK_AWQ_NIBBLE_ORDER, T.OFFSET_CODES_BY_MINUS_8_SIGNED_INT4, T.ZEROS_8_QZEROS)
_T_GPTQ = (T.UNPACK_ALONG_K, T.ZEROS_PLUS_1_UNLESS_GPTQ_V2)
for fam, layouts, roles, n_from, k_from, extra in (
    (F.AWQ, [Layout.AWQ_GEMM], AWQ_GEMM, "s1*pf", "s0", _T_AWQ),
    (F.GPTQ, [Layout.GPTQ], GPTQ_ROLES, "s1", "s0*pf", _T_GPTQ),
    (F.AUTO_ROUND, [Layout.GPTQ], GPTQ_ROLES, "s1", "s0*pf", _T_GPTQ),
    (F.AUTO_ROUND, [Layout.AWQ_GEMM], AWQ_GEMM, "s1*pf", "s0", _T_AWQ),
):
    linear_kernels_4 = K_WQBMM if fam is F.AWQ else K_WQBMM4
    _add(fam, S.W4A16, L.LINEAR, layouts, roles=roles, kernels=linear_kernels_4, weight="qweight",
         n_from=n_from, k_from=k_from, transforms=(*extra, T_I4), loaded=LD_WNA16)
    _add(fam, S.W8A16, L.LINEAR, layouts, roles=roles, kernels=K_WQBMM, weight="qweight",
         n_from=n_from, k_from=k_from, transforms=(*extra, T.KEEP_INT8_K_N), loaded=LD_WNA16)
    if fam is not F.AWQ:
        _add(fam, S.W8A16, L.MOE, layouts, roles=roles, kernels=K_MOE_WNA16, weight="qweight", n_from=n_from,
             k_from=k_from, transforms=(T.STACK_EXPERTS, *extra), loaded=LD_WNA16)
    _add(fam, S.W4A16, L.MOE, layouts, roles=roles, kernels=K_MOE_INT4PACK, weight="qweight", n_from=n_from,
         k_from=k_from, transforms=(T.STACK_EXPERTS, *extra, T_I4), loaded=LD_WNA16)

# compressed-tensors
_add(F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, L.LINEAR, [Layout.CT_INT], roles=CT_INT, kernels=K_DYN,
     transforms=(T_T,), loaded=LD_INT8[:2])
_add(F.COMPRESSED_TENSORS, S.W8A8_STATIC, L.LINEAR, [Layout.CT_INT], roles=CT_INT_STATIC, kernels=K_STATIC,
     transforms=(T_T, T.DEQ_SCALE_INPUT_SCALE_WEIGHT_SCALE), loaded=LD_STATIC)
_add(F.COMPRESSED_TENSORS, S.W4A16, L.LINEAR, [Layout.CT_PACKED], roles=CT_PACKED, kernels=K_WQBMM4,
     weight="weight_packed", k_from="s1*pf", transforms=(T.UNPACK_SIGNED_CODES_MINUS_HALF_RANGE, T_T, T_I4),
     loaded=LD_WNA16)
_add(F.COMPRESSED_TENSORS, S.W8A16, L.LINEAR, [Layout.CT_PACKED], roles=CT_PACKED, kernels=K_WQBMM,
     weight="weight_packed", k_from="s1*pf", transforms=(T.UNPACK_SIGNED_CODES_MINUS_HALF_RANGE, T_T, T.KEEP_INT8_K_N),
     loaded=LD_WNA16)
_add(F.COMPRESSED_TENSORS, S.W8A8_FP8_DYNAMIC, L.LINEAR, [Layout.CT_FLOAT],
     roles=(_r("weight", E, ("N", "K"), "float8_e4m3fn"), _r("weight_scale", FL, ("N", 1)), BIAS),
     kernels=("npu_dynamic_quant", "npu_quant_matmul"), transforms=(T_T,), loaded=LD_INT8[:2])
_add(F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, L.MOE, [Layout.CT_INT], roles=CT_INT, kernels=K_MOE_INT,
     transforms=(T.STACK_EXPERTS_TO_E_N_K, T.TRANSPOSE_TO_E_K_N), loaded=LD_INT8[:2])
_add(F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, L.MOE, [Layout.CT_INT], roles=CT_INT, kernels=K_MOE_INT,
     transforms=(T.STACK_EXPERTS_TO_E_N_K, T.COMPUTE_SCALE_BIAS, T.PACK_INT4_PAIRS_ALONG_N,
                 T.SCALE_FP32_BITS_TO_INT64), loaded=LD_W4A8)
# SGLang's layout (NPUCompressedTensorsW4A8Int8DynamicMoE): ModelSlim's int4 pairs along N, a float
# weight_offset (zero) and scale_bias; with activation_use_clip an int64 weight_scale (fp32 bits), a
# float bias [N] used as the scale bias, and w2's alpha (registered by SGLang, never applied).
CT_W4A8_SGLANG = (
    _r("weight", E, ("N/2", "K"), "int8"), _r("weight_scale", E, ("N", 1), "float32", "float16", "bfloat16", "int64"),
    _r("weight_offset", FL, ("N", 1), required=False), *MS_W4A8_MOE_EXTRA[:2], BIAS,
    _r("alpha", FL, (1,), required=False, moe_group="w2"),
)
_add(F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, L.MOE, LMS4X2, roles=CT_W4A8_SGLANG, kernels=K_MOE_INT, n_from="s0*2",
     transforms=(T.UNPACK_INT4_PAIRS_ALONG_N, *_T_W4A8, T.SUM_SCALE_BIAS_OR_TAKE_BIAS), loaded=LD_W4A8)
_add(F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, L.MOE, [Layout.CT_PACKED], roles=CT_PACKED, kernels=K_MOE_INT,
     weight="weight_packed", k_from="s1*pf", transforms=(T.UNPACK_SIGNED_CODES_MINUS_8, T.STACK_EXPERTS_TO_E_N_K,
                                                          T.COMPUTE_SCALE_BIAS, T.PACK_INT4_PAIRS_ALONG_N),
     loaded=LD_W4A8)
_add(F.COMPRESSED_TENSORS, S.W4A16, L.MOE, [Layout.CT_PACKED], roles=CT_PACKED, kernels=K_MOE_INT4PACK,
     weight="weight_packed", k_from="s1*pf",
     transforms=(T.UNPACK_SIGNED_CODES_MINUS_8, T.STACK_EXPERTS, T.TRANSPOSE_TO_E_K_N, T_I4), loaded=LD_WNA16)

# GGUF: dequantized at load to the model dtype
_T_GGUF = (T.DEQUANTIZE_GGML_BLOCKS,)
_add(F.GGUF, S.GGUF, L.LINEAR, [Layout.GGML], roles=GGUF_W, kernels=(), transforms=_T_GGUF, loaded=LD_FLOAT)
_add(F.GGUF, S.GGUF, L.EMBEDDING, [Layout.GGML], roles=GGUF_W, kernels=(), transforms=_T_GGUF, loaded=LD_FLOAT)
_add(F.GGUF, S.GGUF, L.MOE, [Layout.GGML], roles=GGUF_W, kernels=K_MOE_WNA16,
     transforms=(*_T_GGUF, T.TRANSPOSE_TO_E_K_N), loaded=LD_FLOAT)

# online MXFP8 (float checkpoint quantized at load)
_add(F.MXFP8_ONLINE, S.W8A8_MXFP8, L.LINEAR, [Layout.FLOAT], roles=FLOAT_W, kernels=K_MX,
     transforms=(T.MX_QUANT_WEIGHT_TO_FP8, T.TRANSPOSE_TO_K_N_STRIDED_VIEW), loaded=LD_MX8)
_add(F.MXFP8_ONLINE, S.W8A8_MXFP8, L.MOE, [Layout.FLOAT], roles=FLOAT_W,
     kernels=(*K_MOE_MX[:-1], "npu_swiglu", *_MOE_TAIL),
     transforms=(T.MX_QUANT_EACH_EXPERT_TO_FP8, T.STACK_EXPERTS), loaded=LD_MX8)

#: Unquantized layers (any family): float weights used as stored, cast to the model dtype.
FLOAT_SPECS: dict[MatrixLayer, SchemeSpec] = {
    layer: SchemeSpec(
        family=F.UNQUANTIZED, scheme=None, layer=layer, layout=Layout.FLOAT,
        executable=executable_name(F.UNQUANTIZED, None, layer), weight_role="weight", n_from="s0",
        k_from="s1", roles=FLOAT_W, kernels=(), loaded=LD_FLOAT,
    )
    for layer in (L.LINEAR, L.MOE, L.EMBEDDING)
}


#: MoE routers (always float: both engines build them with ``quant_config=None``): the weight, an
#: optional bias and DeepSeek's ``e_score_correction_bias`` (a router tensor, loaded in float32).
ROUTER_SPEC = SchemeSpec(
    family=F.UNQUANTIZED, scheme=None, layer=L.LINEAR, layout=Layout.FLOAT, executable=LOADED_AS_FLOAT,
    weight_role="weight", n_from="s0", k_from="s1",
    roles=(*FLOAT_W, _r("e_score_correction_bias", FL, ("N",), required=False)), kernels=(),
    loaded=(*LD_FLOAT, _ld("e_score_correction_bias", 32, "N")),
)


def lookup_spec(family: FormatFamily, scheme: SchemeId, layer: MatrixLayer, layout: Layout) -> SchemeSpec | None:
    """The spec for a key and on-disk layout, or None when quantspec has no contract for it."""
    by_layout = SPECS.get((family, scheme, layer))
    if not by_layout:
        return None
    if layer is L.ATTENTION:
        # KV entries carry no weight layout: the attention key has exactly one contract.
        return next(iter(by_layout.values()))
    return by_layout.get(layout)


def why_no_spec(family: FormatFamily, scheme: SchemeId, layer: MatrixLayer, layout: Layout) -> str:
    """Why :func:`lookup_spec` found nothing, naming every candidate it looked at."""
    by_layout = SPECS.get((family, scheme, layer))
    if by_layout:
        return (f"{family.value} {scheme.value} {layer.value} has contracts for "
                f"{', '.join(lay.value for lay in by_layout)}; the checkpoint's {layout.value} layout is none of them")
    near = sorted(f"{f.value}/{s.value}/{lay.value}" for (f, s, lay) in SPECS if s is scheme and lay is layer)
    return (f"no contract for {family.value} {scheme.value} {layer.value}"
            + (f"; the scheme has contracts for {', '.join(near)}" if near else "; no family has one for this scheme"))


def layouts_for(family: FormatFamily, scheme: SchemeId, layer: MatrixLayer) -> tuple[Layout, ...]:
    """Layouts that have a contract for a key."""
    return tuple(SPECS.get((family, scheme, layer), {}))
