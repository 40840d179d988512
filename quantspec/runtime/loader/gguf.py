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
from quantspec.checkpoint.inventory import Inventory
from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.plan import Plan, PlanComponent
from quantspec.runtime.gguf_dequant import dequantize, ggml_type
from quantspec.runtime.loader.build import Builder, Built, accepted_layers
from quantspec.runtime.loader.tp import TensorParallel
from quantspec.runtime.ops.base import Ops

#: GGUF architectures whose Q/K projections llama.cpp permutes at conversion and transformers
#: un-permutes (its ``TENSOR_PROCESSORS`` apply ``LlamaTensorProcessor`` to ``llama`` only;
#: Mistral files use the ``llama`` architecture).
ROPE_PERMUTED = frozenset({"llama"})
#: Inventory dtypes of the plain GGUF types (``ggml_dtype``); every other type is a ggml block type.
_PLAIN = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64, "bfloat16": torch.bfloat16}


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
    """Serves dequantized float32 tensors of GGUF file(s) under their Hugging Face names.

    Everything about the tensors (file, Hugging Face name, ggml type, shape, byte range) comes
    from the checkpoint reader's inventory, and the metadata (architecture, heads) from its
    bounded header parse (cached per file): no header is parsed here. The data is read through a
    read-only memory map per file.
    """

    def __init__(self, model_dir: Path, inv: Inventory) -> None:
        from quantspec.formats.gguf import hf_name_map, read_gguf_header

        self.model_dir = Path(model_dir)
        self.infos = inv.tensors
        self.files = {n: t.file for n, t in inv.tensors.items()}
        self._maps: dict[str, Any] = {}
        self.heads: tuple[int, int] | None = None
        #: Other Hugging Face spellings of a module -> the name it is loaded under.
        self.aliases: dict[str, str] = {}
        for fname in inv.files:
            path = check_inside(self.model_dir / fname, self.model_dir, what="GGUF file")
            header = read_gguf_header(path)
            arch, n_blocks = header.architecture, header.block_count  # blocks the tensors use
            self.aliases.update(_alternates(arch, n_blocks, hf_name_map(arch, n_blocks)))
            if arch in ROPE_PERMUTED and self.heads is None:
                h = header.metadata.get(f"{arch}.attention.head_count")
                kv = header.metadata.get(f"{arch}.attention.head_count_kv")
                if isinstance(h, int):
                    self.heads = (h, kv if isinstance(kv, int) else h)

    def _bytes(self, name: str) -> Tensor:
        import numpy as np

        info = self.infos[name]
        mm = self._maps.get(info.file)
        if mm is None:
            path = self.model_dir / info.file
            try:
                mm = self._maps[info.file] = np.memmap(os.fspath(path), dtype=np.uint8, mode="r")
            except (ValueError, OSError) as exc:
                raise InvalidCheckpoint(reason(Code.TENSOR_TRUNCATED, f"cannot map GGUF file: {exc}",
                                               file=str(path), where=name)) from None
        if info.offset + info.nbytes > len(mm):
            raise InvalidCheckpoint(reason(Code.TENSOR_TRUNCATED, f"tensor {name!r} ends at byte "
                                           f"{info.offset + info.nbytes} but the file has {len(mm)}",
                                           file=str(self.model_dir / info.file), where=name))
        return torch.from_numpy(np.array(mm[info.offset:info.offset + info.nbytes]))

    def read(self, name: str) -> Tensor:
        """The dequantized float32 tensor ``name`` (numpy/PyTorch dim order)."""
        info = self.infos.get(name)
        if info is None:
            raise InvalidCheckpoint(reason(Code.TENSOR_MISSING, f"tensor {name!r} is not in the GGUF file(s)",
                                           file=str(self.model_dir), where=name))
        raw = self._bytes(name)
        plain = _PLAIN.get(info.dtype)
        if plain is not None:
            w = raw.view(plain).to(torch.float32)
        else:
            rows = 1
            for d in info.shape[:-1]:
                rows *= d
            w = dequantize(raw.reshape(rows, -1), ggml_type(info.dtype), name)
        w = w.reshape(info.shape)
        if self.heads is not None and (".self_attn.q_proj." in name or ".self_attn.k_proj." in name):
            n_head, n_kv = self.heads
            w = reverse_permute(w, n_head, n_kv if ".k_proj." in name else n_head)
        return w

    def release(self, fname: str) -> None:
        """Drop the memory map of ``fname``."""
        self._maps.pop(fname, None)

    def close(self) -> None:
        """Drop every memory map."""
        self._maps.clear()


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
