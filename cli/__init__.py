"""Command-line plumbing shared by the front ends: ``m2s`` (clients.cli) and ``m2s-train`` (training.cli).

Sub-commands come from modules: each exposes ``register(subparsers)``, which adds its sub-parser and
sets a ``handler`` default; :func:`run_commands` parses, configures logging and maps input errors to
exit status 2 with one line on stderr. (``m2s-serve``, service.cli, has no sub-commands and its own
parser, generated from the service settings.)

A package of its own, standard library only, because it belongs to no layer: ``signals`` is feature
extraction (numpy/scipy/pydantic), and ``training`` must not import ``clients`` nor the reverse.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# What a handler raises for bad input: exit status 2 and the message, no traceback.
INPUT_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def build_command_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with ``-v/--verbose`` and one required sub-command per ``register`` of ``modules``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run_commands(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen handler and return the exit status (2 for an input error)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except INPUT_ERRORS as err:
        sys.stderr.write(f"{parser.prog} {args.command}: error: {err}\n")
        return 2
