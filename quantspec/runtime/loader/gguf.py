"""GGUF checkpoints: every tensor is dequantized at load and appears under its Hugging Face name.

The planner's GGUF inventory already names tensors the transformers way
(``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``, stacked experts ->
``model.layers.3.mlp.experts.gate_proj.weight [E, N, K]``) using the mapping of
:mod:`quantspec.formats.gguf`. :class:`GgufReader` serves those names: it reads the GGML bytes,
dequantizes them bit-identically to gguf-py (:mod:`quantspec.runtime.gguf_dequant`) and, for
Llama-family files, undoes llama.cpp's Q/K row permutation for rotary embeddings exactly as
transformers' GGUF loader does (``reverse_permute_weights``). Linear and embedding layers
therefore become float tensors (installed into ``nn.Linear``/``nn.Embedding``); MoE experts run
as float :class:`~quantspec.runtime.moe.QuantizedExperts` (the GGUF MoE path of SGLang on Ascend
dequantizes experts too, sglang_ascend.md 6.5).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from quantspec._io import check_inside
from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.plan.inventory import Inventory
from quantspec.plan.model import Plan, PlanComponent
from quantspec.runtime.gguf_dequant import dequantize, ggml_type
from quantspec.runtime.loader.build import Builder, Built, accepted_layers
from quantspec.runtime.loader.tp import TensorParallel
from quantspec.runtime.ops.base import Ops

#: GGUF architectures whose Q/K projections llama.cpp permutes at conversion and transformers
#: un-permutes (its ``TENSOR_PROCESSORS`` apply ``LlamaTensorProcessor`` to ``llama`` only;
#: Mistral files use the ``llama`` architecture).
ROPE_PERMUTED = frozenset({"llama"})
_PLAIN = {"F32": torch.float32, "F16": torch.float16, "F64": torch.float64}


def reverse_permute(weights: Tensor, n_head: int, num_kv_heads: int | None = None) -> Tensor:
    """Undo llama.cpp's ``permute`` of Q/K rows (transformers ``reverse_permute_weights``)."""
    if num_kv_heads is not None and n_head != num_kv_heads:
        n_head = num_kv_heads
    dim = weights.shape[0] // n_head // 2
    w = weights.reshape(n_head, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


def _alternates(arch: str | None, n_blocks: int, chosen: dict[str, str]) -> dict[str, str]:
    """gguf-py lists several Hugging Face spellings per GGUF name (``q_norm``, ``q_layernorm``...);
    the loaded name is one of them, the others become install-time aliases."""
    import gguf

    key = {name: a for a, name in gguf.MODEL_ARCH_NAMES.items()}.get(arch or "")
    if key is None:
        return {}
    out: dict[str, str] = {}
    for hf, (_t, gname) in gguf.get_tensor_name_map(key, n_blocks).mapping.items():
        loaded = chosen.get(gname)
        if loaded is not None and hf not in (loaded, gname):
            out[hf] = loaded
    return out


class GgufReader:
    """Serves dequantized float32 tensors of GGUF file(s) under their Hugging Face names."""

    def __init__(self, model_dir: Path, inv: Inventory) -> None:
        from gguf import GGUFReader

        from quantspec.formats.gguf import blocks_in_use, hf_name_map

        self.model_dir = Path(model_dir)
        self.files = {n: t.file for n, t in inv.tensors.items()}
        self._tensors: dict[str, Any] = {}
        self._readers: dict[str, Any] = {}
        self.heads: tuple[int, int] | None = None
        #: Other Hugging Face spellings of a module -> the name it is loaded under.
        self.aliases: dict[str, str] = {}
        for fname in inv.files:
            path = check_inside(self.model_dir / fname, self.model_dir, what="GGUF file")
            reader = GGUFReader(os.fspath(path), "r")
            self._readers[fname] = reader
            arch_field = reader.fields.get("general.architecture")
            arch = str(arch_field.contents()) if arch_field is not None else None
            n_blocks = blocks_in_use(t.name for t in reader.tensors)  # not the file's block_count
            mapping = hf_name_map(arch, n_blocks)
            self.aliases.update(_alternates(arch, n_blocks, mapping))
            if arch in ROPE_PERMUTED and self.heads is None:
                h = reader.fields.get(f"{arch}.attention.head_count")
                kv = reader.fields.get(f"{arch}.attention.head_count_kv")
                if h is not None:
                    self.heads = (int(h.contents()), int(kv.contents()) if kv is not None else int(h.contents()))
            for t in reader.tensors:
                base, dot, suffix = t.name.rpartition(".")
                if not dot:
                    base, suffix = t.name, ""
                hf = mapping.get(base, base)
                self._tensors[f"{hf}.{suffix}" if suffix else hf] = t

    def read(self, name: str) -> Tensor:
        """The dequantized float32 tensor ``name`` (numpy/PyTorch dim order)."""
        t = self._tensors.get(name)
        if t is None:
            raise InvalidCheckpoint(reason(Code.TENSOR_MISSING, f"tensor {name!r} is not in the GGUF file(s)",
                                           file=str(self.model_dir), where=name))
        kind = t.tensor_type.name
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        try:
            raw = torch.from_numpy(t.data.copy())
        except (ValueError, OSError) as exc:
            raise InvalidCheckpoint(reason(Code.TENSOR_TRUNCATED, f"cannot read GGUF tensor data: {exc}",
                                           file=str(self.model_dir / self.files[name]), where=name)) from None
        w = raw.to(torch.float32) if kind in _PLAIN else dequantize(raw, ggml_type(kind), name)
        w = w.reshape(shape)
        if self.heads is not None and (".self_attn.q_proj." in name or ".self_attn.k_proj." in name):
            n_head, n_kv = self.heads
            w = reverse_permute(w, n_head, n_kv if ".k_proj." in name else n_head)
        return w

    def release(self, fname: str) -> None:
        """Drop the memory map of ``fname``."""
        self._readers.pop(fname, None)
        self._tensors = {k: v for k, v in self._tensors.items() if self.files.get(k) != fname}

    def close(self) -> None:
        """Drop every memory map."""
        self._readers.clear()
        self._tensors.clear()


def load_gguf_component(plan: Plan, comp: PlanComponent, inv: Inventory, *, name: str | None,
                        model_dtype: torch.dtype, ops: Ops, tp: TensorParallel,
                        tick: Callable[[int], None]) -> Built:
    """Build one GGUF component: float tensors for dense layers, float experts for MoE layers."""
    reader = GgufReader(Path(comp.path), inv)
    try:
        built = Builder(plan=plan, layers=accepted_layers(plan, name), family=comp.format, reader=reader,
                       prefix=f"{name}." if name else "", model_dtype=model_dtype, ops=ops, tp=tp, tick=tick).run()
        built.aliases.update(reader.aliases)
        return built
    finally:
        reader.close()
