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
    "load_plan": ("quantspec.runtime.loader", "load_plan"),
    "QuantizedModel": ("quantspec.runtime.loader", "QuantizedModel"),
}


#: Third-party modules of the ``runtime`` extra.
_RUNTIME_DEPENDENCIES = frozenset({"torch", "safetensors", "numpy", "tqdm"})


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'quantspec' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(target[0])
    except ModuleNotFoundError as exc:
        # The runtime needs the `runtime` extra; say so instead of a raw import error.
        if exc.name not in _RUNTIME_DEPENDENCIES:
            raise
        from quantspec.errors import Code, reason

        raise BackendUnavailable(
            reason(
                Code.BACKEND_UNAVAILABLE,
                f"quantspec.{name} needs {exc.name!r}, which is not installed",
                hint="install the runtime extra: pip install 'quantspec[runtime]' "
                "(install the torch build you want first, e.g. the CPU one)",
            )
        ) from None
    value = getattr(module, target[1])
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
    "QuantizedModel",
    "QuantspecError",
    "Reason",
    "SchemeId",
    "Status",
    "SupportMatrix",
    "__version__",
    "load_matrix",
    "load_plan",
    "load_quantized",
    "plan",
]
