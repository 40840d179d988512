"""The tests' own example description files, one or more per format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "examples"

#: example file -> schema file of its raw model.
SCHEMA_OF: dict[str, str] = {
    "modelslim_w8a8_c8.json": "modelslim_description.schema.json",
    "gptq_gptqmodel_dynamic.json": "gptq_config.schema.json",
    "gptq_optimum.json": "gptq_config.schema.json",
    "awq_gemm.json": "awq_config.schema.json",
    "awq_autoawq_quant_config.json": "awq_config.schema.json",
    "auto_round_regex.json": "auto_round_config.schema.json",
    "ct_w8a8_dynamic.json": "compressed_tensors_config.schema.json",
    "ct_mixed_w4a8.json": "compressed_tensors_config.schema.json",
}


def load(name: str) -> Any:
    """Decoded example file."""
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
