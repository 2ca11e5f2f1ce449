"""Recording I/O: XDF, EDF, BDF and FIF files as streams of timestamped samples plus markers.

:func:`read_recording` is the one reader of recorded files: the dataset loader
(:mod:`training.datasets.recordings`) and ``m2s replay`` (:mod:`clients.replay`) both use it.
:class:`XdfWriter` is the one writer: the service records sessions with it (``POST /recordings``)
and the test fixtures write their XDF files with it. Reading needs ``pyxdf`` (XDF) or ``mne``
(EDF/BDF/FIF), imported when a file is read (``pip install 'm2s-live[recordings]'``); writing and
the module itself need only the base install (numpy, scipy, pydantic through :mod:`signals`).

Streams
-------
- **XDF** (pyxdf, clock offsets applied): every numeric stream is one :class:`Stream` with the
  header's name, type, source_id, nominal rate, channel format and
  ``desc/channels/channel/{label, unit, type}`` (``ch1``, ``ch2``… and unit ``""`` when absent).
  String streams are :class:`Markers`. Timestamps are on the recording's LSL clock.
- **EDF/BDF/FIF** (MNE): one :class:`Stream` per group of channels sharing a sampling rate, at the
  rate the file's header gives that group. EDF/BDF may mix rates and MNE reads every channel at the
  fastest one, upsampling the others by FFT; the reader undoes that upsampling with the inverse
  FFT resampling, which gives back the header-rate samples (to ~1e-15 relative), so a model
  trained on the 200-Hz EEG of a file with a 256-Hz ECG is trained at 200 Hz and the replayed file
  streams its EEG at 200 Hz. The stream's type is the group's channel type when all share one
  (``EEG``, ``ECG``…), else ``Mixed``; its name is the type, suffixed ``-<rate>Hz`` when the file
  has several rates. Timestamps are seconds from the first sample (``k / sfreq``). Annotations
  are one :class:`Markers` named ``Markers``, on the same clock.

Units
-----
Samples are in the unit each channel declares (:attr:`Stream.units`), converted only through the
one unit table (:func:`signals.units.unit_scale`). XDF samples are as recorded, in the header's
unit. EDF/BDF voltage channels come back in their header's physical dimension (``uV``, ``mV``…),
undoing MNE's conversion to volts; FIF stores volts, which come back in the unit amplifiers stream
each channel type in: µV (``microvolts``) for EEG, EOG, EMG, sEEG and ECoG, mV (``millivolts``)
for ECG, V otherwise. Channels MNE does not hold in volts keep MNE's value, unit ``native``.

Timing
------
One dejitter rule, the feature spec's gap rule (:mod:`signals.timing`): a step above
``gap_factor / sfreq`` is a gap, and within a segment the timestamps are regularised. XDF streams
with a nominal rate are read with pyxdf's own dejittering off and regularised by
:func:`signals.timing.dejitter` with ``gap_factor`` (the live LSL worker runs the same
:class:`~signals.timing.SegmentDejitter` with the attached bundle's ``gap_factor``); EDF/BDF/FIF
timestamps are regular by construction. ``gap_factor=None`` keeps XDF timestamps as recorded.

Markers
-------
Marker times are never snapped to the sample grid: a marker keeps the time the file gives it (XDF:
its LSL timestamp; EDF/BDF/FIF: the annotation onset). A consumer that cuts samples with markers
takes the samples with ``start <= t < end`` on their timestamps, as the dataset loader does and as
a live consumer comparing LSL marker times with sample times would. A sample exactly on a marker
belongs to the span the marker starts.

Writing XDF
-----------
:class:`XdfWriter` appends XDF 1.0 chunks (FileHeader, StreamHeader, Samples, ClockOffset,
Boundary, StreamFooter) to a file it creates owner-readable only (``0o600``: recordings are
health data). Every chunk is encoded whole and handed to the kernel with unbuffered writes before
the call returns, so a process killed at any moment leaves every chunk written so far on disk;
at most the one chunk being written is cut. Such a tail is harmless to this module:
:func:`read_recording` reads up to the last complete chunk (with a warning), and
:func:`repair_xdf` cuts it off for other readers (pyxdf stops with an error on a cut chunk header).
Boundary chunks every few seconds let pyxdf resynchronise after damage in the middle of a file.
Samples keep their stream's channel format (``float32``, ``double64``, ``int8`` … ``int64`` or
``string``); every sample carries its timestamp.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from ._checks import check_type
from .channels import map_channels
from .timing import DEFAULT_GAP_FACTOR, DEFAULT_JITTER_S, dejitter
from .units import unit_scale
from .windowing import segment_breaks

logger = logging.getLogger(__name__)

XDF_EXTENSIONS: tuple[str, ...] = (".xdf", ".xdfz")
MNE_EXTENSIONS: tuple[str, ...] = (".edf", ".bdf", ".fif", ".fif.gz")
EXTENSIONS: tuple[str, ...] = XDF_EXTENSIONS + MNE_EXTENSIONS
_INSTALL = "pip install 'm2s-live[recordings]'"

# Unit each MNE voltage channel type is returned in when the file stores volts (FIF): what
# amplifiers stream and the models use. Only names here; the factors come from signals.units.
_UNIT_OF_TYPE = {
    **dict.fromkeys(("eeg", "eog", "emg", "seeg", "ecog"), "microvolts"),
    "ecg": "millivolts",
}


@dataclass(frozen=True, eq=False)
class Stream:
    """One stream of samples: a recorded XDF stream, or the channels of an EDF/BDF/FIF file at one rate.

    Parameters
    ----------
    name, type : str
        Stream name and content type (``'EEG'``, ``'ECG'``, ``'Mixed'``…).
    sfreq : float
        Nominal sampling rate in Hz; 0 for an irregular-rate stream.
    channels : tuple of str, length n_channels
        Channel labels.
    units : tuple of str, length n_channels
        The unit of each channel's samples (``'microvolts'``, ``'mV'``, ``'native'``…; ``''`` when
        the file declares none).
    channel_types : tuple of str, length n_channels
        Per-channel type (``'EEG'``, ``'ECG'``…; the stream type when the file gives none).
    timestamps : array of float64, shape (n_times,)
        Sample times in s, on the recording's clock (module docstring, "Timing").
    data : array, shape (n_channels, n_times)
        Samples, in ``units``; XDF keeps the recorded dtype, MNE gives float64.
    source_id : str
        The stream's LSL source_id (XDF), else ``''``.
    channel_format : str
        The XDF/LSL channel format (``'float32'``, ``'double64'``, ``'int16'``…).
    """

    name: str
    type: str
    sfreq: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    channel_types: tuple[str, ...]
    timestamps: np.ndarray
    data: np.ndarray
    source_id: str = ""
    channel_format: str = "float32"

    def __post_init__(self) -> None:
        n_channels = len(self.channels)
        if len(self.units) != n_channels or len(self.channel_types) != n_channels:
            raise ValueError(
                f"stream {self.name!r}: {n_channels} channels but {len(self.units)} units and "
                f"{len(self.channel_types)} channel types; give one of each per channel."
            )
        if self.data.ndim != 2 or self.data.shape != (n_channels, self.timestamps.shape[0]):
            raise ValueError(
                f"stream {self.name!r}: data has shape {self.data.shape}, expected (n_channels, n_times) = "
                f"({n_channels}, {self.timestamps.shape[0]})."
            )

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.channels)

    @property
    def n_times(self) -> int:
        """Number of samples."""
        return int(self.timestamps.shape[0])

    def __repr__(self) -> str:
        rate = f"{self.sfreq:g} Hz" if self.sfreq > 0 else "irregular"
        return f"<Stream {self.name!r} ({self.type}) | {self.n_channels} ch, {self.n_times} samples, {rate}>"

    def pick(self, channels: Sequence[str]) -> Stream:
        """The stream restricted to ``channels``, in that order (names matched as live: case ignored).

        Parameters
        ----------
        channels : sequence of str
            Wanted labels (:func:`signals.channels.map_channels`).

        Returns
        -------
        stream : Stream
            With the stream's own spelling of each label.

        Raises
        ------
        ValueError
            A label is missing or ambiguous (the message lists the stream's channels).
        """
        rows = map_channels(self.channels, channels)
        return replace(
            self,
            channels=tuple(self.channels[r] for r in rows),
            units=tuple(self.units[r] for r in rows),
            channel_types=tuple(self.channel_types[r] for r in rows),
            data=self.data[rows],
        )

    def dejittered(self, gap_factor: float, jitter_s: float = DEFAULT_JITTER_S) -> Stream:
        """The stream with its timestamps regularised by :func:`signals.timing.dejitter` (rate > 0 only)."""
        if self.sfreq <= 0:
            raise ValueError(
                f"stream {self.name!r} has an irregular rate; only regular streams are dejittered."
            )
        return replace(
            self, timestamps=dejitter(self.timestamps, self.sfreq, gap_factor=gap_factor, jitter_s=jitter_s)
        )


@dataclass(frozen=True, eq=False)
class Markers:
    """Event markers: one text per time.

    Parameters
    ----------
    name : str
        Stream name (``'Markers'`` for EDF/BDF/FIF annotations).
    times : array of float64, shape (n_markers,)
        Marker times in s, on the clock of the recording's streams; never snapped to samples.
    texts : tuple of str, length n_markers
        Marker texts.
    type : str
        Content type (``'Markers'``).
    source_id : str
        LSL source_id (XDF), else ``''``.
    """

    name: str
    times: np.ndarray
    texts: tuple[str, ...]
    type: str = "Markers"
    source_id: str = ""

    def __post_init__(self) -> None:
        if self.times.shape != (len(self.texts),):
            raise ValueError(
                f"markers {self.name!r}: {self.times.shape} times for {len(self.texts)} texts; give one time per text."
            )

    def __len__(self) -> int:
        return len(self.texts)

    def sorted(self) -> list[tuple[float, str]]:
        """``(time, text)`` pairs in time order (stable for equal times)."""
        order = np.argsort(self.times, kind="stable")
        return [(float(self.times[k]), self.texts[k]) for k in order]


@dataclass(frozen=True, eq=False)
class Recording:
    """Everything a recording holds: signal streams and marker streams.

    Parameters
    ----------
    streams : tuple of Stream
        In file order (XDF) or by decreasing rate (EDF/BDF/FIF).
    markers : tuple of Markers
        XDF string streams in file order; EDF/BDF/FIF annotations (none when the file has none).
    source : str
        Where it came from (the path), for messages.
    extra : dict
        Reader-specific facts a writer may carry over (EDF/BDF/FIF: ``'meas_date'``, the
        recording's start as a datetime or None).
    """

    streams: tuple[Stream, ...]
    markers: tuple[Markers, ...] = ()
    source: str = ""
    extra: dict = field(default_factory=dict, repr=False)

    def stream(self, name: str) -> Stream:
        """The one signal stream called ``name``.

        Raises
        ------
        ValueError
            No stream or several streams have that name (the message lists the names).
        """
        return _one(self.streams, name, self.source, "signal stream")

    def marker_stream(self, name: str | None = None) -> Markers:
        """The marker stream called ``name``, or the only one when ``name`` is None.

        Raises
        ------
        ValueError
            No match, or several (the message lists the names and says to pass one).
        """
        if name is not None:
            return _one(self.markers, name, self.source, "marker stream")
        if len(self.markers) != 1:
            names = [m.name for m in self.markers]
            raise ValueError(
                f"{self.source}: expected exactly one marker stream, found {len(names)} {names}; name the one to use."
            )
        return self.markers[0]


def _one(items, name: str, source: str, what: str):
    hits = [s for s in items if s.name == name]
    if len(hits) != 1:
        problem = "no" if not hits else str(len(hits))
        raise ValueError(
            f"{source}: {problem} {what} named {name!r}; its {what}s are {[s.name for s in items]}."
        )
    return hits[0]


def recording_extension(path: str | Path) -> str:
    """The recording extension of ``path`` (``'.xdf'``, ``'.fif.gz'``…), lower-cased; the plain suffix if unknown."""
    path = Path(path)
    name = path.name.lower()
    for ext in EXTENSIONS:
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def read_recording(
    path: str | Path, *, gap_factor: float | None = DEFAULT_GAP_FACTOR, jitter_s: float = DEFAULT_JITTER_S
) -> Recording:
    """Read an XDF, EDF, BDF or FIF file (module docstring: streams, units, timing, markers).

    Parameters
    ----------
    path : str | Path
        An ``.xdf``/``.xdfz``, ``.edf``, ``.bdf`` or ``.fif``/``.fif.gz`` file.
    gap_factor : float | None
        The gap rule XDF timestamps are regularised with (a step above ``gap_factor / sfreq`` is a
        gap; the feature spec's ``gap_factor``). None: XDF timestamps as recorded.
    jitter_s : float
        Deviations up to this many seconds are jitter, not gaps (the feature spec's ``jitter_s``).

    Returns
    -------
    recording : Recording

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown extension, or a file its reader cannot read (with the reader's message).
    ImportError
        pyxdf or mne is not installed (the message says what to install).
    """
    check_type(path, (str, Path), "path")
    path = Path(path)
    ext = recording_extension(path)
    if ext not in EXTENSIONS:
        raise ValueError(
            f"{path}: cannot read recordings with extension {ext or '(none)'!r}; give one of {', '.join(EXTENSIONS)}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file; check the path.")
    if ext in XDF_EXTENSIONS:
        return _read_xdf(path, gap_factor, jitter_s)
    return _read_mne(path, ext)


# --------------------------------------------------------------------------------------------
# XDF (pyxdf)
# --------------------------------------------------------------------------------------------


def _xdf_text(info: dict, key: str, default: str = "") -> str:
    value = info.get(key)
    if isinstance(value, list):
        value = value[0] if value else default
    return default if value is None else str(value)


def _read_xdf(path: Path, gap_factor: float | None, jitter_s: float) -> Recording:
    try:
        import pyxdf
    except ImportError as err:
        raise ImportError(f"reading XDF files needs pyxdf: {_INSTALL}.") from err
    source: str | io.BytesIO = str(path)
    if recording_extension(path) == ".xdf":
        complete, size = xdf_complete_length(path)
        if complete < size:  # cut while being written (a killed recorder): read the complete chunks
            logger.warning(
                "%s ends with an incomplete chunk (%d bytes cut while writing); reading up to the last "
                "complete chunk. repair_xdf() removes that tail for other readers.",
                path, size - complete,
            )  # fmt: skip
            with open(path, "rb") as f:
                source = io.BytesIO(f.read(complete))
    try:
        # Our dejitter rule, not pyxdf's (breaks at 1 s / 500 samples): see "Timing".
        raw_streams, _header = pyxdf.load_xdf(source, dejitter_timestamps=False)
    except Exception as err:  # pyxdf raises many types for unreadable files
        raise ValueError(f"{path} could not be read as XDF by pyxdf: {err}") from err
    streams, markers = [], []
    for s in raw_streams:
        info = s["info"]
        name, stype = _xdf_text(info, "name", "stream"), _xdf_text(info, "type")
        source_id, fmt = _xdf_text(info, "source_id"), _xdf_text(info, "channel_format", "float32")
        ts = np.asarray(s["time_stamps"], dtype=np.float64).reshape(-1)
        if fmt == "string":
            texts = tuple(
                str(v[0]) if isinstance(v, (list, tuple, np.ndarray)) else str(v) for v in s["time_series"]
            )
            markers.append(Markers(name, ts, texts, type=stype or "Markers", source_id=source_id))
            continue
        n = int(_xdf_text(info, "channel_count", "1"))
        labels, units, kinds = [f"ch{i + 1}" for i in range(n)], [""] * n, [stype] * n
        try:
            for i, ch in enumerate(info["desc"][0]["channels"][0]["channel"][:n]):
                labels[i] = _xdf_text(ch, "label", labels[i]) or labels[i]
                units[i] = _xdf_text(ch, "unit", units[i])
                kinds[i] = _xdf_text(ch, "type", kinds[i]) or kinds[i]
        except (KeyError, IndexError, TypeError):
            pass  # channel metadata is optional in XDF
        sfreq = float(_xdf_text(info, "nominal_srate", "0"))
        data = np.asarray(s["time_series"]).reshape(ts.shape[0], n).T
        if gap_factor is not None and sfreq > 0 and ts.shape[0]:
            ts = dejitter(ts, sfreq, gap_factor=gap_factor, jitter_s=jitter_s)
            n_gaps = int(np.count_nonzero(segment_breaks(ts, sfreq, gap_factor)[1:]))
            if n_gaps:
                logger.info(
                    "%s: stream %r has %d timestamp gap(s) (steps above %.3g ms = gap_factor %g / %g Hz); "
                    "no feature window spans one. Raise the spec's gap_factor to bridge jitter.",
                    path, name, n_gaps, 1e3 * gap_factor / sfreq, gap_factor, sfreq,
                )  # fmt: skip
        streams.append(
            Stream(name, stype, sfreq, tuple(labels), tuple(units), tuple(kinds), ts, data, source_id, fmt)
        )
    return Recording(tuple(streams), tuple(markers), str(path))


# --------------------------------------------------------------------------------------------
# EDF / BDF / FIF (MNE)
# --------------------------------------------------------------------------------------------


def _header_rates(raw, sfreq: float) -> tuple[list[float], np.ndarray | None]:
    """Each channel's rate in the file header (EDF/BDF may mix them), and MNE's unit scale per channel."""
    n = len(raw.ch_names)
    extras = (getattr(raw, "_raw_extras", None) or [{}])[0] or {}
    rates = [sfreq] * n
    rec_len = float(np.atleast_1d(extras.get("record_length", 0.0))[0])
    if "n_samps" in extras and rec_len > 0:
        sel = extras.get("sel", np.arange(len(extras["n_samps"])))
        n_samps = np.asarray(extras["n_samps"])[sel]
        if len(n_samps) == n:
            rates = [float(k) / rec_len for k in n_samps]
    scales = extras.get("units")
    scales = np.asarray(scales, dtype=float) if scales is not None and len(scales) == n else None
    return rates, scales


def _read_mne(path: Path, ext: str) -> Recording:
    try:
        import mne
        from mne.filter import resample
        from mne.io.constants import FIFF
    except ImportError as err:
        raise ImportError(f"reading {ext[1:].upper()} files needs mne: {_INSTALL}.") from err
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
    rates, mne_scales = _header_rates(raw, sfreq)
    orig_units = getattr(raw, "_orig_units", None) or {}
    data = raw.get_data()  # (n_channels, n_times), volts for voltage channels
    units = []
    for i, name in enumerate(raw.ch_names):
        if raw.info["chs"][i]["unit"] != FIFF.FIFF_UNIT_V:
            units.append("native")
        elif orig_units.get(name) and mne_scales is not None:  # EDF/BDF: back to the header's unit
            data[i] /= mne_scales[i]
            units.append(str(orig_units[name]))
        else:  # FIF: volts, sent in the unit amplifiers use for the type
            unit = _UNIT_OF_TYPE.get(kinds[i], "V")
            data[i] *= unit_scale("V", unit)
            units.append(unit)
    groups: dict[float, list[int]] = {}
    for i, rate in enumerate(rates):
        groups.setdefault(rate, []).append(i)
    n_times = data.shape[1]
    streams = []
    for rate, picks in sorted(groups.items(), reverse=True):
        block = data[picks]
        if rate != sfreq:  # MNE upsampled these by FFT (npad=0): the inverse gives the header's samples
            n_rate = int(round(n_times * rate / sfreq))
            block = resample(block, n_rate, n_times, npad=0, axis=-1, verbose="error")
        group_kinds = {kinds[i] for i in picks}
        stype = group_kinds.pop().upper() if len(group_kinds) == 1 else "Mixed"
        streams.append(
            Stream(
                name=stype if len(groups) == 1 else f"{stype}-{rate:g}Hz",
                type=stype,
                sfreq=rate,
                channels=tuple(raw.ch_names[i] for i in picks),
                units=tuple(units[i] for i in picks),
                channel_types=tuple(kinds[i].upper() for i in picks),
                timestamps=np.arange(block.shape[1]) / rate,
                data=np.ascontiguousarray(block),
                channel_format="float32",
            )
        )
    ann = raw.annotations
    markers = ()
    if len(ann):
        # Onsets are on the meas_date clock when orig_time is set, else on the data's.
        offset = raw.first_time if ann.orig_time is not None else 0.0
        onsets = np.asarray(ann.onset, dtype=np.float64) - offset
        markers = (Markers("Markers", onsets, tuple(str(d) for d in ann.description)),)
    return Recording(tuple(streams), markers, str(path), {"meas_date": raw.info["meas_date"]})


# --------------------------------------------------------------------------------------------
# XDF writer
# --------------------------------------------------------------------------------------------

_XDF_MAGIC = b"XDF:"
_FILE_HEADER, _STREAM_HEADER, _SAMPLES, _CLOCK_OFFSET, _BOUNDARY, _STREAM_FOOTER = 1, 2, 3, 4, 5, 6
# The XDF specification's Boundary chunk content: readers scan for it to resynchronise.
_BOUNDARY_UUID = bytes.fromhex("43a546dccbf5410fb30ed5467383cbe4")
#: LSL/XDF numeric channel formats and their little-endian numpy types.
XDF_NUMERIC_FORMATS: dict[str, str] = {
    "float32": "<f4",
    "double64": "<f8",
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
}
_FILE_MODE = 0o600  # recordings are health data: owner-readable only


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _xdf_chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def xdf_stream_header(
    name: str,
    type: str,
    channel_count: int,
    nominal_srate: float,
    channel_format: str,
    source_id: str = "",
    *,
    channels: Sequence[str] = (),
    units: Sequence[str] = (),
    channel_types: Sequence[str] = (),
    extra: dict[str, str] | None = None,
) -> str:
    """The XML of an XDF StreamHeader (LSL's ``info`` document) for a stream with no LSL info at hand.

    A live LSL stream's own ``StreamInfo.as_xml()`` is the better header (it keeps the whole
    ``desc``); this builds the same layout from parts: ``desc/channels/channel/{label, unit, type}``
    when ``channels`` is given (``units`` and ``channel_types`` then give one entry per channel, or
    none), and ``extra`` as further ``<key>value</key>`` elements of ``info``.
    """
    if channel_format != "string" and channel_format not in XDF_NUMERIC_FORMATS:
        raise ValueError(
            f"channel_format {channel_format!r} is not an XDF format; use 'string' or one of "
            f"{', '.join(XDF_NUMERIC_FORMATS)}."
        )
    channels_xml = ""
    if channels:
        n = len(channels)
        units = tuple(units) or ("",) * n
        kinds = tuple(channel_types) or (type,) * n
        if len(units) != n or len(kinds) != n:
            raise ValueError(f"{n} channels but {len(units)} units and {len(kinds)} channel types.")
        channels_xml = (
            "<channels>"
            + "".join(
                f"<channel><label>{escape(c)}</label><unit>{escape(u)}</unit><type>{escape(k)}</type></channel>"
                for c, u, k in zip(channels, units, kinds, strict=True)
            )
            + "</channels>"
        )
    extra_xml = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in (extra or {}).items())
    return (
        '<?xml version="1.0"?><info>'
        f"<name>{escape(name)}</name><type>{escape(type)}</type><channel_count>{int(channel_count)}</channel_count>"
        f"<nominal_srate>{float(nominal_srate)!r}</nominal_srate><channel_format>{channel_format}</channel_format>"
        f"<source_id>{escape(source_id)}</source_id><version>1.1</version>{extra_xml}"
        f"<desc>{channels_xml}</desc></info>"
    )


@dataclass
class _WrittenStream:
    fmt: str
    n_channels: int
    sample_dtype: np.dtype | None  # packed (timestamp flag, timestamp, values) record; None for strings
    first: float | None = None
    last: float | None = None
    n_samples: int = 0
    offsets: list[tuple[float, float]] = field(default_factory=list)


class XdfWriter:
    """Append XDF 1.0 chunks to a new file; each chunk reaches the kernel whole before a call returns.

    Parameters
    ----------
    path : str | Path
        The new file (``.xdf``). It must not exist; it is created with mode ``0o600``.
    boundary_every_s : float
        Write a Boundary chunk when this much LSL time has passed since the last one (sample times
        of any stream), as LabRecorder does, so readers can resynchronise after damage.

    Notes
    -----
    Module docstring, "Writing XDF". Thread-safe: calls are serialised. ``OSError`` (a full or
    unwritable disk) propagates to the caller and the part of that chunk that was written is cut off
    again: the file keeps exactly the chunks written before, and the writer writes nothing more
    (later calls raise ``ValueError``; :meth:`close` then adds no footers). Writing after
    :meth:`close` raises ``ValueError``.

    Examples
    --------
    >>> with XdfWriter("session.xdf") as xdf:  # doctest: +SKIP
    ...     sid = xdf.add_stream(xdf_stream_header("EEG", "EEG", 2, 200.0, "float32"))
    ...     xdf.write_samples(sid, timestamps, data)  # (n,), (n, 2)
    """

    def __init__(self, path: str | Path, *, boundary_every_s: float = 10.0):
        check_type(path, (str, Path), "path")
        self.path = Path(path)
        self.boundary_every_s = float(boundary_every_s)
        self._lock = threading.Lock()
        self._streams: dict[int, _WrittenStream] = {}
        self._bytes = 0
        self._failed: str | None = None  # the write error after which nothing more is written
        self._last_boundary: float | None = None
        # O_EXCL: never append to (or clobber) someone else's file.
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, _FILE_MODE
        )
        try:
            os.fchmod(self._fd, _FILE_MODE)  # whatever the umask
            header = '<?xml version="1.0"?><info><version>1.0</version></info>'
            self._write(_XDF_MAGIC + _xdf_chunk(_FILE_HEADER, header.encode()))
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the kernel so far."""
        return self._bytes

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fd is None

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: the XDF writer is closed.")
        if self._failed is not None:
            raise ValueError(f"{self.path}: the XDF writer stopped after a write error ({self._failed}).")
        start, view = self._bytes, memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                self._bytes += n
                view = view[n:]
        except OSError as err:
            # A full disk may take part of a chunk: cut it off, or later chunks (footers) would complete its
            # declared length and readers would take their bytes for samples.
            self._failed = err.strerror or str(err)
            try:
                os.ftruncate(self._fd, start)
                self._bytes = start
            except OSError:
                pass  # the reader and repair_xdf still stop at the cut chunk if nothing follows it
            raise

    def add_stream(self, header_xml: str) -> int:
        """Write a StreamHeader chunk and return the new stream's id (1, 2, …).

        Parameters
        ----------
        header_xml : str
            The stream's ``info`` XML: an LSL ``StreamInfo.as_xml()`` or :func:`xdf_stream_header`.
            It must give ``channel_count`` and ``channel_format``.

        Raises
        ------
        ValueError
            The XML cannot be parsed, or lacks (or has an unknown) channel count or format.
        """
        check_type(header_xml, str, "header_xml")
        try:
            info = ET.fromstring(header_xml.encode())
        except ET.ParseError as err:
            raise ValueError(f"the stream header is not XML ({err}).") from None
        fmt = (info.findtext("channel_format") or "").strip()
        count = (info.findtext("channel_count") or "").strip()
        if fmt != "string" and fmt not in XDF_NUMERIC_FORMATS:
            raise ValueError(
                f"the stream header's channel_format is {fmt!r}; use 'string' or one of {', '.join(XDF_NUMERIC_FORMATS)}."
            )
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"the stream header's channel_count is {count!r}; give a positive integer.")
        n = int(count)
        dtype = None
        if fmt != "string":
            dtype = np.dtype([("flag", "u1"), ("t", "<f8"), ("x", XDF_NUMERIC_FORMATS[fmt], (n,))])
        with self._lock:
            stream_id = len(self._streams) + 1
            self._write(_xdf_chunk(_STREAM_HEADER, struct.pack("<I", stream_id) + header_xml.encode()))
            self._streams[stream_id] = _WrittenStream(fmt, n, dtype)
        return stream_id

    def _stream(self, stream_id: int) -> _WrittenStream:
        if stream_id not in self._streams:
            raise ValueError(f"no stream {stream_id!r} in {self.path}; add_stream() returns the ids.")
        return self._streams[stream_id]

    def write_samples(self, stream_id: int, timestamps: np.ndarray, values) -> None:
        """Write one Samples chunk.

        Parameters
        ----------
        stream_id : int
            From :meth:`add_stream`.
        timestamps : array of float, shape (n,)
            LSL times of the samples, s.
        values : array, shape (n, n_channels) | list of str
            Numeric samples (cast to the stream's format), or one string per sample (string
            streams of one channel) or one sequence of ``n_channels`` strings per sample.
        """
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = ts.shape[0]
        with self._lock:
            s = self._stream(stream_id)
            if n == 0:
                return
            if s.sample_dtype is None:
                if len(values) != n:
                    raise ValueError(f"{n} timestamps but {len(values)} string samples.")
                parts = [struct.pack("<I", stream_id), _varlen(n)]
                for t, sample in zip(ts, values, strict=True):
                    texts = [sample] if isinstance(sample, str) else list(sample)
                    if len(texts) != s.n_channels:
                        raise ValueError(
                            f"a string sample has {len(texts)} values; the stream has {s.n_channels} channels."
                        )
                    parts.append(struct.pack("<Bd", 8, float(t)))
                    for text in texts:
                        raw = str(text).encode("utf-8")
                        parts.append(_varlen(len(raw)) + raw)
                content = b"".join(parts)
            else:
                x = np.asarray(values)
                if x.shape != (n, s.n_channels):
                    raise ValueError(
                        f"values have shape {x.shape}; expected (n_samples, n_channels) = ({n}, {s.n_channels})."
                    )
                rec = np.empty(n, dtype=s.sample_dtype)
                rec["flag"], rec["t"], rec["x"] = 8, ts, x
                content = struct.pack("<I", stream_id) + _varlen(n) + rec.tobytes()
            self._write(_xdf_chunk(_SAMPLES, content))
            s.first = float(ts[0]) if s.first is None else s.first
            s.last = float(ts[-1])
            s.n_samples += n
            self._maybe_boundary(float(ts[-1]))

    def _maybe_boundary(self, t: float) -> None:
        if self._last_boundary is None:
            self._last_boundary = t
        elif t - self._last_boundary >= self.boundary_every_s:
            self._write(_xdf_chunk(_BOUNDARY, _BOUNDARY_UUID))
            self._last_boundary = t

    def write_clock_offset(self, stream_id: int, collection_time: float, offset_s: float) -> None:
        """Write a ClockOffset chunk: at ``collection_time`` (s, this host's LSL clock) the stream's
        clock was ``offset_s`` behind it (readers add it to the stream's timestamps)."""
        with self._lock:
            self._stream(stream_id).offsets.append((float(collection_time), float(offset_s)))
            self._write(_xdf_chunk(_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time, offset_s)))

    def close(self) -> None:
        """Write a StreamFooter per stream (first/last timestamp, sample count, clock offsets) and close.

        Idempotent. The file is complete without footers too (they are optional in XDF).
        """
        with self._lock:
            if self._fd is None:
                return
            try:
                for stream_id, s in self._streams.items() if self._failed is None else ():
                    offsets = "".join(
                        f"<offset><time>{t!r}</time><value>{v!r}</value></offset>" for t, v in s.offsets
                    )
                    xml = (
                        '<?xml version="1.0"?><info>'
                        f"<first_timestamp>{s.first or 0.0!r}</first_timestamp>"
                        f"<last_timestamp>{s.last or 0.0!r}</last_timestamp>"
                        f"<sample_count>{s.n_samples}</sample_count>"
                        f"<clock_offsets>{offsets}</clock_offsets></info>"
                    )
                    self._write(_xdf_chunk(_STREAM_FOOTER, struct.pack("<I", stream_id) + xml.encode()))
            finally:
                fd, self._fd = self._fd, None
                os.close(fd)

    def __enter__(self) -> XdfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<XdfWriter {str(self.path)!r} | {len(self._streams)} streams, {self._bytes} bytes, {state}>"


def xdf_complete_length(path: str | Path) -> tuple[int, int]:
    """``(complete, size)``: bytes of ``path`` up to the end of its last complete chunk, and its size.

    Reads only chunk headers. ``complete < size`` means the file ends with a chunk cut while it was
    written (or with bytes that are no chunk).

    Raises
    ------
    ValueError
        The file does not start with the XDF magic bytes.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != _XDF_MAGIC:
            raise ValueError(
                f"{path} could not be read as XDF: it does not start with 'XDF:' (not an XDF file)."
            )
        pos = 4
        while pos < size:
            head = f.read(1)
            if not head or head[0] not in (1, 4, 8):
                break
            raw = f.read(head[0])
            if len(raw) < head[0]:
                break
            length = int.from_bytes(raw, "little")
            end = pos + 1 + head[0] + length
            if length < 2 or end > size:
                break
            f.seek(end)
            pos = end
    return pos, size


def repair_xdf(path: str | Path) -> int:
    """Cut an XDF file back to its last complete chunk (what a killed writer leaves); bytes removed."""
    complete, size = xdf_complete_length(path)
    if complete < size:
        os.truncate(path, complete)
    return size - complete


__all__ = [
    "XDF_NUMERIC_FORMATS",
    "EXTENSIONS",
    "MNE_EXTENSIONS",
    "XDF_EXTENSIONS",
    "Markers",
    "Recording",
    "Stream",
    "XdfWriter",
    "read_recording",
    "recording_extension",
    "repair_xdf",
    "xdf_complete_length",
    "xdf_stream_header",
]
