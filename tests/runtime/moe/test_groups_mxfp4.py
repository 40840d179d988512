"""MXFP4 expert groups (W4A8_MXFP, W4A4_MXFP4) against an independent float MoE oracle.

The oracle (numpy, float64, tests/runtime/oracles.py) dequantizes each expert's checkpoint
tensors as ``E2M1(code) * 2^(e - 127)`` per 32-block along K, quantizes activations the OCP MX
way (E4M3 or E2M1 with shared exponent ``floor(log2 amax) - emax``), and runs the float MoE:
``sum_j w_j * down_e(silu(gate_e(x)) * up_e(x))``. It rounds to bf16 where the runtime's ops hand
bf16 tensors on (w13 output, SwiGLU output, w2 output), so what is left is float32 vs float64
accumulation plus the odd quantization tie that a 1-ulp bf16 difference flips. Documented bound:
relative Frobenius error < 1e-2 (observed ~2e-3; swapped nibbles or a wrong scale pairing give > 0.3).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from quantspec.errors import InvalidInput, KernelArgumentError
from quantspec.runtime.moe import ExpertGroup, GroupName, QuantizedExperts, Stacker, moe_group_for
from quantspec.runtime.moe.groups_mx import MxFp8Experts
from quantspec.runtime.moe.groups_mxfp4 import MxFp4W4A4Experts, MxFp4W4A8Experts
from quantspec.runtime.ops import get_ops
from quantspec.vocab import FormatFamily, SchemeId
from testkit import oracles as O
from testkit import writers as W

E, INTER, H, T, TOPK = 4, 64, 128, 11, 2
OPS = get_ops("cpu")
BOUND = 1e-2
Oracle = Callable[[dict[str, Tensor], np.ndarray, np.ndarray | None], np.ndarray]

SCHEMES: dict[str, tuple[SchemeId, Callable[[Tensor], dict[str, Tensor]], Oracle]] = {
    "w4a8_mxfp": (SchemeId.W4A8_MXFP, W.modelslim_mxfp4, O.w4a8_mxfp),
    "w4a4_mxfp4": (SchemeId.W4A4_MXFP4, W.modelslim_mxfp4, O.w4a4_mxfp4),
    "w8a8_mxfp8": (SchemeId.W8A8_MXFP8, W.modelslim_w8a8_mxfp8, O.mxfp8),
}


def _weights() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {p: 0.05 * torch.randn(E, *shape, generator=gen)
            for p, shape in (("gate", (INTER, H)), ("up", (INTER, H)), ("down", (H, INTER)))}


def _ckpt(ws: dict[str, Tensor], w13: str, w2: str) -> dict[str, list[dict[str, Tensor]]]:
    """Per projection, each expert's checkpoint tensors as the producer writes them."""
    pick = {"gate": w13, "up": w13, "down": w2}
    return {p: [SCHEMES[pick[p]][1](ws[p][e]) for e in range(E)] for p in ws}


def _group(scheme: str, tensors: list[list[dict[str, Tensor]]], n: int, k: int, group: GroupName) -> ExpertGroup:
    cls = moe_group_for(FormatFamily.MODELSLIM, SCHEMES[scheme][0])
    st = Stacker(E)
    for e in range(E):
        st.put(e, cls.decode([proj[e] for proj in tensors], None, n=n, k=k, group=group,
                             model_dtype=torch.bfloat16, ops=OPS))
    return cls.finish(st.out, None, n=n * len(tensors), k=k, group=group, model_dtype=torch.bfloat16, ops=OPS)


def _experts(ck: dict[str, list[dict[str, Tensor]]], w13: str, w2: str) -> QuantizedExperts:
    g13 = _group(w13, [ck["gate"], ck["up"]], INTER, H, "w13")
    g2 = _group(w2, [ck["down"]], H, INTER, "w2")
    return QuantizedExperts(g13, g2, ops=OPS, model_dtype=torch.bfloat16)


def _bf16(a: np.ndarray) -> np.ndarray:
    return torch.from_numpy(a).to(torch.bfloat16).to(torch.float64).numpy()


def oracle_moe(ck: dict[str, list[dict[str, Tensor]]], w13: str, w2: str, x: Tensor, *, idx: Tensor,
               wt: Tensor) -> np.ndarray:
    """Float MoE on the oracle's dequantized weights and MX-quantized activations.

    ``ck[proj][e]``: expert ``e``'s checkpoint tensors of ``gate``/``up``/``down``; ``w13``/``w2``
    name the schemes in :data:`SCHEMES`.
    """
    f13, f2 = SCHEMES[w13][2], SCHEMES[w2][2]
    xs = x.to(torch.float64).numpy()
    out = np.zeros((x.size(0), ck["down"][0]["weight"].size(0)))
    for t in range(x.size(0)):
        for j in range(idx.size(1)):
            e = int(idx[t, j])
            row = xs[t:t + 1]
            gate, up = _bf16(f13(ck["gate"][e], row, None)), _bf16(f13(ck["up"][e], row, None))
            h = _bf16(gate / (1.0 + np.exp(-gate)) * up)
            out[t] += float(wt[t, j]) * _bf16(f2(ck["down"][e], h, None))[0]
    return out


def _inputs() -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, H, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(E, generator=gen)[:TOPK] for _ in range(T)])
    wt = torch.softmax(torch.randn(T, TOPK, generator=gen), -1).to(torch.bfloat16)
    return x, idx, wt


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(("w13", "w2"), [
    ("w4a8_mxfp", "w4a8_mxfp"),
    ("w4a4_mxfp4", "w4a4_mxfp4"),
    ("w4a4_mxfp4", "w8a8_mxfp8"),  # mixed: the planner plans w13 and w2 independently
    ("w4a8_mxfp", "w8a8_mxfp8"),
])
def test_mxfp4_moe_matches_float_oracle(w13: str, w2: str) -> None:
    ws = _weights()
    ck = _ckpt(ws, w13, w2)
    experts = _experts(ck, w13, w2)
    x, idx, wt = _inputs()
    with torch.no_grad():
        got = experts(x, idx, wt).to(torch.float64).numpy()
    want = oracle_moe(ck, w13, w2, x, idx=idx, wt=wt)
    assert _rel(got, want) < BOUND, (w13, w2, _rel(got, want))
    # and the quantized MoE stays near the unquantized one (FP4 error, not a layout error)
    ref = np.zeros((T, H))
    for t in range(T):
        for j in range(TOPK):
            e = int(idx[t, j])
            xf = x[t].double()
            h = torch.nn.functional.silu(ws["gate"][e].double() @ xf) * (ws["up"][e].double() @ xf)
            ref[t] += float(wt[t, j]) * (ws["down"][e].double() @ h).numpy()
    assert _rel(got, ref) < 0.35


def test_loaded_layout_and_classes() -> None:
    ck = _ckpt(_weights(), "w4a8_mxfp", "w8a8_mxfp8")
    experts = _experts(ck, "w4a8_mxfp", "w8a8_mxfp8")
    assert isinstance(experts.w13, MxFp4W4A8Experts) and isinstance(experts.w2, MxFp8Experts)
    w = experts.w13.weight
    assert w.dtype == torch.uint8 and tuple(w.shape) == (E, H // 2, 2 * INTER) and w.stride(1) == 1
    assert tuple(experts.w13.weight_scale.shape) == (E, H // 64, 2 * INTER, 2)
    four = _experts(_ckpt(_weights(), "w4a4_mxfp4", "w4a4_mxfp4"), "w4a4_mxfp4", "w4a4_mxfp4")
    assert isinstance(four.w13, MxFp4W4A4Experts) and isinstance(four.w2, MxFp4W4A4Experts)
    assert tuple(four.w2.weight.shape) == (E, INTER // 2, H)


def test_decode_rejects_bad_scales_and_block_counts() -> None:
    t = W.modelslim_mxfp4(0.05 * torch.randn(INTER, H))
    bad = dict(t, weight_scale=torch.full_like(t["weight_scale"], 0xFF))
    with pytest.raises(InvalidInput, match="NaN"):
        MxFp4W4A8Experts.decode([bad], None, n=INTER, k=H, group="w13", model_dtype=torch.bfloat16, ops=OPS)
    odd = W.modelslim_mxfp4(0.05 * torch.randn(INTER, 96))  # 3 blocks of 32: cannot be paired
    with pytest.raises(InvalidInput, match="even number of 32-blocks"):
        MxFp4W4A4Experts.decode([odd], None, n=INTER, k=96, group="w13", model_dtype=torch.bfloat16, ops=OPS)


def _fp4_call(**over: object) -> None:
    """A valid FP4 x FP4 grouped call with some arguments replaced."""
    ck = _ckpt(_weights(), "w4a4_mxfp4", "w4a4_mxfp4")
    g = _experts(ck, "w4a4_mxfp4", "w4a4_mxfp4").w2
    h = torch.randn(5, INTER).to(torch.bfloat16)
    qx, xs = OPS.npu_dynamic_mx_quant(h, dst_type=OPS.float4_e2m1fn_x2, round_mode="round")
    kw: dict[str, object] = dict(
        scale=[g.weight_scale], per_token_scale=[xs], scale_dtype=OPS.float8_e8m0fnu,
        per_token_scale_dtype=OPS.float8_e8m0fnu, x_dtype=OPS.float4_e2m1fn_x2,
        weight_dtype=OPS.float4_e2m1fn_x2, output_dtype=torch.bfloat16,
        group_list=torch.tensor([2, 0, 3, 0]), group_list_type=1, group_type=0, split_item=2)
    kw.update(over)
    OPS.npu_grouped_matmul([qx], [g.weight], **kw)


def test_emulation_checks_fp4_arguments() -> None:
    _fp4_call()
    with pytest.raises(KernelArgumentError, match="weight_dtype"):
        _fp4_call(weight_dtype=None, x_dtype=OPS.float4_e2m1fn_x2)
    with pytest.raises(KernelArgumentError, match="scale_dtype"):
        _fp4_call(scale_dtype=None)
    with pytest.raises(KernelArgumentError, match="per_token_scale_dtype"):
        _fp4_call(per_token_scale_dtype=None)
    with pytest.raises(KernelArgumentError, match="bias"):
        _fp4_call(bias=[torch.zeros(E, H)])
    with pytest.raises(KernelArgumentError, match="antiquant_scale"):
        _fp4_call(x_dtype=torch.float8_e4m3fn)  # FP8 x FP4 wants the weight scales as antiquant_scale
