"""Weight transforms done at load: a closed vocabulary.

A plan lists per accepted layer what the loader does to its tensors (transposes, repacks, scale
conversions, explicit fallbacks such as keeping a weight ND); the scheme contracts
(``quantspec.schemes``), the kernel-constraint checkers and the producer-defect repairs all name
them from here. The value is the wording shown in plans and docs.
"""

from __future__ import annotations

from enum import StrEnum


class Transform(StrEnum):
    """Weight transforms done at load (what the plan lists per layer, and what the loader does)."""

    CAST_FP4_WEIGHT_TO_FRACTAL_NZ = "cast fp4 weight to FRACTAL_NZ"
    CAST_INT4_WEIGHT_TO_FRACTAL_NZ = "cast int4 weight to FRACTAL_NZ"
    CAST_TO_FRACTAL_NZ_BEFORE_TRANSPOSE = "cast to FRACTAL_NZ before transpose"
    CAST_WEIGHT_TO_FRACTAL_NZ = "cast weight to FRACTAL_NZ"
    COMPUTE_SCALE_BIAS = "compute scale_bias"
    COMPUTE_SCALE_BIAS_8_SUM_W_SCALE = "compute scale_bias = 8 * sum_k(w * scale)"
    DEQ_SCALE_INPUT_SCALE_WEIGHT_SCALE = "deq_scale = input_scale * weight_scale"
    DEQUANTIZE_GGML_BLOCKS = "dequantize GGML blocks to the model dtype"
    DEQUANTIZE_TO_BF16 = "dequantize to bf16"
    DEQUANTIZE_TO_FP16 = "dequantize to fp16"
    DERIVE_FAK_DESCALE_FROM_FA_K_SCALE = "derive fak_descale from fa_k.scale"
    INT8_K_CACHE_FP8_E4M3_ON_A5 = "int8 K cache (fp8 e4m3 on A5)"
    INT8_KV_CACHE = "int8 KV cache"
    KEEP_INT4_WEIGHT_ND_GROUP_SIZE = "keep int4 weight ND (group size)"
    KEEP_INT8_K_N = "keep int8 [K, N]"
    KEEP_WEIGHT_ND_NOT_NZ_ALIGNED = "keep weight ND (not NZ-aligned)"
    MX_QUANT_EACH_EXPERT_TO_FP8 = "npu_dynamic_mx_quant each expert to fp8 e4m3"
    MX_QUANT_WEIGHT_TO_FP8 = "npu_dynamic_mx_quant weight to fp8 e4m3"
    OFFSET_CODES_BY_MINUS_8_SIGNED_INT4 = "offset codes by -8 (signed int4)"
    PACK_INT4_PAIRS_ALONG_N = "pack int4 pairs along N"
    PER_TOKEN_DYNAMIC_PATH = "per-token dynamic path (vLLM-Ascend outside a decode node)"
    PERMUTE_K_BY_G_IDX_ACT_ORDER = "permute K by g_idx (act-order)"
    REPACK_INT4_INT32 = "repack int4 8-per-int32 (npu_convert_weight_to_int4pack)"
    REPACK_INT4_EXPERTS_ALONG_N = "repack int4 8-per-int32 along N to [E, K, N/8] (npu_convert_weight_to_int4pack)"
    REPEAT_INPUT_SCALE_INPUT_OFFSET_OVER_K = "repeat input_scale/input_offset over K"
    RESHAPE_SCALE_TO_E_K_64_N_2 = "reshape scale to [E, K/64, N, 2]"
    RESHAPE_SCALE_TO_K_64_N_2 = "reshape scale to [K/64, N, 2]"
    RESHAPE_SCALES_TO_KV_HEADS_1_HEAD_SIZE = "reshape scales to [kv_heads, 1, head_size]"
    SCALE_AS_INT64_BITS_EGN = (
        "scale (x weight_scale_second when present) as int64 fp32 bits [E, G, N] (G = 1 per channel)")
    SCALE_FP32_BITS_TO_INT64 = "scale fp32 bits to int64"
    STACK_EXPERTS = "stack experts"
    STACK_EXPERTS_TO_E_N_K_2 = "stack experts to [E, N, K/2]"
    STACK_EXPERTS_TO_E_N_K = "stack experts to [E, N, K]"
    STACK_EXPERTS_TO_E_N_2_K = "stack experts to [E, N/2, K]"
    SUM_SCALE_BIAS_TP_SLICES = "sum scale_bias over this rank's TP slices"
    SUM_SCALE_BIAS_OR_TAKE_BIAS = "sum scale_bias over this rank's TP slices, or take bias (clip variant)"
    TRANSPOSE_STRIDED_VIEW = "transpose (strided view)"
    TRANSPOSE_TO_E_K_N_2 = "transpose to [E, K, N/2]"
    TRANSPOSE_TO_E_K_N = "transpose to [E, K, N]"
    TRANSPOSE_TO_K_N_STRIDED_VIEW = "transpose to [K, N] (strided view)"
    TRANSPOSE_WEIGHT_TO_K_N = "transpose weight to [K, N]"
    TRANSPOSE_WEIGHT_TO_K_N_STRIDED_VIEW = "transpose weight to [K, N] (strided view)"
    TRANSPOSE_WEIGHT_TO_K_2_N = "transpose weight to [K/2, N]"
    TRANSPOSE_WEIGHT_TO_K_2_N_STRIDED_VIEW = "transpose weight to [K/2, N] (strided view)"
    UNPACK_AWQ_NIBBLE_ORDER = "unpack AWQ nibble order"
    UNPACK_ALONG_K = "unpack along K"
    UNPACK_INT4_PAIRS_ALONG_N = "unpack int4 pairs along N"
    UNPACK_SIGNED_CODES_MINUS_HALF_RANGE = "unpack signed codes (-2^(b-1))"
    UNPACK_SIGNED_CODES_MINUS_8 = "unpack signed codes (-8)"
    VIEW_INT4X2_BYTES_AS_INT32 = "view int4x2 bytes as int32"
    ZEROS_PLUS_1_PRODUCER_FIX = "zeros + 1 (--producer-fix auto_round_model_free_asym_zero_point)"
    ZEROS_PLUS_1_UNLESS_GPTQ_V2 = "zeros + 1 unless gptq_v2"
    ZEROS_8_QZEROS = "zeros = 8 - qzeros"
