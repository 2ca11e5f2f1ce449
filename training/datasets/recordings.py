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

The file is read by :func:`signals.recording.read_recording`, the reader ``m2s replay`` uses, so
a model is trained on what a replay of the same file streams: the same rates (EDF/BDF with mixed
rates: each channel at its header rate), the same timestamps (XDF: regularised with the modality
spec's ``gap_factor``, :mod:`signals.timing`, the rule the live worker applies) and markers as
recorded (never snapped to samples). Channels are matched as live
(:func:`signals.channels.map_channels`: case ignored). Units are converted once, here, through the
one unit table (:func:`signals.units.unit_scale`): every channel from the unit the file declares
to the spec's (a ``'native'`` spec keeps each channel in its own unit).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from signals.recording import (
    EXTENSIONS,
    XDF_EXTENSIONS,
    Recording,
    Stream,
    read_recording,
    recording_extension,
)
from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from signals.streaming import FeatureFrames
from signals.units import unit_scale

from .base import DatasetError, EmotionDataset, RawSignal, Trial
from .pairing import AnySpec, check_modalities, modality_info, pair_frames

logger = logging.getLogger(__name__)

NAME = "recording"
DEFAULT_START_PATTERN = r"^trial_start(?::(?P<label>.+))?$"
DEFAULT_END_PATTERN = r"^trial_end$"


# --------------------------------------------------------------------------------------------
# The recording's streams, per modality
# --------------------------------------------------------------------------------------------


def detect(path: Path) -> bool:
    """Whether ``path`` is a single EDF, BDF, FIF or XDF file (cheap: the name and that it exists)."""
    try:
        path = Path(path)
        return path.is_file() and recording_extension(path) in EXTENSIONS
    except (OSError, TypeError, ValueError):
        return False


def _read(path: Path) -> Recording:
    try:
        # XDF stamps as recorded: each modality is dejittered with its own spec's gap_factor below.
        return read_recording(path, gap_factor=None)
    except (ValueError, FileNotFoundError) as err:
        raise DatasetError(str(err)) from err


def _xdf_source(rec: Recording, path: Path, modality: str, stream_name) -> Stream:
    if not isinstance(stream_name, str):
        raise DatasetError(f"{path}: for XDF, picks['{modality}'] must be the name of a stream.")
    hits = [s for s in rec.streams if s.name == stream_name]
    if len(hits) != 1:
        problem = "no signal stream" if not hits else f"{len(hits)} signal streams"
        raise DatasetError(
            f"{path}: modality '{modality}' names stream {stream_name!r}, but the file has {problem} of that "
            f"name. Its signal streams are {[s.name for s in rec.streams]} (marker streams: "
            f"{[m.name for m in rec.markers]})."
        )
    source = hits[0]
    if source.sfreq <= 0:
        raise DatasetError(
            f"{path}: stream {stream_name!r} has an irregular sampling rate; features need a "
            "nominal_srate > 0."
        )
    return source


def _channel_source(rec: Recording, path: Path, modality: str, channels: Sequence[str]) -> Stream:
    """The one stream (EDF/BDF/FIF: one per header rate) holding ``channels``, restricted to them."""
    for stream in rec.streams:
        try:
            return stream.pick(channels)
        except ValueError:
            continue
    held = {
        s.name: [c for c in channels if c.casefold() in {h.casefold() for h in s.channels}]
        for s in rec.streams
    }
    held = {name: found for name, found in held.items() if found}
    streams = {f"{s.name} ({s.sfreq:g} Hz)": list(s.channels) for s in rec.streams}
    missing = [c for c in channels if not any(c in found for found in held.values())]
    if missing:
        raise DatasetError(
            f"{path}: modality '{modality}' asks for channels {missing}, which the file does not have "
            f"(names match ignoring case). It has {streams}."
        )
    raise DatasetError(
        f"{path}: modality '{modality}' picks channels recorded at different rates ({held}); a modality "
        f"is one rate, so pick the channels of one stream: {streams}."
    )


def _markers(rec: Recording, path: Path, marker_stream: str | None, xdf: bool) -> list[tuple[float, str]]:
    if not xdf:
        return [pair for m in rec.markers for pair in m.sorted()]
    if marker_stream is None and len(rec.markers) != 1:
        names = [m.name for m in rec.markers]
        raise DatasetError(
            f"{path}: expected exactly one string marker stream for the trial markers, found "
            f"{len(names)} {names}. Pass marker_stream=<name>."
        )
    try:
        return rec.marker_stream(marker_stream).sorted()
    except ValueError as err:
        raise DatasetError(f"marker_stream: {err}") from None


def _unit_factors(source: Stream, unit: str, path: Path, modality: str) -> np.ndarray:
    """Per-channel factors from the units the file declares to the spec's ``unit`` (signals.units)."""
    if unit.strip().casefold() in ("native", "a.u.") or "," in unit:
        return np.ones(source.n_channels)  # each channel in its own unit (composite units: as recorded)
    factors = np.ones(source.n_channels)
    for i, u in enumerate(source.units):
        try:
            factors[i] = unit_scale(u, unit)
        except ValueError as err:
            raise DatasetError(
                f"{path}: modality '{modality}' channel {source.channels[i]!r}: {err} Or give the modality a "
                "spec whose unit is 'native'."
            ) from None
    return factors


def _is_voltage(unit: str) -> bool:
    try:
        unit_scale(unit, "V")
    except ValueError:
        return False
    return True


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


def _default_spec(modality: str, source: Stream, path: Path) -> DESpec:
    volts = all(_is_voltage(u) for u in source.units)
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


def _check_spec(spec, modality: str, source: Stream, path: Path) -> AnySpec:
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
    ext = recording_extension(path)
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
    rec = _read(path)
    xdf = ext in XDF_EXTENSIONS

    if xdf:
        if picks is None:
            eeg = [s.name for s in rec.streams if s.type.upper() == "EEG"]
            if len(eeg) != 1:
                raise DatasetError(
                    f"{path}: picks=None needs exactly one stream of type EEG, found {eeg}. Pass "
                    "picks={'<modality>': '<stream name>'}."
                )
            picks = {"eeg": eeg[0]}
        wanted = check_modalities(modalities, list(dict.fromkeys([*picks, *specs])), str(path))
        sources = {m: _xdf_source(rec, path, m, picks.get(m)) for m in wanted}
    else:
        if picks is None and not specs:
            eeg = [s for s in rec.streams if "EEG" in s.channel_types]
            if len(eeg) != 1:
                raise DatasetError(
                    f"{path}: picks=None needs the EEG channels at one rate, found them in "
                    f"{[f'{s.name} ({s.sfreq:g} Hz)' for s in eeg] or 'no stream'}. Pass "
                    "picks={'<modality>': [<channel names>]}; the file has "
                    f"{ {s.name: list(s.channels) for s in rec.streams} }."
                )
            picks = {
                "eeg": [c for c, t in zip(eeg[0].channels, eeg[0].channel_types, strict=True) if t == "EEG"]
            }
        picks = picks or {}
        wanted = check_modalities(modalities, list(dict.fromkeys([*picks, *specs])), str(path))
        sources = {}
        for m in wanted:
            chans = picks.get(m) or (specs[m].channels if m in specs else None)
            chans = [chans] if isinstance(chans, str) else list(chans or [])
            if not chans:
                raise DatasetError(f"{path}: modality '{m}' has no channels; give picks['{m}'].")
            sources[m] = _channel_source(rec, path, m, chans)
    markers = _markers(rec, path, marker_stream, xdf)

    final_specs: dict[str, AnySpec] = {}
    for m in wanted:
        if m in specs:
            spec = _check_spec(specs[m], m, sources[m], path)
            try:
                sources[m] = sources[m].pick(spec.channels)
            except ValueError as err:
                raise DatasetError(f"{path}: modality '{m}': {err}") from None
        else:
            spec = _default_spec(m, sources[m], path)
        final_specs[m] = spec
        if xdf:  # the live worker's rule, with this modality's gap_factor
            sources[m] = sources[m].dejittered(spec.gap_factor)
    data = {
        m: sources[m].data * _unit_factors(sources[m], final_specs[m].unit, path, m)[:, None] for m in wanted
    }

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
