"""Executable MoE experts on the op layer (grouped matmul + routing ops; cpu emulation or torch_npu).

* :class:`QuantizedExperts` -- drop-in for transformers v5 ``mlp.experts`` modules;
* :func:`moe_group_for` -- the expert-group class of a matrix key ``(FormatFamily, SchemeId)``
  (``None`` scheme: float experts); each of ``w13`` and ``w2`` is built separately.

See docs/loading.md ("MoE execution").
"""

from __future__ import annotations

from quantspec.runtime.moe.base import (
    ExpertGroup,
    GroupName,
    QuantizedExperts,
    Stacker,
    moe_group_for,
    register_moe,
    registered_moe,
)

__all__ = [
    "ExpertGroup",
    "GroupName",
    "QuantizedExperts",
    "Stacker",
    "moe_group_for",
    "register_moe",
    "registered_moe",
]

# The group modules register themselves (@register_moe) when imported: here, once.
from quantspec.runtime.moe import groups, groups_int4, groups_mx, groups_mxfp4  # noqa: F401
