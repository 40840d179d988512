"""The checkpoint exporters: every case folder validates and plans as accepted, and each
producer's files look as that producer writes them."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import PreTrainedModel

import quantspec
from quantspec.cli.main import main as cli_main
from quantspec.runtime import numerics as nm
from testkit.cases import CASES, Case
from testkit.export import Exported, export_auto_round, export_awq, export_gptq, export_modelslim
from testkit.export_ct import CTRecipe, awq_dequantized, ct_dequantized, export_compressed_tensors
from testkit.export_gguf import QT, export_gguf, permute_qk, quantize_q6_k, unpermute_qk
from testkit.metrics import max_rel_diff
from testkit.models import TinyArch, build_float_model, checkpoint_state_dict
from testkit.writers import AutoRoundPacking

_MODELS: dict[tuple[TinyArch, torch.dtype], PreTrainedModel] = {}


def _model(arch: TinyArch, dtype: torch.dtype = torch.bfloat16) -> PreTrainedModel:
    if (arch, dtype) not in _MODELS:
        _MODELS[(arch, dtype)] = build_float_model(arch, dtype=dtype)
    return _MODELS[(arch, dtype)]


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)


def _qcfg(folder: Path) -> dict[str, object]:
    data = json.loads((folder / "config.json").read_text())
    return dict(data["quantization_config"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_folder_validates_and_plans_accepted(
    tmp_path: Path, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = case.export(_model(case.arch, case.dtype), case.arch, tmp_path / case.id)
    assert cli_main(["validate", str(exp.path)]) == 0, capsys.readouterr().out
    plan = quantspec.plan(exp.path, target=case.target, allow_untested=case.allow_untested,
                          quantization=case.quantization)
    assert plan.accepted, [(x.name, [r.message for r in x.reasons]) for x in plan.rejected_layers()]
    assert plan.model_dtype == str(case.dtype).removeprefix("torch.")


def test_modelslim_description_lists_every_tensor(tmp_path: Path) -> None:
    exp = export_modelslim(_model(TinyArch.QWEN3_MOE), TinyArch.QWEN3_MOE, tmp_path, linear="W8A8_DYNAMIC",
                           moe="W4A8_DYNAMIC")
    desc = json.loads((tmp_path / "quant_model_description.json").read_text())
    tensors = _tensors(tmp_path)
    header = {"model_quant_type", "group_size", "kv_cache_type", "fa_quant_type", "metadata", "optional"}
    assert set(desc) - header == set(tensors)
    assert desc["model_quant_type"] == "W4A8_DYNAMIC" and "version" not in desc
    assert desc["model.layers.0.mlp.experts.2.up_proj.weight_scale"] == "W4A8_DYNAMIC"
    assert desc["model.layers.0.self_attn.q_proj.weight_offset"] == "W8A8_DYNAMIC"
    floats = ("lm_head.weight", "model.layers.1.mlp.gate.weight", "model.norm.weight", "model.embed_tokens.weight")
    for floating in floats:
        assert desc[floating] == "FLOAT"
    assert tensors["model.layers.0.mlp.experts.0.down_proj.weight"].dtype == torch.int8
    assert int(tensors["model.layers.0.mlp.experts.0.down_proj.weight"].abs().max()) <= 8
    assert "model.layers.0.mlp.gate.weight_scale" not in tensors
    assert len(exp.quantized) == 2 * (4 + 4 * 3)


def test_modelslim_static_w8a8_carries_calibrated_activation_params(tmp_path: Path) -> None:
    export_modelslim(_model(TinyArch.LLAMA, torch.float16), TinyArch.LLAMA, tmp_path, linear="W8A8")
    t = _tensors(tmp_path)
    pre = "model.layers.0.mlp.down_proj."
    assert t[pre + "deq_scale"].dtype == torch.int64  # FP19 words for fp16 models
    assert t[pre + "quant_bias"].dtype == torch.int32
    assert float(t[pre + "input_scale"]) > 0 and t[pre + "input_offset"].shape == (1,)
    assert json.loads((tmp_path / "quant_model_description.json").read_text())["version"] == "1.0.0"


def test_awq_gemm_layout_and_config(tmp_path: Path) -> None:
    export_awq(_model(TinyArch.MIXTRAL, torch.float16), TinyArch.MIXTRAL, tmp_path)
    qcfg, t = _qcfg(tmp_path), _tensors(tmp_path)
    assert qcfg == {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm",
                    "modules_to_not_convert": ["gate"]}
    pre = "model.layers.0.block_sparse_moe.experts.1.w2."
    assert t[pre + "qweight"].shape == (256, 256 // 8) and t[pre + "qweight"].dtype == torch.int32
    assert t[pre + "scales"].shape == (2, 256) and t[pre + "scales"].dtype == torch.float16
    assert "model.layers.0.block_sparse_moe.gate.weight" in t


def test_awq_folders_decode_with_compressed_tensors_autoawq_converter(tmp_path: Path) -> None:
    # an independent reading of the AWQ GEMM layout: within half a step (absmax/15 + fp16 scale)
    model = _model(TinyArch.LLAMA, torch.float16)
    state = checkpoint_state_dict(model, TinyArch.LLAMA)
    export_awq(model, TinyArch.LLAMA, tmp_path / "awq")
    export_auto_round(model, TinyArch.LLAMA, tmp_path / "ar", packing=AutoRoundPacking.AUTO_AWQ)
    for folder in ("awq", "ar"):
        ref = awq_dequantized(tmp_path / folder)
        assert len(ref) == 14
        for module, w in ref.items():
            assert max_rel_diff(w, state[f"{module}.weight"]) <= 1 / 15 + 2**-8, (folder, module)


def test_gptq_v1_sym_zeros_and_act_order_g_idx(tmp_path: Path) -> None:
    export_gptq(_model(TinyArch.LLAMA, torch.float16), TinyArch.LLAMA, tmp_path / "v1")
    t = _tensors(tmp_path / "v1")
    assert torch.all(t["model.layers.0.self_attn.q_proj.qzeros"].view(torch.uint32) == 0x77777777)
    assert _qcfg(tmp_path / "v1")["checkpoint_format"] == "gptq"
    assert json.loads((tmp_path / "v1" / "quantize_config.json").read_text())["bits"] == 4
    export_gptq(_model(TinyArch.QWEN3_MOE, torch.float16), TinyArch.QWEN3_MOE, tmp_path / "v2", v2=True,
                desc_act=True)
    t = _tensors(tmp_path / "v2")
    g_idx = t["model.layers.0.mlp.experts.0.gate_proj.g_idx"]
    assert bool((g_idx[1:] < g_idx[:-1]).any()), "act-order g_idx must be non-monotone"
    assert torch.bincount(g_idx).tolist() == [128, 128]
    assert torch.all(t["model.layers.0.mlp.experts.0.gate_proj.qzeros"].view(torch.uint32) == 0x88888888)
    qcfg = _qcfg(tmp_path / "v2")
    assert qcfg["format"] == qcfg["checkpoint_format"] == "gptq_v2"
    assert qcfg["dynamic"] == {r"-:^model\.layers\.0\.mlp\.gate$": {}, r"-:^model\.layers\.1\.mlp\.gate$": {}}


def test_auto_round_side_file_and_packings(tmp_path: Path) -> None:
    export_auto_round(_model(TinyArch.QWEN3_MOE), TinyArch.QWEN3_MOE, tmp_path / "gptq")
    side = json.loads((tmp_path / "gptq" / "quantization_config.json").read_text())
    assert side == _qcfg(tmp_path / "gptq")
    assert side["packing_format"] == "auto_round:auto_gptq"
    assert side["extra_config"]["model.layers.1.mlp.gate"] == {"bits": 16, "data_type": "float"}
    t = _tensors(tmp_path / "gptq")
    assert "model.layers.0.self_attn.q_proj.g_idx" not in t  # the auto_gptq packer writes none
    export_auto_round(_model(TinyArch.LLAMA), TinyArch.LLAMA, tmp_path / "awq", packing=AutoRoundPacking.AUTO_AWQ)
    t = _tensors(tmp_path / "awq")
    assert torch.all(t["model.layers.0.mlp.up_proj.qzeros"].view(torch.uint32) == 0x88888888)


SGLANG = (CTRecipe.W4A8_MOE_SGLANG, CTRecipe.W4A8_MOE_SGLANG_CLIP)


@pytest.mark.parametrize("recipe", [r for r in CTRecipe if r not in SGLANG])
def test_compressed_tensors_library_output(tmp_path: Path, recipe: CTRecipe) -> None:
    arch = TinyArch.QWEN3_MOE
    exp = export_compressed_tensors(_model(arch), arch, tmp_path, recipe)
    qcfg, t = _qcfg(tmp_path), _tensors(tmp_path)
    assert qcfg["quant_method"] == "compressed-tensors" and qcfg["quantization_status"] == "compressed"
    assert "lm_head" in qcfg["ignore"]  # type: ignore[operator]
    state = checkpoint_state_dict(_model(arch), arch)
    expert = "model.layers.1.mlp.experts.3.down_proj"
    if recipe in (CTRecipe.W4A16, CTRecipe.W4A16_EXPERTS):
        assert qcfg["format"] == "pack-quantized"
        assert t[f"{expert}.weight_packed"].shape == (256, 256 * 4 // 32)
        assert t[f"{expert}.weight_scale"].shape == (256, 2) and f"{expert}.weight_zero_point" not in t
    else:
        assert qcfg["format"] == "int-quantized" and t[f"{expert}.weight"].dtype == torch.int8
    attention_quantized = "model.layers.0.self_attn.o_proj.weight_scale" in t
    assert attention_quantized == (recipe is not CTRecipe.W4A16_EXPERTS)
    assert "model.layers.0.mlp.gate.weight" in t and "lm_head.weight" in t
    # The library's decompression is within half a step of the float weights, plus the bf16
    # rounding of the stored scale and of the dequantized value (half a bf16 ulp, 2^-8, each).
    half_step = 1 / 15 if recipe not in (CTRecipe.W8A8,) else 1 / 254
    for module, w in exp.reference.items():
        assert max_rel_diff(w, state[f"{module}.weight"]) <= half_step + 2 * 2**-8, module
    assert set(ct_dequantized(tmp_path)) == set(exp.quantized)


@pytest.mark.parametrize("recipe", SGLANG)
def test_sglang_w4a8_rewrite_has_the_parameters_sglang_creates(tmp_path: Path, recipe: CTRecipe) -> None:
    arch = TinyArch.QWEN3_MOE
    export_compressed_tensors(_model(arch), arch, tmp_path, recipe)
    qcfg, t = _qcfg(tmp_path), _tensors(tmp_path)
    clip = recipe is CTRecipe.W4A8_MOE_SGLANG_CLIP
    groups = qcfg["config_groups"]
    assert isinstance(groups, dict) and groups["group_1"].get("activation_use_clip", False) is clip
    for proj, n, k in (("gate_proj", 256, 256), ("down_proj", 256, 256)):
        m = f"model.layers.1.mlp.experts.3.{proj}"
        assert t[f"{m}.weight"].dtype == torch.int8 and tuple(t[f"{m}.weight"].shape) == (n // 2, k)
        assert t[f"{m}.weight_scale"].dtype == (torch.int64 if clip else torch.float32)
        assert tuple(t[f"{m}.weight_offset"].shape) == (n, 1) and not t[f"{m}.weight_offset"].any()
        if clip:
            assert tuple(t[f"{m}.bias"].shape) == (n,) and f"{m}.scale_bias" not in t
            assert (f"{m}.alpha" in t) is (proj == "down_proj")
        else:
            assert tuple(t[f"{m}.scale_bias"].shape) == ((n, 16) if proj == "down_proj" else (n, 1))
    assert t["model.layers.0.self_attn.o_proj.weight"].shape == (256, 256)  # attention (W8A8) untouched


def test_gguf_permutation_is_convert_hf_to_gguf_s() -> None:
    w = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3)
    # LlamaModel.permute(w, n_head=2, n_head_kv=2), in numpy as llama.cpp writes it
    ref = w.numpy().reshape(2, 2, 2, 3).swapaxes(1, 2).reshape(8, 3)
    assert np.array_equal(permute_qk(w, 2).numpy(), ref)
    assert torch.equal(unpermute_qk(permute_qk(w, 2), 2), w)


def test_gguf_file_names_types_and_reference(tmp_path: Path) -> None:
    arch = TinyArch.QWEN3_MOE
    exp: Exported = export_gguf(_model(arch), arch, tmp_path, QT.Q4_0)
    reader = gguf.GGUFReader(str(tmp_path / "model.gguf"))
    infos = {t.name: t for t in reader.tensors}
    arch_field = reader.get_field("general.architecture")
    assert arch_field is not None and arch_field.contents() == "qwen3moe"
    gate = infos["blk.0.ffn_gate_exps.weight"]
    assert gate.tensor_type == QT.Q4_0 and tuple(int(x) for x in gate.shape) == (256, 256, 4)  # ggml order
    assert infos["blk.0.ffn_gate_inp.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert infos["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert {"token_embd.weight", "output.weight", "blk.1.attn_q.weight", "blk.1.ffn_down_exps.weight"} <= set(infos)
    # reference = gguf-py's dequantization of what is in the file, un-permuted and split per expert
    down = torch.from_numpy(gguf.quants.dequantize(infos["blk.1.ffn_down_exps.weight"].data, QT.Q4_0))
    assert torch.equal(exp.reference["model.layers.1.mlp.experts.2.down_proj"], down[2])
    # qwen3moe Q/K are written unpermuted (convert_hf_to_gguf's Qwen classes do not permute)
    q = torch.from_numpy(gguf.quants.dequantize(infos["blk.0.attn_q.weight"].data, QT.Q4_0))
    assert torch.equal(exp.reference["model.layers.0.self_attn.q_proj"], q)
    dense = export_gguf(_model(TinyArch.LLAMA), TinyArch.LLAMA, tmp_path / "llama", QT.Q8_0)
    infos = {t.name: t for t in gguf.GGUFReader(str(tmp_path / "llama" / "model.gguf")).tensors}
    k = torch.from_numpy(gguf.quants.dequantize(infos["blk.1.attn_k.weight"].data, QT.Q8_0))
    assert torch.equal(dense.reference["model.layers.1.self_attn.k_proj"], unpermute_qk(k, 2))
    assert not torch.equal(dense.reference["model.layers.1.self_attn.k_proj"], k)
    json.loads((tmp_path / "config.json").read_text())  # the skeleton config is there
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())


def test_gguf_refuses_types_gguf_py_cannot_quantize(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot quantize"):
        export_gguf(_model(TinyArch.LLAMA), TinyArch.LLAMA, tmp_path, QT.Q4_K)


def test_q6_k_blocks_decode_with_gguf_py() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 512)).astype(np.float32)
    w[0, :256] = 0.0  # an all-zero super-block encodes d = 0 and decodes to zeros
    blocks = quantize_q6_k(w)
    assert blocks.shape == (8, 2 * 210) and blocks.dtype == np.uint8
    back = gguf.quants.dequantize(blocks, QT.Q6_K)
    assert np.all(back[0, :256] == 0)
    # half a 6-bit step of the sub-block max (1/62) plus the int8 sub-scale rounding (1/254)
    assert float(np.abs(back - w).max() / np.abs(w).max()) <= 1 / 62 + 1 / 254 + 1e-3
    with pytest.raises(ValueError, match="K % 256"):
        quantize_q6_k(w[:, :128])


def test_writers_dense_zero_point_words_are_what_numerics_unpacks(tmp_path: Path) -> None:
    # a v2 GPTQ folder's zeros unpack to the true symmetric zero 8
    export_gptq(_model(TinyArch.LLAMA, torch.float16), TinyArch.LLAMA, tmp_path, v2=True)
    qz = _tensors(tmp_path)["model.layers.1.mlp.down_proj.qzeros"]
    assert torch.all(nm.unpack_bits(qz, 4, qz.size(1) * 8) == 8)
