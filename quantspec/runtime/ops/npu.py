"""The ``npu`` backend: forwards every op to ``torch_npu`` unchanged.

This is the only module of quantspec that imports ``torch_npu``, and it does so lazily, when a
:class:`NpuOps` is built. ``import torch_npu`` needs the CANN runtime libraries
(torch_npu_ops.md section 7), so on a machine without them the constructor raises
:class:`~quantspec.errors.BackendUnavailable` saying how to install it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from torch import Tensor

from quantspec.errors import BackendUnavailable, Code, Reason, reason
from quantspec.vocab import Backend, SchemeId

_FORWARDED = (
    "get_npu_format",
    "npu_format_cast",
    "npu_convert_weight_to_int4pack",
    "npu_trans_quant_param",
    "npu_quantize",
    "npu_dynamic_quant",
    "npu_dynamic_mx_quant",
    "npu_quant_matmul",
    "npu_weight_quant_batchmatmul",
    "npu_grouped_matmul",
    "npu_swiglu",
    "npu_moe_init_routing_v2",
    "npu_moe_finalize_routing",
)


def import_torch_npu() -> ModuleType:
    """Import torch_npu or raise :class:`BackendUnavailable` with the reason and the fix."""
    try:
        return importlib.import_module("torch_npu")
    except (ImportError, OSError, RuntimeError) as exc:
        raise BackendUnavailable(
            reason(
                Code.BACKEND_UNAVAILABLE,
                f"the npu backend needs torch_npu, which cannot be imported here: {exc}",
                hint="install it with `pip install quantspec[npu]` on an Ascend host with the CANN toolkit "
                "installed and `source <cann>/set_env.sh` run; use backend 'cpu' for the emulation",
            )
        ) from exc


#: torch_npu dtype attributes the schemes pass to kernels, which only newer builds have (SGLang
#: guards them with ``getattr`` and needs torch_npu >= 2.9 for e8m0; shared/reference/ERRATA.md).
DTYPES_OF_SCHEME: dict[SchemeId, tuple[str, ...]] = {
    SchemeId.W8A8_MXFP8: ("float8_e8m0fnu",),
    SchemeId.W4A8_MXFP: ("float8_e8m0fnu", "float4_e2m1fn_x2"),
    SchemeId.W4A4_MXFP4: ("float8_e8m0fnu", "float4_e2m1fn_x2"),
}
#: The torch_npu release the MX schemes need.
MX_TORCH_NPU = "2.9"


def _missing_reason(module: ModuleType, missing: list[str], schemes: Iterable[SchemeId]) -> Reason:
    version = getattr(module, "__version__", "of unknown version")
    users = ", ".join(s.value for s in schemes)
    return reason(
        Code.BACKEND_UNAVAILABLE,
        f"torch_npu {version} has no {', '.join('torch_npu.' + m for m in missing)}"
        + (f", which {users} pass to their kernels" if users else ""),
        hint=f"the MX schemes need torch_npu >= {MX_TORCH_NPU} (and CANN >= 8.0.RC3 on an A5); "
             "the int8 schemes run on this build",
    )


def _forward(name: str) -> Callable[..., Any]:
    def call(self: NpuOps, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.torch_npu, name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"``torch_npu.{name}`` with the caller's arguments, unchanged."
    return call


class NpuOps:
    """torch_npu ops; the scheme code passes the same arguments as on the cpu backend."""

    backend = Backend.NPU
    get_npu_format: Any = _forward("get_npu_format")
    npu_format_cast: Any = _forward("npu_format_cast")
    npu_convert_weight_to_int4pack: Any = _forward("npu_convert_weight_to_int4pack")
    npu_trans_quant_param: Any = _forward("npu_trans_quant_param")
    npu_quantize: Any = _forward("npu_quantize")
    npu_dynamic_quant: Any = _forward("npu_dynamic_quant")
    npu_dynamic_mx_quant: Any = _forward("npu_dynamic_mx_quant")
    npu_quant_matmul: Any = _forward("npu_quant_matmul")
    npu_weight_quant_batchmatmul: Any = _forward("npu_weight_quant_batchmatmul")
    npu_grouped_matmul: Any = _forward("npu_grouped_matmul")
    npu_swiglu: Any = _forward("npu_swiglu")
    npu_moe_init_routing_v2: Any = _forward("npu_moe_init_routing_v2")
    npu_moe_finalize_routing: Any = _forward("npu_moe_finalize_routing")

    def __init__(self, module: ModuleType | None = None) -> None:
        self.torch_npu = module if module is not None else import_torch_npu()

    # The logical dtypes must be torch_npu's own enum values (sglang_ascend.md 4.3), and exist only
    # in newer builds: read when used, so that an older torch_npu still runs the int8 schemes.
    @property
    def float8_e8m0fnu(self) -> int:
        """``torch_npu.float8_e8m0fnu`` (BackendUnavailable on builds without it)."""
        return self._dtype("float8_e8m0fnu")

    @property
    def float4_e2m1fn_x2(self) -> int:
        """``torch_npu.float4_e2m1fn_x2`` (BackendUnavailable on builds without it)."""
        return self._dtype("float4_e2m1fn_x2")

    @property
    def int4(self) -> int:
        """``torch_npu.int4`` (BackendUnavailable on builds without it)."""
        return self._dtype("int4")

    def _dtype(self, name: str) -> int:
        value = getattr(self.torch_npu, name, None)
        if value is None:
            raise BackendUnavailable(_missing_reason(self.torch_npu, [name], ()))
        return int(value)

    def require_for(self, schemes: Iterable[SchemeId]) -> None:
        """Refuse, before any weight is read, schemes whose torch_npu dtypes this build lacks."""
        schemes = sorted(set(schemes) & set(DTYPES_OF_SCHEME))
        needed = sorted({d for s in schemes for d in DTYPES_OF_SCHEME[s]})
        missing = [d for d in needed if getattr(self.torch_npu, d, None) is None]
        if missing:
            users = [s for s in schemes if set(DTYPES_OF_SCHEME[s]) & set(missing)]
            raise BackendUnavailable(_missing_reason(self.torch_npu, missing, users))

    def transpose_weight(self, weight: Tensor) -> Tensor:
        """``weight.transpose(-1, -2).contiguous()``, made where ``weight`` is (the device)."""
        return weight.transpose(-1, -2).contiguous()

    def __repr__(self) -> str:
        return "NpuOps()"
