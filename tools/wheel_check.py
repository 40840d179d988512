"""Check an installed quantspec wheel from outside the repository (``make wheel-test``).

    python tools/wheel_check.py lean EXAMPLE_DIR      # base install: no torch
    python tools/wheel_check.py runtime EXAMPLE_DIR   # with the runtime extra

``lean``: the package is the installed one (not the source tree), torch is absent, every module
of the pure layer imports, and ``quantspec validate`` / ``plan`` work on the example (schemas and
matrix read as package data). ``runtime``: every shipped module imports, and ``load_quantized``
builds the example and runs a forward through every loaded module.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path


def _modules() -> list[str]:
    import quantspec

    # __main__ runs the CLI when imported: it is the entry point, not a module to import
    walk = pkgutil.walk_packages(quantspec.__path__, "quantspec.")
    return sorted(m.name for m in walk if m.name != "quantspec.__main__")


def lean(example: Path) -> None:
    import quantspec
    from quantspec.cli.main import main

    where = Path(quantspec.__file__).resolve()
    assert "site-packages" in where.parts, f"quantspec imported from {where}, not the installed wheel"
    assert importlib.util.find_spec("torch") is None, "torch is installed in the lean environment"
    pure = [m for m in _modules() if not m.startswith("quantspec.runtime")]
    for name in pure:
        importlib.import_module(name)
    assert "torch" not in sys.modules
    assert main(["validate", str(example)]) == 0
    assert main(["plan", str(example), "--target", "a2"]) == 0
    assert main(["matrix", "--target", "a3"]) == 0
    print(f"lean: {len(pure)} pure modules import; validate and plan work from {where.parent}")


def runtime(example: Path) -> None:
    import torch

    import quantspec

    names = _modules()
    for name in names:
        if name == "quantspec.runtime.ops.npu":
            continue  # imports torch_npu when used, never here; the npu extra is not installed
        importlib.import_module(name)
    qm = quantspec.load_quantized(example, device="cpu", target="a2", progress=False)
    ran = 0
    for module_name, module in qm.modules.items():
        k = getattr(module, "in_features", None)
        if k is None:
            continue
        y = module(torch.randn(3, k, dtype=torch.bfloat16))
        assert y.shape[0] == 3 and bool(torch.isfinite(y.float()).all()), module_name
        ran += 1
    assert ran > 0
    print(f"runtime: {len(names)} modules import; load_quantized built {len(qm.modules)} modules, {ran} ran")


if __name__ == "__main__":
    {"lean": lean, "runtime": runtime}[sys.argv[1]](Path(sys.argv[2]).resolve())
