"""compressed-tensors preset schemes (``config_groups: {"W4A16": ["Linear"]}``).

A group whose value is a list of targets names a preset. The integer ``W<b>A<a>`` presets
quantize weights symmetrically (group 128, per channel for 8-bit weights with 8-bit
activations) and activations dynamically per token; the float presets follow the library's
``FP8``/``FP8_DYNAMIC``/``FP8_BLOCK``/``NVFP4``/``MXFP4``/``MXFP8`` definitions.
"""

from __future__ import annotations

import re
from typing import Any

_INT_PRESET = re.compile(r"^W([2-8])A(4|8|16)(_ASYM)?$")


def _int_preset(wb: int, ab: int, asym: bool) -> dict[str, Any]:
    channel = wb == 8 and ab == 8
    weights: dict[str, Any] = {"num_bits": wb, "type": "int", "symmetric": not asym,
                               "strategy": "channel" if channel else "group", "group_size": None if channel else 128}
    out: dict[str, Any] = {"weights": weights}
    if ab < 16:
        out["input_activations"] = {"num_bits": ab, "type": "int", "symmetric": True, "strategy": "token",
                                    "dynamic": True}
    return out


def _fp(bits: int, strategy: str, *, group: int | None = None, dynamic: bool | str = False,
        scale_dtype: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"num_bits": bits, "type": "float", "symmetric": True, "strategy": strategy,
                            "dynamic": dynamic}
    if group is not None:
        args["group_size"] = group
    if scale_dtype is not None:
        args["scale_dtype"] = scale_dtype
    return args


_FLOAT_PRESETS: dict[str, dict[str, Any]] = {
    "FP8": {"weights": _fp(8, "tensor"), "input_activations": _fp(8, "tensor")},
    "FP8_DYNAMIC": {"weights": _fp(8, "channel"), "input_activations": _fp(8, "token", dynamic=True)},
    "FP8_BLOCK": {"weights": {**_fp(8, "block"), "block_structure": [128, 128]},
                  "input_activations": _fp(8, "group", group=128, dynamic=True)},
    "NVFP4A16": {"weights": _fp(4, "tensor_group", group=16)},
    "NVFP4": {"weights": _fp(4, "tensor_group", group=16),
              "input_activations": _fp(4, "tensor_group", group=16, dynamic="local")},
    "MXFP4A16": {"weights": _fp(4, "group", group=32, scale_dtype="uint8")},
    "MXFP4": {"weights": _fp(4, "group", group=32, scale_dtype="uint8"),
              "input_activations": _fp(4, "group", group=32, dynamic=True, scale_dtype="uint8")},
    "MXFP8A16": {"weights": _fp(8, "group", group=32, scale_dtype="uint8")},
    "MXFP8": {"weights": _fp(8, "group", group=32, scale_dtype="uint8"),
              "input_activations": _fp(8, "group", group=32, dynamic=True, scale_dtype="uint8")},
    "UNQUANTIZED": {},
}
_ALIASES = {"INT8": "W8A8", "W4AFP8": "W4AFP8"}


def preset_body(name: str) -> dict[str, Any] | None:
    """The ``QuantizationScheme`` fields a preset name stands for (no targets), or None for unknown
    names; plain data, so that this module imports nothing of the format's models."""
    key = _ALIASES.get(name.upper(), name.upper())
    if key == "W4AFP8":
        body: dict[str, Any] = {"weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group",
                                            "group_size": 128},
                                "input_activations": _fp(8, "token", dynamic=True)}
    elif m := _INT_PRESET.match(key):
        body = _int_preset(int(m.group(1)), int(m.group(2)), bool(m.group(3)))
    elif key in _FLOAT_PRESETS:
        body = _FLOAT_PRESETS[key]
    else:
        return None
    return body
