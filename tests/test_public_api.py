"""The public API of the package root."""

from __future__ import annotations

import subprocess
import sys

import quantspec


def test_all_is_sorted_and_resolvable() -> None:
    assert list(quantspec.__all__) == sorted(quantspec.__all__)
    for name in quantspec.__all__:
        assert hasattr(quantspec, name), name


def test_runtime_entry_points_are_lazy() -> None:
    code = (
        "import sys, quantspec; print('torch' in sys.modules); "
        "quantspec.load_quantized; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_missing_runtime_extra_is_a_clear_error() -> None:
    # Simulate an install without torch: a finder that refuses to import it.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch': raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import quantspec\n"
        "try:\n"
        "    quantspec.load_quantized\n"
        "except quantspec.BackendUnavailable as e:\n"
        "    print(e.reasons[0].code.value); print(e.reasons[0].message); print(e.reasons[0].hint)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "runtime.backend_unavailable"
    assert out[1] == "quantspec.load_quantized needs 'torch', which is not installed"
    assert out[2].startswith("install the runtime extra: pip install 'quantspec[runtime]'")
