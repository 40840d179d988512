"""The generated support-table docs."""

from __future__ import annotations

from pathlib import Path

from quantspec.matrix import load_matrix
from quantspec.matrix.render import render_markdown

REPO = Path(__file__).resolve().parents[2]


def test_committed_docs_match_generation() -> None:
    committed = (REPO / "docs" / "support_matrix.md").read_text(encoding="utf-8")
    assert committed == render_markdown(load_matrix()), "docs/support_matrix.md is stale: run `quantspec docs`"


def test_docs_show_seed_statuses() -> None:
    text = render_markdown(load_matrix())
    assert "| W8A8 static | `W8A8` | ModelSlimW8A8Int8 | Linear | ✓ | ✓ | TBD | ✓ (A2, A3), TBD (A5) |" in text
    assert "| MXFP8 | `W8A8_MXFP8` | ModelSlimMXFP8Scheme | Linear | ✗ | ✗ | WIP | ✓ (A5) |" in text
    assert "| MXFP8 | `W8A8_MXFP8` | ModelSlimMXFP8Scheme | MoE | ✗ | ✗ | WIP | ✗ |" in text
    assert "| W4A8 dynamic with/without activation clip | MoE | ✓ | ✓ | TBD |" in text
    assert "| MXFP8 (W8A8) |  | MXFP8Config | Online | ✗ | ✓ | --quantization mxfp8 |" in text
    assert ("| W4A4 dynamic | `W4A4_DYNAMIC` | ModelSlimW4A4Int4 | Offline | ✓ | TBD | "
            "auto-detected from quant_model_description.json |") in text
    assert "Requirements for MXFP8: Ascend A5, CANN >= 8.0.RC3" in text
