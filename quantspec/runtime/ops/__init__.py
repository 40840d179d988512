"""The torch_npu op layer: one interface (:class:`Ops`), two backends.

``get_ops("cpu")`` returns the emulation (:class:`~quantspec.runtime.ops.cpu.CpuOps`),
``get_ops("npu")`` the torch_npu forwarder (:class:`~quantspec.runtime.ops.npu.NpuOps`), which
raises :class:`~quantspec.errors.BackendUnavailable` when torch_npu cannot be imported.
"""

from __future__ import annotations

from quantspec.errors import Code, InvalidInput, reason
from quantspec.runtime.ops.base import AclFormat, DtypeArg, NpuDtype, Ops
from quantspec.runtime.ops.cpu import CpuOps
from quantspec.vocab import Backend

__all__ = ["AclFormat", "CpuOps", "DtypeArg", "NpuDtype", "Ops", "get_ops"]


def get_ops(backend: Backend | str) -> Ops:
    """The op backend named ``backend`` (``"cpu"`` or ``"npu"``)."""
    try:
        which = Backend(backend)
    except ValueError as exc:
        raise InvalidInput(reason(Code.USAGE, f"unknown op backend {backend!r}", hint="use 'cpu' or 'npu'")) from exc
    if which is Backend.CPU:
        return CpuOps()
    from quantspec.runtime.ops.npu import NpuOps

    ops: Ops = NpuOps()
    return ops
