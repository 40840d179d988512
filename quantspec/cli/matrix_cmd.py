"""``quantspec matrix``: query the support matrix; ``quantspec matrix check FILE``: validate one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from quantspec.cli.common import EXIT_OK, write_out
from quantspec.matrix import load_matrix
from quantspec.matrix.render import entry_json, render_entries_markdown, render_text
from quantspec.vocab import FormatFamily, MatrixLayer, NpuGen


def register(sub: Any) -> None:
    """Add the ``matrix`` subcommand."""
    p = sub.add_parser("matrix", help="show or check the support matrix",
                       description="Show the support matrix, filtered; or validate a matrix file.")
    p.add_argument("--target", type=NpuGen, choices=list(NpuGen), help="only this NPU generation")
    p.add_argument("--family", type=FormatFamily, choices=list(FormatFamily), help="only this format family")
    p.add_argument("--layer", type=MatrixLayer, choices=list(MatrixLayer), help="only this layer type")
    p.add_argument("--format", dest="fmt", choices=["table", "json", "md"], default="table")
    p.add_argument("--matrix", dest="matrix_file", help="read this matrix file instead of the bundled one")
    p.set_defaults(func=_show)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    check = actions.add_parser("check", help="validate a matrix file (exit 2 when invalid)")
    check.add_argument("file")
    check.set_defaults(func=_check)


def _show(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix_file)
    entries = matrix.select(family=args.family, layer=args.layer)
    gens = [args.target] if args.target else list(NpuGen)
    if args.fmt == "json":
        doc = {
            "schema_version": matrix.schema_version,
            "matrix_version": matrix.matrix_version,
            "targets": [g.value for g in gens],
            "entries": [entry_json(e, gens) for e in entries],
        }
        write_out(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    elif args.fmt == "md":
        write_out(render_entries_markdown(entries, gens))
    else:
        write_out(f"support matrix {matrix.matrix_version}: {len(entries)} entries\n")
        write_out(render_text(entries, gens))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.file)
    write_out(f"{args.file}: valid (matrix {matrix.matrix_version}, {len(matrix.entries)} entries)\n")
    return EXIT_OK
