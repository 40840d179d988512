"""Online MXFP8: an unquantized checkpoint quantized to MXFP8 while loading.

There is no file: the request comes from ``--quantization mxfp8`` (SGLang diffusion's
``MXFP8Config``, whose ``from_config`` requires ``"mxfp8" in quant_method`` and
``activation_scheme == "dynamic"``). Weights are quantized with ``npu_dynamic_mx_quant`` to
fp8 e4m3 with one e8m0 scale per 32 elements along K; activations the same way per call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from quantspec.description import ActQuant, CheckpointDescription, QuantSpec, WeightQuant
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, Mode, SchemeId

#: Elements per MX scale block.
MX_BLOCK = 32
SOURCE = "<request>"


class Mxfp8Request(BaseModel):
    """The online MXFP8 request, as SGLang's ``MXFP8Config.from_config`` accepts it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quant_method: Literal["mxfp8"] = "mxfp8"
    activation_scheme: Literal["dynamic"] = "dynamic"


def mxfp8_spec() -> QuantSpec:
    """The QuantSpec every Linear receives under online MXFP8."""
    return QuantSpec(
        scheme=SchemeId.W8A8_MXFP8,
        label="MXFP8 (online)",
        weight=WeightQuant(
            element=ElementType.FP8_E4M3, bits=8, granularity=Granularity.GROUP, group_size=MX_BLOCK,
            layout=Layout.FLOAT, scale_dtype="e8m0",
        ),
        activation=ActQuant(
            element=ElementType.FP8_E4M3, bits=8, dynamic=True, granularity=Granularity.GROUP, group_size=MX_BLOCK,
        ),
    )


def mxfp8_request_description(request: Mxfp8Request | None = None) -> CheckpointDescription:
    """Description of an online MXFP8 request: every Linear module gets :func:`mxfp8_spec`."""
    req = request or Mxfp8Request()
    return CheckpointDescription(
        format=FormatFamily.MXFP8_ONLINE,
        source=SOURCE,
        mode=Mode.ONLINE,
        default=mxfp8_spec(),
        default_classes=("Linear",),
        extras={"quant_method": req.quant_method, "activation_scheme": req.activation_scheme},
    )
