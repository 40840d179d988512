"""The ``cpu`` backend: a faithful torch emulation of the torch_npu ops (no NPU needed)."""

from __future__ import annotations

from quantspec.runtime.ops import cpu_layout, cpu_matmul, cpu_moe, cpu_quant
from quantspec.runtime.ops.base import NpuDtype
from quantspec.vocab import Backend


class CpuOps:
    """Emulated torch_npu ops; logical dtypes are the torch_npu integer codes."""

    backend = Backend.CPU
    float8_e8m0fnu = int(NpuDtype.FLOAT8_E8M0FNU)
    float4_e2m1fn_x2 = int(NpuDtype.FLOAT4_E2M1FN_X2)
    int4 = int(NpuDtype.INT4)

    transpose_weight = staticmethod(cpu_layout.transpose_weight)
    get_npu_format = staticmethod(cpu_layout.get_npu_format)
    npu_format_cast = staticmethod(cpu_layout.npu_format_cast)
    npu_convert_weight_to_int4pack = staticmethod(cpu_layout.npu_convert_weight_to_int4pack)
    npu_trans_quant_param = staticmethod(cpu_quant.npu_trans_quant_param)
    npu_quantize = staticmethod(cpu_quant.npu_quantize)
    npu_dynamic_quant = staticmethod(cpu_quant.npu_dynamic_quant)
    npu_dynamic_mx_quant = staticmethod(cpu_quant.npu_dynamic_mx_quant)
    npu_quant_matmul = staticmethod(cpu_matmul.npu_quant_matmul)
    npu_weight_quant_batchmatmul = staticmethod(cpu_matmul.npu_weight_quant_batchmatmul)
    npu_grouped_matmul = staticmethod(cpu_moe.npu_grouped_matmul)
    npu_swiglu = staticmethod(cpu_moe.npu_swiglu)
    npu_moe_init_routing_v2 = staticmethod(cpu_moe.npu_moe_init_routing_v2)
    npu_moe_finalize_routing = staticmethod(cpu_moe.npu_moe_finalize_routing)

    def __repr__(self) -> str:
        return "CpuOps()"
