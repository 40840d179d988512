"""Session-wide builders for the end-to-end tests: each case is exported and loaded once.

Float models are built once per (architecture, dtype); each case's checkpoint is written under
``tmp_path_factory`` the first time a test asks for it, then planned, loaded on the cpu
emulation and installed into a transformers model built on the meta device from the folder's
``config.json``. Tests share the result through :class:`Session`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

import quantspec
from testkit.cases import Case
from testkit.export import Exported
from testkit.models import TinyArch, build_float_model, checkpoint_state_dict, logits, token_batch


@dataclass
class FloatRef:
    """A float model, its checkpoint tensors and its logits on the fixed batch."""

    model: PreTrainedModel
    state: dict[str, torch.Tensor]
    logits: torch.Tensor


@dataclass
class Loaded:
    """One case: its folder, the loaded checkpoint and the installed model's logits."""

    exported: Exported
    qmodel: quantspec.QuantizedModel
    model: PreTrainedModel
    logits: torch.Tensor


class Session:
    """Memoised float models, exports and loads for the whole test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokens = token_batch()
        self._floats: dict[tuple[TinyArch, torch.dtype], FloatRef] = {}
        self._exports: dict[str, Exported] = {}
        self._loads: dict[str, Loaded] = {}

    def float_ref(self, arch: TinyArch, dtype: torch.dtype) -> FloatRef:
        key = (arch, dtype)
        if key not in self._floats:
            model = build_float_model(arch, dtype=dtype)
            self._floats[key] = FloatRef(model, checkpoint_state_dict(model, arch), logits(model, self.tokens))
        return self._floats[key]

    def exported(self, case: Case) -> Exported:
        if case.id not in self._exports:
            ref = self.float_ref(case.arch, case.dtype)
            self._exports[case.id] = case.export(ref.model, case.arch, self.root / case.id)
        return self._exports[case.id]

    def loaded(self, case: Case) -> Loaded:
        if case.id not in self._loads:
            exp = self.exported(case)
            qm = quantspec.load_quantized(
                exp.path, device="cpu", target=case.target, allow_untested=case.allow_untested,
                quantization=case.quantization, progress=False,
            )
            config = AutoConfig.from_pretrained(exp.path)
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config, dtype=case.dtype)  # type: ignore[no-untyped-call]
            qm.install(model)
            model.train(False)
            self._loads[case.id] = Loaded(exp, qm, model, logits(model, self.tokens))
        return self._loads[case.id]


@pytest.fixture(scope="session")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    yield Session(tmp_path_factory.mktemp("e2e"))
