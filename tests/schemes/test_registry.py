"""The scheme registry is bound to the support matrix, and its expressions are sound."""

from __future__ import annotations

import pytest

from quantspec.matrix import ConstraintId, load_matrix
from quantspec.plan.constraints import CHECKERS
from quantspec.schemes import FLOAT_SPECS, SPECS, executable_name, lookup_spec
from quantspec.schemes.expr import compile_dim, eval_shape
from quantspec.vocab import FormatFamily, Layout, MatrixLayer, NpuGen, SchemeId, Status

MATRIX = load_matrix()


def test_every_constraint_id_has_a_checker() -> None:
    assert set(CHECKERS) == set(ConstraintId)


def test_every_matrix_constraint_is_checkable() -> None:
    for entry in MATRIX.entries:
        for c in entry.constraints:
            assert c.id in CHECKERS, f"{entry.key}: no checker for {c.id}"


@pytest.mark.parametrize("entry", MATRIX.entries, ids=lambda e: e.key)
def test_every_runnable_cell_has_a_spec_with_the_matrix_kernels(entry: object) -> None:
    from quantspec.matrix import MatrixEntry

    assert isinstance(entry, MatrixEntry)
    statuses = {entry.status.get(g) for g in NpuGen}
    if entry.diffusion:
        statuses |= {entry.diffusion.status.get(g) for g in NpuGen}
    specs = SPECS.get((entry.family, entry.scheme, entry.layer), {})
    if statuses == {Status.UNSUPPORTED}:
        return
    assert specs, f"{entry.key} can run somewhere but has no tensor contract"
    for layout, spec in specs.items():
        assert set(spec.kernels) == set(entry.kernels), f"{entry.key}/{layout}: kernels differ from the matrix"
        assert spec.executable == executable_name(entry.family, entry.scheme, entry.layer)


def test_every_spec_has_a_matrix_cell() -> None:
    for family, scheme, layer in SPECS:
        assert MATRIX.lookup(family, scheme, layer) is not None, (family, scheme, layer)


def test_executable_names() -> None:
    """Executables are the runtime class names (several keys may share one; tests/test_matrix_binding.py)."""
    name = executable_name(FormatFamily.MODELSLIM, SchemeId.W8A8_STATIC, MatrixLayer.LINEAR)
    assert name == "ModelSlimW8A8Static"
    assert executable_name(FormatFamily.GPTQ, SchemeId.W4A16, MatrixLayer.MOE) == "WeightOnlyExperts"
    assert FLOAT_SPECS[MatrixLayer.MOE].executable == "FloatExperts"


def test_lookup_spec_by_layout() -> None:
    spec = lookup_spec(FormatFamily.MODELSLIM, SchemeId.W4A8_DYNAMIC, MatrixLayer.MOE, Layout.MODELSLIM_INT4X2)
    assert spec is not None and spec.dims((16, 64), 8) == (32, 64)
    assert lookup_spec(FormatFamily.MODELSLIM, SchemeId.W8A8_DYNAMIC, MatrixLayer.LINEAR, Layout.GPTQ) is None
    # attention cells have one contract, whatever the layout
    assert lookup_spec(FormatFamily.MODELSLIM, SchemeId.KV_C8, MatrixLayer.ATTENTION, Layout.FLOAT) is not None


@pytest.mark.parametrize(("expr", "env", "value"), [
    ("N", {"N": 7}, 7), ("K/2", {"K": 8}, 4), ("K/2", {"K": 7}, None), ("ceil(K/32)", {"K": 65}, 3),
    ("N*2", {"N": 3}, 6), (16, {}, 16), ("ng", {}, None),
])
def test_dim_expressions(expr: str | int, env: dict[str, int], value: int | None) -> None:
    assert compile_dim(expr)(env) == value


def test_bad_expression_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid dimension expression"):
        compile_dim("N+1")


def test_eval_shape() -> None:
    fns = (compile_dim("N"), compile_dim(1))
    assert eval_shape(fns, {"N": 4}) == (4, 1)
    assert eval_shape(fns, {}) is None
