"""Shared CLI plumbing: error printing, exit codes, output helpers.

Exit codes (documented in the README):

- 0: fine;
- 1: a finding or a rejection (validation findings, rejected layers, stale docs);
- 2: invalid input or usage;
- 3: an internal error (a bug in quantspec; set ``QUANTSPEC_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from quantspec.errors import Reason

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 3


def print_reasons(reasons: Iterable[Reason], *, stream: TextIO | None = None, prefix: str = "error") -> None:
    """Print reasons one per block: ``error: [code] message (at file#where)`` then the hint."""
    out = stream or sys.stderr
    for r in reasons:
        out.write(f"{prefix}: {r.render()}\n")


def write_out(text: str) -> None:
    """Write to stdout, tolerating a closed pipe (``quantspec ... | head``)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # pragma: no cover - depends on the consumer
        pass
