"""quantspec: declarative, checkable support for quantized checkpoints on Ascend NPUs.

The pure layer (this package minus :mod:`quantspec.runtime`) never imports torch:
``import quantspec`` and ``quantspec plan`` stay fast and work on machines without torch.
Runtime entry points such as :func:`load_quantized` are imported lazily on first use.
"""

from __future__ import annotations

from typing import Any

from quantspec.errors import (
    BackendUnavailable,
    Code,
    InvalidCheckpoint,
    InvalidInput,
    InvalidMatrix,
    KernelArgumentError,
    PlanRejected,
    QuantspecError,
    Reason,
)
from quantspec.matrix import SupportMatrix, load_matrix

# Binding the *function* ``plan`` here shadows the ``quantspec.plan`` subpackage attribute,
# so ``quantspec.plan(model_dir, target=...)`` works
# (submodules are still importable as ``from quantspec.plan.model import Plan``).
from quantspec.plan import Plan, plan
from quantspec.vocab import FormatFamily, LayerKind, MatrixLayer, NpuGen, SchemeId, Status

__version__ = "0.1.0"

# Names resolved on first access so that importing quantspec does not import their modules
# (the runtime ones import torch).
_LAZY: dict[str, tuple[str, str]] = {
    "load_quantized": ("quantspec.runtime.loader", "load_quantized"),
    "QuantizedModel": ("quantspec.runtime.loader", "QuantizedModel"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'quantspec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


__all__ = [
    "BackendUnavailable",
    "Code",
    "FormatFamily",
    "InvalidCheckpoint",
    "InvalidInput",
    "InvalidMatrix",
    "KernelArgumentError",
    "LayerKind",
    "MatrixLayer",
    "NpuGen",
    "Plan",
    "PlanRejected",
    "QuantspecError",
    "Reason",
    "SchemeId",
    "Status",
    "SupportMatrix",
    "__version__",
    "load_matrix",
    "plan",
]
