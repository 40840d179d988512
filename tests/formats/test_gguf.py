"""GGUF: header reading, HF name mapping, per-tensor rules, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import detect, read_description
from quantspec.formats.gguf import ggml_bits, hf_name_map, read_gguf_header, split_stem
from quantspec.vocab import ElementType, FormatFamily, Layout, MatchKind, SchemeId
from tests.formats.gguf_fixture import write_tiny_gguf


@pytest.fixture
def model(tmp_path: Path) -> Path:
    write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")
    return tmp_path


def test_header(model: Path) -> None:
    h = read_gguf_header(model / "tiny-Q8_0.gguf")
    assert h.version == 3 and h.architecture == "llama" and h.block_count == 1
    by_name = {t.name: t for t in h.tensors}
    assert by_name["blk.0.attn_q.weight"].ggml_type == "Q8_0"
    assert by_name["blk.0.attn_q.weight"].shape == (4, 32)
    assert by_name["blk.0.attn_q.weight"].n_bytes == 4 * 34
    assert by_name["blk.0.ffn_gate_exps.weight"].shape == (2, 4, 32)
    assert all(t.offset > 0 for t in h.tensors)


def test_description(model: Path) -> None:
    assert detect(model).format is FormatFamily.GGUF
    desc = read_description(model)
    assert desc.format is FormatFamily.GGUF and desc.requires_entry
    q = desc.resolve("model.layers.0.self_attn.q_proj").quant
    assert q is not None and q.scheme is SchemeId.GGUF and q.weight.ggml_type == "Q8_0"
    assert q.weight.element is ElementType.GGML and q.weight.layout is Layout.GGML and q.weight.group_size == 32
    assert desc.resolve("model.embed_tokens").quant is None
    e = desc.resolve("model.layers.0.mlp.experts.1.gate_proj").quant
    assert e is not None and e.label == "Q4_0"
    exp_rule = next(r for r in desc.rules if r.origin == "tensor:blk.0.ffn_gate_exps.weight")
    assert exp_rule.match.kind is MatchKind.REGEX_FULLMATCH
    assert not desc.resolve("model.layers.1.self_attn.q_proj").matched
    assert desc.declared_tensors is not None and "model.layers.0.self_attn.q_proj.weight" in desc.declared_tensors
    assert [r.code for r in desc.findings] == [Code.FORMAT_NOTE]  # odd_tensor has no HF name


def test_name_map_prefers_transformers_names() -> None:
    names = hf_name_map("llama", 2)
    assert names["token_embd"] == "model.embed_tokens"
    assert names["output"] == "lm_head"
    assert names["blk.1.ffn_down"] == "model.layers.1.mlp.down_proj"
    assert hf_name_map("no-such-arch", 1) == {}


def test_bits_and_split_names() -> None:
    assert (ggml_bits("Q4_K"), ggml_bits("IQ2_XXS"), ggml_bits("MXFP4"), ggml_bits("TQ1_0")) == (4, 2, 4, 1)
    assert split_stem("m-00001-of-00002.gguf") == "m" and split_stem("m.gguf") is None


def test_split_shards_are_one_source(tmp_path: Path) -> None:
    write_tiny_gguf(tmp_path / "m-00001-of-00002.gguf")
    write_tiny_gguf(tmp_path / "m-00002-of-00002.gguf")
    det = detect(tmp_path)
    assert det.conflicts == ()
    assert read_description(tmp_path).format is FormatFamily.GGUF


def test_two_different_gguf_files_conflict(model: Path) -> None:
    write_tiny_gguf(model / "other-Q4_0.gguf")
    assert [c.code for c in detect(model).conflicts] == [Code.FORMAT_CONFLICT]


@pytest.mark.parametrize("content", [b"", b"GGUF", b"NOTG" + b"\0" * 64, b"GGUF\x03\0\0\0" + b"\xff" * 20])
def test_bad_files(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.gguf").write_bytes(content)
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(tmp_path)
    assert exc.value.code is Code.TENSOR_HEADER


def test_truncated_copy(model: Path, tmp_path: Path) -> None:
    data = (model / "tiny-Q8_0.gguf").read_bytes()
    d = tmp_path / "trunc"
    d.mkdir()
    (d / "t.gguf").write_bytes(data[:200])
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(d)
    assert exc.value.code is Code.TENSOR_HEADER


def test_hf_names_are_the_transformers_spellings() -> None:
    """Routers are ``mlp.gate`` and q/k norms ``q_norm``/``k_norm`` (not other architectures' names)."""
    from quantspec.formats.gguf import hf_name_map

    qwen = hf_name_map("qwen3moe", 2)
    assert qwen["blk.1.ffn_gate_inp"] == "model.layers.1.mlp.gate"
    assert qwen["blk.1.attn_q_norm"] == "model.layers.1.self_attn.q_norm"
    assert qwen["blk.1.attn_k_norm"] == "model.layers.1.self_attn.k_norm"
    assert qwen["blk.1.ffn_norm"] == "model.layers.1.post_attention_layernorm"
    assert hf_name_map("llama", 1)["blk.0.ffn_gate_inp"] == "model.layers.0.mlp.gate"
