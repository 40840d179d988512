"""Loading quantized checkpoints into executable modules (see docs/loading.md).

* :func:`load_quantized` -- ``plan()``, then :func:`load_plan`;
* :func:`load_plan` -- build exactly what a plan says, streaming the weights layer by layer;
* :class:`QuantizedModel` -- ``.plan``, ``.modules``, ``.state_dict()``, ``.install(model)``.
"""

from __future__ import annotations

from quantspec.runtime.loader.api import load_plan, load_quantized
from quantspec.runtime.loader.model import ConcatLinear, QuantizedModel
from quantspec.runtime.loader.tp import Parallel, TensorParallel

__all__ = ["ConcatLinear", "Parallel", "QuantizedModel", "TensorParallel", "load_plan", "load_quantized"]
