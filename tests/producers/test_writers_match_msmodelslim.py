"""The project's ModelSlim writers (used where msModelSlim cannot export on CPU, and by the e2e
cases) write the tensors msModelSlim's own saver writes: names, dtypes and shapes, module by module."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from testkit import writers as wr
from tests.producers.conftest import require_export

Writer = Callable[[torch.Tensor, torch.dtype, torch.Tensor | None], dict[str, torch.Tensor]]
ST = {"I8": torch.int8, "I32": torch.int32, "I64": torch.int64, "F32": torch.float32, "BF16": torch.bfloat16,
      "F16": torch.float16, "U8": torch.uint8, "F8_E4M3": torch.float8_e4m3fn}

#: (case, module, writer): a module with a bias (attention) and one without (MLP).
CASES: list[tuple[str, str, Writer]] = [
    ("w8a8_llama_fp16_bias", "model.layers.0.self_attn.q_proj",
     lambda w, d, b: wr.modelslim_w8a8_static(w, model_dtype=d, input_scale=0.02, input_offset=1, bias=b)),
    ("w8a8_llama_bf16_bias", "model.layers.0.mlp.gate_proj",
     lambda w, d, b: wr.modelslim_w8a8_static(w, model_dtype=d, input_scale=0.02, input_offset=1, bias=b)),
    ("w8a8_dynamic_llama_fp16", "model.layers.0.self_attn.q_proj",
     lambda w, d, b: wr.modelslim_w8a8_dynamic(w, model_dtype=d)),
    ("w8a16_llama_bf16", "model.layers.0.mlp.up_proj", lambda w, d, b: wr.modelslim_w8a16(w, model_dtype=d)),
    ("w4a4_dynamic_llama_bf16", "model.layers.0.mlp.up_proj", lambda w, d, b: wr.modelslim_w4a4_dynamic(w)),
    ("mxfp8_llama_bf16", "model.layers.0.mlp.up_proj", lambda w, d, b: wr.modelslim_w8a8_mxfp8(w)),
    ("mxfp4_llama_bf16", "model.layers.0.mlp.up_proj", lambda w, d, b: wr.modelslim_mxfp4(w)),
    ("w4a8_mxfp_llama_bf16", "model.layers.0.mlp.up_proj", lambda w, d, b: wr.modelslim_mxfp4(w)),
    ("wfp8afp8_llama_bf16", "model.layers.0.mlp.up_proj",
     lambda w, d, b: wr.modelslim_w8a8_fp8_dynamic(w, model_dtype=d)),
]


def _header(path: Path) -> dict[str, dict[str, object]]:
    with path.open("rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        return {k: v for k, v in json.loads(fh.read(n)).items() if k != "__metadata__"}


@pytest.mark.parametrize(("case_id", "module", "writer"), CASES, ids=[c[0] for c in CASES])
def test_writer_writes_what_msmodelslim_writes(case_id: str, module: str, writer: Writer) -> None:
    export = require_export("msmodelslim", case_id) / "export"
    header: dict[str, dict[str, object]] = {}
    for f in sorted(export.glob("*.safetensors")):
        header.update(_header(f))
    theirs = {name[len(module) + 1:]: (ST[str(v["dtype"])], tuple(v["shape"]))  # type: ignore[arg-type]
              for name, v in header.items() if name.startswith(module + ".")}
    config = json.loads((export / "config.json").read_text())
    dtype = getattr(torch, config["torch_dtype"])
    n = {"q_proj": config["num_attention_heads"] * config.get("head_dim", 32)}.get(module.rsplit(".", 1)[1],
                                                                                  config["intermediate_size"])
    k = config["hidden_size"]
    bias = torch.zeros(n) if "bias" in theirs else None
    ours = {key: (t.dtype, tuple(t.shape)) for key, t in writer(torch.randn(n, k) * 0.05, dtype, bias).items()}
    if bias is not None:  # every ascendv1 handler writes the layer's float bias as float32 beside it
        ours.setdefault("bias", (torch.float32, (n,)))
    assert ours == theirs
