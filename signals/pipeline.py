"""FeaturePipeline: from raw samples to the normalised ``(T, D)`` windows a model sees, offline and live alike.

A pipeline is a :class:`~signals.spec.FeatureSpec` (the feature vectors), ``T`` (vectors per model
input), the spacing of those vectors (``spacing_s``, a whole multiple of the spec's hop), a
:class:`~signals.normalisation.Normalisation` and one gap/NaN policy. It has two forms that share
every decision below:

- ``windows(data, timestamps)``: a whole recording (or trial) at once, for training, evaluation and
  ``POST /predict``;
- ``push(chunk, timestamps)``: live chunks from an LSL stream; it keeps a state (the extractor's ring
  buffer and the last vectors) and returns the windows each chunk completes.

Pushing a recording chunk by chunk gives exactly the windows ``windows`` gives for it (a test).
Training code that already holds feature vectors (released features, paired trials) cuts them
with :func:`window_ends` and :func:`cut_windows`, the functions both forms use.

Rules
-----
- ``step = spacing_s / hop_s`` extractor vectors separate two entries of a window; a window is the
  ``span = (T - 1) * step + 1`` latest vectors taken every ``step`` (oldest first), ending with the
  newest. With ``step > 1`` consecutive windows overlap, one per hop (the service updates every hop).
- A window never spans a segment edge: a timestamp gap or a NaN/inf *sample* (see
  :mod:`signals.streaming`) starts a new segment, and vectors of two segments never share a window.
- A window never spans a non-finite *vector* (NaN HRV with too few beats, NaN pupil features,
  ``-inf`` DE of a flat channel), even one it would skip over with ``step > 1``: a non-finite vector
  means the signal around it was unusable (electrode off, tracker lost), and the model never saw
  such neighbourhoods. So after one, the next window needs ``span`` finite vectors in a row.
  Live, one warning is logged per run of non-finite vectors and kind of value (NaN, +inf, -inf), and
  the run's length (INFO) when finite vectors resume; ``n_nonfinite_`` counts them.
- Vectors are normalised once, with the pipeline's :class:`Normalisation`, in float64, then cast to
  float32 (the model's input type).
- Timestamps follow the spec's gap rule (:mod:`signals.timing`): :meth:`windows` regularises the
  timestamps it is given, live streams arrive regularised by the LSL worker's
  :class:`~signals.timing.SegmentDejitter` with the same rule.
- Input must already be in the spec's channel order and unit (:func:`signals.channels.map_channels`
  and :func:`signals.units.channel_factors` give the rows and the factors, once per stream).

Live windows sit on the stream's hop grid (counted from the start of the stream's current segment);
``windows`` of a trial sits on the trial's grid (counted from its first sample). They coincide when
the trial starts on the stream's grid, e.g. at a whole second with a 1-s hop (the parity tests use
that); otherwise the same windows come out shifted by less than one hop.

A pipeline is not thread-safe: one acquisition worker owns it. numpy only: no torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ._checks import check_array, ensure_int
from .normalisation import Normalisation
from .streaming import FeatureFrames
from .timing import dejitter

logger = logging.getLogger(__name__)

# At most this many feature names are quoted in a non-finite warning.
_MAX_NAMED_FEATURES = 5


@dataclass(frozen=True)
class WindowReady:
    """One model input cut from a live stream.

    Attributes
    ----------
    window : array of float32, shape (T, D)
        ``T`` normalised feature vectors spaced ``spacing_s`` apart (oldest first); read-only.
    lsl_time : float
        Timestamp (s, the input's clock) of the last sample of the last vector's feature window:
        the window end.
    segment : int
        The continuous segment (1 for the first, +1 per gap) the vectors come from.
    features : array of float64, shape (T, D)
        The same vectors before normalisation (read-only): what live calibration keeps, to normalise
        them later with the participant's own statistics.
    """

    window: np.ndarray
    lsl_time: float
    segment: int
    features: np.ndarray


@dataclass(frozen=True, eq=False)
class FeatureWindows:
    """Windows cut from a sequence of feature vectors.

    Attributes
    ----------
    x : array of float32, shape (N, T, D)
        Normalised windows, oldest vector first.
    timestamps : array of float64, shape (N,)
        End of each window (the timestamp of its last vector).
    segments : array of int64, shape (N,)
        Segment of each window.
    ends : array of int64, shape (N,)
        Index of each window's last vector in the vector sequence it was cut from.
    """

    x: np.ndarray
    timestamps: np.ndarray
    segments: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return int(self.ends.shape[0])


def window_ends(
    segments: np.ndarray, finite: np.ndarray, seq_len: int, step: int = 1, *, stride: int = 1
) -> np.ndarray:
    """Index of the last vector of every valid window of a vector sequence.

    A window ending at vector ``i`` covers vectors ``i - span + 1 .. i`` (``span = (T - 1) * step +
    1``) and is valid when they are all finite and all in one segment (module rules).

    Parameters
    ----------
    segments : array of int, shape (W,)
        Segment of each vector (a change between neighbours is an edge).
    finite : array of bool, shape (W,)
        Whether each vector is entirely finite.
    seq_len : int
        T, vectors per window.
    step : int
        Vectors between two window entries.
    stride : int
        Keep every ``stride``-th window of each run of valid windows, counted from the run's first
        window (1 = all; training's ``stride``).

    Returns
    -------
    ends : array of int64, shape (N,)
        Increasing.
    """
    segments = np.asarray(segments)
    finite = np.asarray(finite, dtype=bool)
    seq_len, step, stride = (
        ensure_int(v, name) for v, name in ((seq_len, "seq_len"), (step, "step"), (stride, "stride"))
    )
    if min(seq_len, step, stride) < 1:
        raise ValueError(f"seq_len, step and stride must be >= 1, got {seq_len}, {step} and {stride}.")
    if segments.ndim != 1 or finite.shape != segments.shape:
        raise ValueError(
            f"segments and finite must both have shape (W,), got {segments.shape} and {finite.shape}."
        )
    n = segments.shape[0]
    span = (seq_len - 1) * step + 1
    if n < span:
        return np.empty(0, dtype=np.int64)
    index = np.arange(n, dtype=np.int64)
    resets = np.ones(n, dtype=bool)  # a run of usable vectors (re)starts here
    resets[1:] = (segments[1:] != segments[:-1]) | ~finite[:-1]
    run_start = np.maximum.accumulate(np.where(resets, index, 0))
    offset = index - run_start - (span - 1)  # 0 for the first window of a run
    valid = finite & (offset >= 0)
    if stride != 1:
        valid &= offset % stride == 0
    return index[valid]


def cut_windows(z: np.ndarray, ends: np.ndarray, seq_len: int, step: int = 1) -> np.ndarray:
    """Gather windows ``z[end - (T - 1) * step :: step]`` up to each ``end``: (N, T, D) from (W, D)."""
    offsets = np.arange(-(seq_len - 1) * step, 1, step, dtype=np.int64)  # (T,)
    return z[np.asarray(ends, dtype=np.int64)[:, None] + offsets]


class FeaturePipeline:
    """Raw samples → feature vectors → ``T`` vectors at the training spacing → normalised window.

    Parameters
    ----------
    spec : FeatureSpec
        The feature vectors (``signals.spec``).
    seq_len : int
        T, vectors per window.
    spacing_s : float | None
        Seconds between the T vectors, a whole multiple of ``spec.hop_s``; None means ``spec.hop_s``.
    normalisation : Normalisation | None
        The z-scoring of the vectors; None leaves them as they are (to compute statistics first).
    live : bool
        Build the live extractor now, so that a spec that cannot run live (``'lds'`` smoothing) is
        refused at construction rather than at the first :meth:`push`.

    Attributes
    ----------
    modality, channels, sfreq, unit
        From the spec: what :meth:`push` and :meth:`windows` expect.
    seq_len : int
        T.
    dim : int
        D, features per vector.
    step : int
        Extractor vectors between two window entries (``spacing_s / hop_s``).
    span : int
        Vectors one window covers, ``(T - 1) * step + 1``.
    n_windows_ : int
        Windows :meth:`push` emitted since construction or :meth:`reset`.
    n_nonfinite_ : int
        Non-finite vectors :meth:`push` dropped since construction or :meth:`reset`.
    n_incomplete_segments_ : int
        Live: gap-free stretches that ended (a gap followed) before a window completed in them.
        Many of them mean a stream that produces nothing: too many gaps, e.g. timestamps that jitter
        more than the spec's ``jitter_s``.
    last_vectors_ : FeatureFrames
        Live: the raw (not normalised) extractor vectors the last :meth:`push` produced, finite or
        not: what live calibration accumulates a participant's statistics from.
    """

    def __init__(
        self,
        spec,
        *,
        seq_len: int,
        spacing_s: float | None = None,
        normalisation: Normalisation | None = None,
        live: bool = False,
    ):
        self.spec = spec
        self.modality = spec.modality
        self.channels = tuple(spec.channels)
        self.sfreq = float(spec.sfreq)
        self.unit = spec.unit
        self.seq_len = ensure_int(seq_len, "seq_len")
        if self.seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}.")
        self.dim = spec.n_features
        self.spacing_s = float(spec.hop_s if spacing_s is None else spacing_s)
        steps = self.spacing_s / spec.hop_s
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            raise ValueError(
                f"spacing_s={self.spacing_s} must be a whole multiple of the feature hop ({spec.hop_s} s) "
                "so windows can pick vectors spaced as in training."
            )
        self.step = round(steps)
        self.span = (self.seq_len - 1) * self.step + 1
        self.set_normalisation(Normalisation.identity(self.dim) if normalisation is None else normalisation)
        self._feature_names = tuple(spec.feature_names())
        self._extractor = None
        if live:
            self._live_extractor()
        self.reset()

    # -- the shared steps ----------------------------------------------------------------------------

    @property
    def samples_needed(self) -> int:
        """Samples of one gap-free stretch the first window needs: one feature window plus the spacing."""
        return self.spec.n_window + (self.span - 1) * self.spec.n_hop

    @property
    def seconds_needed(self) -> float:
        """:attr:`samples_needed` in seconds at the nominal rate."""
        return self.samples_needed / self.sfreq

    def features(self, data, timestamps=None) -> FeatureFrames:
        """Feature vectors of a whole recording (``spec.compute``; offline smoothing allowed)."""
        return self.spec.compute(data, timestamps)

    def normalise(self, vectors) -> np.ndarray:
        """Normalise feature vectors ``(..., D)`` → float32 (the pipeline's statistics)."""
        return self.normalisation.apply(vectors)

    def cut(self, frames: FeatureFrames, *, stride: int = 1) -> FeatureWindows:
        """Every valid window of a sequence of extractor vectors (spaced ``hop_s`` apart), normalised."""
        finite = np.isfinite(frames.features).all(axis=1)
        ends = window_ends(frames.segments, finite, self.seq_len, self.step, stride=stride)
        z = self.normalise(frames.features) if len(ends) else np.empty((0, self.dim), np.float32)
        return FeatureWindows(
            x=cut_windows(z, ends, self.seq_len, self.step),
            timestamps=np.asarray(frames.timestamps, dtype=np.float64)[ends],
            segments=np.asarray(frames.segments, dtype=np.int64)[ends],
            ends=ends,
        )

    def windows(self, data, timestamps=None, *, stride: int = 1) -> FeatureWindows:
        """Every window of a whole recording (training, evaluation, ``POST /predict``).

        Parameters
        ----------
        data : array, shape (n_channels, n_times)
            The recording in :attr:`channels` order and :attr:`unit`, time last.
        timestamps : array, shape (n_times,) | None
            Sample times in seconds, increasing; None means one continuous segment at the nominal
            rate. They are regularised with the spec's gap rule (:func:`signals.timing.dejitter`,
            ``gap_factor`` and ``jitter_s``), as the live worker regularises a stream's.
        stride : int
            Keep every ``stride``-th window of each run (1 = all, as live).

        Returns
        -------
        FeatureWindows
        """
        if timestamps is not None:
            timestamps = dejitter(
                timestamps, self.sfreq, gap_factor=self.spec.gap_factor, jitter_s=self.spec.jitter_s
            )
        return self.cut(self.features(data, timestamps), stride=stride)

    # -- live --------------------------------------------------------------------------------------

    def _live_extractor(self):
        if self._extractor is None:
            try:
                self._extractor = self.spec.build_extractor()
            except ValueError as err:
                raise ValueError(f"the '{self.modality}' model cannot run on a live stream: {err}") from None
        return self._extractor

    def set_normalisation(self, normalisation: Normalisation) -> None:
        """Normalise with other statistics from the next window on, keeping the live state (also the
        constructor's check of its ``normalisation``).

        The kept vectors are raw (windows are normalised when cut), so the window completed by the
        next vector already uses ``normalisation``: a model swap with the same spec needs no refill.
        """
        if not isinstance(normalisation, Normalisation):
            raise TypeError(
                f"normalisation must be a Normalisation, got {type(normalisation).__name__} instead."
            )
        if normalisation.dim != self.dim:
            raise ValueError(
                f"the normalisation has {normalisation.dim} values but the '{self.modality}' spec gives "
                f"{self.dim} features per vector."
            )
        self.normalisation = normalisation

    def reset(self) -> None:
        """Forget the live state: extractor, kept vectors, counters."""
        if self._extractor is not None:
            self._extractor.reset()
        self._tail = FeatureFrames.concatenate([], self.dim)
        self.last_vectors_ = self._tail
        self._nonfinite_key: tuple[str, ...] | None = None  # kinds of the current run of bad vectors
        self._nonfinite_run = 0
        self.n_windows_ = 0
        self.n_nonfinite_ = 0
        self.n_incomplete_segments_ = 0
        self._segments_seen = 0  # the extractor's segment count at the end of the last push
        self._window_segment = 0  # the segment of the last window emitted (0: none)

    @property
    def n_gaps_(self) -> int:
        """Live: gaps (timestamp gaps, NaN/inf sample bursts) since construction or :meth:`reset`."""
        return max(0, self._live_extractor().n_segments_ - 1)

    @property
    def samples_until_next_vector(self) -> int:
        """New samples the current segment needs before the extractor's next feature vector (>= 1)."""
        return self._live_extractor().samples_until_next_frame

    def push(self, data, timestamps) -> list[WindowReady]:
        """Feed a live chunk; return one window per new vector that completes one.

        Parameters
        ----------
        data : array, shape (n_channels, n_times)
            New samples in :attr:`channels` order and in :attr:`unit`, time last (pylsl's
            ``pull_chunk`` gives samples × channels: transpose it). NaN/inf samples are gaps for
            most specs (eye specs keep them: NaN gaze marks blinks).
        timestamps : array, shape (n_times,)
            Sample times in seconds (LSL clock), increasing; a step above the spec's
            ``gap_factor / sfreq`` is a gap.

        Returns
        -------
        windows : list of WindowReady
            Oldest first; empty until :attr:`samples_needed` samples of gap-free data arrived.
        """
        extractor = self._live_extractor()
        if np.size(timestamps) == 0 and np.size(data) == 0:
            return []  # an empty pull is normal in LSL
        data = check_array(data, "data", ndim=2, layout="(n_channels, n_times)", allow_nonfinite=True)
        if data.shape[0] != len(self.channels):
            shown = ", ".join(self.channels[:4]) + (", …" if len(self.channels) > 4 else "")
            raise ValueError(
                f"data must have shape (n_channels={len(self.channels)}, n_times) with rows [{shown}] for "
                f"the '{self.modality}' model, got {data.shape}. Select and order the stream's rows with "
                "map_channels (pylsl chunks are samples x channels: transpose)."
            )
        new = extractor.push(data, timestamps)
        self.last_vectors_ = new
        if not len(new):
            self._count_incomplete(())
            return []
        finite = np.isfinite(new.features).all(axis=1)
        if self._nonfinite_run or not finite.all():
            self._report_nonfinite(new, finite)
        # The kept tail (the last span - 1 vectors) plus the new ones: windows ending at a new vector.
        frames = FeatureFrames.concatenate([self._tail, new], self.dim)
        n_kept = len(self._tail)
        cut = self.cut(frames)
        fresh = cut.ends >= n_kept
        self._tail = _last(frames, self.span - 1)
        raw = cut_windows(frames.features, cut.ends[fresh], self.seq_len, self.step)
        ready = []
        for window, features, lsl_time, segment in zip(
            cut.x[fresh], raw, cut.timestamps[fresh], cut.segments[fresh], strict=True
        ):
            window.setflags(write=False)
            features.setflags(write=False)
            ready.append(
                WindowReady(window=window, lsl_time=float(lsl_time), segment=int(segment), features=features)
            )
        self.n_windows_ += len(ready)
        self._count_incomplete(ready)
        return ready

    def _count_incomplete(self, ready: list[WindowReady]) -> None:
        """Count the segments that ended (a gap followed) before any window completed in them."""
        current = self._extractor.n_segments_
        with_windows = {w.segment for w in ready} | {self._window_segment}
        for segment in range(max(self._segments_seen, 1), current):  # the segments that ended
            if segment not in with_windows:
                self.n_incomplete_segments_ += 1
        if ready:
            self._window_segment = ready[-1].segment
        self._segments_seen = current

    def _report_nonfinite(self, frames: FeatureFrames, finite: np.ndarray) -> None:
        """Count dropped vectors; warn once per run and kind of non-finite values, note when a run ends."""
        for vector, lsl_time, ok in zip(frames.features, frames.timestamps, finite, strict=True):
            if ok:
                if self._nonfinite_run:
                    logger.info(
                        "'%s' features are finite again at t=%.3f s after %d non-finite vector(s).",
                        self.modality,
                        lsl_time,
                        self._nonfinite_run,
                    )
                    self._nonfinite_key, self._nonfinite_run = None, 0
                continue
            self.n_nonfinite_ += 1
            self._nonfinite_run += 1
            bad = np.flatnonzero(~np.isfinite(vector))
            kinds = tuple(
                name
                for name, hit in (
                    ("NaN", np.isnan(vector[bad]).any()),
                    ("+inf", np.isposinf(vector[bad]).any()),
                    ("-inf", np.isneginf(vector[bad]).any()),
                )
                if hit
            )
            if kinds == self._nonfinite_key:
                continue  # same occurrence, same kind: already reported
            self._nonfinite_key = kinds
            names = [self._feature_names[i] for i in bad[:_MAX_NAMED_FEATURES]]
            more = f" and {bad.size - len(names)} more" if bad.size > len(names) else ""
            logger.warning(
                "'%s' feature vector at t=%.3f s has %s in %d feature(s) (%s%s); no window is emitted until "
                "%d finite vectors follow in a row. Check the signal (flat or disconnected channel, lost "
                "tracking, too few heart beats).",
                self.modality,
                lsl_time,
                "/".join(kinds),
                bad.size,
                ", ".join(names),
                more,
                self.span,
            )


def _last(frames: FeatureFrames, n: int) -> FeatureFrames:
    """The last ``n`` frames (copies, so the tail never pins a large chunk's arrays)."""
    start = max(len(frames) - n, 0) if n > 0 else len(frames)
    return FeatureFrames(
        frames.features[start:].copy(), frames.timestamps[start:].copy(), frames.segments[start:].copy()
    )


__all__ = ["FeaturePipeline", "FeatureWindows", "WindowReady", "cut_windows", "window_ends"]
