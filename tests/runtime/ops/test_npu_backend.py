"""The npu backend forwards exactly the calls the cpu emulation checks (one scheme code path).

No NPU here: a fake ``torch_npu`` module whose ops record their arguments and delegate to the
emulation is injected into ``sys.modules``; every scheme is built and run once on the real ``cpu``
backend (wrapped in a recorder) and once through ``NpuOps`` on the fake module, and the two call
logs must be identical, argument by argument.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from quantspec.errors import BackendUnavailable, Code
from quantspec.runtime.ops import CpuOps, get_ops
from quantspec.runtime.ops.checks import is_transposed_view
from quantspec.runtime.ops.npu import NpuOps
from quantspec.runtime.schemes import linear_scheme_for
from testkit.scheme_cases import CASES, Case
from tests.runtime.moe.test_groups import CASES as MOE_CASES
from tests.runtime.moe.test_groups import Case as MoeCase
from tests.runtime.moe.test_groups import build_experts, expert_weights

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class RecordingOps:
    """Wraps an ops object; records every op call (name, args, kwargs) in ``log``."""

    def __init__(self, inner: Any, log: list[Call]) -> None:
        self._inner, self._log = inner, log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not (name.startswith("npu_") or name == "get_npu_format"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._log.append((name, args, kwargs))
            return attr(*args, **kwargs)

        return call


def fake_torch_npu(log: list[Call]) -> types.ModuleType:
    """A stand-in ``torch_npu`` module: recording ops that run the emulation."""
    mod = types.ModuleType("torch_npu")
    rec = RecordingOps(CpuOps(), log)
    for name in dir(CpuOps):
        if name.startswith("npu_") or name == "get_npu_format":
            setattr(mod, name, getattr(rec, name))
    mod.float8_e8m0fnu = 293  # type: ignore[attr-defined]
    mod.float4_e2m1fn_x2 = 296  # type: ignore[attr-defined]
    mod.int4 = 285  # type: ignore[attr-defined]
    return mod


def _same_layout(cpu: torch.Tensor, npu: torch.Tensor) -> bool:
    """Equal strides, or the one documented difference: ``transpose_weight`` gives the cpu emulation
    the transposed view of a weight that the npu backend makes contiguous (torch_npu_ops.md 2.4)."""
    return cpu.stride() == npu.stride() or (is_transposed_view(cpu) and npu.is_contiguous())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and _same_layout(a, b) and torch.equal(a, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(type(a) is type(b) and a == b)


def _assert_same_calls(cpu_log: list[Call], npu_log: list[Call]) -> None:
    """The two logs name the same ops in the same order, with the same arguments."""
    assert [c[0] for c in npu_log] == [c[0] for c in cpu_log]
    for (name, a1, k1), (_, a2, k2) in zip(cpu_log, npu_log, strict=True):
        assert _same(a1, a2), f"{name}: positional arguments differ"
        assert k1.keys() == k2.keys() and all(_same(k1[key], k2[key]) for key in k1), f"{name}: keywords differ"


def _run(case: Case, ops: Any) -> torch.Tensor:
    n, k = case.shapes[0]
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(3)) * 0.05
    layer = linear_scheme_for(case.family, case.scheme).from_checkpoint(
        case.write(w, torch.bfloat16), case.quant, out_features=n, in_features=k, model_dtype=torch.bfloat16, ops=ops
    )
    x = torch.randn(3, k, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    y: torch.Tensor = layer(x)
    return y


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_npu_backend_makes_the_same_calls(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_log: list[Call] = []
    npu_log: list[Call] = []
    monkeypatch.setitem(sys.modules, "torch_npu", fake_torch_npu(npu_log))
    npu = get_ops("npu")
    assert isinstance(npu, NpuOps)
    y_cpu = _run(case, RecordingOps(get_ops("cpu"), cpu_log))
    y_npu = _run(case, npu)
    assert cpu_log, "the scheme made no op call"
    _assert_same_calls(cpu_log, npu_log)
    assert torch.equal(y_cpu, y_npu)


def _moe_forward(case: MoeCase, ops: Any) -> torch.Tensor:
    _, family, scheme, quant, write, _ = case
    experts = build_experts(family, scheme, quant, write, expert_weights(), ops=ops)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, experts.hidden_dim, generator=gen).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(experts.num_experts, generator=gen)[:2] for _ in range(7)])
    out: torch.Tensor = experts(x, idx, torch.softmax(torch.randn(7, 2, generator=gen), -1))
    return out


@pytest.mark.parametrize("case", MOE_CASES, ids=[c[0] for c in MOE_CASES])
def test_npu_backend_makes_the_same_moe_calls(case: MoeCase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Expert groups too: building (transpose, NZ cast, int4 packing) and the routed forward."""
    cpu_log: list[Call] = []
    npu_log: list[Call] = []
    monkeypatch.setitem(sys.modules, "torch_npu", fake_torch_npu(npu_log))
    y_cpu = _moe_forward(case, RecordingOps(get_ops("cpu"), cpu_log))
    y_npu = _moe_forward(case, get_ops("npu"))
    assert cpu_log, "the experts made no op call"
    _assert_same_calls(cpu_log, npu_log)
    assert torch.equal(y_cpu, y_npu)


def test_npu_backend_unavailable_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # makes `import torch_npu` raise ImportError
    with pytest.raises(BackendUnavailable) as exc:
        get_ops("npu")
    assert exc.value.code == Code.BACKEND_UNAVAILABLE
    assert "pip install quantspec[npu]" in str(exc.value) and "CANN" in str(exc.value)


def test_only_npu_module_imports_torch_npu() -> None:
    root = Path(__file__).resolve().parents[3] / "quantspec"
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname in ("import_module", "__import__"):
                    names = [str(node.args[0].value)]
            if any(n.split(".")[0] == "torch_npu" for n in names):
                offenders.append(path.relative_to(root).as_posix())
    assert set(offenders) <= {"runtime/ops/npu.py"}, offenders


def test_older_torch_npu_runs_int8_and_refuses_mx_naming_the_version() -> None:
    """Builds without float8_e8m0fnu / float4_e2m1fn_x2 / int4 still run the int8 schemes."""
    from quantspec.errors import BackendUnavailable
    from quantspec.runtime.ops.npu import NpuOps
    from quantspec.vocab import SchemeId

    mod = fake_torch_npu([])
    for name in ("float8_e8m0fnu", "float4_e2m1fn_x2", "int4"):
        delattr(mod, name)
    mod.__version__ = "2.5.1"  # type: ignore[attr-defined]
    ops = NpuOps(mod)
    ops.require_for([SchemeId.W8A8_DYNAMIC, SchemeId.W8A8_STATIC, SchemeId.W4A8_DYNAMIC])
    with pytest.raises(BackendUnavailable) as exc:
        ops.require_for([SchemeId.W8A8_DYNAMIC, SchemeId.W4A4_MXFP4])
    assert exc.value.reasons[0].message == (
        "torch_npu 2.5.1 has no torch_npu.float4_e2m1fn_x2, torch_npu.float8_e8m0fnu, which w4a4_mxfp4 pass to "
        "their kernels")
    assert "torch_npu >= 2.9" in (exc.value.reasons[0].hint or "")
    with pytest.raises(BackendUnavailable):
        _ = ops.float8_e8m0fnu
