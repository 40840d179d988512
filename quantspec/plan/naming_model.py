"""Pydantic model of ``naming.yaml``, the module-naming data the planner discovers layers with.

Validated like the support matrix: unknown keys and wrong types are refused with the file and
the path in it (``naming.schema``), never turned into a ``KeyError`` at the first plan.
``schemas/naming.schema.json`` is generated from this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PerExpert(_Frozen):
    """The projection names of one expert: ``w13`` (gate and up, in that order) and ``w2`` (down)."""

    w13: tuple[str, ...] = Field(min_length=1)
    w2: str


class MoENaming(_Frozen):
    """MoE expert naming."""

    containers: tuple[str, ...] = Field(min_length=1)
    per_expert: tuple[PerExpert, ...] = Field(min_length=1)
    fused_3d: dict[str, Literal["w13", "w2"]]
    gguf_fused_3d: dict[str, Literal["w13", "w2"]]


class AttentionNaming(_Frozen):
    """KV-cache / attention quantization entries."""

    kv_params: tuple[str, ...]
    kv_submodules: tuple[str, ...]


class NamingFile(_Frozen):
    """The whole ``naming.yaml``."""

    packed_modules: dict[str, dict[str, tuple[str, ...]]]
    moe: MoENaming
    row_parallel: tuple[str, ...]
    replicated: tuple[str, ...]
    embeddings: tuple[str, ...]
    diffusion_embeddings: tuple[str, ...]
    lm_heads: tuple[str, ...]
    routers: tuple[str, ...]
    norms: tuple[str, ...]
    attention: AttentionNaming
    weight_params: tuple[str, ...] = Field(min_length=1)
