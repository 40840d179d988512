"""Export every msModelSlim case with msModelSlim itself, on CPU, and record its own references.

Runs inside msModelSlim's virtual environment (``make producers``), never in quantspec's:
``python tests/producers/msmodelslim_job.py OUT_DIR [CASE_ID ...]``. For each case of
``ms_cases.py`` it

1. builds a tiny random-init model (fixed seed) and a local byte-level GPT-2 tokenizer
   (msModelSlim loads the slow tokenizer, which needs no sentencepiece) in ``OUT/<id>/float``;
2. runs ``msmodelslim quant --device cpu --config_path <recipe>`` in this process, with the
   recipe's ``linear_quant`` groups and the ``ascendv1_saver``, into ``OUT/<id>/export``;
3. keeps a copy of every fake-quantized module msModelSlim hands to its saver (its own IR
   classes, e.g. ``W8A8StaticFakeQuantLinear``, whose ``forward`` is msModelSlim's simulation of
   the scheme), puts them into the float model in place of the linears and runs a fixed batch:
   ``reference.safetensors`` holds ``input_ids``, ``float_logits`` and ``fakequant_logits``, and
   ``probes.safetensors`` the first inputs each fake-quantized module saw in that forward
   (``<module>.x``) with msModelSlim's outputs for them (``<module>.y``) and, for dynamic and
   weight-only modules, the weight msModelSlim's module applies (``<module>.w``, probed);
4. writes ``OUT/<id>/ERROR.txt`` with msModelSlim's error instead when the export fails.

Nothing here is imported by quantspec or its tests: they read the files.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch
import yaml  # type: ignore[import-untyped]
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ms_cases import BY_ID, CASES, MsCase

SEED = 1234
BATCH = (2, 12)
#: Rows of real activations kept per quantized module (its input during the reference forward).
PROBE_ROWS = 16


def _tokenizer(out: Path) -> None:
    from transformers import GPT2Tokenizer
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    GPT2Tokenizer(str(out / "vocab.json"), str(out / "merges.txt"), pad_token="<|endoftext|>").save_pretrained(out)


def _float_model(case: MsCase, out: Path) -> Any:
    import transformers as tf

    common: dict[str, Any] = {
        "vocab_size": 320, "hidden_size": case.hidden, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 128, "torch_dtype": case.dtype,
        "tie_word_embeddings": False,
    }
    if case.arch == "llama":
        cfg = tf.LlamaConfig(intermediate_size=256, head_dim=32, attention_bias=case.attention_bias, **common)
        cls = tf.LlamaForCausalLM
    elif case.arch == "qwen2":
        cfg = tf.Qwen2Config(intermediate_size=256, **common)
        cls = tf.Qwen2ForCausalLM
    elif case.arch == "qwen3_moe":
        cfg = tf.Qwen3MoeConfig(intermediate_size=256, moe_intermediate_size=case.moe_intermediate, num_experts=4,
                                num_experts_per_tok=2, head_dim=32, decoder_sparse_step=1, norm_topk_prob=True,
                                **common)
        cls = tf.Qwen3MoeForCausalLM
    elif case.arch == "deepseek_v3":
        # MLA (q/kv LoRA), one dense layer then MoE with a shared expert and a noaux_tc router.
        cfg = tf.DeepseekV3Config(
            intermediate_size=256, moe_intermediate_size=case.moe_intermediate, n_routed_experts=4,
            num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=64, kv_lora_rank=32,
            qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32, n_group=1, topk_group=1,
            **{k: v for k, v in common.items() if k != "num_key_value_heads"}, num_key_value_heads=4)
        cls = tf.DeepseekV3ForCausalLM
    else:
        raise ValueError(f"unknown arch {case.arch!r}")
    torch.manual_seed(SEED)
    model = cls(cfg).to(getattr(torch, case.dtype))
    with torch.no_grad():  # larger than init_range so that quantization noise is visible
        for name, p in model.named_parameters():
            if name.endswith("mlp.gate.weight"):
                # Well-separated router logits: a top-k choice that quantization noise can flip
                # sends a token through other experts, which no logit bound can absorb.
                p.normal_(0.0, 0.6)
            elif p.ndim == 2:
                p.normal_(0.0, 0.08)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.3)
    model.eval()
    model.save_pretrained(out)
    _tokenizer(out)
    return model


def _recipe(case: MsCase) -> dict[str, Any]:
    process: dict[str, Any]
    if case.processor == "autoround_quant":
        # Two tuning steps: the export's layout is what matters here, not the tuned accuracy.
        process = {"type": "autoround_quant", "iters": 2, "strategies": [
            {"qconfig": qc, "include": list(inc), "exclude": list(exc)} for qc, inc, exc in case.groups]}
    else:
        groups = [{"type": "linear_quant", "qconfig": qc, "include": list(inc), "exclude": list(exc)}
                  for qc, inc, exc in case.groups]
        process = groups[0] if len(groups) == 1 else {"type": "group", "configs": groups}
    return {"apiversion": "modelslim_v1", "spec": {
        "process": [process], "save": [{"type": "ascendv1_saver", "part_file_size": 0}]}}


class _Capture:
    """Keeps a CPU copy of every msModelSlim IR module the saver processes, by module name."""

    def __init__(self) -> None:
        from msmodelslim.core.quant_service.modelslim_v1.save.ascendv1 import AscendV1Saver

        self.modules: dict[str, torch.nn.Module] = {}
        self._saver = AscendV1Saver
        self._orig = AscendV1Saver._process_module
        capture = self

        def process(saver: Any, prefix: str, module: torch.nn.Module) -> Any:
            if type(module).__module__.startswith("msmodelslim.ir") and any(
                p.device.type != "meta" for p in module.parameters(recurse=False)
            ):
                capture.modules[prefix] = copy.deepcopy(module).to("cpu")
            return capture._orig(saver, prefix, module)

        AscendV1Saver._process_module = process

    def close(self) -> None:
        self._saver._process_module = self._orig


def _quantize(float_dir: Path, export: Path, recipe: Path) -> None:
    from msmodelslim.cli.__main__ import main

    argv = sys.argv
    sys.argv = ["msmodelslim", "quant", "--model_type", "default", "--model_path", str(float_dir),
                "--save_path", str(export), "--device", "cpu", "--config_path", str(recipe)]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"msmodelslim quant exited with {exc.code}") from exc
    finally:
        sys.argv = argv
    if not (export / "quant_model_description.json").is_file():
        raise RuntimeError("msmodelslim quant wrote no quant_model_description.json (see its log above)")


def _fake_quant_model(model: Any, export: Path, captured: dict[str, torch.nn.Module]) -> Any:
    """The float model with msModelSlim's own fake-quant modules in place of the quantized linears,
    and the export's FLOAT tensors (norms, embeddings, float linears) loaded as written; float32, so
    that the reference carries no half-precision rounding of its own."""
    fq = copy.deepcopy(model).to(torch.float32)
    desc = json.loads((export / "quant_model_description.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for f in sorted(export.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    floats = {k: tensors[k] for k, v in desc.items() if v == "FLOAT" and k in tensors}
    fq.load_state_dict(floats, strict=False)
    for name, module in captured.items():
        parent, _, leaf = name.rpartition(".")
        setattr(fq.get_submodule(parent) if parent else fq, leaf, module.to(torch.float32))
    return fq


def _probe(name: str, store: dict[str, torch.Tensor], dtype: torch.dtype) -> Any:
    """A forward hook keeping a module's first input rows, rounded to the model dtype (what a
    quantized model in that dtype feeds its layers), and msModelSlim's output for them."""

    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        if name + ".x" not in store and args and isinstance(args[0], torch.Tensor):
            x = args[0].reshape(-1, args[0].shape[-1])[:PROBE_ROWS].to(dtype).float()
            store[name + ".x"] = x.clone()
            store[name + ".y"] = module(x).float().contiguous()

    return hook


@torch.no_grad()
def _effective_weights(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """``<module>.w``: the ``[N, K]`` weight each dynamic or weight-only fake-quant module applies,
    probed with one-hot rows (they quantize exactly under per-token and per-block scales; static
    per-tensor activation quantization does not, so those modules are left out)."""
    out: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        if "Static" in type(module).__name__ and "W8A16" not in type(module).__name__:
            continue
        k = module.weight.shape[-1] * (2 if module.weight.dtype == torch.uint8 else 1)
        eye = torch.eye(k, dtype=torch.float32)
        out[name + ".w"] = (module(eye) - module(torch.zeros(1, k))).t().contiguous().float()
    return out


#: Files a user copies next to an old-API export (it writes only the description and weights).
_MODEL_FILES = ("config.json", "generation_config.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                "special_tokens_map.json")


def _old_api(case: MsCase, model: Any, float_dir: Path, export: Path, ids: torch.Tensor) -> None:
    """The old API (``Calibrator``/``QuantConfig``, ``save_type=["safe_tensor"]``), layers outside the
    MoE experts disabled, as the W4A8 MoE recipes do; then the model files copied beside it."""
    from msmodelslim.pytorch.llm_ptq.llm_ptq_tools import Calibrator, QuantConfig

    keep = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
            and (n == "lm_head" or (case.arch == "qwen3_moe" and "experts" not in n))]
    cfg = QuantConfig(dev_type="cpu", disable_names=keep, **dict(case.old_config))
    # The old API dumps features.npy into the working directory and refuses it unless it is
    # private (no group write, nothing for others): run it in a scratch folder with umask 027.
    cwd, mask = os.getcwd(), os.umask(0o027)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            os.chdir(scratch)
            calib = Calibrator(copy.deepcopy(model), cfg, calib_data=[[ids]], disable_level="L0")
            calib.run()
            calib.save(str(export.resolve()), save_type=["safe_tensor"])
    finally:
        os.chdir(cwd)
        os.umask(mask)
    for name in _MODEL_FILES:
        if (float_dir / name).is_file():
            shutil.copy2(float_dir / name, export / name)


class _ActInt8(torch.nn.Module):
    """A linear fed int8 activations as its kernel quantizes them: per token, symmetric
    (``amax / 127``, round half to even: ``npu_dynamic_quant``), or static per tensor with the
    file's ``input_scale``/``input_offset`` (``npu_quantize``)."""

    def __init__(self, linear: torch.nn.Module, static: tuple[float, float] | None) -> None:
        super().__init__()
        self.linear, self.static = linear, static

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static is not None:
            scale, offset = self.static
            q = torch.clamp(torch.round(x / scale + offset), -128, 127)
            return self.linear((q - offset) * scale)
        scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127.0
        return self.linear(torch.clamp(torch.round(x / scale), -128, 127) * scale)


@torch.no_grad()
def _decoded_model(model: Any, export: Path) -> Any:
    """The float model with every quantized weight decoded from the export's files (float32),
    independently of quantspec: ``q * weight_scale`` per channel, times ``weight_scale_second`` per
    group when present; those layers see per-token int8 activations, as their kernel does."""
    dec = copy.deepcopy(model).to(torch.float32)
    tensors: dict[str, torch.Tensor] = {}
    for f in sorted(export.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    state = dec.state_dict()
    for name, q in tensors.items():
        if not name.endswith(".weight") or q.dtype != torch.int8:
            continue
        module = name[: -len(".weight")]
        w = q.to(torch.float32)
        if module + ".weight_scale_second" in tensors:
            s2 = tensors[module + ".weight_scale_second"].to(torch.float32)
            w = (w.reshape(w.shape[0], s2.shape[1], -1) * s2.unsqueeze(-1)).reshape(w.shape)
        w = w * tensors[module + ".weight_scale"].to(torch.float32).reshape(-1, 1)
        state[name] = w
    dec.load_state_dict(state)
    for name, q in tensors.items():
        if name.endswith(".weight") and q.dtype == torch.int8:
            module = name[: -len(".weight")]
            static = None
            if module + ".input_scale" in tensors:
                static = (float(tensors[module + ".input_scale"].float().reshape(-1)[0]),
                          float(tensors[module + ".input_offset"].float().reshape(-1)[0]))
            parent, _, leaf = module.rpartition(".")
            owner = dec.get_submodule(parent)
            setattr(owner, leaf, _ActInt8(getattr(owner, leaf), static))
    return dec


def run_case(case: MsCase, root: Path) -> None:
    """Export one case under ``root / case.id`` (replacing what was there)."""
    out = root / case.id
    shutil.rmtree(out, ignore_errors=True)
    float_dir, export = out / "float", out / "export"
    float_dir.mkdir(parents=True)
    model = _float_model(case, float_dir)
    if case.api == "old":
        ids = torch.randint(0, 256, BATCH, generator=torch.Generator().manual_seed(SEED))
        try:
            _old_api(case, model, float_dir, export, ids)
            with torch.no_grad():
                dec = _decoded_model(model, export)
                ref = {"input_ids": ids, "decoded_logits": dec(input_ids=ids).logits.float(),
                       "float_logits": model.to(torch.float32)(input_ids=ids).logits.float()}
            save_file({k: v.contiguous() for k, v in ref.items()}, str(out / "reference.safetensors"))
        except Exception as exc:  # recorded for docs/e2e.md, never hidden
            (out / "ERROR.txt").write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        return
    recipe = out / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(case), sort_keys=False))
    capture = _Capture()
    try:
        _quantize(float_dir, export, recipe)
        ids = torch.randint(0, 256, BATCH, generator=torch.Generator().manual_seed(SEED))
        fq = _fake_quant_model(model, export, capture.modules)
        probes: dict[str, torch.Tensor] = {}
        dtype = getattr(torch, case.dtype)
        hooks = [fq.get_submodule(name).register_forward_hook(_probe(name, probes, dtype)) for name in capture.modules]
        with torch.no_grad():
            ref = {"input_ids": ids, "float_logits": model.to(torch.float32)(input_ids=ids).logits.float(),
                   "fakequant_logits": fq(input_ids=ids).logits.float()}
        for h in hooks:
            h.remove()
        probes.update(_effective_weights(capture.modules))
        save_file({k: v.contiguous() for k, v in ref.items()}, str(out / "reference.safetensors"))
        save_file(probes, str(out / "probes.safetensors"))
        (out / "captured.json").write_text(json.dumps(
            {k: type(v).__name__ for k, v in sorted(capture.modules.items())}, indent=1))
    except Exception as exc:  # recorded for docs/e2e.md, never hidden
        chain, e = [], exc
        while e is not None and len(chain) < 5:  # msModelSlim wraps the real error
            chain.append(f"{type(e).__name__}: {e}".splitlines()[0])
            e = e.__cause__ or e.__context__
        (out / "ERROR.txt").write_text(" <- ".join(chain) + "\n\n" + traceback.format_exc())
    finally:
        capture.close()


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    ids = sys.argv[2:] or [c.id for c in CASES]
    root.mkdir(parents=True, exist_ok=True)
    for case_id in ids:
        run_case(BY_ID[case_id], root)
        status = "ERROR" if (root / case_id / "ERROR.txt").exists() else "ok"
        print(f"[msmodelslim] {case_id}: {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
