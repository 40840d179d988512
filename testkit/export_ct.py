"""compressed-tensors checkpoints written by the compressed-tensors library itself (CPU only).

llm-compressor is not needed for round-to-nearest schemes: the library's own lifecycle does the
rest. The exporter builds the checkpoint's module tree (one ``nn.Linear`` per linear module, MoE
experts per expert as llm-compressor calibrates them), applies the :class:`QuantizationConfig`
with ``apply_quantization_config``, fills each weight's qparams with the library's
``calculate_qparams`` from the weight's min/max (what the ``memoryless_minmax`` observer computes
for weights, without calibration data), then compresses with ``ModelCompressor.compress_model``
and serialises ``quantization_config`` with ``ModelCompressor.update_config``. The safetensors
names, dtypes and layouts are therefore the library's, not ours.

The producer's own decompression of the written folder is
:func:`ct_dequantized` (the library's model-free ``CompressedTensorsDequantizer``);
:func:`awq_dequantized` is the library's independent reading of AWQ GEMM folders.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from compressed_tensors.compressors import BaseCompressor, ModelCompressor  # type: ignore[import-untyped]
from compressed_tensors.entrypoints.convert.converters.autoawq import (  # type: ignore[import-untyped]
    AutoAWQConverter,
)
from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (  # type: ignore[import-untyped]
    CompressedTensorsDequantizer,
)
from compressed_tensors.quantization import (  # type: ignore[import-untyped]
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    apply_quantization_config,
    preset_name_to_scheme,
)
from compressed_tensors.quantization.utils import calculate_qparams  # type: ignore[import-untyped]
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedModel

from testkit.export import Exported, linear_modules, module_kind, write_folder
from testkit.models import TinyArch, checkpoint_state_dict

EXPERTS_RE = r"re:.*\.experts\.\d+\.(gate_proj|up_proj|down_proj|w1|w2|w3)$"
ATTENTION_RE = r"re:.*self_attn\.(q_proj|k_proj|v_proj|o_proj)$"
#: What llm-compressor's recipes put in ``ignore``: the head and the routers (class ``*Gate*``).
IGNORE = ["lm_head", r"re:.*mlp\.gate$", r"re:.*block_sparse_moe\.gate$"]


class CTRecipe(StrEnum):
    """The compressed-tensors schemes the end-to-end tests export."""

    #: Every linear W4A16 (``pack-quantized``, group 128, symmetric).
    W4A16 = "w4a16"
    #: Experts only W4A16; attention left unquantized (a common MoE recipe).
    W4A16_EXPERTS = "w4a16_experts"
    #: Every linear W8A8 int8: per-channel weights, dynamic per-token activations (``int-quantized``).
    W8A8 = "w8a8"
    #: Attention W8A8 (group_0) and experts W4A8 per channel with dynamic int8 tokens (group_1),
    #: the two-group layout SGLang's ``NPUCompressedTensorsW4A8Int8DynamicMoE`` reads.
    W4A8_MOE = "w4a8_moe"
    #: The same export with the experts rewritten to SGLang's layout (int4 pairs along N,
    #: ``weight_offset``, ``scale_bias``) ...
    W4A8_MOE_SGLANG = "w4a8_moe_sglang"
    #: ... and to its ``activation_use_clip`` variant (int64 scale words, ``bias``, ``alpha``).
    W4A8_MOE_SGLANG_CLIP = "w4a8_moe_sglang_clip"


def _w4a8_channel(targets: list[str]) -> QuantizationScheme:
    return QuantizationScheme(
        targets=targets,
        weights=QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="channel"),
        input_activations=QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="token", dynamic=True),
    )


def recipe_config(recipe: CTRecipe) -> QuantizationConfig:
    """The library :class:`QuantizationConfig` of a recipe."""
    groups: dict[str, QuantizationScheme]
    match recipe:
        case CTRecipe.W4A16:
            groups = {"group_0": preset_name_to_scheme("W4A16", ["Linear"])}
        case CTRecipe.W4A16_EXPERTS:
            groups = {"group_0": preset_name_to_scheme("W4A16", [EXPERTS_RE])}
        case CTRecipe.W8A8:
            groups = {"group_0": preset_name_to_scheme("W8A8", ["Linear"])}
        case CTRecipe.W4A8_MOE | CTRecipe.W4A8_MOE_SGLANG | CTRecipe.W4A8_MOE_SGLANG_CLIP:
            groups = {"group_0": preset_name_to_scheme("W8A8", [ATTENTION_RE]), "group_1": _w4a8_channel([EXPERTS_RE])}
    return QuantizationConfig(config_groups=groups, ignore=list(IGNORE))


def _module_tree(state: dict[str, Tensor]) -> nn.Module:
    """One ``nn.Linear`` per linear module of the checkpoint, at its checkpoint path."""
    root = nn.Module()
    for module in linear_modules(state):
        w = state[f"{module}.weight"]
        *parents, leaf = module.split(".")
        cur = root
        for p in parents:
            if not hasattr(cur, p):
                cur.add_module(p, nn.Module())
            cur = getattr(cur, p)
        lin = nn.Linear(w.size(1), w.size(0), bias=False, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
        cur.add_module(leaf, lin)
    return root


@torch.no_grad()
def _fill_weight_qparams(root: nn.Module) -> None:
    """Weight scale / zero point from the weight's own min/max, through the library's formula."""
    for _name, mod in root.named_modules():
        scheme = getattr(mod, "quantization_scheme", None)
        if not isinstance(mod, nn.Linear) or scheme is None or scheme.weights is None:
            continue
        args: QuantizationArgs = scheme.weights
        w = mod.weight.to(torch.float32)
        if args.strategy == "group":
            assert args.group_size is not None
            g = w.reshape(w.size(0), -1, args.group_size)
            lo, hi = g.amin(dim=-1), g.amax(dim=-1)
        elif args.strategy == "channel":
            lo, hi = w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
        else:
            raise ValueError(f"weight strategy {args.strategy} is not used by the recipes")
        scale, zp = calculate_qparams(lo, hi, args)
        # apply_quantization_config registered these parameters on the module.
        w_scale: Tensor = getattr(mod, "weight_scale")  # noqa: B009
        w_scale.copy_(scale.to(w_scale.dtype))
        w_zp: Tensor | None = getattr(mod, "weight_zero_point", None)
        if w_zp is not None:
            w_zp.copy_(zp.to(w_zp.dtype))


def export_compressed_tensors(model: PreTrainedModel, arch: TinyArch, out: Path, recipe: CTRecipe) -> Exported:
    """Quantize and compress with the compressed-tensors library; write the folder."""
    state = checkpoint_state_dict(model, arch)
    root = _module_tree(state)
    apply_quantization_config(root, recipe_config(recipe))
    _fill_weight_qparams(root)
    compressor = ModelCompressor.from_pretrained_model(root)
    compressor.compress_model(root)
    compressed = root.state_dict()
    quantized = sorted({n.rpartition(".")[0] for n in compressed if not n.endswith(".weight")})
    tensors: dict[str, Tensor] = {}
    for name, t in state.items():
        module = name.rpartition(".")[0]
        if module in quantized:
            for key in sorted(k for k in compressed if k.rpartition(".")[0] == module):
                tensors[key] = compressed[key].detach().clone().contiguous()
        else:
            tensors[name] = t
    write_folder(out, model, tensors)
    compressor.update_config(str(out))
    kept = tuple(m for m in linear_modules(state) if m not in quantized and module_kind(m) != "embedding")
    reference = ct_dequantized(out)
    if recipe in (CTRecipe.W4A8_MOE_SGLANG, CTRecipe.W4A8_MOE_SGLANG_CLIP):
        to_sglang_w4a8(out, clip=recipe is CTRecipe.W4A8_MOE_SGLANG_CLIP)
    return Exported(out, arch, quantized=tuple(quantized), float_linears=kept, reference=reference)


_SCALE_BIAS_SLICES = 16


def to_sglang_w4a8(folder: Path, *, clip: bool) -> None:
    """Rewrite the int4 experts of a compressed-tensors W4A8 folder into the tensors SGLang's
    ``NPUCompressedTensorsW4A8Int8DynamicMoE`` creates (``compressed_tensors_w4a8_int8_moe.py``).

    Per expert projection: ``weight`` int8 ``[N/2, K]`` (two int4 per byte along N, low nibble
    first, as its ``view(int32)`` repack expects), ``weight_offset`` float32 zeros ``[N, 1]``, and
    either ``scale_bias`` (``8 * sum_k(w * s)``: ``[N, 1]`` for gate/up, ``[N, 16]`` TP slices for
    down) with a float32 ``weight_scale``, or (``clip``) the scale as int64 fp32-bit words, a float
    ``bias [N]`` and, for down, ``alpha [1]``; ``activation_use_clip`` is set on ``group_1``.
    """
    from quantspec.runtime import numerics as nm

    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    experts = sorted({n.rpartition(".")[0] for n in tensors
                      if ".experts." in n and n.endswith(".weight") and tensors[n].dtype == torch.int8})
    for m in experts:
        q, s = tensors[f"{m}.weight"], tensors[f"{m}.weight_scale"].to(torch.float32)
        per = q.to(torch.float32) * s
        tensors[f"{m}.weight"] = nm.pack_int4_pairs(q, dim=0)
        tensors[f"{m}.weight_offset"] = torch.zeros_like(s)
        if clip:
            tensors[f"{m}.weight_scale"] = nm.float_bits_to_int64(s)
            tensors[f"{m}.bias"] = 8.0 * per.sum(1)
            if m.endswith("down_proj"):
                tensors[f"{m}.alpha"] = torch.ones(1)
            continue
        tensors[f"{m}.weight_scale"] = s  # SGLang's parameter is float32
        if m.endswith("down_proj"):
            tensors[f"{m}.scale_bias"] = 8.0 * per.reshape(q.size(0), _SCALE_BIAS_SLICES, -1).sum(-1)
        else:
            tensors[f"{m}.scale_bias"] = 8.0 * per.sum(1, keepdim=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
    if clip:
        cfg_path = folder / "config.json"
        config = json.loads(cfg_path.read_text())
        config["quantization_config"]["config_groups"]["group_1"]["activation_use_clip"] = True
        cfg_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def ct_dequantized(folder: Path) -> dict[str, Tensor]:
    """The library's decompression of the quantized modules of a folder (module -> float32 ``[N, K]``)."""
    tensors = load_file(str(folder / "model.safetensors"))
    packed = {n.rpartition(".")[0] for n in tensors if n.endswith("weight_scale")}
    # Model-free, a class-name target such as "Linear" matches every ``*.weight``: hand the
    # dequantizer only the quantized modules' tensors (norms and embeddings are not Linear).
    mine = {n: t for n, t in tensors.items() if n.rpartition(".")[0] in packed}
    dequantizer = CompressedTensorsDequantizer(str(folder), dtype=torch.float32)
    out: dict[str, Any] = dequantizer.process(mine)
    return {m: out[f"{m}.weight"].to(torch.float32) for m in sorted(packed)}


def awq_dequantized(folder: Path, *, bits: int = 4, group_size: int = 128) -> dict[str, Tensor]:
    """An AWQ GEMM folder's weights as compressed-tensors reads them (module -> float32 ``[N, K]``).

    The library's ``AutoAWQConverter`` unpacks AutoAWQ's interleaved words and true zeros into its
    own signed pack-quantized layout, which its compressor then decompresses: a reading of the
    AWQ layout that shares no code with quantspec's writers or loader. 4-bit only (the converter's
    limit).
    """
    tensors = load_file(str(folder / "model.safetensors"))
    converter = AutoAWQConverter(bits=bits, group_size=group_size, zero_point=True, ignore=())
    modules = sorted(n.removesuffix(".qweight") for n in tensors if n.endswith(".qweight"))
    converted = converter.process(dict(tensors))
    scheme = converter.update_config(None).config_groups["config_group_0"]
    compressor = BaseCompressor.get_value_from_registry(scheme.format)
    out: dict[str, Tensor] = {}
    for m in modules:
        keys = ("weight_packed", "weight_scale", "weight_shape", "weight_zero_point")
        local = {k: converted[f"{m}.{k}"] for k in keys}
        out[m] = compressor.decompress(local, scheme)["weight"].to(torch.float32)
    return out
