"""``quantspec repack wan`` on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantspec.cli.main import main
from tests.repack.conftest import Cascade


def _argv(c: Cascade, *extra: str) -> list[str]:
    return ["repack", "wan", "--model-type", "Wan2.2-T2V-A14B", "--original-model-path", str(c.original),
            "--quant-path", str(c.quant), "--output-path", str(c.output), *extra]


def test_repack_wan_exit_codes(cascade: Cascade, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_argv(cascade)) == 0
    out = capsys.readouterr().out
    assert f"repacked Wan2.2-T2V-A14B into {cascade.output}" in out
    assert "transformer_2: " in out and "copied from the original: model_index.json" in out
    assert main(_argv(cascade)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [input.output_exists] output folder already exists")
    assert "--force" in err
    assert main(_argv(cascade, "--force")) == 0


def test_repack_usage_errors(cascade: Cascade, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["repack"])
    assert info.value.code == 2
    assert "[input.usage] choose an action: wan" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["repack", "wan", "--model-type", "Wan2.1-T2V-14B", "--original-model-path", "a",
              "--quant-path", "b", "--output-path", "c"])
    assert info.value.code == 2
    assert main(["repack", "wan", "--model-type", "Wan2.2-TI2V-5B", "--original-model-path",
                 str(cascade.root / "missing"), "--quant-path", str(cascade.quant),
                 "--output-path", str(cascade.output)]) == 2
    assert "[input.file_not_found] --original-model-path does not exist" in capsys.readouterr().err


def test_repack_never_imports_torch(cascade: Cascade) -> None:
    probe = (
        "import sys\n"
        "from quantspec.cli.main import main\n"
        f"rc = main({_argv(cascade)!r})\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.stdout.strip().splitlines()[-1] == "0 False"
