"""Write tiny GGUF files for tests (gguf-py's writer; a few hundred bytes each)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def write_tiny_gguf(path: Path, *, arch: str = "llama") -> Path:
    """A 1-block model: F16 embedding, Q8_0 attn_q, stacked Q4_0 experts, F32 norm."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((8, 32), np.float16))
    q8 = gguf.quants.quantize(rng.random((4, 32), dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    q4 = gguf.quants.quantize(rng.random((2, 4, 32), dtype=np.float32), gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("blk.0.ffn_gate_exps.weight", q4, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, np.float32))
    w.add_tensor("odd_tensor.weight", np.ones(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
