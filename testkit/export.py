"""Write a float transformers model as a quantized checkpoint folder, per producer format.

Each ``export_*`` function writes ``config.json`` (with the producer's ``quantization_config``
when the format has one), ``model.safetensors`` under the producer's exact tensor names
(per-expert 2-D MoE modules, see :mod:`testkit.models`) and the producer's
side files, then returns an :class:`Exported` record. The per-tensor layouts come from
:mod:`testkit.writers` (round-to-nearest, no calibration, which is all a layout test
needs); routers, embeddings, norms and ``lm_head`` stay float as the producers keep them.

compressed-tensors and GGUF folders are written by their own libraries in
:mod:`testkit.export_ct` and :mod:`testkit.export_gguf`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import PreTrainedModel

from testkit import writers as wr
from testkit.models import TinyArch, checkpoint_state_dict, token_batch

#: A per-module writer: float ``[N, K]`` weight and module name to the module's tensors by suffix.
ModuleWriter = Callable[[Tensor, str], dict[str, Tensor]]

EMBEDDING_SUFFIXES = ("embed_tokens",)
LM_HEAD = "lm_head"
ROUTER_SUFFIXES = ("mlp.gate", "block_sparse_moe.gate")


@dataclass(frozen=True)
class Exported:
    """A checkpoint folder written by an exporter."""

    path: Path
    arch: TinyArch
    #: Checkpoint module names whose weight was quantized.
    quantized: tuple[str, ...]
    #: Checkpoint module names kept float (embeddings, norms excluded: weight-bearing linears only).
    float_linears: tuple[str, ...]
    #: The producer's own dequantized weights (module -> float32 ``[N, K]``), when it can decompress.
    reference: dict[str, Tensor] = field(default_factory=dict)


def module_kind(module: str) -> str:
    """``embedding``, ``lm_head``, ``router``, ``expert`` or ``linear`` for a 2-D weight's module."""
    if module.endswith(EMBEDDING_SUFFIXES):
        return "embedding"
    if module == LM_HEAD:
        return "lm_head"
    if module.endswith(ROUTER_SUFFIXES):
        return "router"
    if ".experts." in module:
        return "expert"
    return "linear"


def linear_modules(state: Mapping[str, Tensor]) -> list[str]:
    """Modules of the float checkpoint that are ``nn.Linear`` in the model (2-D weights, no embeddings)."""
    return [
        k.removesuffix(".weight")
        for k, t in state.items()
        if k.endswith(".weight") and t.ndim == 2 and module_kind(k.removesuffix(".weight")) != "embedding"
    ]


def write_folder(
    out: Path,
    model: PreTrainedModel,
    tensors: Mapping[str, Tensor],
    *,
    quantization_config: Mapping[str, Any] | None = None,
    side_files: Mapping[str, Any] | None = None,
) -> None:
    """Write ``config.json``, ``model.safetensors`` and JSON side files into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    if quantization_config is not None:
        config["quantization_config"] = dict(quantization_config)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    flat = {k: v.contiguous() for k, v in tensors.items()}
    save_file(flat, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name, data in (side_files or {}).items():
        (out / name).write_text(json.dumps(data, indent=2) + "\n")


def quantize_modules(
    state: Mapping[str, Tensor], writer_for: Callable[[str], ModuleWriter | None]
) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Replace the weight of every linear module ``writer_for`` names by its writer's tensors.

    Returns the new tensors (float tensors of other modules kept, in checkpoint order), the
    quantized module names and the linears left float.
    """
    linears = set(linear_modules(state))
    out: dict[str, Tensor] = {}
    quantized: list[str] = []
    kept: list[str] = []
    for name, tensor in state.items():
        module = name.removesuffix(".weight")
        writer = writer_for(module) if module in linears and name.endswith(".weight") else None
        if writer is None:
            out[name] = tensor
            if module in linears and name.endswith(".weight"):
                kept.append(module)
            continue
        for suffix, t in writer(tensor, module).items():
            out[f"{module}.{suffix}"] = t
        quantized.append(module)
    return out, quantized, kept


def write_float(model: PreTrainedModel, arch: TinyArch, out: Path) -> Exported:
    """The float checkpoint as transformers would save it (for online MXFP8 and as a baseline)."""
    state = checkpoint_state_dict(model, arch)
    write_folder(out, model, state)
    return Exported(out, arch, quantized=(), float_linears=tuple(linear_modules(state)))


# ---------------------------------------------------------------------------------- ModelSlim
MODELSLIM_LABELS = ("W8A8", "W8A8_DYNAMIC", "W4A4_DYNAMIC", "W4A8_DYNAMIC", "W8A8_MXFP8")


@torch.no_grad()
def calibrate_input_ranges(model: PreTrainedModel, *, batches: int = 2) -> dict[str, tuple[float, float]]:
    """``(min, max)`` of every ``nn.Linear`` input over a few seeded token batches.

    Static W8A8 needs activation ranges; this is the calibration step msModelSlim runs, with
    the same fixed-batch idea and none of its outlier handling.
    """
    ranges: dict[str, tuple[float, float]] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def fn(_m: nn.Module, args: tuple[Tensor, ...], _out: Tensor) -> None:
            x = args[0].detach().to(torch.float32)
            lo, hi = float(x.min()), float(x.max())
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    try:
        for i in range(batches):
            model(input_ids=token_batch(seed=10_000 + i), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return ranges


def _static_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 activation ``(scale, offset)`` covering ``[lo, hi]`` (zero representable)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-6) / 255.0
    offset = round(-128.0 - lo / scale)
    return scale, max(-128, min(127, offset))


def modelslim_writer(label: str, model_dtype: torch.dtype, ranges: Mapping[str, tuple[float, float]]) -> ModuleWriter:
    """The module writer of one ModelSlim type label."""

    def write(w: Tensor, module: str) -> dict[str, Tensor]:
        match label:
            case "W8A8":
                scale, offset = _static_params(*ranges[module])
                return wr.modelslim_w8a8_static(w, model_dtype=model_dtype, input_scale=scale, input_offset=offset)
            case "W8A8_DYNAMIC":
                return wr.modelslim_w8a8_dynamic(w, model_dtype=model_dtype)
            case "W4A4_DYNAMIC" | "W4A8_DYNAMIC":
                # Both store one signed int4 per int8 byte with a float32 per-channel scale in the
                # pre-1.0.0 layout (W4A8 MoE runs them with int8 activations).
                return wr.modelslim_w4a4_dynamic(w)
            case "W8A8_MXFP8":
                return wr.modelslim_w8a8_mxfp8(w)
        raise ValueError(f"no ModelSlim writer for {label!r}")

    return write


def export_modelslim(
    model: PreTrainedModel, arch: TinyArch, out: Path, *, linear: str | None, moe: str | None = None
) -> Exported:
    """msModelSlim export: ``quant_model_description.json`` listing every tensor (``FLOAT`` included).

    ``linear`` is the label of the attention and dense-MLP linears (None: float), ``moe`` the label
    of the experts. ``version`` is ``1.0.0`` except for W4A8_DYNAMIC, whose 1.0.0 layout is the
    int4-pairs one; this exporter writes the one-int4-per-byte layout of earlier versions.
    """
    for label in (linear, moe):
        if label is not None and label not in MODELSLIM_LABELS:
            raise ValueError(f"unknown ModelSlim label {label!r}")
    model_dtype = next(model.parameters()).dtype
    ranges = calibrate_input_ranges(model) if "W8A8" in (linear, moe) else {}
    writers = {lab: modelslim_writer(lab, model_dtype, ranges) for lab in (linear, moe) if lab is not None}
    labels: dict[str, str] = {}

    def writer_for(module: str) -> ModuleWriter | None:
        kind = module_kind(module)
        label = moe if kind == "expert" else linear if kind == "linear" else None
        if label is None:
            return None
        labels[module] = label
        return writers[label]

    state = checkpoint_state_dict(model, arch)
    tensors, quantized, kept = quantize_modules(state, writer_for)
    main = moe or linear or "FLOAT"
    desc: dict[str, Any] = {"model_quant_type": main}
    if "W4A8_DYNAMIC" not in (linear, moe):
        desc["version"] = "1.0.0"
    desc |= {"group_size": 0, "kv_cache_type": None, "fa_quant_type": None, "metadata": {}, "optional": {}}
    for name in tensors:
        module = name.rpartition(".")[0]
        desc[name] = labels.get(module, "FLOAT")
    write_folder(out, model, tensors, side_files={"quant_model_description.json": desc})
    return Exported(out, arch, quantized=tuple(quantized), float_linears=tuple(kept))


# ---------------------------------------------------------------------------------- AWQ / GPTQ / auto-round
def _router_modules(state: Mapping[str, Tensor]) -> list[str]:
    return [m for m in linear_modules(state) if module_kind(m) == "router"]


def _weight_only_writer(fn: Callable[[Tensor], dict[str, Tensor]]) -> Callable[[str], ModuleWriter | None]:
    def writer_for(module: str) -> ModuleWriter | None:
        if module_kind(module) not in ("linear", "expert"):
            return None
        return lambda w, _m: fn(w)

    return writer_for


def export_awq(model: PreTrainedModel, arch: TinyArch, out: Path, *, bits: int = 4, group_size: int = 128) -> Exported:
    """AWQ GEMM (AutoAWQ ``to_transformers_dict`` keys; 8-bit as GPTQModel's AWQ writes it).

    Routers are excluded by substring as AutoAWQ's model classes do (Mixtral ``"gate"``; the
    Qwen3-MoE router by ``"mlp.gate"``); ``lm_head`` is never quantized by AutoAWQ.
    """
    state = checkpoint_state_dict(model, arch)
    tensors, quantized, kept = quantize_modules(
        state, _weight_only_writer(lambda w: wr.awq_gemm(w, bits=bits, group_size=group_size))
    )
    skip = None if arch is TinyArch.LLAMA else (["gate"] if arch is TinyArch.MIXTRAL else ["mlp.gate"])
    qcfg: dict[str, Any] = {
        "quant_method": "awq",
        "bits": bits,
        "group_size": group_size,
        "zero_point": True,
        "version": "gemm",
        "modules_to_not_convert": skip,
    }
    write_folder(out, model, tensors, quantization_config=qcfg)
    return Exported(out, arch, quantized=tuple(quantized), float_linears=tuple(kept))


def export_gptq(
    model: PreTrainedModel,
    arch: TinyArch,
    out: Path,
    *,
    bits: int = 4,
    group_size: int = 128,
    v2: bool = False,
    desc_act: bool = False,
) -> Exported:
    """GPTQ: v1 as AutoGPTQ/optimum write it (``checkpoint_format: gptq``, zero - 1), v2 as
    GPTQModel writes it (``format``/``checkpoint_format: gptq_v2``, routers in ``dynamic`` as
    ``-:`` negative matches). ``desc_act`` writes act-order groups (non-monotone ``g_idx``)."""
    state = checkpoint_state_dict(model, arch)
    counter = iter(range(1 << 30))
    tensors, quantized, kept = quantize_modules(
        state,
        _weight_only_writer(
            lambda w: wr.gptq(w, bits=bits, group_size=group_size, v1=not v2, act_order=desc_act, seed=next(counter))
        ),
    )
    routers = _router_modules(state)
    dynamic: dict[str, dict[str, Any]] | None = {f"-:^{re.escape(m)}$": {} for m in routers} or None
    qcfg: dict[str, Any]
    if v2:
        qcfg = {
            "bits": bits,
            "group_size": group_size,
            "desc_act": desc_act,
            "sym": True,
            "lm_head": False,
            "quant_method": "gptq",
            "method": "gptq",
            "format": "gptq_v2",
            "checkpoint_format": "gptq_v2",
            "pack_dtype": "int32",
            "dynamic": dynamic,
            "meta": {
                "quantizer": ["gptqmodel:5.0.0"],
                "static_groups": False,
                "true_sequential": True,
                "damp_percent": 0.05,
                "uri": "https://github.com/modelcloud/gptqmodel",
            },
        }
    else:
        qcfg = {
            "bits": bits,
            "group_size": group_size,
            "damp_percent": 0.01,
            "desc_act": desc_act,
            "static_groups": False,
            "sym": True,
            "true_sequential": True,
            "model_name_or_path": None,
            "model_file_base_name": None,
            "quant_method": "gptq",
            "checkpoint_format": "gptq",
        }
        if dynamic:
            qcfg["dynamic"] = dynamic
    write_folder(
        out,
        model,
        tensors,
        quantization_config=qcfg,
        side_files={
            "quantize_config.json": {k: v for k, v in qcfg.items() if k != "quant_method"} | {"quant_method": "gptq"}
        },
    )
    return Exported(out, arch, quantized=tuple(quantized), float_linears=tuple(kept))


def export_auto_round(
    model: PreTrainedModel,
    arch: TinyArch,
    out: Path,
    *,
    packing: wr.AutoRoundPacking = wr.AutoRoundPacking.AUTO_GPTQ,
    bits: int = 4,
    group_size: int = 128,
) -> Exported:
    """auto-round export (``quantization_config.json`` side file plus ``config.json``), routers
    listed in ``extra_config`` with ``bits: 16`` as the exporter does for skipped layers."""
    state = checkpoint_state_dict(model, arch)
    tensors, quantized, kept = quantize_modules(
        state, _weight_only_writer(lambda w: wr.auto_round(w, packing, bits=bits, group_size=group_size, sym=True))
    )
    qcfg: dict[str, Any] = {
        "bits": bits,
        "data_type": "int",
        "group_size": group_size,
        "sym": True,
        "iters": 0,
        "low_gpu_mem_usage": True,
        "autoround_version": "0.12.3",
        "block_name_to_quantize": "model.layers",
        "quant_method": "auto-round",
        "packing_format": packing.value,
    }
    routers = _router_modules(state)
    if routers:
        qcfg["extra_config"] = {m: {"bits": 16, "data_type": "float"} for m in routers}
    write_folder(out, model, tensors, quantization_config=qcfg, side_files={"quantization_config.json": qcfg})
    return Exported(out, arch, quantized=tuple(quantized), float_linears=tuple(kept))
