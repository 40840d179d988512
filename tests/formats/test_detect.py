"""Detection precedence, conflicts, pipelines and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantspec.errors import Code, InvalidCheckpoint, InvalidInput, QuantspecError
from quantspec.formats import detect, pipeline_components, read_description
from quantspec.formats.detect import SourceKind
from quantspec.vocab import FormatFamily, Mode, SchemeId
from tests.formats.conftest import MakeDir

MS = {"model_quant_type": "W8A8", "m.weight": "W8A8"}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}


def test_nothing_found_is_unquantized(make_model: MakeDir) -> None:
    root = make_model({"config.json": {"model_type": "llama"}})
    det = detect(root)
    assert det.format is FormatFamily.UNQUANTIZED and det.chosen is None
    desc = read_description(root)
    assert desc.format is FormatFamily.UNQUANTIZED and desc.rules == ()


def test_online_mxfp8_request(make_model: MakeDir) -> None:
    desc = read_description(make_model({"config.json": {}}), quantization="mxfp8")
    assert desc.format is FormatFamily.MXFP8_ONLINE and desc.mode is Mode.ONLINE
    assert desc.default is not None and desc.default.scheme is SchemeId.W8A8_MXFP8
    assert desc.default.weight.group_size == 32 and desc.default.weight.scale_dtype == "e8m0"


def test_online_request_on_quantized_checkpoint_is_refused(make_model: MakeDir) -> None:
    root = make_model({"quant_model_description.json": MS})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root, quantization="mxfp8")
    assert exc.value.code is Code.FORMAT_CONFLICT


def test_quantization_must_match_detected(make_model: MakeDir) -> None:
    root = make_model({"quant_model_description.json": MS})
    assert read_description(root, quantization="ascend").format is FormatFamily.MODELSLIM
    with pytest.raises(InvalidCheckpoint):
        read_description(root, quantization="awq")


def test_description_beats_config_and_conflict_reported(make_model: MakeDir) -> None:
    root = make_model({"quant_model_description.json": MS, "config.json": {"quantization_config": GPTQ}})
    det = detect(root)
    assert det.chosen is not None and det.chosen.kind is SourceKind.DESCRIPTION
    assert [s.kind for s in det.sources] == [SourceKind.DESCRIPTION, SourceKind.CONFIG]
    assert [c.code for c in det.conflicts] == [Code.FORMAT_CONFLICT]
    desc = read_description(root)
    assert desc.format is FormatFamily.MODELSLIM
    assert desc.findings[0].code is Code.FORMAT_CONFLICT and desc.findings[0].where == "/quantization_config"


def test_side_file_disagreement_is_reported_per_key(make_model: MakeDir) -> None:
    root = make_model({"config.json": {"quantization_config": GPTQ},
                       "quantize_config.json": {**GPTQ, "group_size": 64}})
    det = detect(root)
    assert det.chosen is not None and det.chosen.file == "config.json"
    assert len(det.conflicts) == 1
    assert det.conflicts[0].where == "/group_size" and (det.conflicts[0].file or "").endswith("/quantize_config.json")


def test_config_pointer_precedence(make_model: MakeDir) -> None:
    root = make_model({"config.json": {"text_config": {"quantization_config": GPTQ}}})
    det = detect(root)
    assert det.chosen is not None and det.chosen.where == "/text_config/quantization_config"
    root2 = make_model({"config.json": {"compression_config": {"quant_method": "compressed-tensors"}}}, "b")
    assert detect(root2).format is FormatFamily.COMPRESSED_TENSORS


def test_gguf_is_last(make_model: MakeDir) -> None:
    root = make_model({"model.gguf": b"GGUF", "quantize_config.json": GPTQ})
    det = detect(root)
    assert det.chosen is not None and det.chosen.kind is SourceKind.SIDE_FILE
    assert det.sources[-1].kind is SourceKind.GGUF
    assert det.conflicts[0].code is Code.FORMAT_CONFLICT


def test_pipeline_components(make_model: MakeDir) -> None:
    root = make_model({
        "model_index.json": {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
                             "transformer_2": ["diffusers", "WanTransformer3DModel"], "vae": [None, None],
                             "scheduler": ["diffusers", "X"]},
        "transformer/quant_model_description.json": MS,
        "transformer_2/config.json": {},
    })
    comps = pipeline_components(root)
    assert set(comps) == {"transformer", "transformer_2"}
    assert detect(root).pipeline
    with pytest.raises(InvalidInput) as exc:
        read_description(root)
    assert exc.value.code is Code.USAGE
    assert read_description(comps["transformer"]).format is FormatFamily.MODELSLIM
    assert read_description(comps["transformer_2"]).format is FormatFamily.UNQUANTIZED
    assert pipeline_components(make_model({}, "plain")) == {}


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", Code.INVALID_JSON),
        (b'{"a.weight": "W8A8", "a.weight": "FLOAT"}', Code.DUPLICATE_KEY),
        (b'{"a.weight": "\xff"}', Code.NOT_UTF8),
        (b'{"group_size": "x"}', Code.FORMAT_WRONG_TYPE),
        (b"[1, 2]", Code.FORMAT_WRONG_TYPE),
    ],
)
def test_bad_description_files(make_model: MakeDir, content: bytes, code: Code) -> None:
    root = make_model({"quant_model_description.json": content})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    assert exc.value.code is code


def test_every_unreadable_file_reported(make_model: MakeDir) -> None:
    root = make_model({"quant_model_description.json": b"{", "config.json": b"\xfe"})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    assert {r.code for r in exc.value.reasons} == {Code.INVALID_JSON, Code.NOT_UTF8}


def test_oversized_description(make_model: MakeDir) -> None:
    root = make_model({"config.json": {}})
    with (root / "quant_model_description.json").open("wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)  # sparse: nothing is written, the size check fires first
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    assert exc.value.code is Code.FILE_TOO_LARGE


def test_symlink_leaving_the_folder(make_model: MakeDir, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"m.weight": "W8A8"}')
    root = make_model({"config.json": {}})
    os.symlink(outside, root / "quant_model_description.json")
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    assert exc.value.code is Code.SYMLINK_ESCAPE


def test_missing_folder_and_file_argument(tmp_path: Path) -> None:
    with pytest.raises(QuantspecError) as exc:
        read_description(tmp_path / "nope")
    assert exc.value.code is Code.FILE_NOT_FOUND
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(QuantspecError) as exc2:
        detect(f)
    assert exc2.value.code is Code.NOT_A_DIRECTORY


def test_config_json_must_be_an_object(make_model: MakeDir) -> None:
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(make_model({"config.json": [1, 2]}))
    assert exc.value.code is Code.FORMAT_WRONG_TYPE


def test_conflicts_reported_with_fatal_errors(make_model: MakeDir) -> None:
    gptq = {"quant_method": "gptq", "group_size": 128}
    root = make_model({"config.json": {"quantization_config": gptq}, "quantize_config.json": {**gptq, "sym": 1}})
    with pytest.raises(InvalidCheckpoint) as exc:
        read_description(root)
    assert [r.code for r in exc.value.reasons] == [Code.FORMAT_MISSING_FIELD]
    root2 = make_model({"config.json": {"quantization_config": gptq},
                        "quantize_config.json": {**gptq, "group_size": 64}}, "b")
    with pytest.raises(InvalidCheckpoint) as exc2:
        read_description(root2)
    assert [r.code for r in exc2.value.reasons] == [Code.FORMAT_MISSING_FIELD, Code.FORMAT_CONFLICT]


def test_misnamed_description_is_read_and_flagged(make_model: MakeDir) -> None:
    """Older exports name it quant_model_description_<type>.json: read, with a blocking finding."""
    root = make_model({"quant_model_description_w8a8.json": MS, "config.json": {"model_type": "llama"}})
    det = detect(root)
    assert det.chosen is not None and det.chosen.file == "quant_model_description_w8a8.json"
    desc = read_description(root)
    assert desc.format is FormatFamily.MODELSLIM
    [misnamed] = [f for f in desc.findings if f.code is Code.FORMAT_MISNAMED]
    assert misnamed.message == (
        "the msModelSlim description is named quant_model_description_w8a8.json: vLLM-Ascend and SGLang read only "
        "quant_model_description.json and would load this checkpoint as unquantized (then fail on its int8 tensors)")
    assert misnamed.hint == ("rename it to quant_model_description.json (`quantspec validate DIR --fix` does, "
                             "keeping a backup)")


def test_canonical_description_wins_over_a_misnamed_one(make_model: MakeDir) -> None:
    root = make_model({"quant_model_description.json": MS, "quant_model_description_w8a8.json": MS})
    assert not [f for f in read_description(root).findings if f.code is Code.FORMAT_MISNAMED]


def test_every_format_family_has_one_spec() -> None:
    from quantspec.formats.dispatch import READERS as used_readers
    from quantspec.formats.schema_check import RAW_SCHEMAS
    from quantspec.formats.specs import FORMATS, METHODS
    from quantspec.vocab import FormatFamily
    from tools.schemas_export import SCHEMAS

    assert set(FORMATS) == set(FormatFamily)
    assert METHODS["compressed-tensors"] is FormatFamily.COMPRESSED_TENSORS and used_readers[FormatFamily.GPTQ]
    assert set(RAW_SCHEMAS.values()) <= set(SCHEMAS)
    assert all(s.raw_schema in SCHEMAS for s in FORMATS.values() if s.raw_schema)
