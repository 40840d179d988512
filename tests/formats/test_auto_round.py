"""auto-round configs: packing formats, extra_config exact-then-regex, block prefixes."""

from __future__ import annotations

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import auto_round
from quantspec.vocab import Layout, SchemeId, ZeroPoint
from tests.formats.examples import load


def read(data: object) -> auto_round.CheckpointDescription:
    return auto_round.read(data, file="config.json", source="config.json")


def test_extra_config_and_blocks() -> None:
    desc = read(load("auto_round_regex.json"))
    d = desc.default
    assert d is not None and d.scheme is SchemeId.W4A16 and d.weight.zero_point is ZeroPoint.MINUS_ONE
    assert d.weight.layout is Layout.GPTQ and d.weight.group_size == 64
    # regex key, re.search, bits 16 -> float
    assert desc.resolve("model.language_model.layers.3.mlp.gate").quant is None
    o = desc.resolve("model.language_model.layers.0.self_attn.o_proj").quant
    assert o is not None and o.scheme is SchemeId.W8A16 and o.weight.group_size == 128
    # outside block_name_to_quantize -> float, unless listed
    assert desc.resolve("model.visual.blocks.0.qkv").quant is None
    lm = desc.resolve("lm_head").quant
    assert lm is not None and lm.weight.bits == 8
    assert desc.resolve("model.language_model.layers.3.mlp.up_proj").quant == d


@pytest.mark.parametrize(
    ("packing", "layout", "zero"),
    [("auto_round", Layout.GPTQ, ZeroPoint.TRUE), ("auto_round:gptqmodel", Layout.GPTQ, ZeroPoint.TRUE),
     ("auto_round:auto_awq", Layout.AWQ_GEMM, ZeroPoint.TRUE)],
)
def test_packings(packing: str, layout: Layout, zero: ZeroPoint) -> None:
    d = read({"quant_method": "auto-round", "packing_format": packing, "bits": 4, "group_size": 128,
              "sym": False}).default
    assert d is not None and d.weight.layout is layout and d.weight.zero_point is zero


def test_unknown_packing_has_no_scheme() -> None:
    desc = read({"packing_format": "auto_round:mx_fp", "bits": 4, "group_size": 32, "data_type": "mx_fp"})
    assert desc.default is not None and desc.default.scheme is None
    assert desc.findings[0].code is Code.FORMAT_NOTE


def test_exact_key_beats_regex_and_to_quant_block_names() -> None:
    desc = read({"bits": 4, "group_size": 128, "sym": True, "to_quant_block_names": "a.layers,b.layers",
                 "extra_config": {"a.layers.0.mlp.gate": {"bits": 8}, ".*gate$": {"bits": 16}}})
    q = desc.resolve("a.layers.0.mlp.gate").quant
    assert q is not None and q.weight.bits == 8
    assert desc.resolve("a.layers.1.mlp.gate").quant is None
    assert desc.resolve("b.layers.1.x").quant is not None and desc.resolve("c.x").quant is None


def test_invalid_regex() -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read({"bits": 4, "sym": True, "extra_config": {"(*": {"bits": 16}}})
    assert exc.value.code is Code.FORMAT_INVALID_PATTERN
