"""Base class and tensor checks of the executable linear schemes.

A scheme is an ``nn.Module`` built from ONE module's checkpoint tensors by
:meth:`LinearScheme.from_checkpoint`. Building does the weight processing an engine does after
loading (repack to the NPU layout through the op layer); ``forward`` calls the same ops. The
``tensors`` mapping is keyed by the checkpoint suffix (``"weight"``, ``"weight_scale"``,
``"qweight"``...) and holds the tensors of this module, or of this rank's tensor-parallel shard
of it, in which case ``out_features``/``in_features`` are the shard's sizes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

import torch
from torch import Tensor, nn

from quantspec.description import QuantSpec
from quantspec.errors import Code, InvalidCheckpoint, reason
from quantspec.runtime.ops.base import AclFormat, Ops
from quantspec.vocab import FormatFamily, SchemeId

MODEL_DTYPES = (torch.float16, torch.bfloat16)


def bad_tensor(name: str, message: str, hint: str | None = None) -> InvalidCheckpoint:
    """The error for a checkpoint tensor a scheme cannot use (names the tensor)."""
    return InvalidCheckpoint(reason(Code.RUNTIME_BAD_TENSOR, f"tensor '{name}': {message}", where=name, hint=hint))


class TensorSet:
    """Checked access to one module's checkpoint tensors (every failure names the tensor)."""

    def __init__(self, tensors: Mapping[str, Tensor], prefix: str = "") -> None:
        self._tensors = dict(tensors)
        self._prefix = prefix

    def name(self, key: str) -> str:
        """Full name of a suffix, for messages."""
        return f"{self._prefix}{key}"

    def has(self, key: str) -> bool:
        """Whether the checkpoint holds ``key``."""
        return key in self._tensors

    def get(
        self,
        key: str,
        dtypes: Iterable[torch.dtype],
        shapes: Iterable[tuple[int, ...]] | None = None,
        *,
        finite: bool = False,
    ) -> Tensor:
        """The tensor ``key``, checked for presence, dtype, shape and (optionally) finiteness."""
        if key not in self._tensors:
            raise InvalidCheckpoint(
                reason(Code.RUNTIME_BAD_TENSOR, f"tensor '{self.name(key)}' is missing", where=self.name(key))
            )
        t = self._tensors[key]
        if not isinstance(t, Tensor):
            raise bad_tensor(self.name(key), f"is a {type(t).__name__}, not a tensor")
        allowed = tuple(dtypes)
        if t.dtype not in allowed:
            raise bad_tensor(self.name(key), f"dtype {t.dtype} not in {[str(d) for d in allowed]}")
        if shapes is not None:
            allowed_shapes = [tuple(s) for s in shapes]
            if tuple(t.shape) not in allowed_shapes:
                raise bad_tensor(self.name(key), f"shape {tuple(t.shape)} not in {allowed_shapes}")
        if finite:
            check_finite(self.name(key), t)
        return t

    def optional(
        self,
        key: str,
        dtypes: Iterable[torch.dtype],
        shapes: Iterable[tuple[int, ...]] | None = None,
        *,
        finite: bool = False,
    ) -> Tensor | None:
        """Like :meth:`get`, but None when absent."""
        return self.get(key, dtypes, shapes, finite=finite) if key in self._tensors else None


def check_finite(name: str, t: Tensor) -> None:
    """Scales and offsets must be finite: a NaN or inf would poison every output row."""
    if t.is_floating_point() and not bool(torch.isfinite(t.to(torch.float32)).all()):
        bad = int((~torch.isfinite(t.to(torch.float32))).sum())
        raise bad_tensor(name, f"holds {bad} NaN or infinite value(s)", hint="the checkpoint is corrupt")


def check_tensor_values(name: str, t: Tensor, *, file: str | None = None) -> None:
    """Value checks of scales, offsets and group indices (:mod:`quantspec.tensor_values`) on a
    checkpoint tensor before any module uses it; other tensors pass untouched."""
    from quantspec.tensor_values import check_values, kind_of

    kind = kind_of(name, str(t.dtype).removeprefix("torch."))
    if kind is None:
        return
    values = t.detach().to(torch.float32) if t.is_floating_point() else t.detach()
    problem = check_values(name, kind, values.cpu().numpy(), file=file)
    if problem is not None:
        raise InvalidCheckpoint(problem)


def check_model_dtype(model_dtype: torch.dtype, allowed: Iterable[torch.dtype] = MODEL_DTYPES) -> None:
    """The model (activation) dtype must be one the scheme's kernels accept."""
    allowed = tuple(allowed)
    if model_dtype not in allowed:
        raise InvalidCheckpoint(
            reason(
                Code.RUNTIME_BAD_TENSOR,
                f"model dtype {model_dtype} is not supported by this scheme (allowed: {[str(d) for d in allowed]})",
                where="model_dtype",
            )
        )


def nz_aligned_int8(k: int, n: int) -> bool:
    """int8 ``[K, N]`` weights become FRACTAL_NZ when K % 16 == 0 and N % 32 == 0 (sglang 1.4)."""
    return k % 16 == 0 and n % 32 == 0


def int8_weight_to_npu(ops: Ops, weight: Tensor) -> Tensor:
    """``[..., N, K]`` int8 (a linear, or stacked experts) to the ``[..., K, N]`` kernel operand, cast to
    FRACTAL_NZ when aligned."""
    kn = ops.transpose_weight(weight)
    if nz_aligned_int8(*kn.shape[-2:]):
        return ops.npu_format_cast(kn, int(AclFormat.FRACTAL_NZ))
    return kn


class LinearScheme(nn.Module):
    """An executable quantized linear layer ``y = x W^T + b`` on the op layer.

    Subclasses are registered under their matrix keys with
    :func:`quantspec.runtime.schemes.registry.register_linear`.
    """

    #: Matrix keys the class is registered under (filled by the registry).
    keys: ClassVar[tuple[tuple[FormatFamily, SchemeId], ...]] = ()
    #: The weight in its NPU layout (buffer).
    weight: Tensor
    #: The float bias added by the kernel or after it (buffer), if any.
    bias: Tensor | None

    def __init__(self, *, in_features: int, out_features: int, model_dtype: torch.dtype, ops: Ops) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.model_dtype = model_dtype
        self.ops = ops

    @classmethod
    def from_checkpoint(
        cls,
        tensors: Mapping[str, Tensor],
        quant: QuantSpec,
        *,
        out_features: int,
        in_features: int,
        model_dtype: torch.dtype,
        ops: Ops,
        bias: Tensor | None = None,
    ) -> Self:
        """Build the module from one module's checkpoint tensors (keyed by suffix).

        The shared template: check the model dtype, build the module, then let the scheme's
        :meth:`_load` check, repack and register its tensors.
        """
        check_model_dtype(model_dtype)
        self = cls(in_features=in_features, out_features=out_features, model_dtype=model_dtype, ops=ops)
        self._load(TensorSet(tensors), quant, bias)
        return self

    @abstractmethod
    def _load(self, ts: TensorSet, quant: QuantSpec, bias: Tensor | None) -> None:
        """Check ``ts`` and register the NPU-layout buffers (``weight``, ``bias``, scales...).

        ``bias`` is the explicit float bias passed to :meth:`from_checkpoint`, if any; sizes,
        ``ops`` and the model dtype are the module's attributes.
        """

    def _bias_after(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        """``y`` plus the float bias in float32, for kernels that cannot take a float bias."""
        return y if self.bias is None else (y.to(torch.float32) + self.bias).to(dtype)

    @abstractmethod
    def forward_2d(self, x: Tensor) -> Tensor:
        """``[M, K]`` activations in the model dtype to ``[M, N]`` outputs."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer to ``[..., K]`` activations."""
        if x.size(-1) != self.in_features:
            raise bad_tensor("input", f"last dim {x.size(-1)} != in_features {self.in_features}")
        lead = x.shape[:-1]
        y = self.forward_2d(x.reshape(-1, self.in_features).to(self.model_dtype))
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.model_dtype}"


def float_bias(bias: Tensor | None, tensors: TensorSet, n: int, dtype: torch.dtype) -> Tensor | None:
    """The layer's float bias (explicit argument first, else the ``bias`` tensor), as ``dtype``."""
    if bias is None:
        bias = tensors.optional("bias", FLOAT_DTYPES, [(n,)], finite=True)
    elif tuple(bias.shape) != (n,):
        raise bad_tensor("bias", f"shape {tuple(bias.shape)} != ({n},)")
    else:
        check_finite("bias", bias)
    return None if bias is None else bias.to(dtype).contiguous()


#: Float dtypes a checkpoint may store scales, offsets and biases in.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def channel_scale(ts: TensorSet, key: str, n: int) -> Tensor:
    """A per-output-channel float tensor stored ``[N, 1]`` or ``[N]``, as float32 ``[N]``."""
    return ts.get(key, FLOAT_DTYPES, [(n, 1), (n,)], finite=True).reshape(n).to(torch.float32)


def input_scale(ts: TensorSet) -> Tensor:
    """The static per-tensor ``input_scale`` as ``[1]`` (stored dtype); zero or negative is refused."""
    scale = ts.get("input_scale", FLOAT_DTYPES, [(1,), ()], finite=True).reshape(1)
    if float(scale) <= 0:
        raise bad_tensor("input_scale", f"must be positive, got {float(scale)}")
    return scale


def buffers(module: nn.Module, **named: Any) -> None:
    """Register tensors (or None) as non-persistent buffers so ``.to()`` moves them."""
    for key, value in named.items():
        module.register_buffer(key, value, persistent=False)
