"""Every MoE expert-group scheme: layout (weights recovered through the kernel) and full forward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from quantspec.description import ActQuant, QuantSpec, WeightQuant
from quantspec.runtime import numerics as nm
from quantspec.runtime.moe import GroupName, QuantizedExperts, Stacker, moe_group_for, registered_moe
from quantspec.runtime.ops import get_ops
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, SchemeId, ZeroPoint
from testkit import writers as W

E, INTER, H = 4, 64, 128
OPS = get_ops("cpu")
F, S = FormatFamily, SchemeId
Writer = Callable[[Tensor, str], dict[str, Tensor]]


def _q(scheme: SchemeId, layout: Layout, bits: int, *, group: int | None = None, zp: ZeroPoint = ZeroPoint.NONE,
       element: ElementType = ElementType.INT8) -> QuantSpec:
    gran = Granularity.GROUP if group else Granularity.CHANNEL
    act = ActQuant(element=ElementType.INT8, bits=8, dynamic=True, granularity=Granularity.TOKEN)
    return QuantSpec(scheme=scheme, label=scheme.value, activation=act, weight=WeightQuant(
        element=element, bits=bits, granularity=gran, group_size=group, layout=layout, zero_point=zp))


def _scale_bias(w: Tensor, group: str) -> dict[str, Tensor]:
    """ModelSlim W4A8 v1.0.0 tensors: int4 pairs along N plus the precomputed scale_bias."""
    t = W.modelslim_w4a4_dynamic(w, pairs=True)
    q = nm.unpack_int4_pairs(t["weight"], dim=0).to(torch.float32)
    s = t["weight_scale"].to(torch.float32)
    if group == "w13":
        t["scale_bias"] = 8.0 * (q * s).sum(1, keepdim=True)
    else:  # 16 tensor-parallel slices of K
        t["scale_bias"] = 8.0 * (q.reshape(q.size(0), 16, -1) * s.unsqueeze(-1)).sum(-1)
    return t


def _ct_w4a8_sglang(w: Tensor, group: str) -> dict[str, Tensor]:
    """SGLang's compressed-tensors W4A8 layout: ModelSlim's pairs, a zero float weight_offset, scale_bias."""
    t = _scale_bias(w, group)
    return {**t, "weight_scale": t["weight_scale"].to(torch.float32),
            "weight_offset": torch.zeros_like(t["weight_scale"], dtype=torch.float32)}


def _ct_w4a8_sglang_clip(w: Tensor, group: str) -> dict[str, Tensor]:
    """The activation_use_clip variant: int64 scale words, a float bias [N] as the scale bias, alpha."""
    t = W.modelslim_w4a4_dynamic(w, pairs=True)
    q = nm.unpack_int4_pairs(t["weight"], dim=0).to(torch.float32)
    s = t["weight_scale"].to(torch.float32)
    out = {"weight": t["weight"], "weight_scale": nm.float_bits_to_int64(s),
           "weight_offset": torch.zeros_like(s), "bias": 8.0 * (q * s).sum(1)}
    if group == "w2":
        out["alpha"] = torch.ones(1)
    return out


def _clip(q: QuantSpec) -> QuantSpec:
    assert q.activation is not None
    return q.model_copy(update={"activation": q.activation.model_copy(update={"clip": True})})


def _ct_w4a8(w: Tensor, group: str) -> dict[str, Tensor]:
    t = W.modelslim_w4a4_dynamic(w)
    return {"weight": t["weight"], "weight_scale": t["weight_scale"]}


Case = tuple[str, FormatFamily, SchemeId | None, QuantSpec | None, Writer, float]
CASES: list[Case] = [
    ("float", F.UNQUANTIZED, None, None, lambda w, g: {"weight": w.to(torch.bfloat16)}, 0.01),
    ("ms_w8a8", F.MODELSLIM, S.W8A8_DYNAMIC, _q(S.W8A8_DYNAMIC, Layout.MODELSLIM_INT8, 8, zp=ZeroPoint.FLOAT_OFFSET),
     lambda w, g: W.modelslim_w8a8_dynamic(w, model_dtype=torch.bfloat16), 0.03),
    ("ct_w8a8", F.COMPRESSED_TENSORS, S.W8A8_DYNAMIC, _q(S.W8A8_DYNAMIC, Layout.CT_INT, 8),
     lambda w, g: W.ct_int8(w), 0.03),
    ("ms_w4a8_pairs", F.MODELSLIM, S.W4A8_DYNAMIC, _q(S.W4A8_DYNAMIC, Layout.MODELSLIM_INT4X2, 4), _scale_bias, 0.2),
    ("ct_w4a8", F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, _q(S.W4A8_DYNAMIC, Layout.CT_INT, 4), _ct_w4a8, 0.2),
    ("ct_w4a8_sglang", F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC, _q(S.W4A8_DYNAMIC, Layout.MODELSLIM_INT4X2, 4),
     _ct_w4a8_sglang, 0.2),
    ("ct_w4a8_sglang_clip", F.COMPRESSED_TENSORS, S.W4A8_DYNAMIC,
     _clip(_q(S.W4A8_DYNAMIC, Layout.MODELSLIM_INT4X2, 4)), _ct_w4a8_sglang_clip, 0.2),
    ("ms_w4a4", F.MODELSLIM, S.W4A4_DYNAMIC, _q(S.W4A4_DYNAMIC, Layout.MODELSLIM_INT4, 4),
     lambda w, g: W.modelslim_w4a4_dynamic(w), 0.3),
    ("ms_w4a4_pairs", F.MODELSLIM, S.W4A4_DYNAMIC, _q(S.W4A4_DYNAMIC, Layout.MODELSLIM_INT4X2, 4),
     lambda w, g: W.modelslim_w4a4_dynamic(w, pairs=True), 0.3),
    ("gptq_w4a16", F.GPTQ, S.W4A16, _q(S.W4A16, Layout.GPTQ, 4, group=64, element=ElementType.INT4),
     lambda w, g: W.gptq(w, group_size=64), 0.2),
    ("gptq_w4a16_act_order", F.GPTQ, S.W4A16,
     _q(S.W4A16, Layout.GPTQ, 4, group=64, element=ElementType.INT4).model_copy(update={"weight": WeightQuant(
         element=ElementType.INT4, bits=4, granularity=Granularity.GROUP, group_size=64, layout=Layout.GPTQ,
         act_order=True)}),
     # a different column order per projection: gate and up then run as separate grouped matmuls
     lambda w, g: W.gptq(w, group_size=64, act_order=True, seed=int(w.abs().sum() * 1000) % 997), 0.2),
    ("gptq_w8a16", F.GPTQ, S.W8A16, _q(S.W8A16, Layout.GPTQ, 8), lambda w, g: W.gptq(w, bits=8, group_size=-1), 0.03),
    ("awq_w4a16", F.AWQ, S.W4A16,
     _q(S.W4A16, Layout.AWQ_GEMM, 4, group=64, zp=ZeroPoint.TRUE, element=ElementType.INT4),
     lambda w, g: W.awq_gemm(w, group_size=64), 0.2),
    ("ct_w4a16", F.COMPRESSED_TENSORS, S.W4A16, _q(S.W4A16, Layout.CT_PACKED, 4, group=64, element=ElementType.INT4),
     lambda w, g: W.ct_pack_quantized(w, group_size=64), 0.2),
    ("ms_mxfp8", F.MODELSLIM, S.W8A8_MXFP8, _q(S.W8A8_MXFP8, Layout.MX_FP8, 8, element=ElementType.FP8_E4M3),
     lambda w, g: W.modelslim_w8a8_mxfp8(w), 0.08),
    ("online_mxfp8", F.MXFP8_ONLINE, S.W8A8_MXFP8, _q(S.W8A8_MXFP8, Layout.FLOAT, 8, element=ElementType.FP8_E4M3),
     lambda w, g: {"weight": w.to(torch.bfloat16)}, 0.08),
]


def expert_weights() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {p: 0.05 * torch.randn(E, *shape, generator=gen)
            for p, shape in (("gate", (INTER, H)), ("up", (INTER, H)), ("down", (H, INTER)))}


def build_experts(family: FormatFamily, scheme: SchemeId | None, quant: QuantSpec | None, write: Writer,
                  ws: dict[str, Tensor], *, ops: Any = OPS) -> QuantizedExperts:
    """Both weight groups of ``ws`` written by ``write``, decoded and finished on ``ops``."""
    cls = moe_group_for(family, scheme)
    groups = []
    plan: tuple[tuple[GroupName, tuple[str, ...], int, int], ...] = (
        ("w13", ("gate", "up"), INTER, H), ("w2", ("down",), H, INTER))
    for group, projs, n, k in plan:
        st = Stacker(E)
        for e in range(E):
            st.put(e, cls.decode([write(ws[p][e], group) for p in projs], quant, n=n, k=k, group=group,
                                 model_dtype=torch.bfloat16, ops=ops))
        groups.append(cls.finish(st.out, quant, n=n * len(projs), k=k, group=group, model_dtype=torch.bfloat16,
                                 ops=ops))
    return QuantizedExperts(groups[0], groups[1], ops=ops, model_dtype=torch.bfloat16)


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_group_layout_and_forward(case: Case) -> None:
    name, family, scheme, quant, write, tol = case
    ws = expert_weights()
    experts = build_experts(family, scheme, quant, write, ws)
    # layout: one-hot rows quantize exactly, so the kernel returns each expert's effective weight
    for group, want in ((experts.w13, torch.cat([ws["gate"], ws["up"]], 1)), (experts.w2, ws["down"])):
        eye = torch.eye(group.k, dtype=torch.bfloat16).repeat(E, 1)
        got = group(eye, torch.full((E,), group.k, dtype=torch.int64)).reshape(E, group.k, -1).transpose(1, 2)
        assert _rel(got, want) < tol, (name, group.__class__.__name__)
    # forward against transformers-style float experts (gate first, SwiGLU, routing weights)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(9, H, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(E, generator=gen)[:2] for _ in range(9)])
    wt = torch.softmax(torch.randn(9, 2, generator=gen), -1)
    ref = torch.zeros(9, H)
    for t in range(9):
        for j in range(2):
            e = int(idx[t, j])
            h = torch.nn.functional.silu(ws["gate"][e] @ x[t].float()) * (ws["up"][e] @ x[t].float())
            ref[t] += wt[t, j] * (ws["down"][e] @ h)
    assert _rel(experts(x, idx, wt), ref) < 2 * tol, name


def test_registry_covers_every_moe_matrix_cell() -> None:
    from quantspec.matrix import load_matrix
    from quantspec.vocab import MatrixLayer, NpuGen, Status

    keys = set(registered_moe())
    for entry in load_matrix().entries:
        if entry.layer is MatrixLayer.MOE and any(entry.status.get(g) is not Status.UNSUPPORTED for g in NpuGen):
            assert (entry.family, entry.scheme) in keys, entry.key


def test_ct_w4a8_layouts_of_both_engines_compute_the_same_experts() -> None:
    """vLLM-Ascend's one-int4-per-byte layout and SGLang's pairs (with and without the clip variant) hold the
    same values: the built experts agree to float32 rounding of the scale bias."""
    by_id = {c[0]: c for c in CASES}
    ws = expert_weights()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(7, H, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(E, generator=gen)[:2] for _ in range(7)])
    wt = torch.softmax(torch.randn(7, 2, generator=gen), -1)
    outs = []
    for name in ("ct_w4a8", "ct_w4a8_sglang", "ct_w4a8_sglang_clip"):
        _, family, scheme, quant, write, _ = by_id[name]
        outs.append(build_experts(family, scheme, quant, write, ws)(x, idx, wt).float())
    for other in outs[1:]:
        torch.testing.assert_close(other, outs[0], rtol=1e-2, atol=1e-3)
