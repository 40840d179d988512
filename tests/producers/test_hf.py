"""auto-round and llm-compressor as the oracles: their own CPU exports validated, planned, loaded, run.

Each case of ``hf_cases.py`` was exported by its producer itself (``make producers``): auto-round
in the case's format and as ``fake`` (its own quantize-dequantize model in float), llm-compressor
with a data-free ``oneshot`` whose saved checkpoint compressed-tensors decompresses for the
reference. quantspec must validate the export, plan it on every generation, load it on the cpu
emulation and match the reference within the case's bound, and the float model within a loose one.
"""

from __future__ import annotations

import json
from functools import cache

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

import quantspec
from quantspec.cli.main import main as cli
from quantspec.vocab import LayerKind, NpuGen
from testkit.follow import mismatches
from testkit.metrics import LogitStats, logit_stats
from tests.producers.conftest import require_export
from tests.producers.hf_cases import BY_ID, CASES, HfCase

PRODUCER = "hf"
EXPORTED = list(CASES)
LOADED = [c for c in EXPORTED if c.rejects is None]


@cache
def run(case_id: str, producer_fixes: tuple[str, ...] = ()) -> tuple[LogitStats, LogitStats]:
    """(vs the producer's reference, vs float) of a case loaded by quantspec."""
    case = next(c for c in CASES if c.id == case_id)
    root = require_export(PRODUCER, case.id)
    ref = load_file(str(root / "reference.safetensors"))
    export = root / "export"
    qm = quantspec.load_quantized(export, device="cpu", target=case.target, allow_untested=case.allow_untested,
                                  producer_fixes=producer_fixes, progress=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(export),  # type: ignore[no-untyped-call]
                                                 dtype=getattr(torch, case.dtype))
    assert mismatches(qm) == []  # the loader built exactly what the plan names
    qm.install(model)
    model.train(False)
    with torch.no_grad():
        out = model(input_ids=ref["input_ids"], use_cache=False).logits.to(torch.float32)
    return logit_stats(out, ref["fake_logits"]), logit_stats(out, ref["float_logits"])


def reference_kind(case_id: str) -> str:
    """``decompressed`` (compressed-tensors' reload), ``simulation`` (llm-compressor's in-memory model,
    where transformers cannot reload the export) or ``fake`` (auto-round's fake export)."""
    path = require_export(PRODUCER, case_id) / "reference.json"
    return str(json.loads(path.read_text())["kind"]) if path.is_file() else "fake"


@pytest.mark.parametrize("case", [c for c in CASES if c.producer == "llm-compressor"],
                         ids=lambda c: c.id)
def test_llm_compressor_reference_is_the_decompression_except_for_moe_reloads(case: HfCase) -> None:
    """transformers 5.17 reloads the dense exports compressed; for the MoE ones its weight conversion
    fails and the reference falls back to llm-compressor's simulation, recorded with the error."""
    kind = reference_kind(case.id)
    assert kind == ("simulation" if case.arch in ("qwen3_moe", "deepseek_v3") else "decompressed")
    if kind == "simulation":
        why = json.loads((require_export(PRODUCER, case.id) / "reference.json").read_text())["why"]
        assert "automatic conversion of the weights" in why


@pytest.mark.parametrize("case", EXPORTED, ids=lambda c: c.id)
def test_validate_is_clean(case: HfCase, capsys: pytest.CaptureFixture[str]) -> None:
    root = require_export(PRODUCER, case.id)
    assert not (root / "ERROR.txt").exists(), (root / "ERROR.txt").read_text()
    assert cli(["validate", str(root / "export")]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("case", EXPORTED, ids=lambda c: c.id)
def test_plans_on_every_generation_and_quantizes_what_the_producer_did(case: HfCase) -> None:
    export = require_export(PRODUCER, case.id) / "export"
    for gen in NpuGen:
        plan = quantspec.plan(export, target=gen, allow_untested=case.allow_untested)
        assert plan.layers
        if gen.value == case.target and case.rejects:
            assert not plan.accepted
            assert {r.code.value for la in plan.rejected_layers() for r in la.reasons} == {case.rejects}
        elif gen.value == case.target:
            assert plan.accepted, [(la.name, [r.message for r in la.reasons]) for la in plan.rejected_layers()]
            quantized = {la.kind for la in plan.layers if la.quant is not None}
            assert LayerKind.LINEAR in quantized
            if case.arch in ("qwen3_moe", "mixtral", "deepseek_v3"):  # experts quantized, routers float
                assert {LayerKind.MOE_W13, LayerKind.MOE_W2} <= quantized
                routers = [la for la in plan.layers if la.kind is LayerKind.ROUTER]
                assert routers and all(la.label == "FLOAT" for la in routers)
            if case.arch == "deepseek_v3":  # MLA's fused q_a/kv_a projection, planned whole
                assert any(la.name.endswith("self_attn.fused_qkv_a_proj") and la.quant is not None
                           for la in plan.layers)


@pytest.mark.slow
@pytest.mark.parametrize("case", LOADED, ids=lambda c: c.id)
def test_logits_match_the_producers_reference(case: HfCase) -> None:
    vs_fake, vs_float = run(case.id)
    assert vs_fake.rel_err <= case.ref_bound, str(vs_fake)
    assert vs_float.rel_err <= case.float_bound, str(vs_float)


@pytest.mark.slow
def test_producer_fix_loads_the_defective_auto_round_export_right() -> None:
    """auto-round 0.15.1's model-free asymmetric export (zero points stored minus one under
    ``packing_format: auto_round``), loaded with ``--producer-fix``: the plan decodes zero + 1, and
    the model is as close to the float model as the symmetric model-free export (0.28), instead of
    1.35 when decoded as declared; and within 0.1 of auto-round's regular RTN fake model."""
    case = BY_ID["ar_model_free_w4g32_asym_llama_bf16"]
    fix = "auto_round_model_free_asym_zero_point"
    plan = quantspec.plan(require_export(PRODUCER, case.id) / "export", target=case.target, producer_fixes=[fix])
    assert plan.accepted and plan.policy.producer_fixes == (fix,)
    vs_fake, vs_float = run(case.id, (fix,))
    assert vs_float.rel_err <= BY_ID["ar_model_free_w4g32_sym_llama_bf16"].float_bound, str(vs_float)
    # auto-round's regular (non-model-free) fake export of the same settings: 0.07 measured
    assert vs_fake.rel_err <= 0.1, str(vs_fake)


def table() -> str:
    """The docs/e2e.md auto-round table (``python -c 'from tests.producers.test_hf import table; ...'``)."""
    rows = ["| case | model, dtype | format / preset | bits, group, sym | target | logits vs reference (bound) "
            "| logits vs float (bound) |", "|---|---|---|---|---|---|---|"]
    for c in CASES:
        head = (f"| `{c.id}` | {c.arch}, {c.dtype} | `{c.fmt}` | {c.bits}, {c.group_size}, "
                f"{'sym' if c.sym else 'asym'} | {c.target} |")
        if c.rejects:
            rows.append(f"{head} plan rejects: `{c.rejects}` | |")
            continue
        fake, flt = run(c.id)
        kind = reference_kind(c.id)
        note = " (vs llm-compressor's simulation)" if kind == "simulation" else ""
        rows.append(f"{head} {fake.rel_err:.4f} ({c.ref_bound}){note} | {flt.rel_err:.4f} ({c.float_bound}) |")
    return "\n".join(rows)
