"""LSL simulator: synthetic EEG, gaze and ECG of one synthetic subject, with a ground-truth marker stream.

:class:`Simulator` plays trials of :func:`synthetic.generate_trial` back to back as LSL
outlets in real time (or faster), the way an amplifier, an eye tracker and an ECG belt would
stream them during an experiment, plus an irregular-rate string stream that says which emotion
the generator is expressing. It is the live counterpart of the synthetic dataset the demo
bundle was trained on, and the source of truth for end-to-end accuracy tests.

Streams
-------
================  ========  ==============================  ==========  ==================
modality          type      channels (unit)                 rate (Hz)   name
================  ========  ==============================  ==========  ==================
``eeg``           EEG       62 SEED channels (uV)           200         ``M2S-Sim-EEG``
``eye``           Gaze      gaze_x, gaze_y (deg), pupil_    120         ``M2S-Sim-Gaze``
                            left, pupil_right (mm),
                            validity (bool)
``ecg``           ECG       ECG1, ECG2 (mV)                 256         ``M2S-Sim-ECG``
``pps``           PPS       DEAP's 8 peripheral channels    128         ``M2S-Sim-PPS``
markers           Markers   one string channel              irregular   ``M2S-Sim-Markers``
================  ========  ==============================  ==========  ==================

(channels and rates are the config's; the table shows the defaults). Data streams are
``float32``; eye samples carry NaN gaze and pupil during blinks and track loss, exactly as the
generator produces them. Each stream's ``desc()`` holds ``channels/channel/{label, unit, type}``,
``acquisition/{manufacturer, model}`` and ``m2s_simulator/{seed, subject, session, first_trial,
trial_duration_s}``. Source ids are stable, ``{source_id_prefix}-{modality}-s{subject}-seed{seed}``
(``m2s-sim-eeg-s0-seed0`` by default; the marker stream uses ``markers`` for the modality), so a
consumer that attaches by source_id finds the same source again after a restart or a drop-out.

Ground truth
------------
At every trial onset (every label change is one) the marker stream carries the JSON string
``{"trial": k, "label": "<class name>"}``, time-stamped with the LSL time of the trial's first
sample; :class:`TrialMarker` parses it. Consecutive trials may share a label, so not every
marker is a change. :attr:`Simulator.labels_timeline` and :meth:`Simulator.label_at` give the
same ground truth in-process. A consumer that connects between two onsets sees no marker until
the next one (LSL sends no history to new inlets).

Trials
------
By default the simulator plays subject 0, a person the default demo bundle never saw (it is a
population model trained on subjects 3-14; 0, 1 and 2 are held out), from trial index
``config.n_trials`` on (``config.n_trials, config.n_trials + 1, ...``): trials beyond any dataset
built from the config, so no model trained on the config has seen them either. A trial's signals depend only on ``(seed, subject, session, trial)``
and the label sequence is prefix-stable in ``n_trials`` (labels come in shuffled blocks of one
trial per class), so generating trial ``k`` with ``n_trials`` extended to ``k + 1`` gives the
trial a larger dataset would contain.

Timing
------
Playback time ``t`` (s, the position in the concatenated trials) maps to LSL time
``start_time + t`` at every speed; sample ``i`` of a stream at ``sfreq`` Hz is stamped
``start_time + i / sfreq``, passed to ``push_chunk`` sample by sample, so timestamps are
sample-accurate and never drift. It is pushed when ``t / speed`` wall seconds have passed since the
start. This is the rule :mod:`clients.replay` follows (its "Timing" section says why): every stream
keeps its nominal sample spacing, so a consumer's gap rule (a step above ``gap_factor / sfreq``)
means the same at any speed and a sped-up simulation yields predictions. At ``speed > 1`` the
timestamps run ahead of the wall clock (data age is negative, nothing turns stale while it runs);
at ``speed = 1`` LSL time follows the wall clock exactly. Chunks of
``chunk_s`` playback seconds are pushed when their last sample is due; due times are computed
from the start (not by accumulating sleeps), as MNE-LSL's player does, so a late wake-up is
caught up on the next chunk and never accumulates. ``start_time`` is ``clock()`` at
:meth:`Simulator.start`. The clock (default ``pylsl.local_clock``) and the wait between chunks
(``sleep``, default: the stop event's ``wait``) are constructor arguments, so a test can run the schedule in
fake time: due times, catch-up after a late wake-up and the behind-schedule warning without sleeping.

Faults
------
:class:`Fault` injects problems at playback time ``at_s`` for ``duration_s`` playback seconds:

- ``pause``: the data streams send nothing (the samples due meanwhile are lost, so consumers see
  a timestamp gap); the outlets stay up.
- ``dropout``: every data outlet is destroyed, then recreated with the same source_id (and a new
  uid); the samples due meanwhile are lost. The marker outlet stays up.
- ``nan``: EEG, ECG and PPS samples are NaN (an amplifier reporting saturation or a lost
  electrode); gaze is unaffected (it already has NaN blinks).

The marker stream is never faulted: it is ground truth.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pylsl

from signals._checks import check_option, check_range, check_type, ensure_int
from signals.eye import EYE_CHANNELS
from signals.markers import parse_onset
from synthetic import (
    EYE_UNITS,
    MODALITIES,
    PPS_CHANNELS,
    PPS_UNITS,
    SyntheticConfig,
    SyntheticTrial,
    generate_trial,
    trial_labels,
)

from .outlets import described_info

logger = logging.getLogger(__name__)

DEFAULT_MODALITIES: tuple[str, ...] = ("eeg", "eye", "ecg")
FAULT_KINDS: tuple[str, ...] = ("pause", "dropout", "nan")
NAN_MODALITIES: tuple[str, ...] = ("eeg", "ecg", "pps")  # what a `nan` fault corrupts

# LSL content type, stream-name suffix and channel types of each modality.
STREAM_TYPES: dict[str, str] = {"eeg": "EEG", "eye": "Gaze", "ecg": "ECG", "pps": "PPS"}
_NAME_SUFFIX = {"eeg": "EEG", "eye": "Gaze", "ecg": "ECG", "pps": "PPS"}
_EYE_CHANNEL_TYPES = ("GazeX", "GazeY", "PupilDiameter", "PupilDiameter", "Validity")
_PPS_CHANNEL_TYPES = ("EOG", "EOG", "EMG", "EMG", "GSR", "RESP", "PPG", "TEMP")
MARKER_TYPE = "Markers"

_MIN_CHUNK_S, _MAX_CHUNK_S = 0.005, 1.0
_MAX_SPEED = 1000.0
_BEHIND_WARN_S = 1.0  # log once when pushing falls this far behind the schedule (wall seconds)


def source_id(modality: str, *, subject: int, seed: int, prefix: str = "m2s-sim") -> str:
    """The stable LSL source_id of a simulated stream: ``{prefix}-{modality}-s{subject}-seed{seed}``.

    ``modality`` is one of ``'eeg'``, ``'eye'``, ``'ecg'``, ``'pps'`` or ``'markers'``.
    """
    return f"{prefix}-{modality}-s{subject}-seed{seed}"


@dataclass(frozen=True)
class StreamSpec:
    """What one simulated LSL stream looks like.

    Parameters
    ----------
    name, type, source_id : str
        LSL stream name, content type and source_id.
    sfreq : float
        Nominal rate in Hz (0 for the irregular marker stream).
    channels, units, channel_types : tuple of str
        Per-channel label, unit and type, as written to ``desc/channels/channel``.
    """

    name: str
    type: str
    source_id: str
    sfreq: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    channel_types: tuple[str, ...]


@dataclass(frozen=True)
class Fault:
    """A fault injected at playback time ``at_s`` for ``duration_s`` playback seconds.

    Parameters
    ----------
    kind : {'pause', 'dropout', 'nan'}
        What happens (module docstring, "Faults").
    at_s : float
        Start, in playback seconds from the start of the simulation (>= 0).
    duration_s : float
        Length in playback seconds (> 0).
    """

    kind: str
    at_s: float
    duration_s: float

    def __post_init__(self):
        check_option("kind", self.kind, FAULT_KINDS)
        check_range(self.at_s, f"{self.kind} fault start", low=0, unit="s")
        check_range(self.duration_s, f"{self.kind} fault duration", low=0, low_inclusive=False, unit="s")

    @property
    def end_s(self) -> float:
        """Playback time (s) at which the fault is over."""
        return self.at_s + self.duration_s

    @classmethod
    def parse(cls, kind: str, text: str) -> Fault:
        """Parse the command-line form ``AT:SECONDS`` (e.g. ``"30:5"``: at 30 s, for 5 s).

        Raises
        ------
        ValueError
            The text is not two numbers separated by ``:``, or a value is out of range; the
            message quotes the option and gives an example.
        """
        check_type(text, str, f"--{kind} value")
        where = f"--{kind} {text!r}"
        at, sep, seconds = text.partition(":")
        try:
            if not sep:
                raise ValueError
            at_s, duration_s = float(at), float(seconds)
        except ValueError:
            raise ValueError(
                f"{where} is not AT:SECONDS; write the start and the length in seconds, e.g. --{kind} 30:5 "
                "(at 30 s, for 5 s)."
            ) from None
        try:
            return cls(kind, at_s, duration_s)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


@dataclass(frozen=True)
class TrialMarker:
    """One ground-truth marker: trial ``trial`` with emotion ``label`` starts at LSL time ``lsl_time``.

    Parameters
    ----------
    lsl_time : float
        LSL timestamp (s, ``pylsl.local_clock()`` domain) of the trial's first sample.
    trial : int
        Trial index in the synthetic dataset.
    label : str
        The trial's class name (e.g. ``'positive'``).
    phase : {'calibration', 'test'} | None
        With ``Simulator(calibration_trials=K)``: whether the trial belongs to the labelled
        calibration phase or to the test trials after it; None otherwise.
    """

    lsl_time: float
    trial: int
    label: str
    phase: str | None = None

    def to_json(self) -> str:
        """The marker string sent on the LSL marker stream: ``{"trial": k, "label": "..."}``, plus
        ``"phase": "calibration" | "test"`` when the simulator plays a calibration phase."""
        obj: dict[str, object] = {"trial": self.trial, "label": self.label}
        if self.phase is not None:
            obj["phase"] = self.phase
        return json.dumps(obj)

    @classmethod
    def from_json(cls, text: str, lsl_time: float) -> TrialMarker:
        """Parse a marker string received with timestamp ``lsl_time``.

        Raises
        ------
        ValueError
            ``text`` is not a JSON object with an int ``trial`` and a str ``label``.
        """
        parsed = parse_onset(text) if isinstance(text, str) else None  # the one parser (signals.markers)
        if parsed is None:
            raise ValueError(
                f'marker {text!r} is not a simulator marker; expected JSON like {{"trial": 15, "label": '
                '"neutral"} (optionally with "phase": "calibration" or "test").'
            )
        return cls(float(lsl_time), *parsed)


class Simulator:
    """Play synthetic trials of one subject as LSL outlets in real time, with a ground-truth marker stream.

    See the module docstring for the streams, timing and faults.

    Parameters
    ----------
    config : SyntheticConfig | None
        The synthetic dataset (None: the default config, whose subjects 3-14 the demo bundle was trained on).
    subject : int
        Synthetic subject, in ``[0, config.n_subjects)`` (default 0: one the demo bundle never saw).
    modalities : sequence of {'eeg', 'eye', 'ecg', 'pps'}
        Data streams to create (default EEG, gaze, ECG); a comma-separated string also works.
    first_trial : int | None
        First trial index to play; then ``first_trial + 1``, ... None: ``config.n_trials``, the
        first trial beyond the dataset (never seen in training).
    calibration_trials : int
        K > 0: the run starts with a calibration phase, the shortest run of trials from
        ``first_trial`` holding K trials of every class (K blocks when ``first_trial`` starts a
        block of the label sequence), and every marker carries ``"phase": "calibration"`` or
        ``"test"`` (the trials after it). 0: no phases (default).
    speed : float
        Playback speed (1 = real time), in ``(0, 1000]``.
    chunk_s : float
        Playback seconds per push, in ``[0.005, 1]``.
    duration_s : float
        Playback seconds to stream before stopping by itself; 0 = until :meth:`stop`.
    faults : sequence of Fault
        Faults to inject. A ``dropout`` must last at least ``chunk_s``.
    name_prefix : str
        Stream names are ``{name_prefix}-EEG``, ``-Gaze``, ``-ECG``, ``-PPS``, ``-Markers``.
    source_id_prefix : str
        Source ids are ``{source_id_prefix}-{modality}-s{subject}-seed{seed}`` (:func:`source_id`).
    clock : callable
        ``clock() -> float``, seconds: ``start_time`` and every due time are read from it (default
        ``pylsl.local_clock``, so timestamps are LSL times).
    wait_for_consumers_s : float
        At :meth:`start`, wait up to this long (s) after the outlets exist and before playback time 0
        until every outlet (markers included) has an inlet, as an experiment waits for its recorder:
        a live calibration listening to the markers then sees the first trial's onset. 0 (default):
        start at once (an inlet that connects later misses what was pushed before).
    sleep : callable | None
        ``sleep(seconds) -> bool``: how the playback thread waits until the next chunk is due; True
        ends playback. None: the stop event's ``wait`` (returns True once :meth:`stop` is called).
        A test passes a fake clock's sleep, which moves the clock instead of waiting.

    Attributes
    ----------
    config : SyntheticConfig
        The dataset config as given (its ``n_trials`` is extended internally for each trial).
    start_time : float | None
        LSL time (s) of playback time 0; None before :meth:`start`.
    """

    def __init__(
        self,
        config: SyntheticConfig | None = None,
        *,
        subject: int = 0,
        modalities: Sequence[str] = DEFAULT_MODALITIES,
        first_trial: int | None = None,
        calibration_trials: int = 0,
        speed: float = 1.0,
        chunk_s: float = 0.05,
        duration_s: float = 0.0,
        faults: Sequence[Fault] = (),
        name_prefix: str = "M2S-Sim",
        source_id_prefix: str = "m2s-sim",
        clock: Callable[[], float] = pylsl.local_clock,
        sleep: Callable[[float], bool] | None = None,
        wait_for_consumers_s: float = 0.0,
    ):
        self.config = SyntheticConfig() if config is None else check_type(config, SyntheticConfig, "config")
        self.subject = ensure_int(subject, "subject")
        if not 0 <= self.subject < self.config.n_subjects:
            raise ValueError(
                f"subject must be in [0, {self.config.n_subjects}) (the config has n_subjects="
                f"{self.config.n_subjects}), got {self.subject}."
            )
        if isinstance(modalities, str):
            modalities = [m.strip() for m in modalities.split(",")]
        check_type(modalities, (list, tuple), "modalities")
        if not modalities:
            raise ValueError(f"modalities is empty; name at least one of {', '.join(map(repr, MODALITIES))}.")
        self.modalities = tuple(dict.fromkeys(check_option("modalities", m, MODALITIES) for m in modalities))
        if first_trial is None:
            first_trial = self.config.n_trials
        self.first_trial = ensure_int(first_trial, "first_trial")
        check_range(self.first_trial, "first_trial", low=0)
        self.calibration_trials = ensure_int(calibration_trials, "calibration_trials")
        check_range(self.calibration_trials, "calibration_trials", low=0)
        self.n_calibration_played = self._calibration_length()
        self.wait_for_consumers_s = float(
            check_range(wait_for_consumers_s, "wait_for_consumers_s", low=0, high=3600, unit="s")
        )
        self.speed = float(check_range(speed, "speed", low=0, high=_MAX_SPEED, low_inclusive=False))
        self.chunk_s = float(check_range(chunk_s, "chunk_s", low=_MIN_CHUNK_S, high=_MAX_CHUNK_S, unit="s"))
        self.duration_s = float(check_range(duration_s, "duration_s", low=0, unit="s"))
        check_type(faults, (list, tuple), "faults")
        for fault in faults:
            check_type(fault, Fault, "each fault")
            if self.duration_s and fault.at_s >= self.duration_s:
                raise ValueError(
                    f"the {fault.kind} fault at {fault.at_s:g} s never happens: the simulation stops at "
                    f"{self.duration_s:g} s; move the fault earlier or lengthen the duration."
                )
            if fault.kind == "dropout" and fault.duration_s < self.chunk_s:
                raise ValueError(
                    f"a dropout must last at least one chunk ({self.chunk_s:g} s) for the outlets to go "
                    f"away, got {fault.duration_s:g} s; lengthen it or use a smaller chunk_s."
                )
        self.faults = tuple(faults)
        self.name_prefix = _non_empty(name_prefix, "name_prefix")
        self.source_id_prefix = _non_empty(source_id_prefix, "source_id_prefix")
        self.start_time: float | None = None
        for fn, name in ((clock, "clock"), (sleep, "sleep")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__} instead.")
        self._clock = clock

        self._outlets: dict[str, pylsl.StreamOutlet | None] = {}
        self._marker_outlet: pylsl.StreamOutlet | None = None
        self._first: SyntheticTrial | None = None
        self._trials: dict[int, SyntheticTrial] = {}
        self._prefetch: dict[int, Future] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sleep = self._stop.wait if sleep is None else sleep
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._timeline: list[TrialMarker] = []
        self._n_pushed: dict[str, int] = dict.fromkeys(self.modalities, 0)
        self._next_sample: dict[str, int] = dict.fromkeys(self.modalities, 0)
        self._next_trial_marker = 0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ public API

    def __repr__(self) -> str:
        state = "running" if self.running else ("finished" if self._done.is_set() else "not started")
        return (
            f"<Simulator subject {self.subject} seed {self.config.seed} | {', '.join(self.modalities)} "
            f"from trial {self.first_trial} at x{self.speed:g} | {state}>"
        )

    @property
    def seed(self) -> int:
        """The config's root seed (part of every source_id)."""
        return self.config.seed

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of playback (duration reached, :meth:`stop`, or an error)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def source_ids(self) -> dict[str, str]:
        """Source id per stream: the modalities plus ``'markers'``."""
        keys = (*self.modalities, "markers")
        return {
            m: source_id(m, subject=self.subject, seed=self.seed, prefix=self.source_id_prefix) for m in keys
        }

    @property
    def stream_names(self) -> dict[str, str]:
        """LSL stream name per stream: the modalities plus ``'markers'``."""
        names = {m: f"{self.name_prefix}-{_NAME_SUFFIX[m]}" for m in self.modalities}
        return {**names, "markers": f"{self.name_prefix}-Markers"}

    @property
    def streams(self) -> dict[str, StreamSpec]:
        """Description of every stream: the modalities plus ``'markers'`` (the generator's channels and units)."""
        c, ids, names = self.config, self.source_ids, self.stream_names
        layout = {
            "eeg": (c.eeg.sfreq, c.eeg.channel_names, ("uV",) * len(c.eeg.channel_names), None),
            "eye": (c.eye.sfreq, EYE_CHANNELS, EYE_UNITS, _EYE_CHANNEL_TYPES),
            "ecg": (c.ecg.sfreq, c.ecg.channel_names, ("mV",) * len(c.ecg.channel_names), None),
            "pps": (c.pps.sfreq, PPS_CHANNELS, PPS_UNITS, _PPS_CHANNEL_TYPES),
        }
        specs = {}
        for m in self.modalities:
            sfreq, channels, units, types = layout[m]
            types = types or (STREAM_TYPES[m],) * len(channels)
            specs[m] = StreamSpec(
                names[m], STREAM_TYPES[m], ids[m], float(sfreq), tuple(channels), tuple(units), tuple(types)
            )
        specs["markers"] = StreamSpec(
            names["markers"], MARKER_TYPE, ids["markers"], 0.0, ("emotion",), ("",), ("Marker",)
        )
        return specs

    @property
    def labels_timeline(self) -> tuple[TrialMarker, ...]:
        """Every trial onset so far, oldest first (the markers sent, with their LSL times)."""
        with self._lock:
            return tuple(self._timeline)

    @property
    def n_pushed(self) -> dict[str, int]:
        """Samples actually sent per modality (those lost to pause and drop-out faults are not counted)."""
        with self._lock:
            return dict(self._n_pushed)

    def label_at(self, lsl_time: float) -> str | None:
        """The true label at LSL time ``lsl_time``; None before the first trial onset sent.

        The label of the latest onset at or before ``lsl_time`` (the trial that was playing then,
        as far as onsets have been sent).
        """
        check_range(lsl_time, "lsl_time")
        timeline = self.labels_timeline
        k = bisect.bisect_right([m.lsl_time for m in timeline], lsl_time) - 1
        return timeline[k].label if k >= 0 else None

    def start(self) -> Simulator:
        """Create the outlets and start streaming in a background thread; returns ``self``.

        The first trial is generated here (about 0.1 s for a 60-s trial), so errors in the config
        surface in the caller; ``start_time`` is set just before the thread starts.

        Raises
        ------
        RuntimeError
            Already started (a simulator runs once; make a new one).
        """
        if self._thread is not None:
            raise RuntimeError("this Simulator was already started; create a new Simulator to stream again.")
        self._first = self._generate(0)
        self._trials[0] = self._first
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="m2s-sim-generate")
        for m in self.modalities:
            self._outlets[m] = pylsl.StreamOutlet(self._data_info(m))
        self._marker_outlet = pylsl.StreamOutlet(self._marker_info())
        if self.wait_for_consumers_s > 0:
            self._wait_for_consumers()
        self._thread = threading.Thread(target=self._run, name="m2s-simulator", daemon=True)
        self.start_time = self._clock()
        logger.info(
            "Simulating subject %d (seed %d) from trial %d at x%g: %s; source_ids %s",
            self.subject,
            self.seed,
            self.first_trial,
            self.speed,
            ", ".join(f"{self.stream_names[m]} ({self.streams[m].sfreq:g} Hz)" for m in self.modalities),
            ", ".join(self.source_ids.values()),
        )
        self._thread.start()
        return self

    def _wait_for_consumers(self) -> None:
        """Wait (up to ``wait_for_consumers_s`` in all) until every outlet has an inlet; warn if some has none."""
        deadline = time.monotonic() + self.wait_for_consumers_s
        outlets = {**{m: self._outlets[m] for m in self.modalities}, "markers": self._marker_outlet}
        waiting = [
            name
            for name, outlet in outlets.items()
            if not outlet.wait_for_consumers(max(deadline - time.monotonic(), 0.0))
        ]
        if waiting:
            logger.warning(
                "no inlet on %s after %.1f s; starting anyway (what is pushed before an inlet connects is lost to it).",
                ", ".join(waiting),
                self.wait_for_consumers_s,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until playback ends (duration reached, :meth:`stop` or an error); True if it has ended."""
        if self._thread is None:
            raise RuntimeError("the Simulator was not started; call start() first.")
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop streaming and destroy every outlet (idempotent; consumers see the streams end)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10.0)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        # Dropping the last references makes liblsl destroy the outlets.
        self._outlets = dict.fromkeys(self._outlets)
        self._marker_outlet = None
        self._done.set()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ stream descriptions

    def _data_info(self, modality: str) -> pylsl.StreamInfo:
        spec = self.streams[modality]
        info = described_info(
            spec.name, spec.type, spec.sfreq, pylsl.cf_float32, spec.source_id,
            spec.channels, spec.units, spec.channel_types,
        )  # fmt: skip
        self._describe(info)
        return info

    def _marker_info(self) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            self.stream_names["markers"],
            MARKER_TYPE,
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            self.source_ids["markers"],
        )
        channel = info.desc().append_child("channels").append_child("channel")
        channel.append_child_value("label", "emotion")
        channel.append_child_value("type", "Marker")
        node = self._describe(info)
        node.append_child_value("format", '{"trial": <int>, "label": <class name>} at every trial onset')
        classes = node.append_child("class_names")
        for name in self.config.class_names:
            classes.append_child_value("class", name)
        return info

    def _describe(self, info: pylsl.StreamInfo):
        acquisition = info.desc().append_child("acquisition")
        acquisition.append_child_value("manufacturer", "M2S-live")
        acquisition.append_child_value("model", "synthetic simulator")
        node = info.desc().append_child("m2s_simulator")
        for key, value in (
            ("seed", self.seed),
            ("subject", self.subject),
            ("session", 0),
            ("first_trial", self.first_trial),
            ("calibration_trials", self.calibration_trials),
            ("trial_duration_s", self.config.trial_duration_s),
            ("speed", self.speed),
        ):
            node.append_child_value(key, f"{value:g}" if isinstance(value, float) else str(value))
        return node

    # ------------------------------------------------------------------ trials

    def _calibration_length(self) -> int:
        """Trials played in the calibration phase: the shortest run from ``first_trial`` with K of each class."""
        k = self.calibration_trials
        if k == 0:
            return 0
        n_classes = self.config.n_classes
        # Blocks of n_classes hold every class once, so K + 1 blocks past first_trial always suffice.
        last = self.first_trial + (k + 1) * n_classes
        config = self.config.model_copy(update={"n_trials": max(self.config.n_trials, last)})
        labels = trial_labels(config, self.subject, 0)[self.first_trial : last]
        counts = np.zeros(n_classes, dtype=int)
        for i, label in enumerate(labels):
            counts[label] += 1
            if counts.min() >= k:
                return i + 1
        raise AssertionError("unreachable: block-balanced labels hold every class once per block")

    def phase_of(self, played: int) -> str | None:
        """``'calibration'`` or ``'test'`` for trial number ``played`` of this run (0 = first_trial);
        None without a calibration phase."""
        if not self.calibration_trials:
            return None
        return "calibration" if played < self.n_calibration_played else "test"

    def _generate(self, played: int) -> SyntheticTrial:
        """Trial number ``played`` of this run (0 = first_trial), from a config with n_trials extended to hold it."""
        trial = self.first_trial + played
        config = self.config
        if trial >= config.n_trials:
            config = config.model_copy(update={"n_trials": trial + 1})
        return generate_trial(config, self.subject, 0, trial, modalities=self.modalities)

    def _trial(self, played: int) -> SyntheticTrial:
        """The trial (cached or prefetched), and the next one queued for generation in the background."""
        if played not in self._trials:
            future = self._prefetch.pop(played, None)
            self._trials[played] = future.result() if future is not None else self._generate(played)
            for old in [k for k in self._trials if k < played - 1]:
                del self._trials[old]
        if played + 1 not in self._trials and played + 1 not in self._prefetch:
            self._prefetch[played + 1] = self._executor.submit(self._generate, played + 1)
        return self._trials[played]

    def _samples(self, modality: str, a: int, b: int) -> np.ndarray:
        """Samples ``[a, b)`` of the concatenated trials of ``modality``, shape (b - a, n_channels), float32."""
        n_per_trial = self._first.signals[modality].shape[1]
        parts = []
        while a < b:
            played, offset = divmod(a, n_per_trial)
            stop = min(b - a, n_per_trial - offset)
            parts.append(self._trial(played).signals[modality][:, offset : offset + stop])
            a += stop
        return np.concatenate(parts, axis=1).T.astype(np.float32)

    # ------------------------------------------------------------------ the streaming thread

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as err:  # the thread must not die silently
            self.error = err
            logger.exception("The simulator stopped on an error")
        finally:
            self._done.set()

    def _loop(self) -> None:
        t0 = self.start_time
        tick, warned_behind = 0, False
        while not self._stop.is_set():
            tick += 1
            playback = tick * self.chunk_s  # one product, no accumulated rounding
            if self.duration_s:
                playback = min(playback, self.duration_s)
            delay = t0 + playback / self.speed - self._clock()
            if delay > 0:
                if self._sleep(delay):
                    break
            elif -delay > _BEHIND_WARN_S and not warned_behind:
                warned_behind = True
                logger.warning(
                    "The simulator is %.1f s behind schedule (slow machine or speed %g too high); it catches "
                    "up by pushing larger chunks, timestamps stay exact.",
                    -delay,
                    self.speed,
                )
            self._push_until(playback)
            if self.duration_s and playback >= self.duration_s:
                logger.info("Simulated %g s; stopping.", self.duration_s)
                break

    def _in(self, kind: str, times: np.ndarray) -> np.ndarray:
        """Mask of ``times`` (playback s) inside any fault of ``kind``."""
        mask = np.zeros(times.shape, dtype=bool)
        for f in self.faults:
            if f.kind == kind:
                mask |= (times >= f.at_s) & (times < f.end_s)
        return mask

    def _push_until(self, playback: float) -> None:
        """Push every sample and marker due at or before playback time ``playback`` (s)."""
        in_dropout = bool(self._in("dropout", np.array([playback]))[0])
        if not in_dropout:
            for m in self.modalities:
                if self._outlets[m] is None:
                    self._outlets[m] = pylsl.StreamOutlet(self._data_info(m))
                    logger.info("Fault: %s outlet recreated at %.2f s (same source_id)", m, playback)
        self._push_markers(playback)
        for m in self.modalities:
            self._push_samples(m, playback)
        if in_dropout and any(o is not None for o in self._outlets.values()):
            self._outlets = dict.fromkeys(self._outlets)  # liblsl destroys them
            logger.info("Fault: data outlets destroyed at %.2f s", playback)

    def _push_markers(self, playback: float) -> None:
        duration = self.config.trial_duration_s
        while self._next_trial_marker * duration <= playback + 1e-9:
            played = self._next_trial_marker
            if self.duration_s and played * duration >= self.duration_s:
                return
            trial = self._trial(played)
            marker = TrialMarker(
                self.start_time + played * duration, trial.trial, trial.class_name, self.phase_of(played)
            )
            self._marker_outlet.push_sample([marker.to_json()], marker.lsl_time)
            with self._lock:
                self._timeline.append(marker)
            self._next_trial_marker += 1
            logger.info("Trial %d (%s) starts at LSL time %.3f", marker.trial, marker.label, marker.lsl_time)

    def _push_samples(self, modality: str, playback: float) -> None:
        sfreq = self._first.sfreq[modality]
        a, b = self._next_sample[modality], math.floor(playback * sfreq + 1e-6)
        if b <= a:
            return
        self._next_sample[modality] = b
        times = np.arange(a, b) / sfreq  # playback s
        keep = ~(self._in("pause", times) | self._in("dropout", times))
        if not keep.any():
            return
        data = self._samples(modality, a, b)
        if modality in NAN_MODALITIES:
            data[self._in("nan", times)] = np.nan
        outlet = self._outlets[modality]
        if outlet is None:  # cannot happen: kept samples fall outside drop-outs, when outlets exist
            return
        timestamps = self.start_time + times[keep]  # the nominal spacing at any speed (module docstring)
        outlet.push_chunk(data[keep], timestamps.tolist())
        with self._lock:
            self._n_pushed[modality] += int(keep.sum())


def _non_empty(text: str, name: str) -> str:
    check_type(text, str, name)
    if not text.strip() or text != text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"{name} must be a non-empty string without spaces, got {text!r}.")
    return text


__all__ = [
    "DEFAULT_MODALITIES",
    "FAULT_KINDS",
    "Fault",
    "Simulator",
    "StreamSpec",
    "TrialMarker",
    "source_id",
]
