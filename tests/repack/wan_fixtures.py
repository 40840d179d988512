"""Tiny Wan-format msModelSlim exports and Diffusers folders, written byte by byte (no torch).

Tensor names are the original Wan names; quantized Linear layers are either MXFP8-style
(``weight`` F8_E4M3 ``[N, K]`` + ``weight_scale`` U8 E8M0 ``[N, K/32]``) or
W8A8_DYNAMIC-style (``weight`` I8 + ``weight_scale``/``weight_offset`` F32 ``[N, 1]``).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

DIM = 64
FFN = 128
TEXT_DIM = 32
FREQ_DIM = 32
LAYERS = 2
_BYTES = {"F8_E4M3": 1, "U8": 1, "I8": 1, "BF16": 2, "F32": 4}

Tensor = tuple[str, tuple[int, ...], bytes]


def data(name: str, dtype: str, shape: tuple[int, ...]) -> bytes:
    """Deterministic pseudo-random bytes, different for every tensor name."""
    n = math.prod(shape) * _BYTES[dtype]
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{name}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def write_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file from raw bytes, in name order."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text)
        for _dtype, _shape, raw in tensors.values():
            fh.write(raw)


def _t(out: dict[str, Tensor], name: str, dtype: str, shape: tuple[int, ...]) -> None:
    out[name] = (dtype, shape, data(name, dtype, shape))


def _linear(out: dict[str, Tensor], desc: dict[str, str], prefix: str, n: int, k: int, *,
            scheme: str | None) -> None:
    if scheme is None:
        _t(out, f"{prefix}.weight", "BF16", (n, k))
        desc[f"{prefix}.weight"] = "FLOAT"
    elif scheme == "W8A8_MXFP8":
        _t(out, f"{prefix}.weight", "F8_E4M3", (n, k))
        _t(out, f"{prefix}.weight_scale", "U8", (n, k // 32))
        desc[f"{prefix}.weight"] = desc[f"{prefix}.weight_scale"] = scheme
    else:
        _t(out, f"{prefix}.weight", "I8", (n, k))
        _t(out, f"{prefix}.weight_scale", "F32", (n, 1))
        _t(out, f"{prefix}.weight_offset", "F32", (n, 1))
        for part in ("weight", "weight_scale", "weight_offset"):
            desc[f"{prefix}.{part}"] = scheme
    _t(out, f"{prefix}.bias", "BF16", (n,))
    desc[f"{prefix}.bias"] = "FLOAT"


def _float(out: dict[str, Tensor], desc: dict[str, str], name: str, shape: tuple[int, ...]) -> None:
    _t(out, name, "BF16", shape)
    desc[name] = "FLOAT"


def wan_export(scheme: str, *, i2v: bool = False) -> tuple[dict[str, Tensor], dict[str, object]]:
    """Tensors and description of one Wan-format transformer quantized with ``scheme``."""
    t: dict[str, Tensor] = {}
    d: dict[str, str] = {}
    _float(t, d, "patch_embedding.weight", (DIM, 16, 1, 2, 2))
    _float(t, d, "patch_embedding.bias", (DIM,))
    _linear(t, d, "text_embedding.0", DIM, TEXT_DIM, scheme=None)
    _linear(t, d, "text_embedding.2", DIM, DIM, scheme=None)
    _linear(t, d, "time_embedding.0", DIM, FREQ_DIM, scheme=None)
    _linear(t, d, "time_embedding.2", DIM, DIM, scheme=None)
    _linear(t, d, "time_projection.1", DIM * 6, DIM, scheme=None)
    for i in range(LAYERS):
        b = f"blocks.{i}"
        _float(t, d, f"{b}.modulation", (1, 6, DIM))
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                _linear(t, d, f"{b}.{attn}.{proj}", DIM, DIM, scheme=scheme)
            _float(t, d, f"{b}.{attn}.norm_q.weight", (DIM,))
            _float(t, d, f"{b}.{attn}.norm_k.weight", (DIM,))
        if i2v:
            _linear(t, d, f"{b}.cross_attn.k_img", DIM, DIM, scheme=scheme)
            _linear(t, d, f"{b}.cross_attn.v_img", DIM, DIM, scheme=scheme)
            _float(t, d, f"{b}.cross_attn.norm_k_img.weight", (DIM,))
        _float(t, d, f"{b}.norm3.weight", (DIM,))
        _float(t, d, f"{b}.norm3.bias", (DIM,))
        _linear(t, d, f"{b}.ffn.0", FFN, DIM, scheme=scheme)
        _linear(t, d, f"{b}.ffn.2", DIM, FFN, scheme=scheme)
    if i2v:
        _float(t, d, "img_emb.proj.0.weight", (DIM,))
        _float(t, d, "img_emb.proj.0.bias", (DIM,))
        _linear(t, d, "img_emb.proj.1", DIM, DIM, scheme=None)
        _linear(t, d, "img_emb.proj.3", DIM, DIM, scheme=None)
        _float(t, d, "img_emb.proj.4.weight", (DIM,))
        _float(t, d, "img_emb.proj.4.bias", (DIM,))
    _linear(t, d, "head.head", 64, DIM, scheme=None)
    _float(t, d, "head.modulation", (1, 2, DIM))
    desc: dict[str, object] = {"model_quant_type": scheme, "version": "1.0.0",
                               "group_size": 32 if scheme == "W8A8_MXFP8" else 0, **d,
                               "metadata": {"producer": "test"}, "optional": {}}
    return t, desc


def write_export(folder: Path, scheme: str, *, i2v: bool = False, shards: int = 1,
                 desc_name: str = "quant_model_description_w8a8.json") -> tuple[dict[str, Tensor], dict[str, object]]:
    """Write one exported transformer folder; ``shards > 1`` also writes an index."""
    tensors, desc = wan_export(scheme, i2v=i2v)
    names = sorted(tensors)
    if shards == 1:
        write_safetensors(folder / "quant_model_weight_w8a8.safetensors", {n: tensors[n] for n in names})
    else:
        weight_map: dict[str, str] = {}
        for s in range(shards):
            fname = f"quant_model_weights-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = names[s::shards]
            write_safetensors(folder / fname, {n: tensors[n] for n in part}, {"format": "pt"})
            weight_map.update(dict.fromkeys(part, fname))
        (folder / "quant_model_weights.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / desc_name).write_text(json.dumps(desc, indent=2))
    return tensors, desc


def write_original(folder: Path, *, cascade: bool) -> None:
    """A Diffusers Wan2.2 checkpoint without transformer weights (only what the repack reads)."""
    index = {
        "_class_name": "WanPipeline",
        "_diffusers_version": "0.35.0",
        "boundary_ratio": 0.875 if cascade else None,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "transformer_2": ["diffusers", "WanTransformer3DModel"] if cascade else [None, None],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    for component in ("transformer", "transformer_2") if cascade else ("transformer",):
        cfg = {"_class_name": "WanTransformer3DModel", "num_layers": LAYERS, "component": component}
        (folder / component).mkdir()
        (folder / component / "config.json").write_text(json.dumps(cfg))
        # Float weights of the original: must not be copied into the output.
        (folder / component / "diffusion_pytorch_model.safetensors").write_bytes(b"original float weights")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text('{"_class_name": "UniPCMultistepScheduler"}')
    (folder / "vae").mkdir()
    (folder / "vae" / "config.json").write_text('{"_class_name": "AutoencoderKLWan"}')
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"vae weights")
    (folder / "text_encoder").mkdir()
    (folder / "text_encoder" / "config.json").write_text('{"architectures": ["UMT5EncoderModel"]}')
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer.json").write_text("{}")
