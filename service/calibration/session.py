"""One calibration session: labelled trials from markers or REST, the windows inside them, the statistics.

A :class:`Calibration` observes attached streams through their taps
(:meth:`service.streams._AttachedStream.add_tap`): for every chunk it receives the raw feature
vectors the stream's own :class:`~signals.pipeline.FeaturePipeline` produced (accumulated into the
participant's :class:`~signals.normalisation.FeatureStatistics`: all data, labelled or not) and the
windows it completed (their raw features, kept while a trial could still claim them). Trials come
from one :class:`~signals.markers.TrialMarkerParser` (the recording loader's parser) fed by an LSL
marker stream or by ``POST /calibrations/{id}/label`` (which feeds it ``trial_start:<label>`` /
``trial_end`` at the current LSL time).

Rules
-----
- A window belongs to a trial when all of its samples do: ``start <= first sample`` and ``last
  sample < end``. The pipeline never cuts a window across a gap, so none spans one.
- A window waits up to :data:`PENDING_S` for a late marker (marker and signal streams arrive
  through different inlets); older unclaimed windows are dropped (their statistics are kept).
- Trials with a label outside the base model's classes, without a label, or with ``"phase":
  "test"`` (the evaluation trials of ``m2s simulate --calibration-trials``) are not calibration
  data; each is noted (``notes``) and shown on the timeline (``events``) but none of its windows is used.
- Thread-safety: every method takes the session's lock; taps run on the LSL worker threads. No
  method calls into a stream while holding the lock (the stream's lock is held when a tap runs).

No signal values are ever logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pylsl

from models.bundle import ModalityGraph
from service.engine import LoadedModel
from signals.markers import MarkerError, TrialMarkerParser, TrialSegment
from signals.normalisation import FeatureStatistics

logger = logging.getLogger(__name__)

#: Seconds a window (or a vector, for the statistics) waits for a marker that could still claim it.
PENDING_S = 30.0
#: Windows kept per stream for a trial that is still open (about an hour of 2-s hops).
MAX_PENDING_WINDOWS = 2000
_MAX_EVENTS = 200
_MAX_NOTES = 20

STATES = ("collecting", "fitting", "done", "failed", "cancelled")


@dataclass(frozen=True)
class _Window:
    start: float  # LSL time of its first sample
    end: float  # LSL time of its last sample
    features: np.ndarray  # (T, D) raw


class StreamCollector:
    """One stream's part of a calibration: statistics of all its vectors, and its labelled windows.

    Parameters
    ----------
    stream_id : str
    graph : ModalityGraph
        The base model's graph of the stream's modality (its spec, T and spacing are the stream's).
    """

    def __init__(self, stream_id: str, graph: ModalityGraph):
        self.stream_id = stream_id
        self.modality = graph.modality
        self.graph = graph
        pipeline = graph.feature_pipeline()
        self.window_s = (pipeline.samples_needed - 1) / pipeline.sfreq  # first to last sample of a window
        self.stats = FeatureStatistics(graph.dim)
        self.pending_vectors: deque[tuple[float, np.ndarray]] = (
            deque()
        )  # (LSL time, raw vector) not yet counted
        self.pending: deque[_Window] = deque()
        self.labelled: list[tuple[int, int, np.ndarray]] = []  # (trial, class index, raw window)
        self.newest = -np.inf

    def add(self, windows, vectors) -> None:
        """Keep a chunk's raw vectors (counted once no test trial can claim them) and its windows (until a
        trial claims them)."""
        for t, v in zip(vectors.timestamps, vectors.features, strict=True):
            self.pending_vectors.append((float(t), v))
        for w in windows:
            self.pending.append(_Window(w.lsl_time - self.window_s, w.lsl_time, w.features))
            self.newest = max(self.newest, w.lsl_time)

    def claim(self, trial: int, y: int, segment: TrialSegment) -> int:
        """Move the pending windows inside ``segment`` to the labelled ones; returns how many."""
        inside = [w for w in self.pending if w.start >= segment.start and w.end < segment.end]
        self.labelled += [(trial, y, w.features) for w in inside]
        self.pending = deque(w for w in self.pending if w.end >= segment.end)
        return len(inside)

    def count_vectors(self, until: float, excluded) -> None:
        """Add the pending vectors up to LSL time ``until`` to the statistics, except those inside the
        ``excluded`` (start, end) spans (test trials: never the participant's calibration data)."""
        batch = []
        while self.pending_vectors and self.pending_vectors[0][0] <= until:
            t, v = self.pending_vectors.popleft()
            if not any(a <= t < b for a, b in excluded):
                batch.append(v)
        if batch:
            self.stats.update(np.stack(batch))

    def clear(self) -> None:
        """Forget every window and uncounted vector (the calibration ended or was cancelled)."""
        self.labelled.clear()
        self.pending.clear()
        self.pending_vectors.clear()

    def prune(self, start_from: float, end_from: float) -> None:
        """Forget pending windows that start before ``start_from`` or end before ``end_from`` (no trial can
        claim them any more)."""
        while self.pending and (self.pending[0].start < start_from or self.pending[0].end < end_from):
            self.pending.popleft()

    def count_in(self, start: float) -> int:
        """Pending windows that start at or after ``start`` (those of an open trial)."""
        return sum(1 for w in self.pending if w.start >= start)


class Calibration:
    """A participant's calibration on some attached streams (see the module docstring).

    Parameters
    ----------
    calibration_id, participant : str
    base : LoadedModel
        The model whose embedding graphs and classes the calibration uses.
    streams : dict of str to ModalityGraph
        Stream id -> the base's graph of that stream's modality.
    labels : {'markers', 'rest'}
    trial_s : float | None
        Length of a JSON-onset trial when no later marker ends it sooner (None: until the next onset).
    clock : callable
        The LSL clock (REST labels are stamped with it).
    """

    def __init__(
        self,
        calibration_id: str,
        participant: str,
        base: LoadedModel,
        streams: dict[str, ModalityGraph],
        labels: str,
        *,
        trial_s: float | None = None,
        clock=pylsl.local_clock,
    ):
        self.id = calibration_id
        self.participant = participant
        self.base = base
        self.class_names = tuple(base.bundle.manifest.class_names)
        self.labels = labels
        self.clock = clock
        self.created = time.time()
        self.collectors = {sid: StreamCollector(sid, graph) for sid, graph in streams.items()}
        self.state = "collecting"
        self.error: str | None = None
        self.result = None  # a CalibrationResult once done
        self.marker_inlet = None  # a MarkerInlet, set by the manager for marker labels
        self.recording_id: str | None = None  # the session's recording ("record": true)
        # REST labels as marker texts, to the recording (None when not recorded); must only enqueue.
        self.on_rest_marker: Callable[[float, str], None] | None = None
        self._lock = threading.RLock()
        self._parser = TrialMarkerParser(onset_trial_s=trial_s)
        self._trials: list[tuple[str, TrialSegment]] = []  # (label, segment) of used trials
        self._events: deque[dict] = deque(maxlen=_MAX_EVENTS)
        self._notes: deque[str] = deque(maxlen=_MAX_NOTES)
        self._last_end = -np.inf  # end of the last closed trial
        self._test_segments: list[TrialSegment] = []  # their vectors never enter the statistics
        self._noted: set[str] = set()
        self._final_counts: dict | None = None  # counts kept when the windows are released

    # -- inputs ------------------------------------------------------------------------------------

    def tap(self, stream, windows, vectors) -> None:
        """A stream's chunk (called on its worker thread; see :meth:`service.streams._AttachedStream.add_tap`)."""
        with self._lock:
            if self.state != "collecting":
                return
            collector = self.collectors.get(stream.id)
            if collector is None:
                return
            collector.add(windows, vectors)
            collector.prune(*self._keep_from(collector.newest))
            newest = vectors.timestamps[-1] if len(vectors) else -np.inf
            if self._parser.open_phase != "test":  # a test trial's vectors wait for its end, then are dropped
                collector.count_vectors(newest - PENDING_S, self._test_spans())
            if len(collector.pending) > MAX_PENDING_WINDOWS:
                collector.pending.popleft()
                self._note_once(
                    "pending",
                    f"a trial open for over {MAX_PENDING_WINDOWS} windows keeps only its latest ones",
                )

    def on_marker(self, lsl_time: float, text: str) -> None:
        """One marker of the experiment's marker stream (from the marker worker thread)."""
        with self._lock:
            if self.state != "collecting":
                return
            try:
                closed = self._parser.push(lsl_time, text)
            except MarkerError as err:
                self._note(f"marker at {lsl_time:.3f} s ignored: {err}")
                return
            for segment in closed:
                self._close(segment)
            self._note_open()

    def markers_lost(self) -> None:
        """The marker stream reconnected after a loss: markers sent meanwhile are gone, so the open trial
        may have ended (or another begun) unseen. It is dropped, not guessed; the next onset starts afresh."""
        with self._lock:
            if self.state != "collecting":
                return
            open_ = self._parser.open_segment
            self._parser = TrialMarkerParser(onset_trial_s=self._parser.onset_trial_s)
            if open_ is not None:
                if self._events and self._events[-1]["end"] is None:
                    self._events.pop()
                self._note(
                    f"the marker stream was lost and came back: the trial open since {open_[0]:.3f} s "
                    f"({open_[1]}) is dropped, since markers sent meanwhile are lost."
                )

    def label(self, label: str | None) -> None:
        """REST labelling: start a trial of ``label`` now (ending an open one), or end it (None).

        Raises
        ------
        ValueError
            ``label`` is not a class of the base model (the message lists them), or None with no
            trial open.
        RuntimeError
            The calibration is not collecting.
        """
        if label is not None and label not in self.class_names:
            raise ValueError(
                f"label {label!r} is not a class of {self.base.ref}; use one of: {', '.join(self.class_names)}."
            )
        with self._lock:
            if self.state != "collecting":
                raise RuntimeError(
                    f"calibration {self.id} is {self.state}; labels are taken only while collecting."
                )
            now = self.clock()
            if label is None and self._parser.open_segment is None:
                raise ValueError('no labelled trial is open; start one with {"label": "<class>"} first.')
            texts = (["trial_end"] if self._parser.open_segment is not None else []) + (
                [f"trial_start:{label}"] if label is not None else []
            )
            closed = []
            for text in texts:
                closed += self._parser.push(now, text)
                if self.on_rest_marker is not None:  # the recording gets the labels as markers
                    self.on_rest_marker(now, text)
            for segment in closed:
                self._close(segment)
            self._note_open()

    # -- trials ------------------------------------------------------------------------------------

    def _close(self, segment: TrialSegment) -> None:
        self._last_end = max(self._last_end, segment.end)
        event = {
            "label": segment.label,
            "start": segment.start,
            "end": segment.end,
            "phase": segment.phase,
            "used": False,
        }
        if self._events and self._events[-1]["end"] is None and self._events[-1]["start"] == segment.start:
            self._events.pop()  # the open trial's event, now closed
        self._events.append(event)
        if segment.phase == "test":
            self._test_segments.append(segment)
            return  # an evaluation trial: never calibration data, not even its statistics
        if segment.label is None:
            self._note(f"trial at {segment.start:.3f} s has no label; its windows are not used.")
            return
        if segment.label not in self.class_names:
            self._note(
                f"trial at {segment.start:.3f} s has label {segment.label!r}, not a class of {self.base.ref} "
                f"({', '.join(self.class_names)}); its windows are not used."
            )
            return
        trial = len(self._trials)
        y = self.class_names.index(segment.label)
        n = sum(c.claim(trial, y, segment) for c in self.collectors.values())
        if n == 0:
            self._note(
                f"trial at {segment.start:.3f} s ({segment.label}) gave no complete window; it is not counted."
            )
            return
        event["used"] = True
        self._trials.append((segment.label, segment))

    def _note_open(self) -> None:
        open_ = self._parser.open_segment
        if open_ is None:
            return
        if not self._events or self._events[-1]["end"] is not None or self._events[-1]["start"] != open_[0]:
            self._events.append(
                {"label": open_[1], "start": open_[0], "end": None, "phase": None, "used": False}
            )

    def _test_spans(self) -> list[tuple[float, float]]:
        spans = [(s.start, s.end) for s in self._test_segments]
        if self._parser.open_phase == "test":
            spans.append((self._parser.open_segment[0], np.inf))
        return spans

    def _keep_from(self, newest: float) -> tuple[float, float]:
        """(start, end) bounds of the windows a trial may still claim: an open trial claims from its start on;
        otherwise a later trial starts after the last one ended, and its marker is at most PENDING_S late."""
        open_ = self._parser.open_segment
        if open_ is not None:
            return open_[0], -np.inf
        return self._last_end, newest - PENDING_S

    def _note(self, message: str) -> None:
        self._notes.append(message)
        # Labels and marker texts stay out of the log (they may say what a participant saw): only that a note exists.
        logger.info(
            "calibration %s: a marker or trial was not used (GET /calibrations/%s lists why)",
            self.id,
            self.id,
        )

    def _note_once(self, key: str, message: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            self._note(message)

    # -- views -------------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """Labelled windows per modality and class, including the open trial's so far."""
        with self._lock:
            if self._final_counts is not None:
                return self._final_counts
            open_ = self._parser.open_segment
            out = {}
            for c in self.collectors.values():
                counts = dict.fromkeys(self.class_names, 0)
                for _, y, _ in c.labelled:
                    counts[self.class_names[y]] += 1
                if (
                    open_ is not None
                    and open_[1] in counts
                    and self.state == "collecting"
                    and self._parser.open_phase != "test"
                ):
                    counts[open_[1]] += c.count_in(open_[0])
                out[c.modality] = counts
            return out

    def trials(self) -> dict[str, int]:
        """Completed, used trials per class."""
        with self._lock:
            out = dict.fromkeys(self.class_names, 0)
            for label, _ in self._trials:
                out[label] += 1
            return out

    def snapshot(self) -> dict:
        """Everything :class:`~service.schemas.CalibrationPublic` shows (taken under the lock)."""
        with self._lock:
            open_ = self._parser.open_segment
            status = None if self.marker_inlet is None else self.marker_inlet.status()
            return {
                "id": self.id,
                "participant": self.participant,
                "state": self.state,
                "model": {
                    "name": self.base.bundle.manifest.name,
                    "version": self.base.bundle.manifest.version,
                },
                "streams": list(self.collectors),
                "modalities": {sid: c.modality for sid, c in self.collectors.items()},
                "labels": self.labels,
                "markers_connected": None if status is None else status["connected"],
                "counts": self.counts(),
                "trials": self.trials(),
                "open_label": None if open_ is None else open_[1],
                "class_names": list(self.class_names),
                "lsl_now": self.clock(),
                "events": list(self._events),
                "notes": list(self._notes)
                + ([] if status is None or not status["last_error"] else [status["last_error"]]),
                "error": self.error,
                "result": self.result,
                "created": self.created,
                "recording_id": self.recording_id,
            }

    @property
    def rest_trial_open(self) -> bool:
        """REST labelling with a trial open now."""
        return self.labels == "rest" and self._parser.open_segment is not None

    def close_open_rest_trial(self) -> bool:
        """REST labelling: end the open trial now (a fit uses completed trials; the experimenter's open one
        counts); returns whether one was open."""
        with self._lock:
            if not self.rest_trial_open:
                return False
            for segment in self._parser.push(self.clock(), "trial_end"):
                self._close(segment)
            return True

    def release(self) -> None:
        """The calibration is finished (done or failed): free its windows; counts, trials and events stay."""
        with self._lock:
            self._final_counts = self.counts()
            for collector in self.collectors.values():
                collector.clear()

    def drop_data(self) -> None:
        """Cancelled: forget every window and trial (nothing was written); the timeline shows none as used."""
        with self._lock:
            for collector in self.collectors.values():
                collector.clear()
            for event in self._events:
                event["used"] = False
            self._trials.clear()

    def labelled_data(self) -> dict[str, tuple[FeatureStatistics, np.ndarray, np.ndarray, np.ndarray]]:
        """Per modality: statistics (every vector so far outside test trials), raw windows (N, T, D), class
        indices (N,), trial indices (N,)."""
        with self._lock:
            out = {}
            for c in self.collectors.values():
                c.count_vectors(np.inf, self._test_spans())
                if c.labelled:
                    trials, ys, xs = zip(*c.labelled, strict=True)
                    x = np.stack(xs)
                else:
                    trials, ys, x = (), (), np.empty((0, c.graph.seq_len, c.graph.dim))
                out[c.modality] = (c.stats, x, np.asarray(ys, np.int64), np.asarray(trials, np.int64))
            return out


__all__ = ["PENDING_S", "STATES", "Calibration", "StreamCollector"]
