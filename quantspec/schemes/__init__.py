"""Tensor contracts of the executable NPU schemes (pure data; no torch).

``SPECS[(family, scheme, layer)][layout]`` is the :class:`SchemeSpec` the planner checks a
module's checkpoint tensors against; its ``executable`` names the runtime class registered
under the same ``(family, scheme, layer)`` key.
"""

from quantspec.schemes.model import DTYPE_BITS, FLOAT_DTYPES, DtypeRule, LoadedTensor, SchemeSpec, TensorRole
from quantspec.schemes.registry import (
    FLOAT_SPECS,
    ROUTER_SPEC,
    SPECS,
    executable_name,
    layouts_for,
    lookup_spec,
    why_no_spec,
)

__all__ = [
    "DTYPE_BITS",
    "FLOAT_DTYPES",
    "FLOAT_SPECS",
    "ROUTER_SPEC",
    "SPECS",
    "DtypeRule",
    "LoadedTensor",
    "SchemeSpec",
    "TensorRole",
    "executable_name",
    "layouts_for",
    "lookup_spec",
    "why_no_spec",
]
