"""The plan-following check itself catches a loader that builds something else."""

from __future__ import annotations

from pathlib import Path

import quantspec
from quantspec.vocab import Executable
from testkit.follow import mismatches

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-llama-w8a8-dynamic"


def test_a_module_other_than_the_planned_one_is_reported() -> None:
    qm = quantspec.load_quantized(EXAMPLE, device="cpu", progress=False)
    assert mismatches(qm) == []
    layers = list(qm.plan.layers)
    i = next(i for i, la in enumerate(layers) if la.executable is Executable.MS_W8A8_DYNAMIC)
    layers[i] = layers[i].model_copy(update={"executable": Executable.MS_W8A8_STATIC})
    qm.plan = qm.plan.model_copy(update={"layers": tuple(layers)})
    [problem] = mismatches(qm)
    assert problem.endswith("planned ModelSlimW8A8Static, loaded ModelSlimW8A8Dynamic")


def test_load_plan_builds_a_plan_made_elsewhere() -> None:
    """A plan serialised as JSON (``quantspec plan --format json``) and read back loads the same."""
    plan = quantspec.plan(EXAMPLE, target="a2")
    again = type(plan).model_validate_json(plan.model_dump_json())
    qm = quantspec.load_plan(again, device="cpu", progress=False)
    assert mismatches(qm) == [] and len(qm.modules) == 14
