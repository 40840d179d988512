"""Reading model dimensions from ``config.json``: the top level first, then ``text_config``
(multimodal models keep the language model's numbers there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def config_int(config: Mapping[str, Any], *keys: str) -> int | None:
    """The first positive integer among ``keys`` in ``config``, then in its ``text_config``."""
    text = config.get("text_config")
    for cfg in (config, text if isinstance(text, dict) else {}):
        for key in keys:
            value = cfg.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None
