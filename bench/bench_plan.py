"""Benchmark ``quantspec plan`` on a DeepSeek-V3-sized checkpoint (see gen_deepseek_v3.py).

Measures, on the same machine and in the same run:

1. end to end: ``python -m quantspec plan DIR --target a3`` as a subprocess, from process
   start to the table on stdout (best and median of N runs). Twice: with quantspec's bytecode
   compiled once and cached (as in an installed package; the cache goes to a temporary
   ``PYTHONPYCACHEPREFIX``, not into the tree), and as the environment runs it (with
   ``PYTHONDONTWRITEBYTECODE`` set and no cache, every run compiles quantspec's sources);
2. in process, best of N: the *baseline* (merely ``json.loads`` of every JSON file plus
   every safetensors header: the least any planner must do), ``read_description`` (the
   formats layer), the tensor inventory (strict header validation), the planner proper, and
   ``quantspec.plan`` as a whole; ratios to the baseline;
3. that torch was not imported.

Wall times on a shared machine are noisy: rows are best-of-N, and the load average at the
start and end of the run is printed with the table (with the CPU count).

    python bench/bench_plan.py [DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def baseline(model_dir: Path) -> None:
    """Parse every JSON file and every safetensors header, nothing else."""
    for p in sorted(model_dir.glob("*.json")):
        json.loads(p.read_bytes())
    for p in sorted(model_dir.glob("*.safetensors")):
        with p.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            json.loads(fh.read(n))


def best(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Best wall time and best CPU time of ``runs`` calls, and the last result.

    The cyclic GC is paused during each call, as ``quantspec.plan`` itself does, so that every
    row (the baseline included) is measured under the same conditions; the previous result is
    freed before the clock starts. CPU time (``time.process_time``) is what the process itself
    spent: on a shared machine it moves much less with the other workloads than wall time.
    """
    walls, cpus, out = [], [], None
    for _ in range(runs):
        out = None
        gc.collect()
        gc.disable()
        w, c = time.perf_counter(), time.process_time()
        try:
            out = fn()
        finally:
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            gc.enable()
    return min(walls), min(cpus), out


def _timed(cmd: list[str], runs: int, *, env: dict[str, str]) -> list[float]:
    """Wall times of ``runs`` runs of ``cmd`` (each must succeed)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t)
        assert res.returncode == 0, res.stderr
    return times


def _load() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, nargs="?", default=Path("/tmp/quantspec-bench/deepseek-v3"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    d: Path = args.model_dir
    if not (d / "config.json").is_file():
        from gen_deepseek_v3 import generate

        print(f"generating {generate(d)} tensors into {d}", file=sys.stderr)

    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="qs-pyc-") as pyc:
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = pyc
        plan_cmd = [sys.executable, "-m", "quantspec", "plan", str(d), "--target", "a3"]
        subprocess.run(plan_cmd, env=cached, capture_output=True, check=True)  # compiles and caches
        e2e = _timed(plan_cmd, args.runs, env=cached)
        import_t = _timed([sys.executable, "-c", "import quantspec.cli.main"], args.runs, env=cached)
    e2e_src = _timed(plan_cmd, args.runs, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})

    import quantspec
    from quantspec.checkpoint.inventory import read_inventory
    from quantspec.formats import read_description
    from quantspec.matrix import load_matrix
    from quantspec.plan.api import _config
    from quantspec.plan.planner import Planner
    from quantspec.plan.verdict import Setting
    from quantspec.vocab import NpuGen

    runs = args.runs
    t_base = best(lambda: baseline(d), runs)
    t_desc = best(lambda: read_description(d), runs)
    desc = t_desc[2]
    t_inv = best(lambda: read_inventory(d), runs)
    inv = t_inv[2]
    config = _config(d)
    setting = Setting(desc=desc, matrix=load_matrix(), target=NpuGen.A3, model_type=config["model_type"],
                      model_dtype=config["torch_dtype"], config=config)
    # A description caches its resolver index: plan with a copy holding a fresh rules tuple each
    # time, so that the row includes building the index as ``quantspec.plan`` does.
    t_planner = best(lambda: Planner(replace(setting, desc=desc.model_copy(
        update={"rules": tuple(list(desc.rules))})), inv).plan(), runs)
    layers = t_planner[2]
    t_plan = best(lambda: quantspec.plan(d, target="a3"), runs)
    assert t_plan[2].accepted and "torch" not in sys.modules

    def row(label: str, t: tuple[float, float, Any]) -> tuple[str, ...]:
        return (label, f"{t[0]:.3f} s", f"{t[0] / t_base[0]:.2f}x", f"{t[1]:.3f} s", f"{t[1] / t_base[1]:.2f}x")

    owned = (t_inv[0] + t_planner[0], t_inv[1] + t_planner[1], None)
    rows = [
        ("tensors / planned layers", f"{len(inv.tensors)} / {len(layers)}", "", "", ""),
        ("`quantspec plan` end to end (subprocess, bytecode cached), best", f"{min(e2e):.3f} s",
         f"median {statistics.median(e2e):.3f} s", "", ""),
        ("  of which interpreter + `import quantspec.cli.main`", f"{min(import_t):.3f} s", "", "", ""),
        ("`quantspec plan` end to end, sources compiled every run, best", f"{min(e2e_src):.3f} s",
         f"median {statistics.median(e2e_src):.3f} s", "", ""),
        row("baseline: json.loads of JSON files + safetensors headers", t_base),
        row("read_description (formats: ModelSlim parse + normalise)", t_desc),
        row("inventory (strict safetensors header validation)", t_inv),
        row("planner (discovery, resolution, contracts, constraints)", t_planner),
        row("`quantspec.plan()` total, in process", t_plan),
        row("planner-owned part (inventory + planner)", owned),
        ("torch imported", str("torch" in sys.modules), "", "", ""),
    ]
    print(f"load average (1/5/15 min) at the start: {load_start}, at the end: {_load()}; {os.cpu_count()} CPUs; "
          f"best of {runs} runs\n")
    print("| measurement | wall | vs baseline | CPU | vs baseline |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {' | '.join(r)} |")


if __name__ == "__main__":
    main()
