"""The op interface the schemes are written against, and the torch_npu dtype/format constants.

Both backends expose the same methods, with the names and keyword arguments of ``torch_npu``
(torch_npu 2.13 schemas, ``shared/reference/torch_npu_ops.md``), plus one layout step that is not a
torch_npu op, :meth:`Ops.transpose_weight`. Schemes call only these methods, so one code path runs
on the NPU and on the CPU emulation.

Logical dtypes that have no torch dtype are passed as torch_npu custom codes (``256 +
aclDataType``); the backend's attributes (``ops.float8_e8m0fnu``...) hold the value to pass: the
``torch_npu`` attribute on the NPU, the integer code on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from quantspec.vocab import Backend


class AclFormat(IntEnum):
    """``acl_format`` integers (acl_base_rt.h) that the runtime uses."""

    ND = 2
    FRACTAL_NZ = 29


class NpuDtype(IntEnum):
    """torch_npu custom dtype codes (``256 + aclDataType``)."""

    INT4 = 285
    HIFLOAT8 = 290
    FLOAT8_E5M2 = 291
    FLOAT8_E4M3FN = 292
    FLOAT8_E8M0FNU = 293
    FLOAT4_E2M1FN_X2 = 296
    FLOAT4_E1M2FN_X2 = 297


#: A dtype-typed op argument: a torch dtype, a torch_npu custom code, or None.
DtypeArg = torch.dtype | int | None


@runtime_checkable
class Ops(Protocol):
    """The torch_npu operators the runtime uses (same names and keywords as torch_npu)."""

    backend: Backend

    # Values to pass for the torch_npu logical dtypes (read-only: the npu backend reads them from
    # torch_npu when used, since older builds lack them).
    @property
    def float8_e8m0fnu(self) -> int:
        """The E8M0 scale dtype code to pass to kernels."""

    @property
    def float4_e2m1fn_x2(self) -> int:
        """The packed FP4 dtype code to pass to kernels."""

    @property
    def int4(self) -> int:
        """The int4 dtype code to pass to kernels."""

    def transpose_weight(self, weight: Tensor) -> Tensor:
        """``weight.transpose(-1, -2)``: an ``[..., N, K]`` checkpoint weight as the ``[..., K, N]``
        operand of the matmul kernels, on this backend's device.

        Not a torch_npu op: the layout step engines run before the FRACTAL_NZ cast. The npu backend
        makes it contiguous on the device (``transpose(...).contiguous()``, as vLLM-Ascend and
        SGLang do); the cpu emulation returns the transposed view. The kernels take either layout
        (torch_npu_ops.md 2.4) and the emulation computes on logical values, so the two give the
        same results; the view spares the host a copy of every weight that, on an Ascend host,
        the device makes.
        """
        ...

    def get_npu_format(self, input: Tensor) -> int:
        """The ``acl_format`` a tensor is stored in (2 = ND, 29 = FRACTAL_NZ)."""
        ...

    def npu_format_cast(
        self, input: Tensor, acl_format: int, *, customize_dtype: DtypeArg = None, input_dtype: DtypeArg = None
    ) -> Tensor:
        """Re-tile storage to ``acl_format``; logical shape and values are unchanged."""
        ...

    def npu_convert_weight_to_int4pack(self, weight: Tensor, inner_k_tiles: int = 0) -> Tensor:
        """Pack int32 values in [-8, 7] 8 per int32 along the last dim, LSB first."""
        ...

    def npu_trans_quant_param(self, scale: Tensor, offset: Tensor | None = None, round_mode: int = 0) -> Tensor:
        """float32 scale (and offset) to the int64 FP19 dequant word."""
        ...

    def npu_quantize(  # noqa: PLR0917 - torch_npu schema order
        self,
        input: Tensor,
        scales: Tensor,
        zero_points: Tensor | None,
        dtype: DtypeArg,
        axis: int = 1,
        div_mode: bool = True,
    ) -> Tensor:
        """Static quantization ``round(x / s + z)`` (div mode) or ``round(x * s + z)``."""
        ...

    def npu_dynamic_quant(
        self,
        input: Tensor,
        *,
        smooth_scales: Tensor | None = None,
        group_index: Tensor | None = None,
        dst_type: DtypeArg = None,
        quant_mode: str = "pertoken",
        dst_type_max: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """Symmetric per-token quantization; returns ``(y, scale)``."""
        ...

    def npu_dynamic_mx_quant(
        self,
        input: Tensor,
        *,
        axis: int = -1,
        round_mode: str = "rint",
        dst_type: DtypeArg = 296,
        block_size: int = 32,
        scale_alg: int = 0,
        dst_type_max: float = 0.0,
        max_low_bound: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """MX quantization (E8M0 scales per block of 32, in pairs); returns ``(y, mxscale)``."""
        ...

    def npu_quant_matmul(
        self,
        x1: Tensor,
        x2: Tensor,
        scale: Tensor,
        *,
        offset: Tensor | None = None,
        pertoken_scale: Tensor | None = None,
        bias: Tensor | None = None,
        output_dtype: DtypeArg = None,
        x1_dtype: DtypeArg = None,
        x2_dtype: DtypeArg = None,
        pertoken_scale_dtype: DtypeArg = None,
        scale_dtype: DtypeArg = None,
        group_sizes: Sequence[int] | None = None,
        y_scale: Tensor | None = None,
    ) -> Tensor:
        """Quantized matmul with dequantization (int8, int4x8, MXFP8)."""
        ...

    def npu_weight_quant_batchmatmul(  # noqa: PLR0917 - torch_npu schema order
        self,
        x: Tensor,
        weight: Tensor,
        antiquant_scale: Tensor,
        antiquant_offset: Tensor | None = None,
        quant_scale: Tensor | None = None,
        quant_offset: Tensor | None = None,
        bias: Tensor | None = None,
        antiquant_group_size: int = 0,
        inner_precise: int = 0,
        weight_dtype: DtypeArg = None,
    ) -> Tensor:
        """Weight-only quantized matmul ``x @ ((w + offset) * scale) + bias``."""
        ...

    def npu_grouped_matmul(
        self,
        x: Sequence[Tensor],
        weight: Sequence[Tensor],
        *,
        bias: Sequence[Tensor] | None = None,
        scale: Sequence[Tensor] | None = None,
        offset: Sequence[Tensor] | None = None,
        antiquant_scale: Sequence[Tensor] | None = None,
        antiquant_offset: Sequence[Tensor] | None = None,
        per_token_scale: Sequence[Tensor] | None = None,
        group_list: Tensor | None = None,
        activation_input: Sequence[Tensor] | None = None,
        activation_quant_scale: Sequence[Tensor] | None = None,
        activation_quant_offset: Sequence[Tensor] | None = None,
        split_item: int = 0,
        group_type: int | None = None,
        group_list_type: int = 0,
        act_type: int = 0,
        tuning_config: Sequence[int] | None = None,
        output_dtype: DtypeArg = None,
        x_dtype: DtypeArg = None,
        weight_dtype: DtypeArg = None,
        scale_dtype: DtypeArg = None,
        per_token_scale_dtype: DtypeArg = None,
    ) -> list[Tensor]:
        """Grouped (MoE) matmul; single-tensor, group along M is the supported scenario."""
        ...

    def npu_swiglu(self, input: Tensor, dim: int = -1) -> Tensor:
        """``silu(first half) * second half`` along ``dim``."""
        ...

    def npu_moe_init_routing_v2(
        self,
        x: Tensor,
        expert_idx: Tensor,
        *,
        scale: Tensor | None = None,
        offset: Tensor | None = None,
        active_num: int = -1,
        expert_capacity: int = -1,
        expert_num: int = -1,
        drop_pad_mode: int = 0,
        expert_tokens_num_type: int = 0,
        expert_tokens_num_flag: bool = False,
        quant_mode: int = -1,
        active_expert_range: Sequence[int] = (),
        row_idx_type: int = 0,
        x_dtype: DtypeArg = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sort token copies by expert; returns ``(expanded_x, row_idx, token_counts, scale)``."""
        ...

    def npu_moe_finalize_routing(  # noqa: PLR0917 - torch_npu schema order
        self,
        expanded_permuted_rows: Tensor,
        skip1: Tensor | None,
        skip2: Tensor | None,
        bias: Tensor | None,
        scales: Tensor | None,
        expanded_src_to_dst_row: Tensor,
        export_for_source_row: Tensor | None,
        drop_pad_mode: int = 0,
        k: int = 1,
    ) -> Tensor:
        """Un-permute expert outputs and combine them with the routing weights."""
        ...
