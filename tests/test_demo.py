"""``make demo`` runs end to end on the bundled example."""

from __future__ import annotations

import pytest

from examples import demo


def test_demo_runs_and_logits_are_close(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "all layers accepted" in out
    assert "is untested on a5" in out
    assert "top-1 agreement" in out


def test_bundled_example_error_is_small() -> None:
    assert demo.forward_check() < 0.05
