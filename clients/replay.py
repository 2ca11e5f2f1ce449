"""Recording replay: play an XDF, EDF, BDF or FIF file back as LSL outlets, in real time or faster.

:func:`load_recording` turns a file into :class:`ReplayStream` objects (one per LSL outlet) and
:class:`Replayer` pushes them with the original relative timing.

Streams
-------
- XDF (``pyxdf``): every stream becomes one outlet, with its name, type, channel count and
  format, nominal rate and the ``desc/channels/channel/{label, unit, type}`` of its header.
  String streams (markers) become irregular string outlets whose samples are pushed at their
  recorded times.
- EDF/BDF/FIF (``mne``): one outlet per group of channels that share a sampling rate (EDF/BDF
  may mix rates; MNE upsamples the slower channels to the fastest rate when reading, so those
  are brought back to their header rate with a polyphase resampler). The outlet's type is the
  group's channel type when all channels share one (``EEG``, ``ECG``...), else ``Mixed``.
  MNE returns voltages in volts; EEG, EOG, EMG, sEEG and ECoG channels are sent in microvolts
  and ECG in millivolts (the units amplifiers stream and the service's models use), with the
  unit written to each channel's header. Annotations become one string marker outlet.

Names and source ids are stable: a stream named ``N`` in file ``F.ext`` is published as
``{name_prefix}N`` with source_id ``{source_id_prefix}-N`` (default prefix
``m2s-replay-{F}``), lower-cased with non-alphanumerics replaced by ``-``; so a consumer that
attaches by source_id finds the same stream again on every replay of that file.

Timing
------
All streams share one origin, ``t_first``, the earliest timestamp in the file. A sample recorded
at ``t_i`` is stamped ``start_time + (t_i - t_first) / speed`` (``start_time`` is
``pylsl.local_clock()`` at :meth:`Replayer.start`) and pushed when that time is due; due times
are computed from one monotonic start, never by accumulating sleeps, so pacing does not drift.
As in :mod:`clients.simulator`, LSL time follows the wall clock at every speed. With
``loop=True`` the file starts over after its last sample plus one sample period, timestamps
continuing forward.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl

from signals._checks import check_range, check_type

from .outlets import described_info

logger = logging.getLogger(__name__)

XDF_EXTENSIONS: tuple[str, ...] = (".xdf", ".xdfz")
MNE_EXTENSIONS: tuple[str, ...] = (".edf", ".bdf", ".fif", ".fif.gz")
EXTENSIONS: tuple[str, ...] = XDF_EXTENSIONS + MNE_EXTENSIONS
MAX_SPEED = 1000.0
_MIN_CHUNK_S, _MAX_CHUNK_S = 0.005, 1.0

# MNE channel type -> (unit sent, factor from volts); other types keep MNE's value and unit.
_VOLT_UNITS = {
    "eeg": ("microvolts", 1e6),
    "eog": ("microvolts", 1e6),
    "emg": ("microvolts", 1e6),
    "seeg": ("microvolts", 1e6),
    "ecog": ("microvolts", 1e6),
    "ecg": ("millivolts", 1e3),
}


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


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in EXTENSIONS:
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "stream"


def _xdf_text(info: dict, key: str, default: str = "") -> str:
    value = info.get(key)
    if isinstance(value, list):
        value = value[0] if value else default
    return default if value is None else str(value)


def _read_xdf(path: Path) -> list[dict]:
    """Every stream of the file as a dict of header fields, timestamps and samples."""
    import pyxdf

    try:
        streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    except Exception as err:  # pyxdf raises many types for unreadable files
        raise ValueError(f"{path} could not be read as XDF by pyxdf: {err}") from err
    out = []
    for s in streams:
        info = s["info"]
        n = int(_xdf_text(info, "channel_count", "1"))
        fmt = _xdf_text(info, "channel_format", "float32")
        labels = [f"ch{i + 1}" for i in range(n)]
        units, kinds = [""] * n, [_xdf_text(info, "type")] * n
        try:
            for i, ch in enumerate(info["desc"][0]["channels"][0]["channel"][:n]):
                labels[i] = _xdf_text(ch, "label", labels[i])
                units[i] = _xdf_text(ch, "unit", units[i])
                kinds[i] = _xdf_text(ch, "type", kinds[i])
        except (KeyError, IndexError, TypeError):
            pass  # channel metadata is optional in XDF
        ts = np.asarray(s["time_stamps"], dtype=float)
        if fmt == "string":
            data = [
                str(v[0]) if isinstance(v, (list, tuple, np.ndarray)) else str(v) for v in s["time_series"]
            ]
        else:
            data = np.asarray(s["time_series"]).reshape(len(ts), n)
        out.append(
            {
                "name": _xdf_text(info, "name", "stream"),
                "type": _xdf_text(info, "type"),
                "sfreq": float(_xdf_text(info, "nominal_srate", "0")),
                "format": fmt,
                "channels": labels,
                "units": units,
                "kinds": kinds,
                "timestamps": ts,
                "data": data,
            }
        )
    return out


def _read_mne(path: Path, ext: str) -> list[dict]:
    """Channel groups of equal sampling rate (units converted), plus the annotations as markers."""
    import mne
    from mne.io.constants import FIFF
    from scipy.signal import resample_poly

    readers = {
        ".edf": mne.io.read_raw_edf,
        ".bdf": mne.io.read_raw_bdf,
        ".fif": mne.io.read_raw_fif,
        ".fif.gz": mne.io.read_raw_fif,
    }
    try:
        raw = readers[ext](path, preload=True, verbose="error")
    except Exception as err:  # MNE raises many types for unreadable files
        raise ValueError(f"{path} could not be read as {ext[1:].upper()} by MNE: {err}") from err
    sfreq = float(raw.info["sfreq"])
    kinds = raw.get_channel_types()
    # EDF/BDF headers give each signal's own rate; MNE read them all at the fastest one.
    rates = [sfreq] * len(raw.ch_names)
    extras = getattr(raw, "_raw_extras", [{}])[0] or {}
    rec_len = float(np.atleast_1d(extras.get("record_length", 0.0))[0])
    if "n_samps" in extras and rec_len > 0:
        sel = extras.get("sel", np.arange(len(extras["n_samps"])))
        n_samps = np.asarray(extras["n_samps"])[sel]
        if len(n_samps) == len(rates):
            rates = [float(n) / rec_len for n in n_samps]
    data = raw.get_data()
    groups: dict[float, list[int]] = {}
    for i, rate in enumerate(rates):
        groups.setdefault(rate, []).append(i)
    out = []
    for rate, picks in sorted(groups.items(), reverse=True):
        block = data[picks]
        if rate != sfreq:
            from fractions import Fraction

            frac = Fraction(rate / sfreq).limit_denominator(1000)
            block = resample_poly(block, frac.numerator, frac.denominator, axis=1)
        units = []
        for j, i in enumerate(picks):
            kind = kinds[i]
            if raw.info["chs"][i]["unit"] == FIFF.FIFF_UNIT_V:
                unit, factor = _VOLT_UNITS.get(kind, ("volts", 1.0))
                block[j] *= factor
            else:
                unit = "native"
            units.append(unit)
        group_kinds = {kinds[i] for i in picks}
        stype = group_kinds.pop().upper() if len(group_kinds) == 1 else "Mixed"
        name = stype if len(groups) == 1 else f"{stype}-{rate:g}Hz"
        out.append(
            {
                "name": name,
                "type": stype,
                "sfreq": rate,
                "format": "float32",
                "channels": [raw.ch_names[i] for i in picks],
                "units": units,
                "kinds": [kinds[i].upper() for i in picks],
                "timestamps": np.arange(block.shape[1]) / rate,
                "data": block.T,
            }
        )
    ann = raw.annotations
    if len(ann):
        offset = raw.first_time if ann.orig_time is not None else 0.0
        onsets = np.asarray(ann.onset, dtype=float) - offset
        order = np.argsort(onsets, kind="stable")
        out.append(
            {
                "name": "Markers",
                "type": "Markers",
                "sfreq": 0.0,
                "format": "string",
                "channels": ["marker"],
                "units": [""],
                "kinds": ["Marker"],
                "timestamps": onsets[order],
                "data": [str(ann.description[k]) for k in order],
            }
        )
    return out


def load_recording(
    path: str | Path,
    *,
    name_prefix: str = "",
    source_id_prefix: str | None = None,
    channels: Sequence[str] | None = None,
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
        Keep only these channel labels in the numeric streams (streams left without channels are
        dropped; marker streams are kept). None = all channels.

    Returns
    -------
    list of ReplayStream
        In file order (XDF) or by decreasing rate, markers last (EDF/BDF/FIF); empty streams dropped.

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
    ext = _extension(path)
    if ext not in EXTENSIONS:
        raise ValueError(
            f"{path}: cannot replay files with extension {ext or '(none)'!r}; give one of {', '.join(EXTENSIONS)}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file; check the path.")
    raw_streams = _read_xdf(path) if ext in XDF_EXTENSIONS else _read_mne(path, ext)
    if source_id_prefix is None:
        stem = path.name[: -len(ext)] if path.name.lower().endswith(ext) else path.stem
        source_id_prefix = f"m2s-replay-{_slug(stem)}"
    check_type(source_id_prefix, str, "source_id_prefix")
    if channels is not None:
        wanted = list(channels)
        have = {c for s in raw_streams if s["format"] != "string" for c in s["channels"]}
        missing = [c for c in wanted if c not in have]
        if missing or not wanted:
            raise ValueError(
                f"{path}: --channels asks for {missing or wanted}, which the file does not have; "
                f"its channels are {sorted(have)}."
            )
    out = []
    for s in raw_streams:
        if len(s["timestamps"]) == 0:
            logger.info("Stream %r of %s has no samples; not replayed.", s["name"], path)
            continue
        ch, units, kinds, data = s["channels"], s["units"], s["kinds"], s["data"]
        if channels is not None and s["format"] != "string":
            keep = [i for i, c in enumerate(ch) if c in set(channels)]
            if not keep:
                continue
            ch, units, kinds = [ch[i] for i in keep], [units[i] for i in keep], [kinds[i] for i in keep]
            data = data[:, keep]
        out.append(
            ReplayStream(
                name=f"{name_prefix}{s['name']}",
                type=s["type"],
                source_id=f"{source_id_prefix}-{_slug(s['name'])}",
                sfreq=s["sfreq"],
                channel_format=s["format"],
                channels=tuple(ch),
                units=tuple(units),
                channel_types=tuple(kinds),
                timestamps=np.asarray(s["timestamps"], dtype=float),
                data=data if s["format"] == "string" else np.ascontiguousarray(data),
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

    Attributes
    ----------
    start_time : float | None
        ``pylsl.local_clock()`` at :meth:`start`: the LSL time of the file's first sample.
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
    ):
        streams = list(streams)
        if not streams or not all(isinstance(s, ReplayStream) for s in streams):
            raise TypeError("streams must be a non-empty sequence of ReplayStream (see load_recording).")
        check_range(speed, "speed", low=0, high=MAX_SPEED, low_inclusive=False)
        check_range(chunk_s, "chunk_s", low=_MIN_CHUNK_S, high=_MAX_CHUNK_S, unit="s")
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
        self.start_time = pylsl.local_clock()
        self._mono_start = time.monotonic()
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
            due = self._mono_start + position / self.speed
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
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
            stamps = self.start_time + (rel[i:j] + offset) / self.speed
            if s.is_string:
                for text, ts in zip(s.data[i:j], stamps, strict=True):
                    outlet.push_sample([text], float(ts))
            else:
                outlet.push_chunk(np.ascontiguousarray(s.data[i:j]), stamps.tolist())
            self._pushed[k] += j - i
