"""The error model: one base exception, stable codes, rendering."""

from __future__ import annotations

import pytest

from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, PlanRejected, QuantspecError, reason


def test_render_with_pointer_and_hint() -> None:
    r = reason(Code.INVALID_JSON, "invalid JSON", file="config.json", where="/quantization_config", hint="fix it")
    assert r.render() == "[input.invalid_json] invalid JSON (at config.json#/quantization_config)\n    hint: fix it"


def test_render_with_layer_location() -> None:
    r = reason(Code.TENSOR_MISSING, "missing", file="model.safetensors", where="model.layers.0.q_proj.weight")
    assert r.render() == "[tensor.missing] missing (at model.safetensors: model.layers.0.q_proj.weight)"


def test_exception_carries_every_reason() -> None:
    err = InvalidCheckpoint([reason(Code.INVALID_JSON, "a"), reason(Code.NOT_UTF8, "b")])
    assert isinstance(err, InvalidInput) and isinstance(err, QuantspecError)
    assert err.code is Code.INVALID_JSON and len(err.reasons) == 2
    assert err.exit_code == 2 and PlanRejected(reason(Code.PLAN_NO_SCHEME, "x")).exit_code == 1
    assert str(err) == "[input.invalid_json] a\n[input.not_utf8] b"


def test_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="at least one reason"):
        QuantspecError([])


def test_codes_are_unique_and_dotted() -> None:
    values = [c.value for c in Code]
    assert len(values) == len(set(values))
    assert all(v.count(".") == 1 and v == v.lower() for v in values)
