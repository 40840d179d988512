"""Regenerate the bundled example: a tiny Llama quantized by the project's ModelSlim writer.

``examples/tiny-llama-w8a8-dynamic/`` is an msModelSlim-layout W8A8_DYNAMIC checkpoint (int8
weights with per-channel scales and offsets, a FLOAT ``lm_head`` and embeddings, and a
``quant_model_description.json`` listing every tensor). ``examples/tiny-llama-reference.safetensors``
holds a fixed batch of token ids and the float model's logits on it, so the demo can show how
close the quantized model is. Deterministic: running this again reproduces the same files.

    .venv/bin/python examples/make_tiny_llama.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the writers are test support, not shipped
from testkit.export import export_modelslim
from testkit.models import TinyArch

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / "tiny-llama-w8a8-dynamic"
REFERENCE = HERE / "tiny-llama-reference.safetensors"


def build() -> None:
    """Write the example checkpoint and its float reference logits."""
    cfg = LlamaConfig(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=256, max_position_embeddings=128,
        tie_word_embeddings=False, rms_norm_eps=1e-6, initializer_range=0.05,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
    torch.nn.Module.to(model, torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.train(False)
    if CHECKPOINT.exists():
        shutil.rmtree(CHECKPOINT)
    export_modelslim(model, TinyArch.LLAMA, CHECKPOINT, linear="W8A8_DYNAMIC")
    ids = torch.randint(0, cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    save_file({"input_ids": ids, "logits": logits.contiguous()}, str(REFERENCE))


if __name__ == "__main__":
    build()
    print(f"wrote {CHECKPOINT} and {REFERENCE}")
