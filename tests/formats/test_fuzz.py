"""Property: arbitrary JSON never raises anything but QuantspecError."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantspec.errors import QuantspecError
from quantspec.formats import auto_round, awq, compressed_tensors, gptq, modelslim, read_description
from quantspec.formats.dispatch import read_quant_config

scalars = st.none() | st.booleans() | st.integers(-300, 300) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=12)
keys = st.sampled_from([
    "quant_method", "bits", "group_size", "sym", "desc_act", "dynamic", "config_groups", "targets", "weights",
    "input_activations", "num_bits", "type", "strategy", "ignore", "extra_config", "packing_format", "version",
    "zero_point", "modules_to_not_convert", "model_quant_type", "kv_cache_type", "fa_quant_type", "m.weight",
    "a.k_proj.kv_cache_scale", "b.fa_k.scale", "block_name_to_quantize", "load_in_4bit", "sparsity_config", "format",
]) | st.text(max_size=10)
methods = st.sampled_from(["gptq", "awq", "auto-round", "compressed-tensors", "fp8", "mxfp4", "x", "bitsandbytes"])
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars | methods, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)
objects = st.dictionaries(keys, json_values, max_size=8)


def _call(fn: Any, data: Any) -> None:
    with contextlib.suppress(QuantspecError):
        fn(data, file="f.json", source="f.json")


@settings(max_examples=300, deadline=None)
@given(json_values | objects)
def test_format_readers_only_raise_quantspec_errors(data: Any) -> None:
    for module in (modelslim, gptq, awq, auto_round, compressed_tensors):
        _call(module.read, data)
    _call(read_quant_config, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=objects, name=st.sampled_from(["quant_model_description.json", "config.json", "quantize_config.json",
                                           "quantization_config.json"]))
def test_read_description_only_raises_quantspec_errors(tmp_path: Path, data: Any, name: str) -> None:
    root = tmp_path / "m"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        old.unlink()
    payload = {"quantization_config": data} if name == "config.json" else data
    (root / name).write_text(json.dumps(payload), encoding="utf-8")
    with contextlib.suppress(QuantspecError):
        read_description(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_arbitrary_bytes_only_raise_quantspec_errors(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "b"
    root.mkdir(exist_ok=True)
    (root / "quant_model_description.json").write_bytes(content)
    with contextlib.suppress(QuantspecError):
        read_description(root)
