"""install() never replaces a module it does not understand with a quantized linear."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

import quantspec
from quantspec.errors import InvalidInput

EXAMPLE = "examples/tiny-llama-w8a8-dynamic"


class _Router(nn.Module):
    """Stands for a transformers MoE router: not a linear (its forward returns a tuple)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


def test_linear_scheme_never_replaces_a_non_linear_module() -> None:
    qm = quantspec.load_quantized(EXAMPLE, device="cpu", target="a3", progress=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(EXAMPLE))  # type: ignore[no-untyped-call]
    model.model.layers[0].mlp.up_proj = _Router()
    before = model.model.layers[0].self_attn.q_proj
    with pytest.raises(InvalidInput) as exc:
        qm.install(model)
    r = exc.value.reasons[0]
    assert r.message == ("model.layers.0.mlp.up_proj is a _Router, not a linear: the quantized ModelSlimW8A8Dynamic "
                         "loaded for it cannot replace it")
    assert model.model.layers[0].self_attn.q_proj is before  # rolled back: nothing half-installed
