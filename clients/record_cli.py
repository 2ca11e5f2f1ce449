"""``m2s record``: record the service's live streams (and a marker stream) to an XDF file, or list recordings.

Through :meth:`clients.sdk.Client.start_recording`: ``POST /recordings`` with the chosen attached streams
(default: every attached stream) and optionally the experiment's marker stream; the file is written by the
service, in its ``M2S_RECORDINGS_DIR``. Output: the recording's id and file, then every ``--every`` seconds
``[<elapsed> s]`` with the samples written per stream, the markers and the file's size; after ``--duration``
seconds or on Ctrl-C the recording is closed (``DELETE /recordings/{id}``, the file stays) and its final
state printed. ``--list`` prints this run's recordings and the other files of the folder.

Exit status: 0 done (also after Ctrl-C: the recording is closed); 2 bad options (nothing was sent) or the
service refused the request (4xx: its sentence on stderr); 1 the service failed or could not be reached,
or the recording failed while writing (its error is printed; the file keeps what came before); 130 Ctrl-C
before the recording started.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import TextIO

from .calibrate_cli import _stream_ids, parse_selector
from .predict_cli import DEFAULT_URL
from .sdk import Client, M2SError, RecordingInfo, Recordings

_LIST_ONLY = ("--streams", "--markers", "--name", "--duration")


def register(subparsers) -> None:
    """Add the ``record`` command."""
    p = subparsers.add_parser(
        "record",
        help="record the live streams (and a marker stream) to an XDF file in the service's recordings folder",
        description="Start a session recording of attached streams (as received: outlet timestamps, clock "
        "offsets, channel descriptions) and optionally the experiment's LSL marker stream, written by the "
        "service to <M2S_RECORDINGS_DIR>/<name>.xdf; print its progress every few seconds and close it after "
        "--duration seconds or on Ctrl-C. Exit status: 0 done (Ctrl-C included), 2 bad options or the service "
        "refused (its reason on stderr), 1 the service failed or the recording failed while writing.",
        epilog="Examples: m2s record --streams eeg-1a2b,eye-3c4d --markers type=Markers --name p-013-s1; "
        "m2s record --duration 600; m2s record --list",
    )
    p.add_argument(
        "--streams",
        default=None,
        metavar="ID[,ID...]",
        help="comma-separated ids of attached streams (default: every attached stream)",
    )
    p.add_argument(
        "--markers",
        default=None,
        metavar="KEY=VALUE[,...]",
        help="also record this LSL marker stream, by type / name / source_id, e.g. type=Markers",
    )
    p.add_argument(
        "--name",
        default=None,
        metavar="NAME",
        help="file name without .xdf: letters, digits, _, . and -, at most 64 "
        "(default: session-<UTC time>-<id>)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="close the recording after S seconds (default: record until Ctrl-C)",
    )
    p.add_argument(
        "--every", type=float, default=5.0, metavar="S", help="seconds between progress lines (default: 5)"
    )
    p.add_argument(
        "--list", action="store_true", help="list this run's recordings and the stored files, then exit"
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"service root (default: {DEFAULT_URL})")
    p.add_argument("--token", default=None, help="API token of the service (M2S_API_TOKEN)")
    p.set_defaults(handler=run)


def _check_options(args: argparse.Namespace) -> None:
    if args.list:
        given = [o for o in _LIST_ONLY if getattr(args, o[2:]) is not None]
        if given:
            raise ValueError(f"--list takes no {', '.join(given)}; list, or start a recording, not both.")
        return
    for value, option in ((args.duration, "--duration"), (args.every, "--every")):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ValueError(f"{option} must be a positive number of seconds, got {value:g}.")
    if args.name is not None and not args.name.strip():
        raise ValueError(
            "--name is empty; give the file name without .xdf, e.g. --name p-013-s1, or leave it out."
        )


def _streams_option(text: str) -> list[str]:
    try:
        return _stream_ids(text)
    except ValueError:
        raise ValueError(
            f"--streams {text!r} names no stream; give comma-separated ids of attached streams (GET /streams), "
            "or leave --streams out to record every attached stream."
        ) from None


def format_size(n_bytes: int) -> str:
    """``512 B``, ``12.3 kB``, ``4.5 MB``, ``1.2 GB`` (powers of 1000)."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n_bytes < scale * 1000 or unit == "GB":
            return f"{n_bytes / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def _markers(info: RecordingInfo) -> str:
    m = info.markers
    if m is None:
        return ""
    return f"; markers {m.n_markers}" + ("" if m.connected else " (marker stream not connected)")


def format_progress(info: RecordingInfo) -> str:
    """``<stream> <n> samples, ...; markers <n>; <size>`` of a recording in progress."""
    streams = ", ".join(f"{s.stream_id} {s.n_samples} samples" for s in info.streams)
    return f"{streams}{_markers(info)}; {format_size(info.bytes)}"


def format_final(info: RecordingInfo) -> str:
    """The state of an ended recording: file, size, duration, samples and chunks per stream, error."""
    streams = ", ".join(f"{s.stream_id} {s.n_samples} samples ({s.n_chunks} chunks)" for s in info.streams)
    line = (
        f"recording {info.id} {info.state}: {info.file}, {format_size(info.bytes)}, {info.duration_s:.1f} s; "
        f"{streams}{_markers(info)}"
    )
    return line + (f"\n  error: {info.error}" if info.error else "")


def format_list(listing: Recordings) -> str:
    """This run's recordings, one line each, then the other XDF files of the folder."""
    lines = ["recordings of this run:" + ("" if listing.recordings else " none")]
    for r in listing.recordings:
        samples = ", ".join(f"{s.stream_id} {s.n_samples}" for s in r.streams)
        lines.append(
            f"  {r.id}  {r.state:<9}  {r.file}  {format_size(r.bytes)}  {r.duration_s:.1f} s  "
            f"samples: {samples}{_markers(r)}" + (f"  error: {r.error}" if r.error else "")
        )
    lines.append("stored files:" + ("" if listing.stored else " none"))
    for f in listing.stored:
        lines.append(f"  {f.file}  {format_size(f.bytes)}" + ("" if f.complete else "  (incomplete)"))
    return "\n".join(lines)


def _record(client: Client, args: argparse.Namespace, out: TextIO) -> RecordingInfo | None:
    """Start, report, stop; the final state (None: interrupted before the recording started)."""
    streams = _streams_option(args.streams) if args.streams is not None else None
    markers = parse_selector(args.markers) if args.markers is not None else None
    known = None  # this run's recordings before ours: the ids to leave alone after an interrupted start
    try:
        if streams is None:
            streams = [s.id for s in client.streams()]
            if not streams:
                raise M2SError(
                    None,
                    f"no stream is attached to the service at {args.url}; attach the streams first "
                    "(m2s-serve --attach modality=eeg,type=EEG, or POST /streams), then run again.",
                )
        known = {r.id for r in client.recordings().recordings}
        info = client.start_recording(streams, markers=markers, name=args.name)
    except KeyboardInterrupt:
        # The service may have started it before the interrupt reached us: close what we started.
        for r in client.recordings().recordings if known is not None else ():
            if (
                r.id not in known
                and r.state == "recording"
                and set(streams) == {s.stream_id for s in r.streams}
            ):
                client.stop_recording(r.id)
        return None
    start = time.monotonic()
    until = "until Ctrl-C" if args.duration is None else f"for {args.duration:g} s"
    modalities = ", ".join(f"{s.stream_id} ({s.modality})" for s in info.streams)
    try:  # from here on, Ctrl-C or a failed progress request closes the recording
        _write(out, f"recording {info.id} to {info.file}: streams {modalities}{_markers(info)}; {until}")
        while info.state == "recording":
            elapsed = time.monotonic() - start
            left = math.inf if args.duration is None else args.duration - elapsed
            if left <= 0:
                break
            time.sleep(min(args.every - elapsed % args.every, left))
            info = client.recording(info.id)
            _write(out, f"[{time.monotonic() - start:5.0f} s] {format_progress(info)}")
    except KeyboardInterrupt:
        _write(out, "interrupted; closing the recording")
    except M2SError as err:  # no recording of health data is left running unwatched
        _write(out, f"progress failed ({err}); closing the recording")
        client.stop_recording(info.id)
        raise
    return client.stop_recording(info.id)


def _write(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    """Record (or list); 0 done, 2 bad options or refused (4xx), 1 failed, 130 Ctrl-C before the start."""
    _check_options(args)
    try:
        with Client(args.url, args.token) as client:
            if args.list:
                _write(sys.stdout, format_list(client.recordings()))
                return 0
            final = _record(client, args, sys.stdout)
    except M2SError as err:
        sys.stderr.write(f"m2s record: error: {err}\n")
        return 2 if err.status is not None and 400 <= err.status < 500 else 1
    if final is None:
        sys.stderr.write("m2s record: interrupted before the recording started.\n")
        return 130
    _write(sys.stdout, format_final(final))
    return 1 if final.state == "failed" else 0
