"""``quantspec docs``: regenerate ``docs/support_matrix.md`` from the matrix."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from quantspec._io import write_text_atomic
from quantspec.cli.common import EXIT_FINDINGS, EXIT_OK, write_out
from quantspec.matrix import load_matrix
from quantspec.matrix.render import render_markdown


def register(sub: Any) -> None:
    """Add the ``docs`` subcommand."""
    p = sub.add_parser("docs", help="regenerate the support-table docs from the matrix")
    p.add_argument("--output", default="docs/support_matrix.md", help="file to write (default: %(default)s)")
    p.add_argument("--matrix", dest="matrix_file", help="matrix file (default: the bundled one)")
    p.add_argument("--check", action="store_true", help="do not write; exit 1 when the file is stale")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    text = render_markdown(load_matrix(args.matrix_file))
    out = Path(args.output)
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if args.check:
        if current != text:
            write_out(f"{out}: stale; run 'quantspec docs' to regenerate\n")
            return EXIT_FINDINGS
        write_out(f"{out}: up to date\n")
        return EXIT_OK
    if current != text:
        write_text_atomic(out, text)
        write_out(f"wrote {out}\n")
    else:
        write_out(f"{out}: already up to date\n")
    return EXIT_OK
