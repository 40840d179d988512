"""Checkpoint repacking: converting producers' layouts into ones the loaders expect.

Pure layer (no torch): tensors are renamed by rewriting safetensors headers and streaming
their bytes (:mod:`quantspec.repack.safetensors_stream`).
"""

from __future__ import annotations

from quantspec.repack.wan import RepackResult, WanModelType, repack_wan

__all__ = ["RepackResult", "WanModelType", "repack_wan"]
