"""The quantspec runtime: torch_npu op layer (``npu`` and ``cpu`` backends) and executable schemes.

This is the only package of quantspec that imports torch. Entry points:

* :func:`quantspec.runtime.ops.get_ops` picks an op backend;
* :func:`quantspec.runtime.schemes.linear_scheme_for` returns the executable linear scheme of a
  matrix key ``(FormatFamily, SchemeId)``; its ``from_checkpoint`` builds a module from one
  module's checkpoint tensors;
* :mod:`quantspec.runtime.gguf_dequant` dequantizes GGML blocks in torch.

See docs/runtime.md.
"""

from __future__ import annotations

# Importing the scheme and expert-group packages registers every executable class
# (quantspec.runtime.executables); they are what any use of the runtime needs anyway.
from quantspec.runtime import moe, schemes  # noqa: F401
