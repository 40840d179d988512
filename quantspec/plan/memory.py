"""Per-rank memory of a plan: weights after load, the KV cache, a reserve, against the device.

For each rank: the bytes of the weights it holds after load (tensor-parallel layers split as the
plan says, replicated layers whole, vocabulary layers padded to a multiple of tp, routed experts
as placed by ``--ep``), the KV cache for ``max_tokens`` tokens (MHA/GQA: K and V of the rank's KV
heads; MLA: the compressed latent and rope key, whole on every rank; int8 with KV C8), and a
stated reserve for activations and communication buffers. Device memory per SKU is data
(``devices.yaml``, with sources); when it is unknown the plan says it cannot judge the fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantspec.errors import Code, Reason, reason
from quantspec.plan.bundled import load_bundled
from quantspec.plan.config import config_int
from quantspec.plan.model import LayerStatus, MemoryPlan, PlannedLayer, RankMemory
from quantspec.vocab import LayerKind, NpuGen, ParallelMode, SchemeId

GIB = 1024**3
#: Reserve per rank for activations, workspace and communication buffers (HCCL), stated, not measured.
RESERVE_BYTES = 3 * GIB
#: Tokens of KV cache per rank when the caller gives none (``--max-tokens``).
DEFAULT_MAX_TOKENS = 32768


class Device(BaseModel):
    """One SKU's memory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    target: NpuGen
    hbm_gib: int = Field(ge=1)
    source: str


class DeviceTable(BaseModel):
    """The ``devices.yaml`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: tuple[Device, ...]
    defaults: dict[NpuGen, str]


@lru_cache(maxsize=1)
def load_devices() -> DeviceTable:
    """The bundled device table."""
    return load_bundled("devices.yaml", DeviceTable)


def _bytes_on_rank(layer: PlannedLayer, rank: int, tp: int, ep: int) -> int:
    total = layer.bytes_after_load or 0
    mode = layer.parallel
    if mode is ParallelMode.EXPERT and layer.experts:
        per_expert = total // len(layer.experts)
        return per_expert * layer.experts_per_rank[rank % ep]
    if tp == 1 or mode in (None, ParallelMode.REPLICATED):
        return total
    if mode is ParallelMode.VOCAB and layer.n:
        return total * -(-layer.n // tp) // layer.n  # padded to a multiple of tp
    return total // tp


def kv_bytes_per_token(config: Mapping[str, Any], *, tp: int, kv_int8: bool, dtype_bytes: int) -> int | None:
    """KV-cache bytes one rank stores per token (None when config.json does not say)."""
    layers = config_int(config, "num_hidden_layers")
    if layers is None:
        return None
    elem = 1 if kv_int8 else dtype_bytes
    lora, rope = config_int(config, "kv_lora_rank"), config_int(config, "qk_rope_head_dim")
    if lora is not None and rope is not None:  # MLA: the latent and the rope key, on every rank
        return layers * (lora + rope) * elem
    heads, hidden = config_int(config, "num_attention_heads"), config_int(config, "hidden_size")
    kv = config_int(config, "num_key_value_heads") or heads
    head_dim = config_int(config, "head_dim") or (hidden // heads if hidden and heads else None)
    if kv is None or head_dim is None:
        return None
    local = max(1, -(-kv // tp))  # fewer KV heads than ranks: each rank keeps one
    return 2 * layers * local * head_dim * elem


def plan_memory(layers: tuple[PlannedLayer, ...], config: Mapping[str, Any], *, tp: int, ep: int, target: NpuGen,
                model_dtype: str | None, max_tokens: int | None, device: str | None,
                device_memory_gib: float | None) -> tuple[MemoryPlan, list[Reason]]:
    """The memory section, and a ``plan.does_not_fit`` rejection when a rank exceeds its device."""
    ranks = max(tp, ep)
    accepted = [la for la in layers if la.status is LayerStatus.ACCEPTED]
    weights = [sum(_bytes_on_rank(la, r, tp, ep) for la in accepted) for r in range(ranks)]
    kv_int8 = any(la.kind is LayerKind.ATTENTION and la.scheme is SchemeId.KV_C8 for la in accepted)
    dtype_bytes = 4 if model_dtype == "float32" else 2
    per_token = kv_bytes_per_token(config, tp=tp, kv_int8=kv_int8, dtype_bytes=dtype_bytes)
    tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    kv = (per_token or 0) * tokens
    capacity, sku, note = _capacity(target, device, device_memory_gib)
    out = tuple(
        RankMemory(rank=r, weights=w, kv_cache=kv, reserve=RESERVE_BYTES, total=w + kv + RESERVE_BYTES,
                   capacity=capacity, headroom=None if capacity is None else capacity - (w + kv + RESERVE_BYTES))
        for r, w in enumerate(weights))
    fits = None if capacity is None else all(m.total <= capacity for m in out)
    mem = MemoryPlan(ranks_count=ranks, device=sku, capacity=capacity, max_tokens=tokens,
                     kv_bytes_per_token=per_token, reserve=RESERVE_BYTES, ranks=out, fits=fits, note=note)
    if fits is not False:
        return mem, []
    worst = max(out, key=lambda m: m.total)
    biggest = sorted(accepted, key=lambda la: _bytes_on_rank(la, worst.rank, tp, ep), reverse=True)[:3]
    consumers = ", ".join(
        f"{la.name}{f' ({la.kind.value})' if la.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2) else ''} "
        f"{_size(_bytes_on_rank(la, worst.rank, tp, ep))}" for la in biggest)
    moe = any(la.kind in (LayerKind.MOE_W13, LayerKind.MOE_W2) for la in accepted)
    smallest = _smallest_fit(accepted, per_token or 0, tokens, capacity or 0, moe)
    return mem, [reason(
        Code.PLAN_DOES_NOT_FIT,
        f"rank {worst.rank} needs {_size(worst.total)} (weights {_size(worst.weights)}, KV cache "
        f"{_size(worst.kv_cache)} for {tokens} tokens, reserve {_size(worst.reserve)}) but the device has "
        f"{_size(capacity or 0)}; largest: {consumers}",
        hint=(f"the smallest power-of-two split that fits is {smallest}" if smallest else
              "no split up to 64 ranks fits; lower --max-tokens or quantize further"))]


def _size(b: int) -> str:
    return f"{b / GIB:.1f} GiB" if b >= GIB // 10 else f"{b / 2**20:.1f} MiB"


def _capacity(target: NpuGen, device: str | None, gib: float | None) -> tuple[int | None, str | None, str]:
    if gib is not None:
        return int(gib * GIB), device, f"capacity {gib:g} GiB per device (--device-memory)"
    table = load_devices()
    sku = device or table.defaults.get(target)
    found = next((d for d in table.devices if d.sku == sku), None)
    if found is None:
        known = ", ".join(d.sku for d in table.devices if d.target is target)
        return None, sku, (f"device memory unknown for {sku!r}" if sku else
                           f"{target.value} devices differ ({known}): the fit cannot be judged without "
                           "--device SKU or --device-memory GiB")
    return found.hbm_gib * GIB, found.sku, f"{found.sku}: {found.hbm_gib} GiB per device ({found.source})"


def _smallest_fit(layers: list[PlannedLayer], per_token: int, tokens: int, capacity: int, moe: bool) -> str | None:
    whole = sum(la.bytes_after_load or 0 for la in layers)
    replicated = sum(la.bytes_after_load or 0 for la in layers if la.parallel in (None, ParallelMode.REPLICATED))
    for n in (1, 2, 4, 8, 16, 32, 64):
        need = (whole - replicated) / n + replicated + per_token * tokens + RESERVE_BYTES
        if need <= capacity:
            return f"tp={n}, ep={n}" if moe else f"tp={n}"
    return None
