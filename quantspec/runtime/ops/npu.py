"""The ``npu`` backend: forwards every op to ``torch_npu`` unchanged.

This is the only module of quantspec that imports ``torch_npu``, and it does so lazily, when a
:class:`NpuOps` is built. ``import torch_npu`` needs the CANN runtime libraries
(torch_npu_ops.md section 7), so on a machine without them the constructor raises
:class:`~quantspec.errors.BackendUnavailable` saying how to install it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from torch import Tensor

from quantspec.errors import BackendUnavailable, Code, reason
from quantspec.vocab import Backend

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
        # The logical dtypes must be torch_npu's own enum values (sglang_ascend.md 4.3).
        self.float8_e8m0fnu: int = self.torch_npu.float8_e8m0fnu
        self.float4_e2m1fn_x2: int = self.torch_npu.float4_e2m1fn_x2
        self.int4: int = self.torch_npu.int4

    def transpose_weight(self, weight: Tensor) -> Tensor:
        """``weight.transpose(-1, -2).contiguous()``, made where ``weight`` is (the device)."""
        return weight.transpose(-1, -2).contiguous()

    def __repr__(self) -> str:
        return "NpuOps()"
