"""The HF-format producer cases: auto-round (RTN, ``iters=0``) exports, with their bounds.

Plain data (standard library only): ``hf_job.py`` reads it inside the producers' own virtual
environment and the tests read it in quantspec's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HfCase:
    """One export: the tiny model, the producer call and what quantspec must do with it.

    ``fmt`` is auto-round's ``format`` argument (``auto_gptq``, ``auto_awq``, ``auto_round``);
    the same quantization is also exported as ``fake`` (auto-round's own quantize-dequantize
    model in float), the reference the loaded model is compared with.
    """

    id: str
    arch: str
    dtype: str
    fmt: str
    bits: int
    group_size: int
    sym: bool
    #: The target quantspec loads it for, and whether untested cells are allowed.
    target: str = "a2"
    allow_untested: bool = False
    #: Max relative logits error against auto-round's fake-quantized model and the float model.
    ref_bound: float = 0.02
    float_bound: float = 0.45
    hidden: int = 256
    #: auto-round fails on CPU for this case: a fragment of its error (docs/e2e.md lists it).
    producer_error: str | None = None


CASES: tuple[HfCase, ...] = (
    HfCase("ar_gptq_w4g32_sym_llama_bf16", "llama", "bfloat16", "auto_gptq", 4, 32, True),
    HfCase("ar_gptq_w4g64_asym_qwen2_fp16", "qwen2", "float16", "auto_gptq", 4, 64, False),
    HfCase("ar_gptq_w8_channel_llama_bf16", "llama", "bfloat16", "auto_gptq", 8, -1, True),
    HfCase("ar_awq_w4g32_asym_llama_fp16", "llama", "float16", "auto_awq", 4, 32, False),
    HfCase("ar_round_w4g128_sym_llama_bf16", "llama", "bfloat16", "auto_round", 4, 128, True),
    HfCase("ar_round_w4g32_asym_qwen2_bf16", "qwen2", "bfloat16", "auto_round", 4, 32, False),
    HfCase("ar_gptq_w4g32_sym_qwen3moe_bf16", "qwen3_moe", "bfloat16", "auto_gptq", 4, 32, True),
)

BY_ID: dict[str, HfCase] = {c.id: c for c in CASES}
