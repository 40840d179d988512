"""Backend, target generation and model dtype of a load."""

from __future__ import annotations

import torch

from quantspec.errors import Code, InvalidInput, reason
from quantspec.runtime.ops import Ops, get_ops
from quantspec.vocab import Backend, NpuGen

#: Target used for ``device="cpu"`` when none is given. The emulation runs every scheme the
#: same way on any generation; the target only decides which matrix cells the plan accepts.
#: A2 is the generation with the widest validated support; pass ``target="a5"`` to load the MX
#: schemes (and online MXFP8) on the emulation.
DEFAULT_CPU_TARGET = NpuGen.A2

#: ``torch_npu.npu.get_soc_version()`` ranges (sglang_ascend.md 8.1).
SOC_RANGES: tuple[tuple[int, int, NpuGen], ...] = ((220, 225, NpuGen.A2), (250, 255, NpuGen.A3), (260, 260, NpuGen.A5))

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "fp16": torch.float16, "bf16": torch.bfloat16, "half": torch.float16}


def backend_ops(device: str) -> Ops:
    """The op backend of ``device`` (``"npu"`` raises BackendUnavailable without torch_npu)."""
    try:
        backend = Backend(device)
    except ValueError:
        raise InvalidInput(reason(Code.USAGE, f"unknown device {device!r}", hint="use 'npu' or 'cpu'")) from None
    return get_ops(backend)


def soc_generation(soc: int) -> NpuGen:
    """The generation of a SoC version number."""
    for lo, hi, gen in SOC_RANGES:
        if lo <= soc <= hi:
            return gen
    raise InvalidInput(reason(Code.USAGE, f"SoC version {soc} is not an Ascend A2 (220-225), A3 (250-255) or A5 (260)",
                              hint="pass target= explicitly"))


def resolve_target(target: NpuGen | str | None, ops: Ops) -> NpuGen:
    """The target: the explicit one, the detected NPU's, or :data:`DEFAULT_CPU_TARGET` on the cpu."""
    if target is not None:
        try:
            return NpuGen(target)
        except ValueError:
            raise InvalidInput(reason(Code.USAGE, f"unknown target {target!r}",
                                      hint=f"one of {', '.join(g.value for g in NpuGen)}")) from None
    if ops.backend is Backend.CPU:
        return DEFAULT_CPU_TARGET
    torch_npu = getattr(ops, "torch_npu", None)
    soc = torch_npu.npu.get_soc_version() if torch_npu is not None else None
    if soc is None:
        raise InvalidInput(reason(Code.USAGE, "cannot read the NPU SoC version", hint="pass target= explicitly"))
    return soc_generation(int(soc))


def resolve_dtype(dtype: torch.dtype | str | None, planned: str | None) -> torch.dtype:
    """The model (activation) dtype: the argument, else config.json's, else bfloat16."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype or planned or "bfloat16"
    found = _DTYPES.get(str(name).removeprefix("torch."))
    if found is None:
        raise InvalidInput(reason(Code.USAGE, f"unsupported model dtype {name!r}",
                                  hint="use float16 or bfloat16"))
    return found
