"""Formats outside the matrix are rejected by name, listing the supported formats."""

from __future__ import annotations

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import detect, read_description
from tests.formats.conftest import MakeDir

CASES = [
    ({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}},
     "bitsandbytes"),
    ({"quantization_config": {"load_in_8bit": True}}, "bitsandbytes"),
    ({"quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}}, "fp8"),
    ({"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}}, "gpt-oss MXFP4"),
    ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}, "NVIDIA ModelOpt"),
    ({"quantization_config": {"quant_method": "hqq"}}, "quant_method 'hqq'"),
    ({"quantization_config": {"foo": 1}}, "no quant_method"),
    ({"quantization": {"bits": 4, "group_size": 32}, "quantization_config": {"bits": 4, "group_size": 32}}, "MLX"),
]


@pytest.mark.parametrize(("config", "name"), CASES)
def test_rejected_by_name(make_model: MakeDir, config: dict[str, object], name: str) -> None:
    root = make_model({"config.json": config})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    r = exc.value.reasons[0]
    assert r.code is Code.FORMAT_UNSUPPORTED
    assert name in r.message
    assert r.hint is not None and "compressed-tensors" in r.hint and "gguf" in r.hint


def test_modelopt_side_file(make_model: MakeDir) -> None:
    root = make_model({"hf_quant_config.json": {"producer": {"name": "modelopt"},
                                                "quantization": {"quant_algo": "NVFP4", "group_size": 16}}})
    assert detect(root).unsupported == "NVIDIA ModelOpt"
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    assert exc.value.code is Code.FORMAT_UNSUPPORTED and "NVFP4" in exc.value.reasons[0].message


def test_detection_names_unsupported(make_model: MakeDir) -> None:
    det = detect(make_model({"config.json": CASES[2][0]}))
    assert det.format is None and det.unsupported == "fp8"
