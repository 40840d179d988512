"""The loader follows the plan: every accepted layer is loaded as the executable the plan names."""

from __future__ import annotations

from quantspec.plan.model import LayerStatus
from quantspec.runtime.loader import QuantizedModel
from quantspec.runtime.moe import QuantizedExperts
from quantspec.vocab import Executable, LayerKind


def mismatches(qm: QuantizedModel) -> list[str]:
    """Every accepted layer whose loaded form is not what the plan names (empty: the loader obeyed)."""
    out: list[str] = []
    pipeline = any(layer.component is not None for layer in qm.plan.layers)
    for layer in qm.plan.layers:
        if layer.status is not LayerStatus.ACCEPTED or layer.executable is None:
            continue
        prefix = f"{layer.component}." if pipeline and layer.component else ""
        ex = layer.executable
        if layer.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2):
            experts = qm.modules.get(prefix + layer.module)
            group = getattr(experts, "w13" if layer.kind is LayerKind.MOE_W13 else "w2", None)
            got = type(group).__name__ if isinstance(experts, QuantizedExperts) else type(experts).__name__
            if got != ex.value:
                out.append(f"{layer.name} ({layer.kind.value}): planned {ex.value}, loaded {got}")
            continue
        for module in layer.shards or (layer.module,):
            name = prefix + module
            loaded = qm.modules.get(name)
            if ex is Executable.FLOAT_TENSORS:
                if loaded is not None:
                    out.append(f"{name}: planned float tensors, loaded {type(loaded).__name__}")
            elif loaded is None or type(loaded).__name__ != ex.value:
                out.append(f"{name}: planned {ex.value}, loaded {type(loaded).__name__ if loaded else 'nothing'}")
    return out
