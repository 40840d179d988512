"""``make demo`` (``python examples/demo.py``): the main job on the bundled example.

The example (``examples/tiny-llama-w8a8-dynamic``) is a tiny Llama quantized W8A8_DYNAMIC in the
msModelSlim layout. The demo validates its description, plans it for an Atlas A2, loads it with
``load_quantized(..., device="cpu")`` (the CPU emulation of the torch_npu ops), installs it into a
transformers model built on the meta device and compares its logits with the float model's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quantspec.cli.main import main as cli

EXAMPLES = Path(__file__).resolve().parent
CHECKPOINT = EXAMPLES / "tiny-llama-w8a8-dynamic"
REFERENCE = EXAMPLES / "tiny-llama-reference.safetensors"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def forward_check() -> float:
    """Load, install and run the example; return the relative logit error against the float model."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    import quantspec

    qm = quantspec.load_quantized(CHECKPOINT, device="cpu", target="a2", progress=False)
    print(f"loaded {len(qm.modules)} executable modules, e.g.:")
    for name in list(qm.modules)[:3]:
        print(f"  {name}: {type(qm.modules[name]).__name__}")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(CHECKPOINT))  # type: ignore[no-untyped-call]
    model = qm.install(model)
    ref = load_file(str(REFERENCE))
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"]).logits.float()
    err = float((logits - ref["logits"]).norm() / ref["logits"].norm())
    agree = float((logits.argmax(-1) == ref["logits"].argmax(-1)).float().mean())
    print(f"logits {tuple(logits.shape)}: relative error vs float model {err:.4f}, top-1 agreement {agree:.0%}")
    return err


def main() -> int:
    """Run the demo; exit 0 when every step succeeds and the logits are close."""
    _step("quantspec validate (the checkpoint's own description)")
    if cli(["validate", str(CHECKPOINT)]) not in (0, 1):
        return 2
    _step("quantspec plan --target a2 (metadata only: no weight is read)")
    if cli(["plan", str(CHECKPOINT), "--target", "a2"]) != 0:
        return 1
    _step("quantspec plan --target a5 (the same checkpoint on Ascend 950: untested cells are refused)")
    cli(["plan", str(CHECKPOINT), "--target", "a5", "--layer", "layers.0.self_attn"])
    _step("load_quantized(..., device='cpu') + install into transformers + forward")
    err = forward_check()
    # W8A8 dynamic on this tiny model stays within a few percent of the float logits.
    return 0 if err < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
