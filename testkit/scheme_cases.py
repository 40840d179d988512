"""The linear-scheme test cases: one per (matrix key, storage variant), with writer, oracle and bound.

The bound is on ``max |y - oracle| / max |oracle|`` and is documented in docs/runtime.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from quantspec.description import ActQuant, QuantSpec, WeightQuant
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, SchemeId, ZeroPoint
from testkit import oracles as orc
from testkit import writers as wr

Writer = Callable[[torch.Tensor, torch.dtype], dict[str, torch.Tensor]]
Oracle = Callable[[dict[str, torch.Tensor], np.ndarray, "np.ndarray | None"], np.ndarray]


@dataclass(frozen=True)
class Case:
    """One scheme variant under test."""

    id: str
    family: FormatFamily
    scheme: SchemeId
    quant: QuantSpec
    write: Writer
    oracle: Oracle
    #: (N, K) shapes to run; awkward sizes where the format allows.
    shapes: tuple[tuple[int, int], ...]
    #: Relative bound per model dtype.
    bound: dict[torch.dtype, float] = field(default_factory=dict)


def _wq(
    layout: Layout,
    bits: int,
    *,
    element: ElementType = ElementType.INT4,
    gs: int | None = None,
    zp: ZeroPoint = ZeroPoint.NONE,
    sym: bool = True,
    act_order: bool = False,
) -> WeightQuant:
    gran = Granularity.GROUP if gs else Granularity.CHANNEL
    return WeightQuant(
        element=element,
        bits=bits,
        granularity=gran,
        group_size=gs,
        symmetric=sym,
        zero_point=zp,
        layout=layout,
        act_order=act_order,
    )


def _q(scheme: SchemeId, label: str, w: WeightQuant, act: ActQuant | None = None) -> QuantSpec:
    return QuantSpec(scheme=scheme, label=label, weight=w, activation=act)


_A8 = ActQuant(element=ElementType.INT8, bits=8, dynamic=True, granularity=Granularity.TOKEN)
_A8S = ActQuant(element=ElementType.INT8, bits=8, dynamic=False, granularity=Granularity.TENSOR)
_A4 = ActQuant(element=ElementType.INT4, bits=4, dynamic=True, granularity=Granularity.TOKEN)
_AMX = ActQuant(element=ElementType.FP8_E4M3, bits=8, dynamic=True, granularity=Granularity.GROUP, group_size=32)
_INT8 = _wq(Layout.MODELSLIM_INT8, 8, element=ElementType.INT8)
_BOTH = (torch.float16, torch.bfloat16)


def _bound(fp16: float, bf16: float) -> dict[torch.dtype, float]:
    return {torch.float16: fp16, torch.bfloat16: bf16}


def _wo(
    name: str,
    family: FormatFamily,
    *,
    bits: int,
    gs: int,
    layout: Layout,
    zp: ZeroPoint,
    writer: Writer,
    dq: Callable[[dict[str, torch.Tensor]], np.ndarray],
    shapes: tuple[tuple[int, int], ...],
    sym: bool = True,
    act_order: bool = False,
) -> Case:
    scheme = SchemeId.W4A16 if bits == 4 else SchemeId.W8A16
    el = ElementType.INT4 if bits == 4 else ElementType.INT8
    return Case(
        name,
        family,
        scheme,
        _q(scheme, name, _wq(layout, bits, element=el, gs=gs if gs > 0 else None, zp=zp, sym=sym, act_order=act_order)),
        writer,
        lambda t, x, b: orc.weight_only(dq(t), x, b),
        shapes,
        _bound(4e-3, 2e-2),
    )


def _awq_case(name: str, family: FormatFamily, bits: int, gs: int, sym: bool) -> Case:
    return _wo(
        name,
        family,
        bits=bits,
        gs=gs,
        layout=Layout.AWQ_GEMM,
        zp=ZeroPoint.TRUE,
        writer=lambda w, d: wr.awq_gemm(w, bits=bits, group_size=gs, sym=sym),
        dq=lambda t: orc.awq_dequant(t, bits, gs if gs > 0 else t["qweight"].shape[0]),
        shapes=((24, 96), (40, 192)),
        sym=sym,
    )


def _gptq_case(
    name: str,
    family: FormatFamily,
    bits: int,
    gs: int,
    *,
    sym: bool,
    v1: bool,
    act_order: bool = False,
    g_idx: bool = True,
    zp: ZeroPoint | None = None,
) -> Case:
    zero = zp if zp is not None else (ZeroPoint.MINUS_ONE if v1 else ZeroPoint.TRUE)
    return _wo(
        name,
        family,
        bits=bits,
        gs=gs,
        layout=Layout.GPTQ,
        zp=zero,
        writer=lambda w, d: wr.gptq(
            w, bits=bits, group_size=gs, sym=sym, v1=v1, act_order=act_order, write_g_idx=g_idx
        ),
        dq=lambda t: orc.gptq_dequant(t, bits, gs if gs > 0 else 10**9, v1=v1),
        shapes=((24, 96), (16, 160)) if gs == 32 else ((24, 128), (8, 72)),
        sym=sym,
        act_order=act_order,
    )


def _ct_case(name: str, bits: int, gs: int, *, sym: bool, dense: bool) -> Case:
    return _wo(
        name,
        FormatFamily.COMPRESSED_TENSORS,
        bits=bits,
        gs=gs,
        layout=Layout.CT_PACKED,
        zp=ZeroPoint.NONE if sym else ZeroPoint.SIGNED,
        writer=lambda w, d: wr.ct_pack_quantized(w, bits=bits, group_size=gs, sym=sym, dense=dense, model_dtype=d),
        dq=lambda t: orc.ct_dequant(t, bits, gs if gs > 0 else 10**9, dense=dense),
        shapes=((24, 96), (40, 160)) if gs == 32 else ((24, 128), (8, 72)),
        sym=sym,
    )


def _auto_round(packing: wr.AutoRoundPacking, bits: int, sym: bool) -> Case:
    name = f"auto_round-{packing.value}-w{bits}"
    if packing == wr.AutoRoundPacking.AUTO_AWQ:
        return _awq_case(name, FormatFamily.AUTO_ROUND, bits, 32, sym)
    v1 = packing == wr.AutoRoundPacking.AUTO_GPTQ
    return _wo(
        name,
        FormatFamily.AUTO_ROUND,
        bits=bits,
        gs=32,
        layout=Layout.GPTQ,
        zp=ZeroPoint.MINUS_ONE if v1 else ZeroPoint.TRUE,
        writer=lambda w, d: wr.auto_round(w, packing, bits=bits, group_size=32, sym=sym),
        dq=lambda t: orc.gptq_dequant(t, bits, 32, v1=v1),
        shapes=((24, 96), (16, 160)),
        sym=sym,
    )


CASES: tuple[Case, ...] = (
    Case(
        "modelslim-w8a8-static",
        FormatFamily.MODELSLIM,
        SchemeId.W8A8_STATIC,
        _q(SchemeId.W8A8_STATIC, "W8A8", _INT8, _A8S),
        lambda w, d: wr.modelslim_w8a8_static(
            w, model_dtype=d, input_scale=0.02, input_offset=3, bias=torch.linspace(-1, 1, w.shape[0])
        ),
        orc.modelslim_w8a8_static,
        ((40, 48), (64, 64)),
        _bound(5e-3, 2e-2),
    ),
    Case(
        "modelslim-w8a8-dynamic",
        FormatFamily.MODELSLIM,
        SchemeId.W8A8_DYNAMIC,
        _q(SchemeId.W8A8_DYNAMIC, "W8A8_DYNAMIC", _INT8, _A8),
        lambda w, d: wr.modelslim_w8a8_dynamic(w, model_dtype=d),
        orc.int8_dynamic,
        ((40, 48), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "modelslim-w8a8-mix",
        FormatFamily.MODELSLIM,
        SchemeId.W8A8_MIX,
        _q(SchemeId.W8A8_MIX, "W8A8_MIX", _INT8, _A8),
        lambda w, d: wr.modelslim_w8a8_mix(w, model_dtype=d, input_scale=0.02, input_offset=3),
        orc.int8_dynamic,
        ((40, 48), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "ct-w8a8-dynamic",
        FormatFamily.COMPRESSED_TENSORS,
        SchemeId.W8A8_DYNAMIC,
        _q(SchemeId.W8A8_DYNAMIC, "int8 dynamic", _wq(Layout.CT_INT, 8, element=ElementType.INT8), _A8),
        lambda w, d: wr.ct_int8(w),
        orc.int8_dynamic,
        ((40, 48), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "ct-w8a8-static",
        FormatFamily.COMPRESSED_TENSORS,
        SchemeId.W8A8_STATIC,
        _q(SchemeId.W8A8_STATIC, "int8 static", _wq(Layout.CT_INT, 8, element=ElementType.INT8), _A8S),
        lambda w, d: wr.ct_int8(w, input_scale=0.02),
        orc.ct_w8a8_static,
        ((40, 48), (64, 64)),
        _bound(5e-3, 2e-2),
    ),
    Case(
        "modelslim-w4a4-int4",
        FormatFamily.MODELSLIM,
        SchemeId.W4A4_DYNAMIC,
        _q(SchemeId.W4A4_DYNAMIC, "W4A4_DYNAMIC", _wq(Layout.MODELSLIM_INT4, 4), _A4),
        lambda w, d: wr.modelslim_w4a4_dynamic(w),
        lambda t, x, b: orc.modelslim_w4a4(t, x, b, pairs=False),
        ((24, 40), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "modelslim-w4a4-int4x2",
        FormatFamily.MODELSLIM,
        SchemeId.W4A4_DYNAMIC,
        _q(SchemeId.W4A4_DYNAMIC, "W4A4_DYNAMIC", _wq(Layout.MODELSLIM_INT4X2, 4), _A4),
        lambda w, d: wr.modelslim_w4a4_dynamic(w, pairs=True),
        lambda t, x, b: orc.modelslim_w4a4(t, x, b, pairs=True),
        ((24, 40), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "modelslim-w8a16",
        FormatFamily.MODELSLIM,
        SchemeId.W8A16,
        _q(
            SchemeId.W8A16,
            "W8A16",
            _wq(Layout.MODELSLIM_INT8, 8, element=ElementType.INT8, sym=False, zp=ZeroPoint.FLOAT_OFFSET),
        ),
        lambda w, d: wr.modelslim_w8a16(w, model_dtype=d),
        orc.modelslim_w8a16,
        ((40, 48), (64, 64)),
        _bound(4e-3, 2e-2),
    ),
    Case(
        "modelslim-mxfp8",
        FormatFamily.MODELSLIM,
        SchemeId.W8A8_MXFP8,
        _q(SchemeId.W8A8_MXFP8, "W8A8_MXFP8", _wq(Layout.MX_FP8, 8, element=ElementType.FP8_E4M3, gs=32), _AMX),
        lambda w, d: wr.modelslim_w8a8_mxfp8(w),
        orc.mxfp8,
        ((20, 96), (64, 128)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "online-mxfp8",
        FormatFamily.MXFP8_ONLINE,
        SchemeId.W8A8_MXFP8,
        _q(SchemeId.W8A8_MXFP8, "mxfp8", _wq(Layout.FLOAT, 16, element=ElementType.FLOAT), _AMX),
        lambda w, d: {"weight": w.to(d)},
        lambda t, x, b: orc.mxfp8(dict(zip(("weight", "weight_scale"), _torch_mx(t["weight"]), strict=True)), x, b),
        ((20, 96), (64, 128)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "modelslim-w4a8-mxfp",
        FormatFamily.MODELSLIM,
        SchemeId.W4A8_MXFP,
        _q(SchemeId.W4A8_MXFP, "W4A8_MXFP", _wq(Layout.MX_FP4, 4, element=ElementType.FP4_E2M1, gs=32), _AMX),
        lambda w, d: wr.modelslim_mxfp4(w),
        orc.w4a8_mxfp,
        ((20, 96), (64, 128)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "modelslim-w4a4-mxfp4",
        FormatFamily.MODELSLIM,
        SchemeId.W4A4_MXFP4,
        _q(SchemeId.W4A4_MXFP4, "W4A4_MXFP4", _wq(Layout.MX_FP4, 4, element=ElementType.FP4_E2M1, gs=32), _AMX),
        lambda w, d: wr.modelslim_mxfp4(w),
        orc.w4a4_mxfp4,
        ((20, 96), (64, 128)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "modelslim-w8a8-fp8-dynamic",
        FormatFamily.MODELSLIM,
        SchemeId.W8A8_FP8_DYNAMIC,
        _q(
            SchemeId.W8A8_FP8_DYNAMIC,
            "W8A8FP8_DYNAMIC",
            _wq(Layout.MODELSLIM_INT8, 8, element=ElementType.FP8_E4M3),
            ActQuant(element=ElementType.FP8_E4M3, bits=8, dynamic=True, granularity=Granularity.TOKEN),
        ),
        lambda w, d: wr.modelslim_w8a8_fp8_dynamic(w, model_dtype=d),
        orc.fp8_dynamic,
        ((40, 48), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    Case(
        "ct-w8a8-fp8-dynamic",
        FormatFamily.COMPRESSED_TENSORS,
        SchemeId.W8A8_FP8_DYNAMIC,
        _q(
            SchemeId.W8A8_FP8_DYNAMIC,
            "fp8 dynamic",
            _wq(Layout.CT_FLOAT, 8, element=ElementType.FP8_E4M3),
            ActQuant(element=ElementType.FP8_E4M3, bits=8, dynamic=True, granularity=Granularity.TOKEN),
        ),
        lambda w, d: {k: v for k, v in wr.modelslim_w8a8_fp8_dynamic(w, model_dtype=d).items() if k != "weight_offset"},
        orc.fp8_dynamic,
        ((40, 48), (64, 64)),
        _bound(3e-3, 1.5e-2),
    ),
    _awq_case("awq-w4-g32", FormatFamily.AWQ, 4, 32, False),
    _awq_case("awq-w4-channel", FormatFamily.AWQ, 4, -1, False),
    _awq_case("awq-w8-g32", FormatFamily.AWQ, 8, 32, False),
    _gptq_case("gptq-v1-w4-g32-sym", FormatFamily.GPTQ, 4, 32, sym=True, v1=True),
    _gptq_case("gptq-v1-w4-g32-asym", FormatFamily.GPTQ, 4, 32, sym=False, v1=True),
    _gptq_case("gptq-v2-w4-g32-asym", FormatFamily.GPTQ, 4, 32, sym=False, v1=False),
    _gptq_case("gptq-v1-w4-actorder", FormatFamily.GPTQ, 4, 32, sym=False, v1=True, act_order=True),
    _gptq_case("gptq-v1-w8-g32", FormatFamily.GPTQ, 8, 32, sym=True, v1=True),
    _gptq_case("gptq-v2-w8-actorder", FormatFamily.GPTQ, 8, 32, sym=False, v1=False, act_order=True),
    _gptq_case("gptq-sym-implicit-zero", FormatFamily.GPTQ, 4, -1, sym=True, v1=True, zp=ZeroPoint.NONE),
    _auto_round(wr.AutoRoundPacking.AUTO_GPTQ, 4, True),
    _auto_round(wr.AutoRoundPacking.AUTO_ROUND, 4, False),
    _auto_round(wr.AutoRoundPacking.GPTQMODEL, 4, False),
    _auto_round(wr.AutoRoundPacking.AUTO_AWQ, 4, True),
    _auto_round(wr.AutoRoundPacking.AUTO_GPTQ, 8, True),
    _ct_case("ct-pack-w4-g32-sym", 4, 32, sym=True, dense=True),
    _ct_case("ct-pack-w4-g32-asym", 4, 32, sym=False, dense=True),
    _ct_case("ct-pack-w8-channel-asym-padded", 8, -1, sym=False, dense=False),
    _ct_case("ct-pack-w4-channel-padded", 4, -1, sym=True, dense=False),
)


def _torch_mx(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference weight quantization of the online case: the writers' OCP MX quantizer."""
    return wr.mx_quantize_fp8(w)
