"""``quantspec repack wan`` killed with SIGKILL in the middle of writing: nothing is left where the
output would be, and a rerun succeeds and sweeps what the killed run left beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors import safe_open

from quantspec.cli.main import main
from tests.repack.conftest import Cascade
from tests.repack.wan_fixtures import wan_export, write_safetensors

#: A float tensor large enough (128 MiB) that writing it takes far longer than the polling below.
BIG = ("BF16", (1, 2, 32 * 2**20), bytes(128 * 2**20))


def _argv(c: Cascade) -> list[str]:
    return ["repack", "wan", "--model-type", "Wan2.2-T2V-A14B", "--original-model-path", str(c.original),
            "--quant-path", str(c.quant), "--output-path", str(c.output)]


def _staging(c: Cascade) -> list[Path]:
    return [p for p in c.output.parent.iterdir() if p.name.startswith(f".{c.output.name}.")] \
        if c.output.parent.exists() else []


def test_sigkill_mid_write_leaves_no_output_and_a_rerun_succeeds(tmp_path: Path) -> None:
    c = Cascade(tmp_path)
    tensors, _ = wan_export("W8A8_MXFP8")
    tensors["head.modulation"] = BIG
    high = c.quant / "high_noise_model" / "quant_model_weight_w8a8.safetensors"
    write_safetensors(high, dict(sorted(tensors.items())))
    proc = subprocess.Popen([sys.executable, "-m", "quantspec", *_argv(c)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 120  # hang guard
    partial: Path | None = None
    while partial is None and proc.poll() is None and time.monotonic() < deadline:
        for stage in _staging(c):
            files = list(stage.glob("transformer*/diffusion_pytorch_model.safetensors"))
            if files and files[0].stat().st_size > 0:
                partial = files[0]
                break
        else:
            time.sleep(0.001)
    assert partial is not None, "the repack finished (or hung) before a weight file was being written"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    # Killed mid-write: the partial file is in the hidden staging folder, the output does not exist.
    assert partial.exists() and partial.stat().st_size < 128 * 2**20
    assert not c.output.exists()
    assert main(_argv(c)) == 0
    assert c.output.is_dir() and _staging(c) == []  # the killed run's staging folder is swept
    with safe_open(str(c.output / "transformer" / "diffusion_pytorch_model.safetensors"), "np") as f:
        assert f.get_slice("scale_shift_table").get_shape() == [1, 2, 32 * 2**20]


def test_a_previous_output_set_aside_by_a_killed_run_is_put_back(tmp_path: Path) -> None:
    """Killed between the two renames of a ``--force`` repack: the old output sits aside as
    ``.<name>.<hex>.old``; the next run restores it before anything else (then needs --force)."""
    c = Cascade(tmp_path)
    assert main(_argv(c)) == 0
    aside = c.output.with_name(f".{c.output.name}.0123abcd.old")
    os.rename(c.output, aside)
    dead = c.output.with_name(f".{c.output.name}.999999999-deadbeef.tmp")
    dead.mkdir()
    assert main(_argv(c)) == 2  # the restored output exists: --force is needed, as before the kill
    assert c.output.is_dir() and not aside.exists() and not dead.exists()
    assert main([*_argv(c), "--force"]) == 0 and _staging(c) == []
