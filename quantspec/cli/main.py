"""Entry point of the ``quantspec`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable taking the parsed arguments and returning an exit
code. Modules are listed explicitly in :data:`COMMANDS`, with the one-line help that
``quantspec --help`` shows: only the module of the command being run is imported (the others
pull in modules such as the matrix renderer, the JSON-schema checker or the Wan repacker,
which ``quantspec plan`` never needs), the rest are listed by name and help.
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

#: Subcommands in the order ``--help`` lists them: (name, module, help). The help must be the one
#: the module's ``register`` gives its parser (a test compares them).
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("matrix", "quantspec.cli.matrix_cmd", "show or check the support matrix"),
    ("plan", "quantspec.cli.plan_cmd", "plan a checkpoint for an Ascend generation (metadata only)"),
    ("docs", "quantspec.cli.docs_cmd", "regenerate the support-table docs from the matrix"),
    ("validate", "quantspec.cli.validate_cmd", "validate a checkpoint's quantization description"),
    ("repack", "quantspec.cli.repack_cmd", "convert a producer's checkpoint layout for the loaders"),
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in quantspec's error format (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_reasons([reason(Code.USAGE, message, hint=f"see '{self.prog} --help'")])
        raise SystemExit(EXIT_INVALID)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first argument that is not an option.

    The top-level parser has no option taking a value (only ``--help`` and ``--version``), so
    the first non-option argument is the subcommand, as argparse itself will read it.
    """
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``argv``, only the subcommand it names is fully registered.

    Without ``argv`` every subcommand module is imported and registered. With it, the others get
    a parser with only their name and help: enough for ``--help`` and for argparse's choice
    checking, and they are never run.
    """
    chosen = None if argv is None else _command_of(argv)
    parser = _Parser(
        prog="quantspec",
        description="Plan, validate and load quantized checkpoints for Ascend NPUs.",
        epilog="exit codes: 0 fine, 1 findings or rejections, 2 invalid input or usage, 3 internal error",
    )
    parser.add_argument("--version", action="version", version=f"quantspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module, help_text in COMMANDS:
        if argv is None or name == chosen:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
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
