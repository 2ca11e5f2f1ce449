"""What the clients' LSL producers share: self-describing outlet infos and running a player from a CLI."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Sequence

import pylsl

logger = logging.getLogger(__name__)

_LINGER_S = 0.3  # after the last push, keep the outlets up a moment so inlets receive it


def described_info(
    name: str,
    type_: str,
    sfreq: float,
    channel_format,
    source_id: str,
    channels: Sequence[str],
    units: Sequence[str],
    channel_types: Sequence[str],
) -> pylsl.StreamInfo:
    """A ``pylsl.StreamInfo`` whose ``desc/channels/channel`` carry each channel's label, unit and type."""
    info = pylsl.StreamInfo(name, type_, len(channels), sfreq, channel_format, source_id)
    node = info.desc().append_child("channels")
    for label, unit, kind in zip(channels, units, channel_types, strict=True):
        ch = node.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", kind)
    return info


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_until_done(player, *, what: str, summary: str) -> int:
    """Start ``player`` (start/wait/stop/error/n_pushed), print ``summary``, run until it ends or is stopped.

    Ctrl-C and SIGTERM stop it cleanly. Returns the exit status: 0, or 1 when the player failed.
    """
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        player.start()
        sys.stdout.write(summary)
        sys.stdout.flush()
        while not player.wait(0.25):
            pass
        time.sleep(_LINGER_S)
    except KeyboardInterrupt:
        logger.info("Interrupted; stopping the %s.", what)
    finally:
        player.stop()
        signal.signal(signal.SIGTERM, previous)
    if player.error is not None:
        logger.error("The %s failed: %s", what, player.error)
        return 1
    logger.info("Stopped; %s samples sent.", ", ".join(f"{k} {n}" for k, n in player.n_pushed.items()))
    return 0
