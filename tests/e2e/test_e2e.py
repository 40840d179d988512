"""End-to-end: tiny models quantized in every supported format, loaded on the cpu emulation,
installed into transformers models and compared with the float model (issue 6).

Rows to cover are read from the support matrix: every Linear/MoE row supported on A2 or A3,
plus the MXFP8 rows (ModelSlim W8A8_MXFP8 and online MXFP8) on A5. A new such row without a
case in :data:`testkit.cases.CASES` fails :func:`test_every_required_row_has_a_case`.
Bounds and their reasoning: docs/e2e.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import quantspec
from quantspec.matrix import MatrixEntry
from quantspec.vocab import MatrixLayer, NpuGen, Status
from testkit.cases import CASES, Case, bound_of, cases_by_row
from testkit.export import module_kind
from testkit.metrics import (
    effective_weight,
    expert_output,
    logit_stats,
    max_rel_diff,
    swiglu_reference,
)
from testkit.models import TinyArch, expert_names, logits
from tests.e2e.conftest import Session

#: The MXFP8 rows the acceptance adds on A5 (in_progress / untested there, loaded with allow_untested).
A5_ROWS = {
    ("modelslim", "w8a8_mxfp8", "linear"),
    ("modelslim", "w8a8_mxfp8", "moe"),
    ("mxfp8_online", "w8a8_mxfp8", "linear"),
    ("mxfp8_online", "w8a8_mxfp8", "moe"),
}
IDS = [c.id for c in CASES]

def _row(e: MatrixEntry) -> tuple[str, str, str]:
    return (e.family.value, e.scheme.value, e.layer.value)


def required_rows() -> set[tuple[str, str, str]]:
    """Linear/MoE rows supported on A2 or A3, plus the A5 MXFP8 rows."""
    matrix = quantspec.load_matrix()
    rows = {
        _row(e) for e in matrix.entries
        if e.layer in (MatrixLayer.LINEAR, MatrixLayer.MOE)
        and Status.SUPPORTED in (e.status.get(NpuGen.A2), e.status.get(NpuGen.A3))
    }
    return rows | A5_ROWS


def test_every_required_row_has_a_case() -> None:
    covered = set(cases_by_row())
    missing = sorted(required_rows() - covered)
    assert not missing, f"matrix rows without an end-to-end case: {missing}"


def test_every_case_row_is_a_matrix_row_the_case_may_use() -> None:
    matrix = quantspec.load_matrix()
    index = {_row(e): e for e in matrix.entries}
    for case in CASES:
        for row in case.rows:
            assert row in index, f"{case.id}: {row} is not a matrix row"
            status = index[row].status.get(NpuGen(case.target))
            allowed = {Status.SUPPORTED} | ({Status.UNTESTED, Status.IN_PROGRESS} if case.allow_untested else set())
            assert status in allowed, f"{case.id}: {row} is {status} on {case.target}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_plan_accepts_and_exercises_the_rows(session: Session, case: Case) -> None:
    exp = session.exported(case)
    targets = [case.target] if case.target == "a5" else ["a2", "a3"]
    for target in targets:
        plan = quantspec.plan(exp.path, target=target, allow_untested=case.allow_untested,
                              quantization=case.quantization)
        rejected = {layer.name: [r.message for r in layer.reasons] for layer in plan.rejected_layers()}
        assert plan.accepted, f"{case.id} on {target}: {rejected}"
        entries = {layer.matrix_entry for layer in plan.layers if layer.matrix_entry}
        for row in case.rows:
            assert "/".join(row) in entries, f"{case.id}: plan does not use {'/'.join(row)} (uses {sorted(entries)})"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_load_install_and_logits_within_bound(session: Session, case: Case) -> None:
    loaded = session.loaded(case)
    ref = session.float_ref(case.arch, case.dtype)
    assert loaded.qmodel.plan.accepted
    stats = logit_stats(loaded.logits, ref.logits)
    b = bound_of(case)
    assert stats.cosine >= b.cosine and stats.rel_err <= b.rel_err and stats.top1 >= b.top1, (
        f"{case.id} ({b.name}): {stats}; bound cosine>={b.cosine} rel_err<={b.rel_err} top1>={b.top1}"
    )
    # Quantization must change something: an exact match would mean the float weights were used.
    assert stats.rel_err > 1e-4, f"{case.id}: logits identical to the float model's"


GGUF = ("gguf-py", "gguf-py writer, quantspec Q6_K blocks")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_module_names_are_checkpoint_names(session: Session, case: Case) -> None:
    loaded = session.loaded(case)
    ref = session.float_ref(case.arch, case.dtype)
    prefixes = {name.rsplit(".", i)[0] for name in ref.state for i in range(1, name.count(".") + 1)}
    keys = set(loaded.qmodel.modules)
    floats = loaded.qmodel.float_tensors
    assert keys <= prefixes, f"{case.id}: not checkpoint module names: {sorted(keys - prefixes)[:5]}"
    container = expert_names(case.arch)[0]
    for module in loaded.exported.quantized:
        if module_kind(module) == "expert":
            owner = module.split(f".{container}.")[0] + f".{container}"
            assert owner in keys, f"{case.id}: experts {owner} not loaded as a module"
        elif case.producer in GGUF and module_kind(module) == "embedding":
            # GGUF embeddings are dequantized at load into the model's own embedding (FloatTensors).
            assert f"{module}.weight" in floats, f"{case.id}: dequantized {module}.weight missing"
        else:
            assert module in keys, f"{case.id}: quantized {module} is not an executable module"
    # quantized linear weights are never also handed out as float tensors
    assert not any(f"{m}.weight" in floats for m in loaded.exported.quantized
                   if module_kind(m) != "embedding"), case.id


def _effective(session: Session, case: Case) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(module, effective [N, K] weight, float weight) of every quantized non-expert linear."""
    loaded = session.loaded(case)
    ref = session.float_ref(case.arch, case.dtype)
    out = []
    for module in loaded.exported.quantized:
        if module_kind(module) not in ("linear", "lm_head", "embedding"):
            continue
        w = ref.state[f"{module}.weight"]
        if module in loaded.qmodel.modules:
            out.append((module, effective_weight(loaded.qmodel.modules[module], w.size(1), case.dtype), w))
        elif f"{module}.weight" in loaded.qmodel.float_tensors:
            out.append((module, loaded.qmodel.float_tensors[f"{module}.weight"].to(torch.float32), w))
    return out


@pytest.mark.parametrize("case", [c for c in CASES if c.probe], ids=lambda c: c.id)
def test_effective_weights_within_half_a_step(session: Session, case: Case) -> None:
    targets = _effective(session, case)
    exported = session.loaded(case).exported
    if any(module_kind(m) == "linear" for m in exported.quantized):
        assert targets, f"{case.id}: no quantized linear to probe"
    for module, w_eff, w in targets:
        err = max_rel_diff(w_eff, w)
        assert err <= case.bound.weight_err, f"{case.id}: {module} max|W_eff - W|/max|W| = {err:.5f}"


MOE_CASES = [c for c in CASES if c.arch is not TinyArch.LLAMA]


@pytest.mark.parametrize("case", MOE_CASES, ids=lambda c: c.id)
def test_expert_outputs_close_to_float_experts(session: Session, case: Case) -> None:
    loaded = session.loaded(case)
    ref = session.float_ref(case.arch, case.dtype)
    container, gate, up, down = expert_names(case.arch)
    gen = torch.Generator().manual_seed(11)
    experts = {n: m for n, m in loaded.qmodel.modules.items() if n.endswith(container)}
    assert experts, f"{case.id}: no experts module"
    for name, mod in experts.items():
        x = torch.randn(16, ref.state[f"{name}.0.{gate}.weight"].size(1), generator=gen).to(case.dtype)
        for e in range(getattr(mod, "num_experts", 0)):
            want = swiglu_reference(x, *(ref.state[f"{name}.{e}.{p}.weight"] for p in (gate, up, down)))
            got = expert_output(mod, x, e)
            err = float((got - want).norm() / want.norm())
            assert err <= case.bound.expert_err, f"{case.id}: {name} expert {e}: relative error {err:.4f}"


REFERENCED = [c for c in CASES if c.reference_by]


@pytest.mark.parametrize("case", REFERENCED, ids=lambda c: c.id)
def test_matches_the_producers_dequantized_weights(session: Session, case: Case) -> None:
    loaded = session.loaded(case)
    reference = loaded.exported.reference
    assert reference, f"{case.id}: {case.reference_by} returned no dequantized weights"
    # Weight-only and dequantized-at-load layers match to the output dtype's rounding; int8
    # per-token activations are exact on one-hot probes but not on random inputs.
    act_quant = case.bound.name.endswith("8-bit activations")
    linear_tol, expert_tol = 0.01, (0.06 if act_quant else 0.02)
    checked = 0
    for module, w_eff, _w in _effective(session, case):
        err = max_rel_diff(w_eff, reference[module])
        assert err <= linear_tol, f"{case.id}: {module} differs from the producer's dequantization by {err:.5f}"
        checked += 1
    container, gate, up, down = expert_names(case.arch)
    gen = torch.Generator().manual_seed(7)
    for name, mod in loaded.qmodel.modules.items():
        if not name.endswith(container):
            continue
        x = torch.randn(16, reference[f"{name}.0.{gate}"].size(1), generator=gen).to(case.dtype)
        for e in range(getattr(mod, "num_experts", 0)):
            want = swiglu_reference(x, reference[f"{name}.{e}.{gate}"], reference[f"{name}.{e}.{up}"],
                                    reference[f"{name}.{e}.{down}"])
            err = max_rel_diff(expert_output(mod, x, e), want)
            assert err <= expert_tol, f"{case.id}: {name} expert {e} output differs by {err:.5f}"
            checked += 1
    assert checked, f"{case.id}: nothing compared with the producer's weights"


def test_case_ids_are_unique() -> None:
    assert len(IDS) == len(set(IDS))


def test_bounds_reject_a_checkpoint_read_with_the_wrong_zero_convention(session: Session, tmp_path: Path) -> None:
    """Negative control: a GPTQ v1 folder (zeros stored minus one) whose config claims ``gptq_v2``
    loads without error but every zero point is off by one; the bounds must catch it."""
    case = next(c for c in CASES if c.id == "gptq_v1_w4a16_llama")
    ref = session.float_ref(case.arch, case.dtype)
    exp = case.export(ref.model, case.arch, tmp_path / "mislabelled")
    config = json.loads((exp.path / "config.json").read_text())
    config["quantization_config"]["checkpoint_format"] = "gptq_v2"
    (exp.path / "config.json").write_text(json.dumps(config))
    (exp.path / "quantize_config.json").unlink()
    qm = quantspec.load_quantized(exp.path, device="cpu", target="a2", progress=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            AutoConfig.from_pretrained(exp.path), dtype=case.dtype)
    qm.install(model)
    stats = logit_stats(logits(model, session.tokens), ref.logits)
    assert stats.rel_err > bound_of(case).rel_err and stats.cosine < bound_of(case).cosine, stats
    module = "model.layers.0.mlp.up_proj"
    w = ref.state[f"{module}.weight"]
    assert max_rel_diff(effective_weight(qm.modules[module], w.size(1), case.dtype), w) > case.bound.weight_err


@pytest.mark.parametrize("variant", ["ct_w4a8_dynamic_qwen3moe_sglang", "ct_w4a8_dynamic_qwen3moe_sglang_clip"])
def test_ct_w4a8_sglang_layouts_load_like_the_library_layout(session: Session, variant: str) -> None:
    """Both engines' compressed-tensors W4A8 MoE layouts of one export are planned as SGLang's
    int4 pairs, and load to the logits of compressed-tensors' own int8-per-value layout."""
    base = session.loaded(next(c for c in CASES if c.id == "ct_w4a8_dynamic_qwen3moe"))
    other = session.loaded(next(c for c in CASES if c.id == variant))
    experts = [layer for layer in other.qmodel.plan.layers if layer.kind.value.startswith("moe")]
    assert experts and all(layer.quant is not None and layer.quant.weight.layout.value == "modelslim_int4x2"
                           for layer in experts)
    clip = variant.endswith("clip")
    assert all(layer.quant is not None and layer.quant.activation is not None
               and layer.quant.activation.clip is clip for layer in experts)
    torch.testing.assert_close(other.logits, base.logits, rtol=0.02, atol=0.02)


def test_ct_w4a8_clip_flag_that_disagrees_with_the_tensors_is_rejected(session: Session, tmp_path: Path) -> None:
    """The clip variant's tensors under a config without ``activation_use_clip``: SGLang would cast the
    int64 scale words into float32 parameters, so every expert group is rejected, naming why."""
    import shutil

    exp = session.exported(next(c for c in CASES if c.id == "ct_w4a8_dynamic_qwen3moe_sglang_clip"))
    folder = tmp_path / "noclip"
    shutil.copytree(exp.path, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["quantization_config"]["config_groups"]["group_1"]["activation_use_clip"]
    (folder / "config.json").write_text(json.dumps(config))
    plan = quantspec.plan(folder, target="a2")
    bad = [layer for layer in plan.layers if layer.kind.value.startswith("moe")]
    assert bad and all(layer.status.value == "rejected" for layer in bad)
    msg = bad[0].reasons[0]
    assert msg.code.value == "plan.kernel_constraint"
    assert msg.message == (
        "model.layers.0.mlp.experts.0.gate_proj: activation_use_clip is false but weight_scale is int64, the "
        "non-clip variant stores float32; a bias per expert projection belongs to the clip variant")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_accepted_layer_is_loaded_as_the_plans_executable(session: Session, case: Case) -> None:
    from testkit.follow import mismatches

    assert mismatches(session.loaded(case).qmodel) == []
