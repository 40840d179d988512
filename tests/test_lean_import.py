"""The pure layer never imports torch: `import quantspec` and the planning CLI stay torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['quantspec', *{args!r}]\n"
    "try:\n"
    "    runpy.run_module('quantspec', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('TORCH' if 'torch' in sys.modules else 'LEAN', file=sys.stderr)\n"
)


def _leaks(args: list[str]) -> bool:
    res = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                         check=False)
    last = res.stderr.strip().splitlines()[-1]
    assert last in {"TORCH", "LEAN"}, res.stderr
    return last == "TORCH"


def test_import_quantspec_is_torch_free() -> None:
    res = subprocess.run(
        [sys.executable, "-c", "import sys, quantspec; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert res.stdout.strip() == "False"


@pytest.mark.parametrize("args", [["matrix"], ["matrix", "--format", "json"], ["--version"]])
def test_cli_is_torch_free(args: list[str]) -> None:
    assert not _leaks(args)


@pytest.mark.parametrize("fixture", ["dense_w8a8_dynamic_a3", "gguf_a3"])
def test_plan_is_torch_free(fixture: str, tmp_path: Path) -> None:
    from tests.plan.fixtures import FIXTURES

    builder, kw = FIXTURES[fixture]
    model = builder(tmp_path / fixture)
    assert not _leaks(["plan", str(model), "--target", kw["target"], "--format", "json"])
