"""Generic raw recordings (EDF, BDF, FIF, XDF) cut into labelled trials and featurised per modality.

A lab recording becomes an :class:`~training.datasets.base.EmotionDataset` of one subject and
session. The user says which channels (EDF/BDF/FIF) or which stream (XDF) make each modality and,
optionally, the :class:`~signals.spec.FeatureSpec` of each modality (default: DE, 1-s windows, 1-s
hop). Trials come from markers:

- EDF/BDF/FIF: annotations (EDF+/BDF+ annotation channel, FIF annotations),
- XDF: a string marker stream,

whose text matches ``start_pattern`` (default ``trial_start`` or ``trial_start:<label>``) or
``end_pattern`` (default ``trial_end``); other markers are ignored. Each trial's samples
``start <= t < end`` of every modality go through ``spec.compute`` (the feature path the live
service uses), so windows never cross a trial boundary, and the modalities are paired by the end
time of their windows (:func:`pair_frames`).

Units are converted once, here: MNE returns voltage channels in volts, and XDF channels declare
their unit in the stream header (``desc/channels/channel/unit``); both are scaled to the unit of
the modality's spec (e.g. µV for EEG DE) when both units are voltages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from signals.streaming import FeatureFrames

from .base import DatasetError, EmotionDataset, RawSignal, Trial
from .pairing import AnySpec, check_modalities, modality_info, pair_frames

logger = logging.getLogger(__name__)

NAME = "recording"
EXTENSIONS: tuple[str, ...] = (".edf", ".bdf", ".fif", ".fif.gz", ".xdf", ".xdfz")
DEFAULT_START_PATTERN = r"^trial_start(?::(?P<label>.+))?$"
DEFAULT_END_PATTERN = r"^trial_end$"


# Voltage units, in volts, under the spellings EDF headers, MNE and LSL metadata use.
_VOLTS = {
    "v": 1.0,
    "volt": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolt": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,
    "μv": 1e-6,
    "microvolt": 1e-6,
    "microvolts": 1e-6,
}


def unit_factor(from_unit: str, to_unit: str) -> float | None:
    """Factor that converts values in ``from_unit`` to ``to_unit`` when both are voltages, else None."""
    a = _VOLTS.get(str(from_unit).strip().lower())
    b = _VOLTS.get(str(to_unit).strip().lower())
    if a is None or b is None:
        return None
    return a / b


# --------------------------------------------------------------------------------------------
# Reading a recording: one _Source per modality, plus markers on the same clock
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    data: np.ndarray  # (n_channels, n_times), in ``units``
    timestamps: np.ndarray  # (n_times,) s
    sfreq: float
    channels: tuple[str, ...]
    units: tuple[str, ...]


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in EXTENSIONS:
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def detect(path: Path) -> bool:
    """Whether ``path`` is a single EDF, BDF, FIF or XDF file (cheap: the name and that it exists)."""
    try:
        path = Path(path)
        return path.is_file() and _extension(path) in EXTENSIONS
    except (OSError, TypeError, ValueError):
        return False


def _read_mne(path: Path, ext: str):
    import mne

    readers = {
        ".edf": mne.io.read_raw_edf,
        ".bdf": mne.io.read_raw_bdf,
        ".fif": mne.io.read_raw_fif,
        ".fif.gz": mne.io.read_raw_fif,
    }
    try:
        return readers[ext](path, preload=True, verbose="error")
    except Exception as err:  # MNE raises many types for unreadable files
        raise DatasetError(f"{path} could not be read as {ext[1:].upper()} by MNE: {err}") from err


def _mne_markers(raw) -> list[tuple[float, str]]:
    """(time in s from the first sample, description) of every annotation, in time order."""
    ann = raw.annotations
    if len(ann) == 0:
        return []
    # Annotation onsets are on the meas_date clock when orig_time is set, else on the data's.
    offset = raw.first_time if ann.orig_time is not None else 0.0
    onsets = np.asarray(ann.onset) - offset
    idx = np.round(onsets * raw.info["sfreq"]).astype(np.int64)
    out = [(int(i) / raw.info["sfreq"], str(d)) for i, d in zip(idx, ann.description, strict=True)]
    return sorted(out, key=lambda x: x[0])


def _mne_source(raw, path: Path, modality: str, channels: Sequence[str]) -> _Source:
    from mne.io.constants import FIFF

    missing = [c for c in channels if c not in raw.ch_names]
    if missing:
        raise DatasetError(
            f"{path}: modality '{modality}' asks for channels {missing}, which the file does not have. "
            f"It has {raw.ch_names}."
        )
    picks = [raw.ch_names.index(c) for c in channels]
    data = raw.get_data(picks=picks)
    units = tuple("V" if raw.info["chs"][i]["unit"] == FIFF.FIFF_UNIT_V else "native" for i in picks)
    sfreq = float(raw.info["sfreq"])
    return _Source(data, np.arange(data.shape[1]) / sfreq, sfreq, tuple(channels), units)


def _xdf_text(info: dict, key: str, default: str = "") -> str:
    value = info.get(key)
    if isinstance(value, list):
        value = value[0] if value else default
    return default if value is None else str(value)


def _xdf_channels(info: dict) -> tuple[list[str], list[str]]:
    n = int(_xdf_text(info, "channel_count", "0"))
    labels, units = [f"ch{i + 1}" for i in range(n)], ["native"] * n
    try:
        chans = info["desc"][0]["channels"][0]["channel"]
        for i, ch in enumerate(chans[:n]):
            labels[i] = _xdf_text(ch, "label", labels[i])
            units[i] = _xdf_text(ch, "unit", units[i]) or "native"
    except (KeyError, IndexError, TypeError):
        pass  # channel metadata is optional in XDF
    return labels, units


def _read_xdf(path: Path):
    import pyxdf

    try:
        streams, _header = pyxdf.load_xdf(str(path))
    except Exception as err:  # pyxdf raises many types for unreadable files
        raise DatasetError(f"{path} could not be read as XDF by pyxdf: {err}") from err
    return streams


def _xdf_stream(streams, path: Path, name: str, what: str) -> dict:
    names = [_xdf_text(s["info"], "name") for s in streams]
    hits = [s for s, n in zip(streams, names, strict=True) if n == name]
    if len(hits) != 1:
        problem = "no stream" if not hits else f"{len(hits)} streams"
        raise DatasetError(
            f"{path}: {what} names stream {name!r}, but the file has {problem} of that name. "
            f"Its streams are {names}."
        )
    return hits[0]


def _xdf_source(streams, path: Path, modality: str, stream_name: str) -> _Source:
    s = _xdf_stream(streams, path, stream_name, f"modality '{modality}'")
    info = s["info"]
    if _xdf_text(info, "channel_format") == "string":
        raise DatasetError(f"{path}: stream {stream_name!r} holds strings (markers), not signals.")
    sfreq = float(_xdf_text(info, "nominal_srate", "0"))
    if sfreq <= 0:
        raise DatasetError(
            f"{path}: stream {stream_name!r} has an irregular sampling rate; features need a "
            "nominal_srate > 0."
        )
    labels, units = _xdf_channels(info)
    data = np.asarray(s["time_series"], dtype=float).reshape(-1, len(labels)).T
    return _Source(data, np.asarray(s["time_stamps"], dtype=float), sfreq, tuple(labels), tuple(units))


def _xdf_markers(streams, path: Path, marker_stream: str | None) -> list[tuple[float, str]]:
    if marker_stream is not None:
        s = _xdf_stream(streams, path, marker_stream, "marker_stream")
    else:
        strings = [s for s in streams if _xdf_text(s["info"], "channel_format") == "string"]
        if len(strings) != 1:
            names = [_xdf_text(s["info"], "name") for s in strings]
            raise DatasetError(
                f"{path}: expected exactly one string marker stream for the trial markers, found "
                f"{len(strings)} {names}. Pass marker_stream=<name>."
            )
        s = strings[0]
    times = np.asarray(s["time_stamps"], dtype=float)
    texts = [str(v[0]) if isinstance(v, (list, tuple, np.ndarray)) else str(v) for v in s["time_series"]]
    return sorted(zip(times.tolist(), texts, strict=True), key=lambda x: x[0])


def _select(source: _Source, channels: Sequence[str], path: Path, modality: str) -> _Source:
    missing = [c for c in channels if c not in source.channels]
    if missing:
        raise DatasetError(
            f"{path}: modality '{modality}' asks for channels {missing}, which its source does not "
            f"have. It has {list(source.channels)}."
        )
    rows = [source.channels.index(c) for c in channels]
    return _Source(
        source.data[rows],
        source.timestamps,
        source.sfreq,
        tuple(channels),
        tuple(source.units[r] for r in rows),
    )


def _to_unit(source: _Source, unit: str, path: Path, modality: str) -> np.ndarray:
    """Scale every channel whose unit is a known voltage to ``unit`` (once, at ingestion)."""
    factors = np.ones(len(source.channels))
    for i, u in enumerate(source.units):
        f = unit_factor(u, unit)
        if f is not None:
            factors[i] = f
        elif _VOLTS.get(u.lower()) is not None:  # a voltage channel, but the spec's unit is not one
            logger.warning(
                "%s: '%s' channel %s is in %s; spec unit %r is not a voltage, kept as is",
                path, modality, source.channels[i], u, unit,
            )  # fmt: skip
    return source.data * factors[:, None]


# --------------------------------------------------------------------------------------------
# Trials from markers
# --------------------------------------------------------------------------------------------


def _trials_from_markers(
    markers: list[tuple[float, str]], start: re.Pattern, end: re.Pattern, path: Path
) -> list[tuple[float, float, str | None]]:
    trials, open_at, label = [], None, None
    for t, text in markers:
        m_start, m_end = start.match(text), end.match(text)
        if m_start:
            if open_at is not None:
                raise DatasetError(
                    f"{path}: trial start {text!r} at {t:.3f} s comes before the trial started at "
                    f"{open_at:.3f} s has ended; every start needs an end marker first."
                )
            open_at = t
            label = m_start.groupdict().get("label")
        elif m_end:
            if open_at is None:
                raise DatasetError(
                    f"{path}: trial end {text!r} at {t:.3f} s has no matching start marker before it."
                )
            trials.append((open_at, t, label))
            open_at = None
    if open_at is not None:
        raise DatasetError(f"{path}: the trial started at {open_at:.3f} s has no end marker.")
    if not trials:
        seen = sorted({text for _, text in markers})[:10]
        raise DatasetError(
            f"{path}: no trial markers found. Expected marker texts matching start_pattern "
            f"{start.pattern!r} (e.g. 'trial_start:happy') and end_pattern {end.pattern!r} (e.g. "
            f"'trial_end'); the file's markers are {seen or 'none'}."
        )
    return trials


def _default_spec(modality: str, source: _Source, path: Path) -> DESpec:
    volts = all(_VOLTS.get(u.lower()) is not None for u in source.units)
    try:
        return DESpec(
            modality=modality,
            sfreq=source.sfreq,
            channels=source.channels,
            unit="uV" if volts else "native",
            window_s=1.0,
            hop_s=1.0,
        )
    except ValueError as err:
        raise DatasetError(
            f"{path}: the default DE spec does not fit modality '{modality}' ({err}). Pass "
            f"specs={{'{modality}': <FeatureSpec>}}."
        ) from None


def _check_spec(spec, modality: str, source: _Source, path: Path) -> AnySpec:
    if not isinstance(spec, (DESpec, EyeSpec, HrvSpec, PpsSpec)):
        raise TypeError(f"specs['{modality}'] must be a FeatureSpec, got {type(spec).__name__}.")
    if abs(spec.sfreq - source.sfreq) > 1e-6 * source.sfreq:
        raise DatasetError(
            f"{path}: specs['{modality}'].sfreq is {spec.sfreq} Hz but the data is sampled at "
            f"{source.sfreq} Hz. Give a spec with sfreq={source.sfreq}."
        )
    return spec


def load(
    path,
    *,
    modalities=None,
    subjects=None,
    include_raw: bool = False,
    picks: Mapping[str, str | Sequence[str]] | None = None,
    specs: Mapping[str, AnySpec] | None = None,
    start_pattern: str = DEFAULT_START_PATTERN,
    end_pattern: str = DEFAULT_END_PATTERN,
    marker_stream: str | None = None,
    class_names: Sequence[str] | None = None,
    subject: str = "1",
    session: int = 1,
) -> EmotionDataset:
    """Load one EDF/BDF/FIF/XDF recording as labelled, featurised trials.

    Parameters
    ----------
    path : str | Path
        The recording (``.edf``, ``.bdf``, ``.fif``/``.fif.gz`` or ``.xdf``).
    modalities : sequence of str | None
        Modalities to load, a subset of the keys of ``picks``/``specs`` (None: all).
    subjects : sequence of str | None
        Accepted for a uniform loader API: the recording is of ``subject``; a list that excludes
        it is an error.
    include_raw : bool
        Keep each trial's raw signal per modality (:class:`RawSignal`, in the spec's unit).
    picks : dict of str to list of str | str | None
        Per modality: channel names (EDF/BDF/FIF), or the stream name (XDF; its channels, or
        ``specs[m].channels`` when given). None: for EDF/BDF/FIF ``{'eeg': <every EEG channel>}``,
        for XDF ``{'eeg': <the stream of type EEG>}``. When a spec is given and picks names no
        channels, the spec's channels are used.
    specs : dict of str to FeatureSpec | None
        Feature spec per modality (sfreq must equal the data's; its ``channels`` pick the rows).
        Missing entries default to DE (BCMI formula, SEED bands, 1-s windows, 1-s hop; unit µV
        for voltage channels).
    start_pattern, end_pattern : str
        Regular expressions (``re.match``) for trial start and end markers. A named group
        ``label`` in ``start_pattern`` gives the trial's class name.
    marker_stream : str | None
        XDF only: name of the marker stream (None: the only stream of string format).
    class_names : sequence of str | None
        Order of the classes (``Trial.label`` indexes it). None: the distinct labels of the
        trials, sorted. A trial label outside ``class_names`` is an error.
    subject : str
        Subject id given to every trial.
    session : int
        Session number (1-based) given to every trial.

    Returns
    -------
    dataset : EmotionDataset
        ``name='recording'``; trials numbered 1.. in time order; ``label`` None when the start
        markers carry no label (then ``class_names`` is None).

    Raises
    ------
    DatasetError
        Unknown extension, unreadable file, missing channels or streams (the message lists what
        exists), no trial markers, unmatched start/end markers, sfreq mismatch with a spec.
    """
    path = Path(path)
    ext = _extension(path)
    if ext not in EXTENSIONS:
        raise DatasetError(
            f"{path}: unknown recording extension {ext!r}; supported are {', '.join(EXTENSIONS)}."
        )
    if not path.is_file():
        raise DatasetError(f"{path} does not exist or is not a file.")
    if subjects is not None and str(subject) not in {str(s) for s in subjects}:
        raise DatasetError(
            f"{path} is a recording of subject {subject!r}, which subjects={subjects} excludes."
        )
    start_re, end_re = re.compile(start_pattern), re.compile(end_pattern)
    specs = dict(specs or {})
    picks = dict(picks) if picks is not None else None

    if ext == ".xdf" or ext == ".xdfz":
        streams = _read_xdf(path)
        if picks is None:
            eeg = [
                _xdf_text(s["info"], "name") for s in streams if _xdf_text(s["info"], "type").upper() == "EEG"
            ]
            if len(eeg) != 1:
                raise DatasetError(
                    f"{path}: picks=None needs exactly one stream of type EEG, found {eeg}. Pass "
                    "picks={'<modality>': '<stream name>'}."
                )
            picks = {"eeg": eeg[0]}
        wanted = check_modalities(modalities, list(dict.fromkeys([*picks, *specs])), str(path))
        sources = {}
        for m in wanted:
            if not isinstance(picks.get(m), str):
                raise DatasetError(f"{path}: for XDF, picks['{m}'] must be the name of a stream.")
            sources[m] = _xdf_source(streams, path, m, picks[m])
        markers = _xdf_markers(streams, path, marker_stream)
    else:
        raw = _read_mne(path, ext)
        if picks is None and not specs:
            eeg = [raw.ch_names[i] for i in _mne_eeg_picks(raw)]
            if not eeg:
                raise DatasetError(f"{path} has no EEG channels; pass picks (it has {raw.ch_names}).")
            picks = {"eeg": eeg}
        picks = picks or {}
        wanted = check_modalities(modalities, list(dict.fromkeys([*picks, *specs])), str(path))
        sources = {}
        for m in wanted:
            chans = picks.get(m) or (specs[m].channels if m in specs else None)
            chans = [chans] if isinstance(chans, str) else list(chans or [])
            if not chans:
                raise DatasetError(f"{path}: modality '{m}' has no channels; give picks['{m}'].")
            sources[m] = _mne_source(raw, path, m, chans)
        markers = _mne_markers(raw)

    final_specs: dict[str, AnySpec] = {}
    for m in wanted:
        if m in specs:
            spec = _check_spec(specs[m], m, sources[m], path)
            sources[m] = _select(sources[m], spec.channels, path, m)
        else:
            spec = _default_spec(m, sources[m], path)
        final_specs[m] = spec
    data = {m: _to_unit(sources[m], final_specs[m].unit, path, m) for m in wanted}

    spans = _trials_from_markers(markers, start_re, end_re, path)
    labels = [lab for _, _, lab in spans]
    if all(lab is None for lab in labels):
        names = None
    elif any(lab is None for lab in labels):
        raise DatasetError(f"{path}: some trial start markers carry a label and some do not: {labels}.")
    else:
        names = tuple(class_names) if class_names is not None else tuple(sorted(set(labels)))
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise DatasetError(f"{path}: trial labels {unknown} are not in class_names {list(names)}.")

    trials = []
    for k, (t0, t1, lab) in enumerate(spans, start=1):
        frames, raws = {}, {}
        for m in wanted:
            ts = sources[m].timestamps
            sel = (ts >= t0) & (ts < t1)
            x, t = data[m][:, sel], ts[sel]
            frames[m] = (
                final_specs[m].compute(x, t)
                if t.size
                else FeatureFrames.concatenate([], final_specs[m].n_features)
            )
            if include_raw:
                raws[m] = RawSignal(x, sources[m].sfreq, final_specs[m].channels, final_specs[m].unit)
        feats, segments = pair_frames(
            frames, {m: sources[m].sfreq for m in wanted}, where=f"{path} trial {k}"
        )
        if next(iter(feats.values())).shape[0] == 0:
            logger.warning("%s: trial %d (%.3f-%.3f s) is shorter than one window; skipped", path, k, t0, t1)
            continue
        label = None if names is None else names.index(lab)
        trials.append(Trial(str(subject), int(session), k, label, {}, feats, raws, segments))
    infos = {
        m: modality_info(
            final_specs[m], f"{final_specs[m].kind} features of {path.name} ({picks.get(m, '')})"
        )
        for m in wanted
    }
    return EmotionDataset(NAME, trials, infos, class_names=names, source=str(path))


def _mne_eeg_picks(raw) -> list[int]:
    import mne

    return list(mne.pick_types(raw.info, eeg=True, exclude=[]))
