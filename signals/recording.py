"""Recording I/O: XDF, EDF, BDF and FIF files as streams of timestamped samples plus markers.

:func:`read_recording` is the one reader of recorded files: the dataset loader
(:mod:`training.datasets.recordings`) and ``m2s replay`` (:mod:`clients.replay`) both use it, and a
writer (sessions recorded to XDF) will take the same :class:`Recording`. It needs ``pyxdf`` (XDF)
or ``mne`` (EDF/BDF/FIF), imported when a file is read (``pip install 'm2s-live[recordings]'``);
the module itself needs only the base install (numpy, scipy, pydantic through :mod:`signals`).

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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

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
    try:
        # Our dejitter rule, not pyxdf's (breaks at 1 s / 500 samples): see "Timing".
        raw_streams, _header = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
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


__all__ = [
    "EXTENSIONS",
    "MNE_EXTENSIONS",
    "XDF_EXTENSIONS",
    "Markers",
    "Recording",
    "Stream",
    "read_recording",
    "recording_extension",
]
