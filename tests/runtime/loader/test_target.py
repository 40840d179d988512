"""Target generation and model dtype resolution."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from quantspec.errors import InvalidInput
from quantspec.runtime.loader.target import DEFAULT_CPU_TARGET, resolve_dtype, resolve_target, soc_generation
from quantspec.runtime.ops import get_ops
from quantspec.vocab import Backend, NpuGen


@pytest.mark.parametrize(("soc", "gen"), [(220, NpuGen.A2), (225, NpuGen.A2), (250, NpuGen.A3), (255, NpuGen.A3),
                                          (260, NpuGen.A5)])
def test_soc_ranges(soc: int, gen: NpuGen) -> None:
    assert soc_generation(soc) is gen


def test_unknown_soc() -> None:
    with pytest.raises(InvalidInput, match="pass target"):
        soc_generation(200)


def test_resolve_target() -> None:
    assert resolve_target(None, get_ops("cpu")) is DEFAULT_CPU_TARGET
    assert resolve_target("a5", get_ops("cpu")) is NpuGen.A5
    npu = SimpleNamespace(get_soc_version=lambda: 253)
    fake: Any = SimpleNamespace(backend=Backend.NPU, torch_npu=SimpleNamespace(npu=npu))
    assert resolve_target(None, fake) is NpuGen.A3
    with pytest.raises(InvalidInput, match="unknown target"):
        resolve_target("a4", get_ops("cpu"))


def test_resolve_dtype() -> None:
    assert resolve_dtype(None, "float16") is torch.float16
    assert resolve_dtype(None, None) is torch.bfloat16
    assert resolve_dtype(torch.float16, "bfloat16") is torch.float16
    with pytest.raises(InvalidInput):
        resolve_dtype("int8", None)
