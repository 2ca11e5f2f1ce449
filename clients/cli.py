"""``m2s``: the client command line (LSL simulator; SDK, replay and watch commands come with the clients issue).

Each command lives in its own module and registers its sub-parser through a ``register(subparsers)``
function that sets a ``handler`` default, as in :mod:`training.cli`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that contribute commands, each with `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "clients.simulate_cli",
    "clients.replay_cli",
    "clients.predict_cli",
    "clients.watch_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``m2s`` parser."""
    parser = argparse.ArgumentParser(
        prog="m2s",
        description="Clients of the M2S-live service: simulate LSL streams with ground truth.",
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
        sys.stderr.write(f"m2s {args.command}: error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
