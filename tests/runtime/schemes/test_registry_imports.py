"""Loading the scheme registry imports no format library it does not need (gguf-py only for GGUF)."""

from __future__ import annotations

import subprocess
import sys


def test_registry_leaves_gguf_unimported() -> None:
    probe = ("import sys\n"
             "from quantspec.runtime.schemes import registered_linear\n"
             "from quantspec.runtime.moe import registered_moe\n"
             "assert registered_linear() and registered_moe()\n"
             "print('gguf' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
