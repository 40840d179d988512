"""Executable linear schemes (one code path for the ``npu`` and ``cpu`` op backends).

Usage::

    from quantspec.runtime.ops import get_ops
    from quantspec.runtime.schemes import linear_scheme_for

    cls = linear_scheme_for(FormatFamily.GPTQ, SchemeId.W4A16)
    layer = cls.from_checkpoint(
        {"qweight": ..., "qzeros": ..., "scales": ..., "g_idx": ...}, quant,
        out_features=N, in_features=K, model_dtype=torch.bfloat16, ops=get_ops("cpu"),
    )
    y = layer(x)
"""

from __future__ import annotations

# The scheme modules register themselves (@register_linear) when imported: here, once, so that
# the registry is complete whenever the package is (and never imports its own users).
from quantspec.runtime.schemes import fp8, gguf, modelslim, mxfp4, mxfp8, weight_only  # noqa: F401
from quantspec.runtime.schemes.base import LinearScheme, TensorSet
from quantspec.runtime.schemes.registry import linear_scheme_for, register_linear, registered_linear

__all__ = ["LinearScheme", "TensorSet", "linear_scheme_for", "register_linear", "registered_linear"]
