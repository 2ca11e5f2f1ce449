"""``m2s``: the client command line (LSL simulator, recording replay, one-off predictions, watching states,
calibrating a participant, recording a session).

Each command lives in its own module and registers its sub-parser through a ``register(subparsers)``
function that sets a ``handler`` default; :mod:`cli` is the front end shared with ``m2s-train``.
"""

from __future__ import annotations

import argparse
import sys

from cli import build_command_parser, run_commands

# Modules that contribute commands, each with `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "clients.simulate_cli",
    "clients.replay_cli",
    "clients.predict_cli",
    "clients.watch_cli",
    "clients.calibrate_cli",
    "clients.record_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``m2s`` parser."""
    return build_command_parser(
        "m2s",
        "Clients of the M2S-live service: simulate LSL streams with ground truth, replay recordings to LSL, "
        "predict from a file, watch live emotion states, calibrate a new participant on the live streams, "
        "record a session to XDF.",
        COMMAND_MODULES,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (2 for an input error, with a message on stderr)."""
    return run_commands(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
