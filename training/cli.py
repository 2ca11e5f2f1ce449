"""``m2s-train``: the training command line (datasets, pretraining, fine-tuning, evaluation, export).

Each command group lives beside the code it drives and registers its sub-parser here through a
``register(subparsers)`` function (front end shared with ``m2s``: :mod:`cli`); handlers
import heavy modules (torch) only when they run, so ``m2s-train datasets inspect`` stays quick.
"""

from __future__ import annotations

import argparse
import sys

from cli import build_command_parser, run_commands

# Modules that contribute commands, each with `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "training.datasets.cli",
    "training.bundle_cli",
    "training.commands",
    "training.export_cli",
    "training.adapt",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``m2s-train`` parser."""
    return build_command_parser(
        "m2s-train", "Train, evaluate and export M2S emotion-recognition models.", COMMAND_MODULES
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (2 for an input error, with a message on stderr)."""
    return run_commands(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
