"""What a module's tensors say that its description does not: ModelSlim int4 storage and groups.

The description names a type label per tensor and, at most, one header ``group_size``; the
tensors themselves settle two things the label cannot:

- **int4 storage.** ModelSlim writes int4 weights either one value per int8 byte ``[N, K]`` or
  two per byte along N ``[N/2, K]`` (``version 1.0.0`` W4A8, some W4A4 exports). ``weight_scale``
  is always ``[N, 1]``, so comparing its N with the weight's first dim tells which.
- **legacy W4A8 groups.** msModelSlim's old API (``safe_tensor``) writes per-group W4A8 as a
  per-channel ``weight_scale [N, 1]`` times ``weight_scale_second [N, K/G]`` (with an int64
  ``weight_offset_second``) and no ``group_size`` in the header; G follows from the shape.

Each refinement that departs from what the description alone gave is recorded as a warning.
"""

from __future__ import annotations

from quantspec.description import QuantSpec
from quantspec.errors import Code, Reason, reason
from quantspec.plan.discover import Params
from quantspec.vocab import FormatFamily, Granularity, Layout, SchemeId

_INT4_SCHEMES = (SchemeId.W4A4_DYNAMIC, SchemeId.W4A8_DYNAMIC)


def refine(quant: QuantSpec | None, family: FormatFamily, module: str, params: Params
           ) -> tuple[QuantSpec | None, list[Reason]]:
    """``quant`` adjusted to the tensors of ``module`` (ModelSlim only), with a note per change."""
    if quant is None or family is not FormatFamily.MODELSLIM or quant.scheme not in _INT4_SCHEMES:
        return quant, []
    notes: list[Reason] = []
    weight, scale = params.get("weight"), params.get("weight_scale")
    w = quant.weight
    if weight is not None and scale is not None and len(weight.shape) == 2 and scale.shape:
        n = scale.shape[0]
        layout = (Layout.MODELSLIM_INT4X2 if weight.shape[0] * 2 == n
                  else Layout.MODELSLIM_INT4 if weight.shape[0] == n else w.layout)
        if layout is not w.layout:
            notes.append(reason(
                Code.PLAN_WARNING, f"{module}.weight is {list(weight.shape)} for N = {n} (weight_scale): "
                f"int4 stored as {layout.value}, not the {w.layout.value} its label and version suggest", where=module,
            ))
            w = w.model_copy(update={"layout": layout})
    second = params.get("weight_scale_second")
    if (quant.scheme is SchemeId.W4A8_DYNAMIC and not (w.group_size and w.group_size > 0) and second is not None
            and weight is not None and len(second.shape) == 2 and second.shape[1] > 0):
        k, ng = weight.shape[-1], second.shape[1]
        # ng == 1 is one group of K: per channel, the second-level scale folded into weight_scale.
        if ng > 1 and k % ng == 0:
            group = k // ng
            w = w.model_copy(update={"group_size": group, "granularity": Granularity.GROUP})
            notes.append(reason(
                Code.PLAN_WARNING, f"group size {group} inferred from {module}.weight_scale_second "
                f"{list(second.shape)} (K = {k}); the description has no group_size (a legacy old-API W4A8 export)",
                where=module,
            ))
    if w is quant.weight:
        return quant, notes
    return quant.model_copy(update={"weight": w}), notes
