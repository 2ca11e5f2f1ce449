"""Generic raw recordings (EDF, BDF, FIF, XDF) cut into labelled trials and featurised per modality.

A lab recording becomes an :class:`~training.datasets.base.EmotionDataset` of one subject and
session. The user says which channels (EDF/BDF/FIF) or which stream (XDF) make each modality and,
optionally, the :class:`~signals.spec.FeatureSpec` of each modality (default: DE, 1-s windows, 1-s
hop). Trials come from markers:

- EDF/BDF/FIF: annotations (EDF+/BDF+ annotation channel, FIF annotations),
- XDF: a string marker stream,

whose text matches ``start_pattern`` (default ``trial_start`` or ``trial_start:<label>``) or
``end_pattern`` (default ``trial_end``), or the simulator's JSON onsets (a trial then ends at the next
onset, a ``trial_end`` or the end of the recording); other markers are ignored. One parser,
:mod:`signals.markers`, reads markers here and live. Each trial's samples
``start <= t < end`` of every modality go through ``spec.compute`` (the feature path the live
service uses), so windows never cross a trial boundary, and the modalities are paired by the end
time of their windows (:func:`pair_frames`).

The file is read by :func:`signals.recording.read_recording`, the reader ``m2s replay`` uses, so
a model is trained on what a replay of the same file streams: the same rates (EDF/BDF with mixed
rates: each channel at its header rate), the same timestamps (XDF: regularised with the modality
spec's ``gap_factor``, :mod:`signals.timing`, the rule the live worker applies) and markers as
recorded (never snapped to samples). For XDF, a modality given a spec but no pick gets the one stream
that carries the spec's channels (as the live service maps a stream to a spec); a modality no
stream carries is absent (loading all modalities goes on without it, :func:`load_recording` says
why). :func:`load_recording` also returns each trial's ``"phase"`` (the simulator's JSON onsets:
``"calibration"`` or ``"test"``). Channels are matched as live
(:func:`signals.channels.map_channels`: case ignored). Units are converted once, here, by the
live service's per-channel rule (:func:`signals.units.channel_factors`): every channel from the
unit the file declares to the unit the spec needs for it (a ``'native'`` spec keeps each channel in
its own unit; an eye spec's ``'deg,mm'`` checks gaze channels against degrees and pupils against
mm), so a recording is refused or converted exactly as the same stream would be live.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signals.channels import map_channels
from signals.markers import (
    DEFAULT_END_PATTERN,
    DEFAULT_START_PATTERN,
    MarkerError,
    TrialSegment,
    trial_segments,
)
from signals.recording import (
    EXTENSIONS,
    XDF_EXTENSIONS,
    Recording,
    Stream,
    read_recording,
    recording_extension,
)
from signals.spec import DESpec, EyeSpec, HrvSpec, PpsSpec
from signals.units import channel_factors, unit_scale

from .base import DatasetError, EmotionDataset, Trial
from .pairing import AnySpec
from .skeleton import Loader, Source, check_specs, featurise, raw_signals
from .spec_options import resolve_specs

logger = logging.getLogger(__name__)

NAME = "recording"


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
    try:
        source = rec.stream(stream_name)
    except ValueError as err:
        raise DatasetError(
            f"modality '{modality}': {err} Its marker streams are {[m.name for m in rec.markers]}."
        ) from None
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


def _spec_streams(
    rec: Recording, path: Path, specs: Mapping[str, AnySpec], picks: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """XDF: for each spec without a pick, the one signal stream carrying its channels (the live rule).

    Returns ``(picks, absent)``: stream name per modality found, and why each other modality is absent.
    A spec whose channels several streams carry is an error naming them (pass ``picks``).
    """
    found, absent = {}, {}
    streams = [f"{s.name!r} ({s.type}, {len(s.channels)} ch, {s.sfreq:g} Hz)" for s in rec.streams]
    for m, spec in specs.items():
        if m in picks:
            continue
        carriers = []
        for stream in rec.streams:
            try:
                map_channels(stream.channels, spec.channels)
            except (TypeError, ValueError):
                continue
            carriers.append(stream.name)
        if len(carriers) > 1:
            raise DatasetError(
                f"{path}: streams {carriers} all carry the channels of modality '{m}'; pass "
                f"picks={{'{m}': '<stream name>'}} to choose one. The file's streams: {', '.join(streams)}."
            )
        if carriers:
            found[m] = carriers[0]
        else:
            absent[m] = (
                f"{path}: no stream carries the channels of modality '{m}' "
                f"({list(spec.channels)[:6]}{'...' if len(spec.channels) > 6 else ''}); the file's streams: "
                f"{', '.join(streams) or 'none'}"
            )
    return found, absent


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


def _unit_factors(source: Stream, spec: AnySpec, path: Path, modality: str) -> np.ndarray:
    """Per-channel factors from the units the file declares to the spec's (the live rule, signals.units)."""
    try:
        return channel_factors(source.units, spec)
    except ValueError as err:
        raise DatasetError(
            f"{path}: modality '{modality}' {err} For a recording, fix the unit in the file's header, or give "
            "the modality a spec whose unit is 'native'."
        ) from None


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
    markers: list[tuple[float, str]], start: re.Pattern, end: re.Pattern, path: Path, end_of_data: float
) -> list[TrialSegment]:
    try:
        segments = trial_segments(
            markers, start_pattern=start.pattern, end_pattern=end.pattern, end_of_data=end_of_data
        )
    except MarkerError as err:
        raise DatasetError(f"{path}: {err}") from None
    if not segments:
        seen = sorted({text for _, text in markers})[:10]
        raise DatasetError(
            f"{path}: no trial markers found. Expected marker texts matching start_pattern "
            f"{start.pattern!r} (e.g. 'trial_start:happy') and end_pattern {end.pattern!r} (e.g. "
            f'\'trial_end\'), or the simulator\'s onsets {{"trial": k, "label": "happy"}}; the file\'s '
            f"markers are {seen or 'none'}."
        )
    return segments


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


def load(
    path,
    *,
    modalities=None,
    subjects=None,
    include_raw: bool = False,
    picks: Mapping[str, str | Sequence[str]] | None = None,
    specs: Mapping[str, AnySpec] | None = None,
    spec_overrides: Mapping[str, Mapping[str, Any]] | None = None,
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
    spec_overrides : dict of str to dict | None
        Per modality, fields replaced in its spec (the one in ``specs``, else the default), e.g.
        ``{'eeg': {'window_s': 4.0, 'hop_s': 0.5}}`` (:func:`training.datasets.spec_options.override_spec`).
        Paired modalities must end with one ``hop_s``.
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
        exists), no trial markers, unmatched start/end markers, sfreq mismatch with a spec,
        modalities with different hops, or a channel unit the spec's cannot be converted from.
    """
    return _LOADER.load(
        path,
        modalities=modalities,
        subjects=subjects,
        include_raw=include_raw,
        specs=specs,
        spec_overrides=spec_overrides,
        picks=picks,
        start_pattern=start_pattern,
        end_pattern=end_pattern,
        marker_stream=marker_stream,
        class_names=class_names,
        subject=subject,
        session=session,
    )


@dataclass
class _Opened:
    """A read recording: the file, its picks and trial spans; the streams once the specs are known."""

    rec: Recording
    xdf: bool
    picks: dict
    spans: list[tuple[float, float, str | None]]
    session: int
    phases: list[str | None] = field(default_factory=list)  # per span: the JSON onset's "phase"
    streams: dict[str, Stream] = field(default_factory=dict)
    data: dict[str, np.ndarray] = field(default_factory=dict)


class _Recordings(Loader):
    """One EDF/BDF/FIF/XDF file: streams per modality (picks), trials from markers."""

    name = NAME
    title = "recording"
    computed = True
    options = {
        "picks": (None, None),
        "start_pattern": (DEFAULT_START_PATTERN, None),
        "end_pattern": (DEFAULT_END_PATTERN, None),
        "marker_stream": (None, None),
        "class_names": (None, None),
        "subject": ("1", None),
        "session": (1, None),
    }

    def check_path(self, path: Any) -> Path:
        return Path(path)

    def where(self, source: Source) -> str:
        return str(source.root)

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        ext = recording_extension(path)
        if ext not in EXTENSIONS:
            raise DatasetError(
                f"{path}: unknown recording extension {ext!r}; supported are {', '.join(EXTENSIONS)}."
            )
        if not path.is_file():
            raise DatasetError(f"{path} does not exist or is not a file.")
        start_re, end_re = re.compile(options["start_pattern"]), re.compile(options["end_pattern"])
        picks = dict(options["picks"]) if options["picks"] is not None else None
        rec = _read(path)
        xdf = ext in XDF_EXTENSIONS
        absent: dict[str, str] = {}
        if xdf and specs:  # modalities with a spec and no pick: the stream carrying the spec's channels
            found, absent = _spec_streams(rec, path, specs, picks or {})
            picks = {**(picks or {}), **found}
        elif xdf and picks is None:
            eeg = [s.name for s in rec.streams if s.type.upper() == "EEG"]
            if len(eeg) != 1:
                raise DatasetError(
                    f"{path}: picks=None needs exactly one stream of type EEG, found {eeg}. Pass "
                    "picks={'<modality>': '<stream name>'}."
                )
            picks = {"eeg": eeg[0]}
        elif not xdf and picks is None and not specs:
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
        markers = _markers(rec, path, options["marker_stream"], xdf)
        # Trials are start <= t < end: the data end just after each stream's last sample.
        end_of_data = max(
            (
                float(st.timestamps[-1]) + 1 / st.sfreq
                for st in rec.streams
                if st.sfreq > 0 and len(st.timestamps)
            ),
            default=None,
        )
        segments = _trials_from_markers(markers, start_re, end_re, path, end_of_data)
        spans = [(seg.start, seg.end, seg.label) for seg in segments]
        labels = [lab for _, _, lab in spans]
        if all(lab is None for lab in labels):
            names = None
        elif any(lab is None for lab in labels):
            raise DatasetError(f"{path}: some trial start markers carry a label and some do not: {labels}.")
        else:
            given = options["class_names"]
            names = tuple(given) if given is not None else tuple(sorted(set(labels)))
            unknown = sorted(set(labels) - set(names))
            if unknown:
                raise DatasetError(f"{path}: trial labels {unknown} are not in class_names {list(names)}.")
        return Source(
            root=path,
            subjects={str(options["subject"]): None},
            modalities=tuple(m for m in dict.fromkeys([*picks, *specs]) if m not in absent),
            absent=absent,
            class_names=names,
            context=_Opened(
                rec, xdf, picks, spans, int(options["session"]), phases=[seg.phase for seg in segments]
            ),
        )

    def resolve_specs(self, source, modalities, specs, spec_overrides, options) -> dict[str, AnySpec]:
        """Each modality's stream (picks), its spec (given, else DE on the stream), units converted once."""
        opened, path = source.context, source.root
        specs = {m: spec for m, spec in (specs or {}).items() if m not in source.absent}
        for m, spec in specs.items():
            if not isinstance(spec, (DESpec, EyeSpec, HrvSpec, PpsSpec)):
                raise TypeError(f"specs['{m}'] must be a FeatureSpec, got {type(spec).__name__}.")
        streams = {}
        for m in modalities:
            if opened.xdf:
                streams[m] = _xdf_source(opened.rec, path, m, opened.picks.get(m))
                continue
            chans = opened.picks.get(m) or (specs[m].channels if m in specs else None)
            chans = [chans] if isinstance(chans, str) else list(chans or [])
            if not chans:
                raise DatasetError(f"{path}: modality '{m}' has no channels; give picks['{m}'].")
            streams[m] = _channel_source(opened.rec, path, m, chans)
        defaults = {m: _default_spec(m, streams[m], path) for m in modalities if m not in specs}
        overrides = {  # modalities of the file not being loaded: nothing to override
            m: u for m, u in (spec_overrides or {}).items() if m in modalities or m not in source.modalities
        }
        chosen = resolve_specs({**specs, **defaults}, specs, overrides, modalities, str(path))
        check_specs(chosen, {m: streams[m].sfreq for m in modalities}, {})
        for m, spec in chosen.items():
            try:
                stream = streams[m].pick(spec.channels)
            except ValueError as err:
                raise DatasetError(f"{path}: modality '{m}': {err}") from None
            if opened.xdf:  # the live worker's rule, with this modality's spec
                stream = stream.dejittered(spec.gap_factor, spec.jitter_s)
            opened.streams[m] = stream
            opened.data[m] = stream.data * _unit_factors(stream, spec, path, m)[:, None]
        return chosen

    def read_subject(self, source, subject, modalities, specs, include_raw, options) -> list[Trial]:
        opened, path = source.context, source.root
        names = source.class_names
        sfreqs = {m: opened.streams[m].sfreq for m in modalities}
        trials = []
        for k, (t0, t1, lab) in enumerate(opened.spans, start=1):
            signals, times = {}, {}
            for m in modalities:
                ts = opened.streams[m].timestamps
                sel = (ts >= t0) & (ts < t1)
                signals[m], times[m] = opened.data[m][:, sel], ts[sel]
            feats, segments = featurise(specs, signals, sfreqs, where=f"{path} trial {k}", timestamps=times)
            if next(iter(feats.values())).shape[0] == 0:
                logger.warning(
                    "%s: trial %d (%.3f-%.3f s) is shorter than one window; skipped", path, k, t0, t1
                )
                continue
            raw = raw_signals(specs, signals, sfreqs) if include_raw else {}
            label = None if names is None else names.index(lab)
            trials.append(Trial(subject, opened.session, k, label, {}, feats, raw, segments))
        return trials

    def describe(self, source, modality, spec, options) -> str:
        return f"{spec.kind} features of {source.root.name} ({source.context.picks.get(modality, '')})"


_LOADER = _Recordings()


@dataclass(frozen=True)
class LoadedRecording:
    """What :func:`load_recording` returns: the dataset plus what the markers and the streams said.

    Attributes
    ----------
    dataset : EmotionDataset
        As :func:`load` returns it.
    phases : dict of int to str | None
        ``Trial.trial`` -> the ``"phase"`` of its JSON onset (``"calibration"`` / ``"test"``), None for
        string markers or onsets without one. Every trial of ``dataset`` has an entry.
    picks : dict of str to str | list of str
        The stream (XDF) or channels each loaded modality was read from.
    absent : dict of str to str
        Modalities with a spec that no stream of the file carries -> why (XDF; they are not loaded).
    """

    dataset: EmotionDataset
    phases: dict[int, str | None]
    picks: dict[str, Any]
    absent: dict[str, str]


class _RecordingsOnce(_Recordings):
    """One load that keeps the opened recording (its picks, trial phases, absent modalities)."""

    opened: Source | None = None

    def locate(self, path: Path, options: dict[str, Any], specs: dict) -> Source:
        self.opened = super().locate(path, options, specs)
        return self.opened


def load_recording(path, **options: Any) -> LoadedRecording:
    """:func:`load` (same parameters), also returning each trial's phase and the streams picked.

    With ``specs`` and no ``picks`` for a modality, an XDF file's modality is read from the one
    stream carrying the spec's channels; with ``modalities=None`` a modality no stream carries is
    left out (``absent`` says why) instead of failing.

    Returns
    -------
    LoadedRecording
    """
    loader = _RecordingsOnce()
    dataset = loader.load(path, **options)
    source = loader.opened
    context: _Opened = source.context
    phases = {k: context.phases[k - 1] if context.phases else None for k in (t.trial for t in dataset.trials)}
    picks = {m: context.picks.get(m) for m in dataset.modalities}
    return LoadedRecording(dataset, phases, picks, dict(source.absent))
