"""Export every HF-format case with its real producer, on CPU, and record the producer's reference.

Runs inside the HF producers' virtual environment (``make producers``):
``python tests/producers/hf_job.py OUT_DIR [CASE_ID ...]``, each case in its own process. For
each case of ``hf_cases.py`` it builds a tiny random-init model (fixed seed) with a local word-level tokenizer in
``OUT/<id>/float``, runs auto-round in RTN mode (``iters=0``) twice with the same settings,
once in the case's format (``OUT/<id>/export``) and once as ``fake`` (auto-round's own
quantize-dequantize model in float, ``OUT/<id>/fake``), and writes ``reference.safetensors``:
``input_ids``, ``float_logits`` and ``fake_logits`` (float32). A failure writes ``ERROR.txt``.
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_cases import BY_ID, CASES, HfCase

SEED = 1234
BATCH = (2, 12)
VOCAB = 320


def _tokenizer(out: Path) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(VOCAB - 2)}
    vocab.update({"<unk>": VOCAB - 2, "<pad>": VOCAB - 1})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<pad>",
                                   bos_token="<pad>")
    fast.save_pretrained(out)
    return fast


def _float_model(case: HfCase, out: Path) -> Any:
    import transformers as tf

    common: dict[str, Any] = {
        "vocab_size": VOCAB, "hidden_size": case.hidden, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 128, "tie_word_embeddings": False,
    }
    if case.arch == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(intermediate_size=512, **common))
    elif case.arch == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(intermediate_size=512, **common))
    elif case.arch == "llama_bias":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(intermediate_size=512, attention_bias=True, **common))
    elif case.arch == "mixtral":
        model = tf.MixtralForCausalLM(tf.MixtralConfig(
            intermediate_size=256, num_local_experts=4, num_experts_per_tok=2, **common))
    elif case.arch == "qwen3_moe":
        model = tf.Qwen3MoeForCausalLM(tf.Qwen3MoeConfig(
            intermediate_size=512, moe_intermediate_size=256, num_experts=4, num_experts_per_tok=2,
            decoder_sparse_step=1, norm_topk_prob=True, **common))
    elif case.arch == "deepseek_v3":  # MLA + routed experts + a shared expert; layer 0 dense
        model = tf.DeepseekV3ForCausalLM(tf.DeepseekV3Config(
            intermediate_size=512, moe_intermediate_size=128, n_routed_experts=4, n_shared_experts=1,
            num_experts_per_tok=2, n_group=1, topk_group=1, first_k_dense_replace=1, q_lora_rank=128,
            kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=64,
            **{**{k: v for k, v in common.items() if k != "head_dim"}, "num_key_value_heads": 4}))
    else:
        raise ValueError(f"unknown arch {case.arch!r}")
    torch.manual_seed(SEED)
    with torch.no_grad():  # larger than init_range so that quantization noise is visible
        for name, p in model.named_parameters():
            if name.endswith("mlp.gate.weight"):
                p.normal_(0.0, 0.6)  # well-separated router logits (see docs/e2e.md)
            elif p.ndim >= 2:
                p.normal_(0.0, 0.06)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.3)
    model = model.to(getattr(torch, case.dtype)).eval()
    model.save_pretrained(out)
    return model


def _autoround(case: HfCase, float_dir: Path, tok: Any, out: Path, fmt: str) -> Path:
    """One auto-round RTN export; returns the folder holding its config.json."""
    from auto_round import AutoRound

    ar = AutoRound(str(float_dir), tokenizer=tok, bits=case.bits, group_size=case.group_size, sym=case.sym,
                   iters=0, nsamples=4, seqlen=16,
                   dataset=[" ".join(f"w{i}" for i in range(j, j + 16)) for j in range(4)])
    ar.quantize_and_save(str(out), format=fmt)
    return next(p.parent for p in sorted(out.rglob("config.json")))


def _llm_compressor(case: HfCase, float_dir: Path, tok: Any, export: Path, ids: torch.Tensor) -> torch.Tensor:
    """A data-free ``oneshot`` with the case's preset; returns the logits of the in-memory model
    afterwards (llm-compressor's own simulation of the scheme), then saves it compressed."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(float_dir, dtype=getattr(torch, case.dtype))
    custom = _custom_scheme(case.fmt)
    if custom is None:
        oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=case.fmt, ignore=list(case.ignore)))
    else:  # static activations need calibration: a few in-memory token rows, nothing from a hub
        from datasets import Dataset

        gen = torch.Generator().manual_seed(SEED + 1)
        rows = [torch.randint(0, VOCAB - 2, (16,), generator=gen).tolist() for _ in range(8)]
        data = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * 16 for _ in rows]})
        oneshot(model=model, processor=tok, dataset=data, num_calibration_samples=len(rows), max_seq_length=16,
                recipe=QuantizationModifier(config_groups={"group_0": custom}, ignore=list(case.ignore)))
    with torch.no_grad():
        sim = model.to(torch.float32)(input_ids=ids).logits.float()
    model.to(getattr(torch, case.dtype)).save_pretrained(export, save_compressed=True)
    tok.save_pretrained(export)
    return sim


def _custom_scheme(fmt: str) -> Any:
    """The int8 schemes no llm-compressor preset names: static per-tensor activations, asymmetric."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    if fmt == "W8A8_STATIC":
        return QuantizationScheme(
            targets=["Linear"], weights=QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="channel"),
            input_activations=QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="tensor",
                                               dynamic=False))
    if fmt == "W8A8_ASYM":
        return QuantizationScheme(
            targets=["Linear"], weights=QuantizationArgs(num_bits=8, type="int", symmetric=False, strategy="channel"),
            input_activations=QuantizationArgs(num_bits=8, type="int", symmetric=False, strategy="token",
                                               dynamic=True))
    return None


def run_case(case: HfCase, root: Path) -> None:
    """Export one case under ``root / case.id`` (replacing what was there)."""
    from transformers import AutoModelForCausalLM

    out = root / case.id
    shutil.rmtree(out, ignore_errors=True)
    float_dir = out / "float"
    float_dir.mkdir(parents=True)
    try:
        tok = _tokenizer(float_dir)
        model = _float_model(case, float_dir)
        ids = torch.randint(0, VOCAB - 2, BATCH, generator=torch.Generator().manual_seed(SEED))
        if case.producer == "llm-compressor":
            sim = _llm_compressor(case, float_dir, tok, out / "export", ids)
            # The reference is compressed-tensors' own decompression of the saved checkpoint (weights
            # decoded by the library; activations float), as transformers loads it. Where transformers
            # cannot reload the compressed MoE experts (its weight conversion fails for per-expert
            # tensors), it is llm-compressor's own in-memory simulation of the scheme instead.
            kind = {"kind": "decompressed"}
            try:
                dec = AutoModelForCausalLM.from_pretrained(out / "export", dtype=torch.float32).eval()
                with torch.no_grad():
                    fake = dec(input_ids=ids).logits.float()
            except Exception as exc:  # recorded in reference.json and docs/e2e.md
                fake = sim.clone()
                kind = {"kind": "simulation", "why": f"{type(exc).__name__}: {str(exc)[:200]}"}
            with torch.no_grad():
                ref = {"input_ids": ids, "float_logits": model.to(torch.float32)(input_ids=ids).logits.float(),
                       "fake_logits": fake, "sim_logits": sim}
            save_file({k: v.contiguous() for k, v in ref.items()}, str(out / "reference.safetensors"))
            (out / "reference.json").write_text(json.dumps(kind))
            return
        if case.producer == "auto-round-model-free":
            from auto_round import AutoRound

            AutoRound(model=str(float_dir), scheme=f"W{case.bits}A16", model_free=True, sym=case.sym,
                      group_size=case.group_size).quantize_and_save(str(out / "raw"))
            export = next(p.parent for p in sorted((out / "raw").rglob("config.json")))
        else:
            export = _autoround(case, float_dir, tok, out / "raw", case.fmt)
        shutil.move(str(export), str(out / "export"))
        fake = _autoround(case, float_dir, tok, out / "raw_fake", "fake")
        shutil.move(str(fake), str(out / "fake"))
        fq = AutoModelForCausalLM.from_pretrained(out / "fake", dtype=torch.float32).eval()
        with torch.no_grad():
            ref = {"input_ids": ids, "float_logits": model.to(torch.float32)(input_ids=ids).logits.float(),
                   "fake_logits": fq(input_ids=ids).logits.float()}
        save_file({k: v.contiguous() for k, v in ref.items()}, str(out / "reference.safetensors"))
        (out / "versions.json").write_text(json.dumps({"auto_round": _version("auto_round")}))
    except Exception as exc:  # recorded for docs/e2e.md, never hidden
        (out / "ERROR.txt").write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module.replace("_", "-"))


def main() -> int:
    import subprocess

    if sys.argv[1] == "--one":  # one case in this process (see below)
        run_case(BY_ID[sys.argv[3]], Path(sys.argv[2]))
        return 0
    root = Path(sys.argv[1]).resolve()
    ids = sys.argv[2:] or [c.id for c in CASES]
    root.mkdir(parents=True, exist_ok=True)
    for case_id in ids:
        # One process per case: auto-round patches transformers' loading, which changed whether a
        # later llm-compressor case reloads (seen with the Qwen3-MoE one); a case must not depend
        # on which ran before it.
        subprocess.run([sys.executable, __file__, "--one", str(root), case_id], check=True)
        status = "ERROR" if (root / case_id / "ERROR.txt").exists() else "ok"
        print(f"[hf] {case_id}: {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
