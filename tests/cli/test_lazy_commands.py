"""The CLI imports only the module of the command being run; ``--help`` still lists them all."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from quantspec.cli.main import COMMANDS, _command_of, build_parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_table_help_is_the_modules_help() -> None:
    # the table's help strings are what --help shows for commands whose module is not imported
    full = {c.dest: c.help for c in _subparsers(build_parser())._choices_actions}
    assert full == {name: help_text for name, _, help_text in COMMANDS}
    for name, module, _ in COMMANDS:
        assert importlib.import_module(module).register  # every listed module registers a command
        assert name in _subparsers(build_parser([name])).choices


@pytest.mark.parametrize(("argv", "chosen"), [
    (["plan", "DIR", "--target", "a3"], "plan"), (["--version"], None), ([], None), (["--", "plan"], None),
    (["-h", "validate"], "validate"),
])
def test_command_of(argv: list[str], chosen: str | None) -> None:
    assert _command_of(argv) == chosen


def test_top_level_help_is_unchanged() -> None:
    assert build_parser([]).format_help() == build_parser().format_help()


def test_plan_does_not_import_other_commands() -> None:
    code = ("import sys; from quantspec.cli.main import main\n"
            "try:\n    main(['plan', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('quantspec.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['quantspec.cli.common', 'quantspec.cli.main', 'quantspec.cli.plan_cmd']"
