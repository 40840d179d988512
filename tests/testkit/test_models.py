"""The tiny models: seeded, constraint-friendly dims, per-expert checkpoint names in the right order."""

from __future__ import annotations

import pytest
import torch

from testkit.export import linear_modules
from testkit.metrics import expert_output, swiglu_reference
from testkit.models import (
    EXPERTS,
    MOE_INTERMEDIATE,
    TinyArch,
    build_float_model,
    checkpoint_state_dict,
    expert_names,
)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a = checkpoint_state_dict(build_float_model(TinyArch.LLAMA, seed=3), TinyArch.LLAMA)
    b = checkpoint_state_dict(build_float_model(TinyArch.LLAMA, seed=3), TinyArch.LLAMA)
    c = checkpoint_state_dict(build_float_model(TinyArch.LLAMA, seed=4), TinyArch.LLAMA)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.layers.0.self_attn.q_proj.weight"], c["model.layers.0.self_attn.q_proj.weight"])
    # norms are randomised too, so a loader that drops one changes the logits
    assert not torch.all(a["model.norm.weight"] == 1)


@pytest.mark.parametrize("arch", list(TinyArch))
def test_dims_satisfy_every_kernel_constraint(arch: TinyArch) -> None:
    state = checkpoint_state_dict(build_float_model(arch), arch)
    for module in linear_modules(state):
        n, k = state[f"{module}.weight"].shape
        if module.endswith(("mlp.gate", "block_sparse_moe.gate")):
            assert n == EXPERTS
            continue
        # MX pairs of 32-blocks, GGUF 32-blocks, int4 words, NZ alignment, group 128 < K
        assert k % 64 == 0 and k > 128 and n % 32 == 0, (module, n, k)


@pytest.mark.parametrize("arch", [TinyArch.QWEN3_MOE, TinyArch.MIXTRAL])
def test_experts_are_split_gate_first(arch: TinyArch) -> None:
    model = build_float_model(arch, dtype=torch.float32)
    state = checkpoint_state_dict(model, arch)
    container, gate, up, down = expert_names(arch)
    prefix = f"model.layers.1.{container}"
    assert state[f"{prefix}.0.{gate}.weight"].shape == (MOE_INTERMEDIATE, 256)
    assert state[f"{prefix}.0.{down}.weight"].shape == (256, MOE_INTERMEDIATE)
    assert not any(".experts.gate_up_proj" in k or k.endswith("experts.down_proj") for k in state)
    experts = model.get_submodule("model.layers.1.mlp.experts")
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(0))
    for e in range(EXPERTS):
        want = swiglu_reference(x, *(state[f"{prefix}.{e}.{p}.weight"] for p in (gate, up, down)))
        torch.testing.assert_close(expert_output(experts, x, e), want, rtol=1e-4, atol=1e-5)
    # swapping gate and up must be visible (silu is not symmetric)
    swapped = swiglu_reference(x, *(state[f"{prefix}.0.{p}.weight"] for p in (up, gate, down)))
    assert not torch.allclose(expert_output(experts, x, 0), swapped, rtol=1e-2, atol=1e-3)


def test_mixtral_uses_its_checkpoint_names() -> None:
    state = checkpoint_state_dict(build_float_model(TinyArch.MIXTRAL), TinyArch.MIXTRAL)
    assert "model.layers.0.block_sparse_moe.gate.weight" in state
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in state
    assert not any(".mlp." in k for k in state)
