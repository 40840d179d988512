"""Grouped 8-bit weight-only experts (GPTQ / auto-round W8A16, group_size > 0).

The int8 antiquant grouped matmul takes per-channel scales only (torch_npu_ops.md 4.3; the cpu
emulation enforces it), so :class:`WeightOnlyExperts` splits K into its quantization groups and
sums one per-channel grouped matmul per group. Oracle: tests/runtime/oracles.py ``gptq_dequant``
(numpy, ``S[g(k), n] * (Q[k, n] - Z[g(k), n])``) then a float64 MoE. Documented bound: the
effective per-expert weights within 1e-2 relative (bf16 storage of ``scale`` and ``offset`` and
bf16 partial outputs), the MoE output within 2e-2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from quantspec.description import ActQuant, QuantSpec, WeightQuant
from quantspec.errors import KernelArgumentError
from quantspec.runtime.moe import GroupName, QuantizedExperts, Stacker, moe_group_for
from quantspec.runtime.moe.groups import WeightOnlyExperts
from quantspec.runtime.ops import get_ops
from quantspec.vocab import ElementType, FormatFamily, Granularity, Layout, SchemeId
from testkit import oracles as O
from testkit import writers as W

E, INTER, H, T = 4, 64, 256, 9
GS = 64
OPS = get_ops("cpu")


def _quant(act_order: bool = False) -> QuantSpec:
    act = ActQuant(element=ElementType.FLOAT, bits=16, dynamic=False, granularity=Granularity.TENSOR)
    return QuantSpec(scheme=SchemeId.W8A16, label="W8A16", activation=act, weight=WeightQuant(
        element=ElementType.INT8, bits=8, granularity=Granularity.GROUP, group_size=GS, layout=Layout.GPTQ,
        act_order=act_order))


def _weights() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {p: 0.05 * torch.randn(E, *shape, generator=gen)
            for p, shape in (("gate", (INTER, H)), ("up", (INTER, H)), ("down", (H, INTER)))}


def _build(family: FormatFamily, ck: dict[str, list[dict[str, Tensor]]], quant: QuantSpec) -> QuantizedExperts:
    cls = moe_group_for(family, SchemeId.W8A16)
    groups = []
    plan: tuple[tuple[GroupName, tuple[str, ...], int, int], ...] = (
        ("w13", ("gate", "up"), INTER, H), ("w2", ("down",), H, INTER))
    for group, projs, n, k in plan:
        st = Stacker(E)
        for e in range(E):
            st.put(e, cls.decode([ck[p][e] for p in projs], quant, n=n, k=k, group=group,
                                 model_dtype=torch.bfloat16, ops=OPS))
        groups.append(cls.finish(st.out, quant, n=n * len(projs), k=k, group=group, model_dtype=torch.bfloat16,
                                 ops=OPS))
    return QuantizedExperts(groups[0], groups[1], ops=OPS, model_dtype=torch.bfloat16)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("family", [FormatFamily.GPTQ, FormatFamily.AUTO_ROUND])
@pytest.mark.parametrize("act_order", [False, True])
def test_grouped_int8_experts_match_oracle(family: FormatFamily, act_order: bool) -> None:
    ws = _weights()
    ck = {p: [W.gptq(ws[p][e], bits=8, group_size=GS, act_order=act_order, seed=e + 7 * len(p))
              for e in range(E)] for p in ws}
    experts = _build(family, ck, _quant(act_order))
    assert isinstance(experts.w13, WeightOnlyExperts)
    deq = {p: [O.gptq_dequant(ck[p][e], 8, GS, v1=True) for e in range(E)] for p in ws}
    # effective weights through the kernel (one-hot rows)
    for group, want in ((experts.w13, [np.concatenate([deq["gate"][e], deq["up"][e]]) for e in range(E)]),
                        (experts.w2, deq["down"])):
        eye = torch.eye(group.k, dtype=torch.bfloat16).repeat(E, 1)
        got = group(eye, torch.full((E,), group.k, dtype=torch.int64)).reshape(E, group.k, -1).transpose(1, 2)
        for e in range(E):
            assert _rel(got[e].double().numpy(), want[e]) < 1e-2
    if not act_order:
        w = experts.w13.weight
        assert w.dtype == torch.int8 and tuple(w.shape) == (H // GS, E, GS, 2 * INTER)
        assert tuple(experts.w13.antiquant_scale.shape) == (H // GS, E, 2 * INTER)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, H, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(E, generator=gen)[:2] for _ in range(T)])
    wt = torch.softmax(torch.randn(T, 2, generator=gen), -1)
    ref = np.zeros((T, H))
    xs = x.double().numpy()
    for t in range(T):
        for j in range(2):
            e = int(idx[t, j])
            g, u = deq["gate"][e] @ xs[t], deq["up"][e] @ xs[t]
            ref[t] += float(wt[t, j]) * (deq["down"][e] @ (g / (1 + np.exp(-g)) * u))
    with torch.no_grad():
        got_out = experts(x, idx, wt).double().numpy()
    assert _rel(got_out, ref) < 2e-2


def test_emulation_refuses_int8_per_group_scales() -> None:
    """The split exists because the kernel refuses this; the emulation must refuse it too."""
    w = torch.zeros(E, H, 32, dtype=torch.int8)
    x = torch.zeros(5, H, dtype=torch.bfloat16)
    scale = torch.ones(E, H // GS, 32, dtype=torch.bfloat16)
    with pytest.raises(KernelArgumentError, match="per-channel only"):
        OPS.npu_grouped_matmul([x], [w], antiquant_scale=[scale], group_list=torch.tensor([5, 0, 0, 0]),
                               group_list_type=1, group_type=0, split_item=2)
