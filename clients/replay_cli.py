"""``m2s replay FILE``: play an XDF, EDF, BDF or FIF recording as LSL streams (see :mod:`clients.replay`)."""

from __future__ import annotations

import argparse
import logging

from .outlets import run_until_done
from .replay import EXTENSIONS, MAX_SPEED, Replayer, load_recording

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``replay`` command."""
    p = subparsers.add_parser(
        "replay",
        help="play an XDF/EDF/BDF/FIF recording as LSL streams",
        description="Play a recording as LSL outlets in real time or faster. XDF: every stream (markers "
        "included) with its name, type, channels and rate. EDF/BDF/FIF: one outlet per group of channels "
        "at the rate of the file's header (units as the file declares them; FIF: EEG in microvolts, ECG in "
        "millivolts), annotations as a marker stream. Samples are pushed at SPEED times real time but "
        "stamped start + (t - t_first), the recording's own spacing, so a sped-up replay still feeds the "
        "service windows it predicts on (timestamps run ahead of the clock); source_ids are PREFIX-<stream>.",
    )
    p.add_argument("file", help=f"recording to play ({', '.join(EXTENSIONS)})")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help=f"push rate, 1 = real time, up to {MAX_SPEED:g}; timestamps keep the recording's spacing (default: 1)",
    )
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument("--name-prefix", default="", help="prepended to every stream name (default: none)")
    p.add_argument(
        "--source-id",
        default=None,
        metavar="PREFIX",
        help="source_ids are PREFIX-<stream> (default: m2s-replay-<file stem>)",
    )
    p.add_argument(
        "--channels", default=None, help="comma-separated channel labels to keep (default: all channels)"
    )
    p.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    if not 0 < args.speed <= MAX_SPEED:
        raise ValueError(f"--speed must be in (0, {MAX_SPEED:g}] (1 = real time), got {args.speed:g}.")
    channels = None
    if args.channels is not None:
        channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    try:
        streams = load_recording(
            args.file, name_prefix=args.name_prefix, source_id_prefix=args.source_id, channels=channels
        )
    except ImportError as err:  # mne/pyxdf missing: the message says what to install; no traceback
        raise ValueError(str(err)) from err
    player = Replayer(streams, speed=args.speed, loop=args.loop)
    lines = [f"m2s replay: {args.file} at x{args.speed:g}{' (looping)' if args.loop else ''}"]
    for s in streams:
        rate = f"{s.sfreq:g} Hz" if s.sfreq > 0 else "irregular"
        lines.append(
            f"  {s.name:<20} {s.type:<8} {len(s.channels):>3} ch @ {rate:<10} {len(s.timestamps)} samples  "
            f"source_id={s.source_id}"
        )
    return run_until_done(player, what="replay", summary="\n".join(lines) + "\n")
