"""Entry point of the ``quantspec`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable taking the parsed arguments and returning an exit
code. Modules are listed explicitly in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from quantspec import __version__
from quantspec.cli.common import EXIT_INTERNAL, EXIT_INVALID, print_reasons
from quantspec.errors import Code, QuantspecError, reason

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "quantspec.cli.matrix_cmd",
    "quantspec.cli.plan_cmd",
    "quantspec.cli.docs_cmd",
    "quantspec.cli.validate_cmd",
    "quantspec.cli.repack_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in quantspec's error format (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_reasons([reason(Code.USAGE, message, hint=f"see '{self.prog} --help'")])
        raise SystemExit(EXIT_INVALID)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = _Parser(
        prog="quantspec",
        description="Plan, validate and load quantized checkpoints for Ascend NPUs.",
        epilog="exit codes: 0 fine, 1 findings or rejections, 2 invalid input or usage, 3 internal error",
    )
    parser.add_argument("--version", action="version", version=f"quantspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_INVALID
    try:
        return int(args.func(args))
    except QuantspecError as exc:
        print_reasons(exc.reasons)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, traceback only on request
        if os.environ.get("QUANTSPEC_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "    hint: this is a bug in quantspec; rerun with QUANTSPEC_DEBUG=1 and report the traceback",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
