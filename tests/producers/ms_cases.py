"""The msModelSlim producer cases: which tiny model, which msModelSlim recipe, which bounds.

Plain data with no imports beyond the standard library: the export job
(``msmodelslim_job.py``) reads it inside msModelSlim's own virtual environment and the tests
read it in quantspec's. A recipe is the ``spec.process`` list of an msModelSlim ``modelslim_v1``
config (the same YAML keys ``msmodelslim quant --config_path`` takes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: msModelSlim and the transformers it runs with (4.48-4.51: under 5.x MoE experts are fused
#: 3-D parameters that msModelSlim silently leaves float). Refresh: bump both, run
#: ``make producers`` and read docs/e2e.md's producer table for what changed.
MSMODELSLIM = "msmodelslim==26.1.0"
TRANSFORMERS = "transformers==4.51.3"


def _qc(act: dict[str, Any] | None, weight: dict[str, Any]) -> dict[str, Any]:
    qc: dict[str, Any] = {"weight": {"symmetric": True, "method": "minmax", **weight}}
    if act is not None:
        qc["act"] = {"symmetric": True, "method": "minmax", **act}
    return qc


W8A8_STATIC = _qc({"scope": "per_tensor", "dtype": "int8", "symmetric": False},
                  {"scope": "per_channel", "dtype": "int8"})
W8A8_DYNAMIC = _qc({"scope": "per_token", "dtype": "int8"}, {"scope": "per_channel", "dtype": "int8"})
W8A16 = _qc(None, {"scope": "per_channel", "dtype": "int8"})
#: Asymmetric int8 weights: msModelSlim 26.1.0 implements them only with its GPTQ method.
W8A16_ASYM = _qc(None, {"scope": "per_channel", "dtype": "int8", "symmetric": False, "method": "gptq"})
#: Per-token int4 activations: only msModelSlim's autoround processor implements them.
W4A4_DYNAMIC = _qc({"scope": "per_token", "dtype": "int4"},
                   {"scope": "per_channel", "dtype": "int4", "method": "autoround"})
W4A8_DYNAMIC = _qc({"scope": "per_token", "dtype": "int8"}, {"scope": "per_channel", "dtype": "int4"})
MXFP8 = _qc({"scope": "per_block", "dtype": "mxfp8"}, {"scope": "per_block", "dtype": "mxfp8"})
W4A8_MXFP = _qc({"scope": "per_block", "dtype": "mxfp8"}, {"scope": "per_block", "dtype": "mxfp4"})
MXFP4 = _qc({"scope": "per_block", "dtype": "mxfp4"}, {"scope": "per_block", "dtype": "mxfp4"})
WFP8AFP8 = _qc({"scope": "per_token", "dtype": "fp8_e4m3"}, {"scope": "per_channel", "dtype": "fp8_e4m3"})

#: Layers kept float in every dense recipe: the output head and one down projection.
DENSE_FLOAT = ["lm_head", "model.layers.1.mlp.down_proj"]
#: MoE recipes keep the routers float too (engines build routers unquantized).
MOE_FLOAT = ["lm_head", "*mlp.gate", "*shared_expert_gate"]


@dataclass(frozen=True)
class MsCase:
    """One export: ``arch`` (llama | qwen2 | qwen3_moe), the model dtype, the recipe groups
    (``(qconfig, include, exclude)``), what quantspec must do with it and its logit bounds."""

    id: str
    arch: str
    dtype: str
    groups: tuple[tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]], ...]
    #: Labels the description must carry (the scheme check).
    labels: tuple[str, ...]
    #: The msModelSlim processor that applies the groups (``linear_quant`` or ``autoround_quant``).
    processor: str = "linear_quant"
    #: The target quantspec loads it for, and whether untested cells are allowed.
    target: str = "a3"
    allow_untested: bool = False
    #: Bounds, relative L2 errors: each quantized module's output against msModelSlim's module on
    #: the same real activations (rounded to the model dtype), and the logits against msModelSlim's
    #: fake-quantized model and the float model. About 1.5x the measured value; why each is what it
    #: is: docs/e2e.md, "msModelSlim".
    module_bound: float = 0.02
    fq_bound: float = 0.05
    float_bound: float = 0.2
    #: Set when quantspec must reject the plan (the expected rejection code), not load it.
    rejects: str | None = None
    attention_bias: bool = True
    #: msModelSlim itself fails on CPU for this case: a fragment of its error (docs/e2e.md lists it).
    producer_error: str | None = None
    #: Hidden and MoE intermediate sizes (per-group W4A8 needs K >= its group of 256).
    hidden: int = 128
    moe_intermediate: int = 128
    #: ``"v1"``: ``msmodelslim quant`` with a modelslim_v1 recipe; ``"old"``: the old API
    #: (``Calibrator(model, QuantConfig(**old_config)).save(..., save_type=["safe_tensor"])``).
    api: str = "v1"
    old_config: tuple[tuple[str, Any], ...] = ()


def _dense(id_: str, arch: str, dtype: str, qc: dict[str, Any], labels: tuple[str, ...], **kw: Any) -> MsCase:
    return MsCase(id_, arch, dtype, ((qc, ("*",), tuple(DENSE_FLOAT)),), labels, **kw)


def _moe(id_: str, dtype: str, attn: dict[str, Any], experts: dict[str, Any], labels: tuple[str, ...],
         *, router: bool = False, **kw: Any) -> MsCase:
    float_names = tuple(n for n in MOE_FLOAT if not (router and n == "*mlp.gate"))
    return MsCase(id_, "qwen3_moe", dtype, (
        (attn, ("*self_attn*",), float_names),
        (experts, ("*mlp.experts*",), float_names),
        *(((attn, ("*mlp.gate",), ("lm_head",)),) if router else ()),
    ), labels, **kw)


CASES: tuple[MsCase, ...] = (
    _dense("w8a8_llama_fp16_bias", "llama", "float16", W8A8_STATIC, ("W8A8",),
           module_bound=0.01, fq_bound=0.04, float_bound=0.05),
    _dense("w8a8_llama_bf16_bias", "llama", "bfloat16", W8A8_STATIC, ("W8A8",),
           module_bound=0.015, fq_bound=0.045, float_bound=0.05),
    _dense("w8a8_qwen2_bf16", "qwen2", "bfloat16", W8A8_STATIC, ("W8A8",),
           module_bound=0.02, fq_bound=0.06, float_bound=0.07),
    _dense("w8a8_dynamic_llama_fp16", "llama", "float16", W8A8_DYNAMIC, ("W8A8_DYNAMIC",),
           module_bound=0.025, fq_bound=0.03, float_bound=0.04),
    _dense("w8a8_dynamic_qwen2_bf16", "qwen2", "bfloat16", W8A8_DYNAMIC, ("W8A8_DYNAMIC",),
           module_bound=0.025, fq_bound=0.04, float_bound=0.045),
    _dense("w8a16_llama_bf16", "llama", "bfloat16", W8A16, ("W8A16",), allow_untested=True,
           module_bound=0.005, fq_bound=0.015, float_bound=0.03),
    _dense("w8a16_asym_llama_bf16", "llama", "bfloat16", W8A16_ASYM, ("W8A16",),
           producer_error="expected m1 and m2 to have the same dtype"),
    _dense("w4a4_dynamic_llama_bf16", "llama", "bfloat16", W4A4_DYNAMIC, ("W4A4_DYNAMIC",),
           processor="autoround_quant", module_bound=0.005, fq_bound=0.4, float_bound=0.6),
    _dense("mxfp8_llama_bf16", "llama", "bfloat16", MXFP8, ("W8A8_MXFP8",), target="a5", allow_untested=True,
           module_bound=0.03, fq_bound=0.09, float_bound=0.14),
    _dense("w4a8_mxfp_llama_bf16", "llama", "bfloat16", W4A8_MXFP, ("W4A8_MXFP",), target="a5",
           allow_untested=True, module_bound=0.03, fq_bound=0.09, float_bound=0.4),
    _dense("mxfp4_llama_bf16", "llama", "bfloat16", MXFP4, ("W4A4_MXFP4",), target="a5", allow_untested=True,
           module_bound=0.15, fq_bound=0.42, float_bound=0.53),
    _dense("wfp8afp8_llama_bf16", "llama", "bfloat16", WFP8AFP8, ("WFP8AFP8_DYNAMIC",), target="a5",
           allow_untested=True, module_bound=0.06, fq_bound=0.12, float_bound=0.12),
    _moe("w8a8_dynamic_qwen3moe_bf16", "bfloat16", W8A8_DYNAMIC, W8A8_DYNAMIC, ("W8A8_DYNAMIC",),
         module_bound=0.015, fq_bound=0.065, float_bound=0.07),
    _moe("w4a8_dynamic_qwen3moe_bf16", "bfloat16", W8A8_DYNAMIC, W4A8_DYNAMIC, ("W8A8_DYNAMIC", "W4A8_DYNAMIC"),
         module_bound=0.015, fq_bound=0.065, float_bound=0.32),
    _moe("w8a8_dynamic_qwen3moe_fp16", "float16", W8A8_DYNAMIC, W8A8_DYNAMIC, ("W8A8_DYNAMIC",),
         module_bound=0.015, fq_bound=0.05, float_bound=0.06),
    _moe("quantized_router_qwen3moe_bf16", "bfloat16", W8A8_DYNAMIC, W8A8_DYNAMIC, ("W8A8_DYNAMIC",),
         router=True, rejects="plan.quantized_router"),
)

#: DeepSeek-V3 as the official W4A8 recipes quantize it: W8A8 static attention (kv_b_proj kept
#: float), W8A8_DYNAMIC dense and shared-expert MLPs, W4A8_DYNAMIC routed experts, routers float.
DEEPSEEK_V3 = MsCase(
    "deepseek_v3_w8a8_w4a8_bf16", "deepseek_v3", "bfloat16", (
        (W8A8_STATIC, ("*self_attn*",), ("*kv_b_proj", "lm_head")),
        (W8A8_DYNAMIC, ("*mlp*",), ("*mlp.gate", "*mlp.experts.*", "lm_head")),
        (W4A8_DYNAMIC, ("*mlp.experts.*",), ("lm_head",)),
    ), ("W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC"), hidden=256, moe_intermediate=128,
    # msModelSlim drops the router's e_score_correction_bias buffer (a known defect): planned as
    # written it is rejected; with the buffer restored it loads within these bounds.
    rejects="plan.producer_defect", module_bound=0.025, fq_bound=0.2, float_bound=0.32)

#: The old API's per-group W4A8 (``is_lowbit`` two-stage quantization; symmetric, dynamic).
_OLD_W4A8 = (("w_bit", 4), ("a_bit", 8), ("is_dynamic", True), ("is_lowbit", True), ("open_outlier", False),
             ("w_sym", True), ("mm_tensor", False))


def _old_moe(id_: str, dtype: str, group: int, **kw: Any) -> MsCase:
    return MsCase(id_, "qwen3_moe", dtype, (), ("W4A8_DYNAMIC",), api="old", hidden=256, moe_intermediate=256,
                  old_config=(*_OLD_W4A8, ("group_size", group)), **kw)


#: Old-API exports: quant_model_description_w4a8_dynamic.json (no group_size header, int64
#: weight_offset_second). Planned as written they are rejected (misnamed description); after
#: ``validate --fix`` the group-256 one loads (against weights decoded from the files) and the
#: group-64 one is rejected by the grouped A8W4 kernel's group rule.
OLD_CASES: tuple[MsCase, ...] = (
    MsCase("old_w8a8_llama_fp16_bias", "llama", "float16", (), ("W8A8",), api="old",
           old_config=(("w_bit", 8), ("a_bit", 8), ("is_dynamic", False), ("mm_tensor", False)),
           fq_bound=0.035, float_bound=0.045),
    _old_moe("old_w4a8_g256_qwen3moe_bf16", "bfloat16", 256, fq_bound=0.06, float_bound=0.55),
    _old_moe("old_w4a8_g256_qwen3moe_fp16", "float16", 256, fq_bound=0.12, float_bound=0.55),
    _old_moe("old_w4a8_g64_qwen3moe_bf16", "bfloat16", 64, rejects="plan.kernel_constraint"),
)

CASES = (*CASES, DEEPSEEK_V3, *OLD_CASES)
BY_ID: dict[str, MsCase] = {c.id: c for c in CASES}
