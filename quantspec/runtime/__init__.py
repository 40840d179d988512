"""The quantspec runtime: torch_npu op layer (``npu`` and ``cpu`` backends) and executable schemes.

This is the only package of quantspec that imports torch. Entry points:

* :func:`quantspec.runtime.ops.get_ops` picks an op backend;
* :func:`quantspec.runtime.schemes.linear_scheme_for` returns the executable linear scheme of a
  matrix key ``(FormatFamily, SchemeId)``; its ``from_checkpoint`` builds a module from one
  module's checkpoint tensors;
* :mod:`quantspec.runtime.gguf_dequant` dequantizes GGML blocks in torch.

See docs/runtime.md.
"""
