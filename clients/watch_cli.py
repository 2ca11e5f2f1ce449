"""``m2s watch``: live EmotionStates of the service in the terminal, one line per state, reconnecting.

Line format: ``HH:MM:SS.mmm  <stream>  <label>  <class> <bar> <p> ...  age <data_age_s> s [STALE]``,
the time being the state's wall-clock emission time (local time zone).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from .predict_cli import DEFAULT_URL, bar
from .sdk import AsyncClient, EmotionState, M2SError

_BAR_WIDTH = 8


def register(subparsers) -> None:
    """Add the ``watch`` command."""
    p = subparsers.add_parser(
        "watch",
        help="print live emotional states from the service's WebSocket",
        description="Subscribe to /ws and print one line per EmotionState: time, stream, label, probabilities "
        "as small bars, data age and a STALE flag. Reconnects with backoff when the connection drops; "
        "Ctrl-C exits with status 0.",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"service root (default: {DEFAULT_URL})")
    p.add_argument("--stream", default=None, metavar="ID", help="only this attached stream (default: all)")
    p.add_argument("--token", default=None, help="API token of the service (M2S_API_TOKEN)")
    p.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N states (default: 0 = never)"
    )
    p.set_defaults(handler=run)


def format_line(state: EmotionState, width: int = _BAR_WIDTH) -> str:
    """One terminal line for ``state`` (see the module docstring)."""
    when = dt.datetime.fromtimestamp(state.wall_time).strftime("%H:%M:%S.%f")[:-3]
    probs = "  ".join(f"{c} {bar(p, width)} {p:.2f}" for c, p in state.probabilities.items())
    age = "age    -  " if state.data_age_s is None else f"age {state.data_age_s:5.2f} s"
    stale = " STALE" if state.stale else ""
    return f"{when}  {state.stream_id or '-'}  {state.label:<10}  {probs}  {age}{stale}"


async def _watch(args: argparse.Namespace) -> None:
    n = 0
    async with AsyncClient(args.url, args.token) as client, client.stream(args.stream) as states:
        async for state in states:
            sys.stdout.write(format_line(state) + "\n")
            sys.stdout.flush()
            n += 1
            if args.count and n >= args.count:
                return


def run(args: argparse.Namespace) -> int:
    """Print states until ``--count`` is reached or Ctrl-C (0); 2 when the service refuses the subscription."""
    if args.count < 0:
        raise ValueError(f"--count must be >= 0 (0 = never stop), got {args.count}.")
    try:
        asyncio.run(_watch(args))
    except KeyboardInterrupt:
        return 0
    except M2SError as err:  # 4401 wrong token, 4404 unknown stream: reconnecting cannot help
        sys.stderr.write(f"m2s watch: error: {err}\n")
        return 2
    return 0
