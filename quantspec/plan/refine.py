"""What a module's tensors say that its description does not: int4 storage, groups, the clip variant.

The description names a type label per tensor and, at most, one header ``group_size``; the
tensors themselves settle two things the label cannot:

- **int4 storage.** ModelSlim writes int4 weights either one value per int8 byte ``[N, K]`` or
  two per byte along N ``[N/2, K]`` (``version 1.0.0`` W4A8, some W4A4 exports). ``weight_scale``
  is always ``[N, 1]``, so comparing its N with the weight's first dim tells which.
- **compressed-tensors W4A8 MoE storage.** vLLM-Ascend reads one int4 value per int8 byte
  ``[N, K]`` (``int-quantized`` as compressed-tensors writes it); SGLang's
  ``NPUCompressedTensorsW4A8Int8DynamicMoE`` reads ModelSlim's int4x2 ``[N/2, K]`` with
  ``weight_offset`` and ``scale_bias`` (or, with ``activation_use_clip``, an int64
  ``weight_scale`` and ``bias``/``alpha``). The description is the same for both.
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
    """``quant`` adjusted to the tensors of ``module`` (ModelSlim; compressed-tensors W4A8), with a
    note per change."""
    if quant is None or quant.scheme not in _INT4_SCHEMES:
        return quant, []
    if family is FormatFamily.COMPRESSED_TENSORS:
        return _ct_int4x2(quant, module, params)
    if family is not FormatFamily.MODELSLIM:
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
                Code.PLAN_LAYOUT_FROM_TENSORS, f"{module}.weight is {list(weight.shape)} for N = {n} (weight_scale): "
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
                Code.PLAN_GROUP_INFERRED, f"group size {group} inferred from {module}.weight_scale_second "
                f"{list(second.shape)} (K = {k}); the description has no group_size (a legacy old-API W4A8 export)",
                where=module,
            ))
    if w is quant.weight:
        return quant, notes
    return quant.model_copy(update={"weight": w}), notes


def _ct_int4x2(quant: QuantSpec, module: str, params: Params) -> tuple[QuantSpec, list[Reason]]:
    """SGLang's int4x2 storage of a compressed-tensors W4A8 expert, told by ``weight [N/2, K]`` int8."""
    weight, scale = params.get("weight"), params.get("weight_scale")
    if (quant.weight.layout is not Layout.CT_INT or weight is None or scale is None or weight.dtype != "int8"
            or len(weight.shape) != 2 or not scale.shape or weight.shape[0] * 2 != scale.shape[0]):
        return quant, []
    note = reason(Code.FORMAT_NOTE, f"{module}.weight is {list(weight.shape)} int8 for N = {scale.shape[0]} "
                  "(weight_scale): int4 pairs along N, the layout SGLang's compressed-tensors W4A8 MoE reads",
                  where=module)
    return quant.model_copy(update={"weight": quant.weight.model_copy(update={"layout": Layout.MODELSLIM_INT4X2})}), [
        note]


def clip_problems(quant: QuantSpec | None, family: FormatFamily, module: str, params: Params) -> list[Reason]:
    """Where a compressed-tensors W4A8 expert's tensors disagree with ``activation_use_clip``.

    SGLang sizes the parameters from the flag (``compressed_tensors_w4a8_int8_moe.py``): with it,
    an int64 ``weight_scale`` (fp32 bits) and float ``bias``/``alpha``; without it, a float32
    ``weight_scale`` and ``scale_bias``. A file of the other variant is cast into the wrong
    parameters or fails to load, so a mismatch rejects the layer.
    """
    if (quant is None or family is not FormatFamily.COMPRESSED_TENSORS or quant.scheme is not SchemeId.W4A8_DYNAMIC
            or quant.weight.layout is not Layout.MODELSLIM_INT4X2):
        return []
    clip = quant.activation is not None and quant.activation.clip
    scale = params.get("weight_scale")
    problems: list[str] = []
    if scale is not None and (scale.dtype == "int64") != clip:
        problems.append(f"weight_scale is {scale.dtype}, the {'clip' if clip else 'non-clip'} variant stores "
                        f"{'int64 (fp32 bits)' if clip else 'float32'}")
    if clip and "bias" not in params:
        problems.append("the clip variant needs a float bias per expert projection; there is none")
    if not clip and "bias" in params:
        problems.append("a bias per expert projection belongs to the clip variant")
    if not problems:
        return []
    return [reason(
        Code.PLAN_CONSTRAINT, f"{module}: activation_use_clip is {str(clip).lower()} but " + "; ".join(problems),
        where=module, hint="set config_groups.<group>.activation_use_clip to match the tensors (SGLang reads it "
                           "from group_1), or re-export")]
