"""Argument checks shared by the CPU op emulation, modelled on torch_npu's Meta kernels.

A violation raises :class:`quantspec.errors.KernelArgumentError` naming the op and the
argument, so a scheme bug surfaces as the same kind of error the NPU would raise, never as a raw
torch error from inside the emulation.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from quantspec.errors import Code, KernelArgumentError, reason


def kernel_error(op: str, arg: str, message: str) -> KernelArgumentError:
    """Build the error for argument ``arg`` of ``op``."""
    return KernelArgumentError(
        reason(
            Code.KERNEL_ARGUMENT,
            f"{op}: argument '{arg}': {message}",
            where=f"{op}.{arg}",
            hint="the call violates the documented torch_npu contract (shared/reference/torch_npu_ops.md)",
        )
    )


def require(cond: bool, op: str, arg: str, message: str) -> None:
    """Raise :func:`kernel_error` unless ``cond``."""
    if not cond:
        raise kernel_error(op, arg, message)


def check_dtype(op: str, arg: str, t: Tensor, allowed: Iterable[torch.dtype]) -> None:
    """``t.dtype`` must be one of ``allowed``."""
    allowed = tuple(allowed)
    require(
        t.dtype in allowed,
        op,
        arg,
        f"dtype {t.dtype} not in {[str(d) for d in allowed]}",
    )


def check_dim(op: str, arg: str, t: Tensor, dims: Iterable[int]) -> None:
    """``t.dim()`` must be one of ``dims``."""
    dims = tuple(dims)
    require(t.dim() in dims, op, arg, f"rank {t.dim()} (shape {tuple(t.shape)}) not in {dims}")


def check_shape(op: str, arg: str, t: Tensor, shapes: Iterable[tuple[int, ...]]) -> None:
    """``t.shape`` must equal one of ``shapes``."""
    shapes = tuple(shapes)
    require(tuple(t.shape) in shapes, op, arg, f"shape {tuple(t.shape)} not in {list(shapes)}")


def is_transposed_view(t: Tensor) -> bool:
    """Whether a 2-D+ tensor is the transposed view of a contiguous ``[..., cols, rows]`` tensor.

    This mirrors the Meta kernels' ``is_transpose_last_two_dims`` test on strides.
    """
    if t.dim() < 2 or t.size(-1) == 1 or t.size(-2) == 1:
        return False
    return t.stride(-2) == 1 and t.stride(-1) == t.size(-2)
