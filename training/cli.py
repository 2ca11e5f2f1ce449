"""``m2s-train``: the training command line (datasets, pretraining, fine-tuning, evaluation, export).

Each command group lives beside the code it drives and registers its sub-parser here through a
``register(subparsers)`` function; handlers import heavy modules (torch) only when they run, so
``m2s-train datasets inspect`` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that contribute commands, each with `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "training.datasets.cli",
    "training.bundle_cli",
    "training.commands",
    "training.export_cli",
)

logger = logging.getLogger("training")


def build_parser() -> argparse.ArgumentParser:
    """The full ``m2s-train`` parser."""
    parser = argparse.ArgumentParser(
        prog="m2s-train",
        description="Train, evaluate and export M2S emotion-recognition models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (2 for an input error, with a message on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"m2s-train {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
