"""Real-world conformance: every JSON file of the shared corpus parses or is rejected by name.

The corpus lives outside the repository (``../shared/corpus``) and is never copied in; the
tests skip when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from quantspec.errors import Code, InvalidCheckpoint
from quantspec.formats import read_description
from quantspec.vocab import FormatFamily

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
FILES = sorted(CORPUS.rglob("*.json")) if CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(not FILES, reason="shared corpus not present")


def natural_name(path: Path) -> str:
    """Where the file sits in a real checkpoint, from the corpus naming convention."""
    name = path.name
    if path.parent.name == "modelslim":
        return "quant_model_description.json"
    for suffix, target in (("_quantize_config.json", "quantize_config.json"),
                           ("_quantization_config.json", "quantization_config.json"),
                           ("_hf_quant_config.json", "hf_quant_config.json"),
                           ("_qconfig.json", "quantization_config.json")):
        if name.endswith(suffix):
            return target
    return "config.json"


def _ids(p: Path) -> str:
    return str(p.relative_to(CORPUS))


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=_ids)
def test_parses_or_rejected_by_name(tmp_path: Path, path: Path) -> None:
    shutil.copy(path, tmp_path / natural_name(path))
    try:
        desc = read_description(tmp_path)
    except InvalidCheckpoint as exc:
        assert {r.code for r in exc.reasons} == {Code.FORMAT_UNSUPPORTED}, [r.render() for r in exc.reasons]
        assert all(r.hint and "supported formats" in r.hint for r in exc.reasons)
        return
    json.loads(desc.model_dump_json())  # serialisable
    if path.parent.name in ("gptq", "auto_round", "modelslim") and "no-quantization" not in path.name:
        assert desc.format is not FormatFamily.UNQUANTIZED


EXPECTED = {
    "gptq/mythomax-l2-13b-4bit-g32-actorder_config.json": ("gptq", "w4a16"),
    "gptq/mythomax-l2-13b-8bit-perchannel-actorder_config.json": ("gptq", "w8a16"),
    "gptq/genz-70b-3bit-actorder_config.json": ("gptq", None),
    "gptq/wizardcoder-15b_quantize_config.json": ("gptq", "w4a16"),
    "auto_round/llama-7b-autoround-native-w4g128-auto_gptq-packing_config.json": ("auto_round", "w4a16"),
    "auto_round/qwen3.6-27b-autoround-awq-export_quantization_config.json": ("awq", "w4a16"),
}


@needs_corpus
@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_default_schemes(tmp_path: Path, rel: str) -> None:
    path = CORPUS / rel
    shutil.copy(path, tmp_path / natural_name(path))
    desc = read_description(tmp_path)
    fmt, scheme = EXPECTED[rel]
    assert desc.format.value == fmt
    assert desc.default is not None
    assert (desc.default.scheme.value if desc.default.scheme else None) == scheme


@needs_corpus
def test_compressed_tensors_corpus_schemes(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "compressed_tensors/exaone4-w8a8-int8-dynamic-token-fp8-kv_config.json",
                tmp_path / "config.json")
    desc = read_description(tmp_path)
    q = desc.resolve("model.layers.0.mlp.down_proj", "Linear").quant
    assert q is not None and q.scheme is not None and q.scheme.value == "w8a8_dynamic"
    assert desc.kv_cache and desc.resolve("lm_head", "Linear").quant is None


@needs_corpus
def test_side_file_disagreement_is_found(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "gptq/phi-2-optimum-gptq-4bit-g128_config.json", tmp_path / "config.json")
    shutil.copy(CORPUS / "gptq/phi-2-optimum-gptq_quantize_config.json", tmp_path / "quantize_config.json")
    desc = read_description(tmp_path)
    conflicts = [r for r in desc.findings if r.code is Code.FORMAT_CONFLICT]
    assert [r.where for r in conflicts] == ["/disable_exllama"]
