"""Recording replay: play an XDF, EDF, BDF or FIF file back as LSL outlets, in real time or faster.

:func:`load_recording` turns a file into :class:`ReplayStream` objects (one per LSL outlet) and
:class:`Replayer` pushes them with the original relative timing.

Streams
-------
The file is read by :func:`signals.recording.read_recording`, the reader the dataset loader trains
on, so a replay streams what a model trained on the same file saw: the same channels, rates,
units, timestamps and markers.

- XDF: every stream becomes one outlet, with its name, type, channel count and format, nominal
  rate and ``desc/channels/channel/{label, unit, type}``. Timestamps are regularised with the gap
  rule (:mod:`signals.timing`; ``gap_factor``, default 1.5, the feature spec default), exactly
  as the loader does. String streams (markers) become irregular string outlets whose samples are
  pushed at their recorded times.
- EDF/BDF/FIF: one outlet per group of channels that share a sampling rate, at the rate of the
  file's header (an EDF with 200-Hz EEG and 256-Hz ECG gives a 200-Hz and a 256-Hz outlet, the
  rates the loader trains at). The outlet's type is the group's channel type when all channels
  share one (``EEG``, ``ECG``...), else ``Mixed``. Samples are in the unit the reader gives each
  channel (EDF/BDF: the header's, e.g. ``µV``/``mV``; FIF: µV for EEG-like types, mV for ECG),
  declared in each channel's header. Annotations become one string marker outlet.

Names and source ids are stable: a stream named ``N`` in file ``F.ext`` is published as
``{name_prefix}N`` with source_id ``{source_id_prefix}-N`` (default prefix
``m2s-replay-{F}``), lower-cased with non-alphanumerics replaced by ``-``; so a consumer that
attaches by source_id finds the same stream again on every replay of that file.

Timing
------
All streams share one origin, ``t_first``, the earliest timestamp in the file. A sample recorded
at ``t_i`` is stamped ``start_time + (t_i - t_first)`` (``start_time`` is ``clock()`` at
:meth:`Replayer.start`, by default ``pylsl.local_clock()``): the recording's own spacing, at every
speed. It is pushed when ``(t_i - t_first) / speed`` seconds have passed since the start on the
same clock; due times are computed from that one start, never by accumulating sleeps, so pacing
does not drift and a late wake-up is caught up at the next push. The clock and the wait between
pushes (``sleep``, default the stop event's ``wait``) are constructor arguments, so tests can play
a file in fake time.

So at ``speed > 1`` the timestamps run ahead of the wall clock (by ``(1 - 1/speed)`` of the
playback time), while every stream keeps its nominal sample spacing. That is a deliberate choice:
a consumer's gap rule (a step above ``gap_factor / sfreq`` is a gap, :mod:`signals.timing`) is
about sample spacing, so stamps compressed by the speed (the alternative, LSL time following the
wall clock) were steps of ``1 / (speed * sfreq)`` that the service's dejitter turned into a gap
every few samples: a sped-up replay produced no predictions. With the recording's own spacing the
service computes the very windows the loader trained on (same timestamps up to one offset), gaps
in the file stay gaps at any speed, and the states' ``lsl_time`` maps back to the file as
``t_first + (lsl_time - start_time)``. The cost: while the replay runs ahead, ``data_age_s`` is
negative and the stream is never stale (it turns stale when the replay ends and its outlets
close); at ``speed < 1`` the data ages instead and turns stale after ``stale_after_s / (1/speed -
1)`` seconds of playback, predictions still flowing. With ``loop=True`` the file starts over
after its last sample plus one sample period, timestamps continuing forward.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl

from signals._checks import check_range, check_type
from signals.channels import map_channels
from signals.recording import EXTENSIONS as RECORDING_EXTENSIONS
from signals.recording import read_recording, recording_extension
from signals.timing import DEFAULT_GAP_FACTOR, DEFAULT_JITTER_S

from .outlets import described_info

logger = logging.getLogger(__name__)

EXTENSIONS = RECORDING_EXTENSIONS
MAX_SPEED = 1000.0
_MIN_CHUNK_S, _MAX_CHUNK_S = 0.005, 1.0


@dataclass(frozen=True)
class ReplayStream:
    """One outlet to replay.

    Parameters
    ----------
    name, type, source_id : str
        LSL stream name, content type and source_id.
    sfreq : float
        Nominal rate in Hz (0 for irregular streams such as markers).
    channel_format : str
        pylsl channel format name (``'float32'``, ``'double64'``, ``'int32'``, ``'string'``...).
    channels, units, channel_types : tuple of str
        Per-channel label, unit and type written to ``desc/channels/channel``.
    timestamps : array, shape (n_samples,)
        Recorded sample times (s), on the file's clock.
    data : array, shape (n_samples, n_channels), or list of str
        Samples (numeric streams) or marker texts (string streams).
    """

    name: str
    type: str
    source_id: str
    sfreq: float
    channel_format: str
    channels: tuple[str, ...]
    units: tuple[str, ...]
    channel_types: tuple[str, ...]
    timestamps: np.ndarray
    data: np.ndarray | list[str]

    @property
    def is_string(self) -> bool:
        """Whether the stream carries strings (markers)."""
        return self.channel_format == "string"

    def info(self) -> pylsl.StreamInfo:
        """The ``pylsl.StreamInfo`` of this stream, with its channel descriptions."""
        info = described_info(
            self.name, self.type, self.sfreq, self.channel_format, self.source_id,
            self.channels, self.units, self.channel_types,
        )  # fmt: skip
        info.desc().append_child("acquisition").append_child_value("model", "m2s replay")
        return info


def _rows(names: Sequence[str], channel: str) -> int | None:
    """Row of ``channel`` in ``names`` by the one matching rule (:func:`signals.channels.map_channels`), or None."""
    try:
        return int(map_channels(names, [channel])[0])
    except ValueError:
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "stream"


def load_recording(
    path: str | Path,
    *,
    name_prefix: str = "",
    source_id_prefix: str | None = None,
    channels: Sequence[str] | None = None,
    gap_factor: float = DEFAULT_GAP_FACTOR,
    jitter_s: float = DEFAULT_JITTER_S,
) -> list[ReplayStream]:
    """Read ``path`` into the streams :class:`Replayer` plays (module docstring, "Streams").

    Parameters
    ----------
    path : str | Path
        An ``.xdf``/``.xdfz``, ``.edf``, ``.bdf`` or ``.fif``/``.fif.gz`` file.
    name_prefix : str
        Prepended to every stream name.
    source_id_prefix : str | None
        Source ids are ``{source_id_prefix}-{stream}``; None = ``m2s-replay-{file stem}``.
    channels : sequence of str | None
        Keep only these channel labels in the numeric streams, matched ignoring case (streams left
        without channels are dropped; marker streams are kept). None = all channels.
    gap_factor, jitter_s : float
        The gap rule XDF timestamps are regularised with (:func:`signals.recording.read_recording`);
        the defaults are the feature spec's. Give the attached model's spec values when they differ.

    Returns
    -------
    list of ReplayStream
        Signal streams in file order (XDF) or by decreasing rate (EDF/BDF/FIF), then the marker
        streams; empty streams dropped.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown extension, unreadable file, unknown channel labels, or nothing left to play.
    """
    check_type(path, (str, Path), "path")
    check_type(name_prefix, str, "name_prefix")
    path = Path(path)
    ext = recording_extension(path)
    if ext not in EXTENSIONS:
        raise ValueError(
            f"{path}: cannot replay files with extension {ext or '(none)'!r}; give one of {', '.join(EXTENSIONS)}."
        )
    rec = read_recording(path, gap_factor=gap_factor, jitter_s=jitter_s)
    if source_id_prefix is None:
        stem = path.name[: -len(ext)] if path.name.lower().endswith(ext) else path.stem
        source_id_prefix = f"m2s-replay-{_slug(stem)}"
    check_type(source_id_prefix, str, "source_id_prefix")
    wanted = None
    if channels is not None:
        channels = list(channels)
        have = [c for s in rec.streams for c in s.channels]
        found = [c for c in channels if _rows(have, c) is not None]
        if len(found) != len(channels) or not channels:
            missing = [c for c in channels if c not in found]
            raise ValueError(
                f"{path}: --channels asks for {missing or channels}, which the file does not have; "
                f"its channels are {sorted(have)}."
            )
        wanted = channels
    out = []
    for s in rec.streams:
        # The one channel-matching rule (signals.channels, case-insensitive): each asked channel once.
        keep = (
            list(range(len(s.channels)))
            if wanted is None
            else sorted(r for c in wanted if (r := _rows(s.channels, c)) is not None)
        )
        if not keep:
            continue
        if s.n_times == 0:
            logger.info("Stream %r of %s has no samples; not replayed.", s.name, path)
            continue
        out.append(
            ReplayStream(
                name=f"{name_prefix}{s.name}",
                type=s.type,
                source_id=f"{source_id_prefix}-{_slug(s.name)}",
                sfreq=s.sfreq,
                channel_format=s.channel_format,
                channels=tuple(s.channels[i] for i in keep),
                units=tuple(s.units[i] for i in keep),
                channel_types=tuple(s.channel_types[i] for i in keep),
                timestamps=s.timestamps,
                data=np.ascontiguousarray(s.data[keep].T),
            )
        )
    for m in rec.markers:
        if len(m) == 0:
            logger.info("Marker stream %r of %s is empty; not replayed.", m.name, path)
            continue
        order = np.argsort(m.times, kind="stable")
        out.append(
            ReplayStream(
                name=f"{name_prefix}{m.name}",
                type=m.type,
                source_id=f"{source_id_prefix}-{_slug(m.name)}",
                sfreq=0.0,
                channel_format="string",
                channels=("marker",),
                units=("",),
                channel_types=("Marker",),
                timestamps=m.times[order],
                data=[m.texts[k] for k in order],
            )
        )
    if not out:
        raise ValueError(f"{path} holds no samples to replay.")
    ids = [s.source_id for s in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: two streams map to the same source_id ({ids}); rename the streams.")
    return out


class Replayer:
    """Push :class:`ReplayStream` objects to LSL outlets with their recorded relative timing.

    Parameters
    ----------
    streams : sequence of ReplayStream
        What to play (:func:`load_recording`).
    speed : float
        Playback speed, 1 = real time, up to 1000.
    loop : bool
        Start over after the end instead of stopping.
    chunk_s : float
        Recording seconds pushed per wake-up (0.005-1).
    clock : callable
        ``clock() -> float``, seconds: ``start_time`` and every due time are read from it (default
        ``pylsl.local_clock``, so timestamps are LSL times).
    sleep : callable | None
        ``sleep(seconds) -> bool``: how the playback thread waits until the next push is due; True
        ends playback. None: the stop event's ``wait`` (returns True once :meth:`stop` is called).

    Attributes
    ----------
    start_time : float | None
        ``clock()`` at :meth:`start`: the LSL time of the file's first sample; a sample
        recorded at ``t`` is stamped ``start_time + t - t_first`` at every speed.
    t_first : float
        The earliest recorded timestamp in ``streams`` (s, the file's clock).
    error : BaseException | None
        What stopped the playback thread, if anything failed.
    """

    def __init__(
        self,
        streams: Sequence[ReplayStream],
        *,
        speed: float = 1.0,
        loop: bool = False,
        chunk_s: float = 0.05,
        clock: Callable[[], float] = pylsl.local_clock,
        sleep: Callable[[float], bool] | None = None,
    ):
        streams = list(streams)
        if not streams or not all(isinstance(s, ReplayStream) for s in streams):
            raise TypeError("streams must be a non-empty sequence of ReplayStream (see load_recording).")
        check_range(speed, "speed", low=0, high=MAX_SPEED, low_inclusive=False)
        check_range(chunk_s, "chunk_s", low=_MIN_CHUNK_S, high=_MAX_CHUNK_S, unit="s")
        for fn, name in ((clock, "clock"), (sleep, "sleep")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__} instead.")
        self.streams = streams
        self.speed = float(speed)
        self.loop = bool(loop)
        self.chunk_s = float(chunk_s)
        self.t_first = min(float(s.timestamps[0]) for s in streams)
        t_last = max(float(s.timestamps[-1]) for s in streams)
        step = max((1.0 / s.sfreq for s in streams if s.sfreq > 0), default=0.0)
        self.period_s = t_last - self.t_first + step  # one pass through the file, recording seconds
        self.start_time: float | None = None
        self.error: BaseException | None = None
        self._rel = [s.timestamps - self.t_first for s in streams]
        self._pushed = [0] * len(streams)  # samples pushed, counted over loops
        self._outlets: list[pylsl.StreamOutlet] = []
        self._stop = threading.Event()
        self._clock = clock
        self._sleep = self._stop.wait if sleep is None else sleep
        self._thread: threading.Thread | None = None

    @property
    def n_pushed(self) -> dict[str, int]:
        """Samples pushed so far, per stream name."""
        return {s.name: n for s, n in zip(self.streams, self._pushed, strict=True)}

    @property
    def source_ids(self) -> dict[str, str]:
        """Source id per stream name."""
        return {s.name: s.source_id for s in self.streams}

    def start(self) -> Replayer:
        """Create the outlets and start playing in a background thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("this Replayer was already started; create a new one to play again.")
        self._outlets = [pylsl.StreamOutlet(s.info()) for s in self.streams]
        self.start_time = self._clock()
        self._thread = threading.Thread(target=self._run, name="m2s-replay", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the playback to end; True when it has."""
        if self._thread is None:
            raise RuntimeError("the Replayer was not started; call start() first.")
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop playing and destroy the outlets (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._outlets = []

    def __enter__(self) -> Replayer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # never die silently
            logger.exception("Replay failed.")
            self.error = err

    def _loop(self) -> None:
        position = 0.0  # recording seconds since t_first
        end = float("inf") if self.loop else self.period_s
        while not self._stop.is_set():
            position = min(position + self.chunk_s, end)
            due = self.start_time + position / self.speed
            delay = due - self._clock()
            if delay > 0 and self._sleep(delay):
                return
            for k in range(len(self.streams)):
                self._push(k, position)
            if position >= end:
                return

    def _push(self, k: int, position: float) -> None:
        """Push the samples of stream ``k`` recorded up to ``position`` s (across loops)."""
        s, rel, outlet = self.streams[k], self._rel[k], self._outlets[k]
        n = len(rel)
        while self.loop or self._pushed[k] < n:
            cycle, i = divmod(self._pushed[k], n)
            offset = cycle * self.period_s
            if offset + rel[i] > position:
                return
            j = min(n, int(np.searchsorted(rel, position - offset, side="right")))
            stamps = self.start_time + (rel[i:j] + offset)  # the recording's spacing (module docstring)
            if s.is_string:
                for text, ts in zip(s.data[i:j], stamps, strict=True):
                    outlet.push_sample([text], float(ts))
            else:
                outlet.push_chunk(np.ascontiguousarray(s.data[i:j]), stamps.tolist())
            self._pushed[k] += j - i
