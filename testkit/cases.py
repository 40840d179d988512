"""The end-to-end cases: one or more tiny checkpoints per supported matrix row, and their bounds.

A :class:`Case` names the matrix rows it covers, the tiny model it starts from, the exporter
that writes it (a real producer library where one runs on CPU, the project's writers
otherwise), the target it is planned for and the :class:`Bound` its logits must meet against the
float model's. ``tests/e2e`` parametrizes over :data:`CASES` and fails when a Linear or MoE row
supported on A2/A3 (or an MXFP8 row on A5) has no case. The bounds and their reasoning are in
docs/e2e.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import PreTrainedModel

from testkit.export import (
    Exported,
    export_auto_round,
    export_awq,
    export_gptq,
    export_modelslim,
    write_float,
)
from testkit.export_ct import CTRecipe, awq_dequantized, export_compressed_tensors
from testkit.export_gguf import QT, export_gguf
from testkit.models import TinyArch
from testkit.writers import AutoRoundPacking

#: A matrix row: ``(family, scheme, layer)`` as the matrix spells them.
RowKey = tuple[str, str, str]
Exporter = Callable[[PreTrainedModel, TinyArch, Path], Exported]


@dataclass(frozen=True)
class Bound:
    """What the quantized model's logits must satisfy against the float model's.

    ``rel_err``: maximum ``||L_q - L_f|| / ||L_f||`` over the whole batch; :attr:`cosine`: the
    minimum mean cosine similarity of per-token logit vectors that goes with it (noise of relative
    size r uncorrelated with the logits gives cosine 1 / sqrt(1 + r^2)); ``top1``: minimum fraction of tokens whose
    arg-max agrees; ``weight_err``: maximum ``max|W_eff - W| / max|W|`` of any quantized linear
    (the half quantization step of the format, plus slack), when weights can be probed;
    ``expert_err``: maximum ``||y_q - y_f|| / ||y_f||`` of one expert's SwiGLU output (three
    quantized matmuls: about e * sqrt(3) for a per-matmul noise e, with 1.5x headroom).
    """

    name: str
    rel_err: float
    top1: float
    weight_err: float
    expert_err: float

    @property
    def cosine(self) -> float:
        """Minimum mean cosine similarity: ``1 / sqrt(1 + rel_err^2)``, rounded down to 3 decimals."""
        return math.floor(1000 / math.sqrt(1 + self.rel_err**2)) / 1000

    def for_moe(self) -> Bound:
        """The bound of a MoE model: top-k routing is discrete, so a slightly perturbed hidden
        state can send a near-tie token to another expert and change its MLP output by O(1);
        a few such flips over 32 tokens x 2 layers add about 0.05 to the relative error."""
        return Bound(f"{self.name}, MoE routing", rel_err=self.rel_err + 0.08,
                     top1=self.top1 - 0.10, weight_err=self.weight_err, expert_err=self.expert_err)


#: Bounds by error class (see docs/e2e.md for the derivation of each number). The relative
#: logit error of a model whose n quantized linears each add independent relative noise e is
#: about e * sqrt(n) (n = 14 for the dense tiny model); the bounds sit about 1.5x above that.
W8_ONLY = Bound("8-bit weights, float activations", rel_err=0.05, top1=0.80, weight_err=0.012, expert_err=0.03)
W8A8 = Bound("8-bit weights, 8-bit activations", rel_err=0.09, top1=0.70, weight_err=0.012, expert_err=0.045)
MX8 = Bound("MXFP8 weights and activations", rel_err=0.22, top1=0.55, weight_err=0.13, expert_err=0.13)
#: GGUF Q5_0 takes d from the signed max (d = max / -16), so the other sign clips at 15/16: 1/16.
W5_ONLY = Bound("5-bit group-32 weights (GGUF Q5)", rel_err=0.22, top1=0.55, weight_err=0.07, expert_err=0.12)
W4_ONLY = Bound("4-bit group weights, float activations", rel_err=0.50, top1=0.30, weight_err=0.085, expert_err=0.3)
#: ggml's Q4_0 takes d from the *signed* max (d = max / -8), so values of the other sign clip at 7/8
#: of the block max: the worst weight error is 1/8 of the max, not half a step.
Q4_0 = Bound("4-bit GGUF Q4_0 blocks", rel_err=0.50, top1=0.30, weight_err=0.135, expert_err=0.3)
#: Q6_K: 6-bit codes of 16-element sub-blocks (half step 1/62 of the sub-block max) with int8
#: sub-scales (1/254 of the super-block max) and an fp16 d.
Q6_K = Bound("6-bit GGUF Q6_K blocks", rel_err=0.12, top1=0.60, weight_err=0.03, expert_err=0.06)
W4A8 = Bound("4-bit per-channel weights, 8-bit activations", rel_err=0.55, top1=0.30, weight_err=0.085,
             expert_err=0.35)
W4A4 = Bound("4-bit weights, 4-bit activations", rel_err=0.80, top1=0.15, weight_err=0.085, expert_err=0.6)


@dataclass(frozen=True)
class Case:
    """One end-to-end checkpoint."""

    id: str
    rows: tuple[RowKey, ...]
    arch: TinyArch
    producer: str
    export: Exporter
    bound: Bound
    dtype: torch.dtype = torch.bfloat16
    target: str = "a2"
    allow_untested: bool = False
    #: ``quantization=`` of ``load_quantized`` (online MXFP8).
    quantization: str | None = None
    #: Who decompresses the written folder independently of quantspec (``Exported.reference``).
    reference_by: str | None = None
    #: Identity-probe the quantized linears (activation quantization is exact on one-hot rows,
    #: except static per-tensor activations whose range does not cover 1.0).
    probe: bool = True


def _ms(linear: str | None, moe: str | None = None) -> Exporter:
    return lambda m, a, p: export_modelslim(m, a, p, linear=linear, moe=moe)


def _with_awq_reference(export: Exporter) -> Exporter:
    """An AWQ-layout exporter whose folder is also decoded by compressed-tensors' AutoAWQConverter."""

    def run(m: PreTrainedModel, a: TinyArch, p: Path) -> Exported:
        exp = export(m, a, p)
        return replace(exp, reference=awq_dequantized(exp.path))

    return run


def _ct(recipe: CTRecipe) -> Exporter:
    return lambda m, a, p: export_compressed_tensors(m, a, p, recipe)


def _gguf(qtype: QT) -> Exporter:
    return lambda m, a, p: export_gguf(m, a, p, qtype)


def _ar(packing: AutoRoundPacking, bits: int = 4, group_size: int = 128) -> Exporter:
    return lambda m, a, p: export_auto_round(m, a, p, packing=packing, bits=bits, group_size=group_size)


L, Q = TinyArch.LLAMA, TinyArch.QWEN3_MOE
MS, AWQ, GPTQ, AR, CT, GG, MXO = "modelslim", "awq", "gptq", "auto_round", "compressed_tensors", "gguf", "mxfp8_online"
PW = "quantspec writers"
AWQ_REF = "compressed-tensors AutoAWQConverter"
CTL = "compressed-tensors library"
GGL = "gguf-py"
GGL_Q6K = "gguf-py writer, quantspec Q6_K blocks"

CASES: tuple[Case, ...] = (
    # ---------------------------------------------------------------- ModelSlim (project writers)
    Case("ms_w8a8_static_fp16_llama", ((MS, "w8a8_static", "linear"),), L, PW, _ms("W8A8"), W8A8,
         dtype=torch.float16, probe=False),
    Case("ms_w8a8_static_bf16_llama", ((MS, "w8a8_static", "linear"),), L, PW, _ms("W8A8"), W8A8, probe=False),
    Case("ms_w8a8_dynamic_llama", ((MS, "w8a8_dynamic", "linear"),), L, PW, _ms("W8A8_DYNAMIC"), W8A8),
    Case("ms_w4a4_dynamic_llama", ((MS, "w4a4_dynamic", "linear"),), L, PW, _ms("W4A4_DYNAMIC"), W4A4),
    Case("ms_w8a8_dynamic_qwen3moe", ((MS, "w8a8_dynamic", "linear"), (MS, "w8a8_dynamic", "moe")), Q, PW,
         _ms("W8A8_DYNAMIC", "W8A8_DYNAMIC"), W8A8),
    Case("ms_w4a4_dynamic_qwen3moe", ((MS, "w8a8_dynamic", "linear"), (MS, "w4a4_dynamic", "moe")), Q, PW,
         _ms("W8A8_DYNAMIC", "W4A4_DYNAMIC"), W4A4),
    Case("ms_w4a8_dynamic_qwen3moe", ((MS, "w8a8_dynamic", "linear"), (MS, "w4a8_dynamic", "moe")), Q, PW,
         _ms("W8A8_DYNAMIC", "W4A8_DYNAMIC"), W4A8),
    Case("ms_w8a8_mxfp8_llama", ((MS, "w8a8_mxfp8", "linear"),), L, PW, _ms("W8A8_MXFP8"), MX8,
         target="a5", allow_untested=True),
    Case("ms_w8a8_mxfp8_qwen3moe", ((MS, "w8a8_mxfp8", "linear"), (MS, "w8a8_mxfp8", "moe")), Q, PW,
         _ms("W8A8_MXFP8", "W8A8_MXFP8"), MX8, target="a5", allow_untested=True),
    # ---------------------------------------------------------------- AWQ (project writers)
    Case("awq_w4a16_llama", ((AWQ, "w4a16", "linear"),), L, PW, _with_awq_reference(export_awq), W4_ONLY,
         dtype=torch.float16, reference_by=AWQ_REF),
    Case("awq_w8a16_llama", ((AWQ, "w8a16", "linear"),), L, PW, lambda m, a, p: export_awq(m, a, p, bits=8),
         W8_ONLY, dtype=torch.float16, allow_untested=True),
    Case("awq_w4a16_qwen3moe", ((AWQ, "w4a16", "linear"), (AWQ, "w4a16", "moe")), Q, PW,
         _with_awq_reference(export_awq), W4_ONLY, dtype=torch.float16, reference_by=AWQ_REF),
    Case("awq_w4a16_mixtral", ((AWQ, "w4a16", "linear"), (AWQ, "w4a16", "moe")), TinyArch.MIXTRAL, PW,
         _with_awq_reference(export_awq), W4_ONLY, dtype=torch.float16, reference_by=AWQ_REF),
    # ---------------------------------------------------------------- GPTQ (project writers)
    Case("gptq_v1_w4a16_llama", ((GPTQ, "w4a16", "linear"),), L, PW, export_gptq,
         W4_ONLY, dtype=torch.float16),
    Case("gptq_v2_w4a16_act_order_llama", ((GPTQ, "w4a16", "linear"),), L, PW,
         lambda m, a, p: export_gptq(m, a, p, v2=True, desc_act=True), W4_ONLY, dtype=torch.float16),
    Case("gptq_v1_w8a16_llama", ((GPTQ, "w8a16", "linear"),), L, PW, lambda m, a, p: export_gptq(m, a, p, bits=8),
         W8_ONLY, dtype=torch.float16),
    Case("gptq_v2_w4a16_qwen3moe", ((GPTQ, "w4a16", "linear"), (GPTQ, "w4a16", "moe")), Q, PW,
         lambda m, a, p: export_gptq(m, a, p, v2=True), W4_ONLY, dtype=torch.float16),
    Case("gptq_v1_w8a16_qwen3moe", ((GPTQ, "w8a16", "linear"), (GPTQ, "w8a16", "moe")), Q, PW,
         lambda m, a, p: export_gptq(m, a, p, bits=8, group_size=-1), W8_ONLY, dtype=torch.float16),
    Case("gptq_v1_w4a16_act_order_qwen3moe", ((GPTQ, "w4a16", "linear"), (GPTQ, "w4a16", "moe")), Q, PW,
         lambda m, a, p: export_gptq(m, a, p, desc_act=True), W4_ONLY, dtype=torch.float16),
    # ---------------------------------------------------------------- auto-round (project writers)
    Case("ar_gptq_w4a16_llama", ((AR, "w4a16", "linear"),), L, PW, _ar(AutoRoundPacking.AUTO_GPTQ), W4_ONLY),
    Case("ar_awq_w4a16_llama", ((AR, "w4a16", "linear"),), L, PW, _with_awq_reference(_ar(AutoRoundPacking.AUTO_AWQ)),
         W4_ONLY, reference_by=AWQ_REF),
    Case("ar_gptq_w8a16_llama", ((AR, "w8a16", "linear"),), L, PW, _ar(AutoRoundPacking.AUTO_GPTQ, 8), W8_ONLY),
    Case("ar_gptq_w4a16_qwen3moe", ((AR, "w4a16", "linear"), (AR, "w4a16", "moe")), Q, PW,
         _ar(AutoRoundPacking.AUTO_GPTQ), W4_ONLY),
    Case("ar_awq_w4a16_qwen3moe", ((AR, "w4a16", "linear"), (AR, "w4a16", "moe")), Q, PW,
         _with_awq_reference(_ar(AutoRoundPacking.AUTO_AWQ)), W4_ONLY, reference_by=AWQ_REF),
    Case("ar_gptqmodel_w8a16_qwen3moe", ((AR, "w8a16", "linear"), (AR, "w8a16", "moe")), Q, PW,
         _ar(AutoRoundPacking.GPTQMODEL, 8, -1), W8_ONLY),
    # ---------------------------------------------------------------- compressed-tensors (library)
    Case("ct_w8a8_dynamic_llama", ((CT, "w8a8_dynamic", "linear"),), L, CTL, _ct(CTRecipe.W8A8), W8A8,
         reference_by=CTL),
    Case("ct_w8a8_dynamic_qwen3moe", ((CT, "w8a8_dynamic", "linear"), (CT, "w8a8_dynamic", "moe")), Q, CTL,
         _ct(CTRecipe.W8A8), W8A8, reference_by=CTL),
    Case("ct_w4a16_qwen3moe", ((CT, "w4a16", "moe"),), Q, CTL, _ct(CTRecipe.W4A16_EXPERTS), W4_ONLY, reference_by=CTL),
    Case("ct_w4a8_dynamic_qwen3moe", ((CT, "w8a8_dynamic", "linear"), (CT, "w4a8_dynamic", "moe")), Q, CTL,
         _ct(CTRecipe.W4A8_MOE), W4A8, reference_by=CTL),
    Case("ct_w4a8_dynamic_qwen3moe_sglang", ((CT, "w8a8_dynamic", "linear"), (CT, "w4a8_dynamic", "moe")), Q,
         f"{CTL}, experts rewritten to SGLang's layout", _ct(CTRecipe.W4A8_MOE_SGLANG), W4A8, reference_by=CTL),
    Case("ct_w4a8_dynamic_qwen3moe_sglang_clip", ((CT, "w8a8_dynamic", "linear"), (CT, "w4a8_dynamic", "moe")), Q,
         f"{CTL}, SGLang's activation_use_clip layout", _ct(CTRecipe.W4A8_MOE_SGLANG_CLIP), W4A8, reference_by=CTL),
    # ---------------------------------------------------------------- GGUF (gguf-py)
    Case("gguf_q8_0_llama", ((GG, "gguf", "linear"),), L, GGL, _gguf(QT.Q8_0), W8_ONLY, reference_by=GGL),
    Case("gguf_q4_0_llama", ((GG, "gguf", "linear"),), L, GGL, _gguf(QT.Q4_0), Q4_0, reference_by=GGL),
    Case("gguf_q4_1_llama", ((GG, "gguf", "linear"),), L, GGL, _gguf(QT.Q4_1), W4_ONLY, reference_by=GGL),
    Case("gguf_q5_0_qwen3moe", ((GG, "gguf", "linear"), (GG, "gguf", "moe")), Q, GGL, _gguf(QT.Q5_0), W5_ONLY,
         reference_by=GGL),
    Case("gguf_q5_1_llama", ((GG, "gguf", "linear"),), L, GGL, _gguf(QT.Q5_1), W5_ONLY, reference_by=GGL),
    Case("gguf_q6_k_llama", ((GG, "gguf", "linear"),), L, GGL_Q6K, _gguf(QT.Q6_K), Q6_K, reference_by=GGL),
    Case("gguf_q6_k_qwen3moe", ((GG, "gguf", "linear"), (GG, "gguf", "moe")), Q, GGL_Q6K, _gguf(QT.Q6_K), Q6_K,
         reference_by=GGL),
    Case("gguf_q4_0_qwen3moe", ((GG, "gguf", "linear"), (GG, "gguf", "moe")), Q, GGL, _gguf(QT.Q4_0), Q4_0,
         reference_by=GGL),
    Case("gguf_q8_0_qwen3moe", ((GG, "gguf", "linear"), (GG, "gguf", "moe")), Q, GGL, _gguf(QT.Q8_0), W8_ONLY,
         reference_by=GGL),
    # ---------------------------------------------------------------- online MXFP8 (float checkpoint)
    Case("online_mxfp8_llama", ((MXO, "w8a8_mxfp8", "linear"),), L, "transformers (float)",
         write_float, MX8, target="a5", allow_untested=True, quantization="mxfp8"),
    Case("online_mxfp8_qwen3moe", ((MXO, "w8a8_mxfp8", "linear"), (MXO, "w8a8_mxfp8", "moe")), Q,
         "transformers (float)", write_float, MX8, target="a5", allow_untested=True,
         quantization="mxfp8"),
)


def bound_of(case: Case) -> Bound:
    """The case's bound, loosened for MoE models (see :meth:`Bound.for_moe`)."""
    return case.bound if case.arch is TinyArch.LLAMA else case.bound.for_moe()


def cases_by_row() -> dict[RowKey, list[Case]]:
    """Every matrix row some case covers, with its cases."""
    out: dict[RowKey, list[Case]] = {}
    for case in CASES:
        for row in case.rows:
            out.setdefault(row, []).append(case)
    return out
