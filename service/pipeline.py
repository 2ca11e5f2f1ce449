"""The per-stream online pipeline: raw chunks in, normalised model windows out, built only from a bundle manifest.

For one attached stream, :class:`OnlinePipeline` runs the modality's :mod:`signals` streaming
extractor (the very extractor training fed whole recordings through), keeps the last vectors of
the current continuous segment, and, on every new vector, cuts the window the model was trained
on: ``T`` vectors spaced ``spacing_s`` apart, ending with the new vector, z-scored with the
manifest's statistics. Nothing here comes from service settings, so training and serving cannot
drift apart.

Rules
-----
- ``step = spacing_s / hop_s`` vectors separate two entries of a window. The pipeline keeps the
  last ``(T - 1) * step + 1`` vectors of the current segment; once it holds that many, every new
  vector emits ``vectors[::step]`` of them (oldest first): exactly a training window, since
  training windows are ``T`` consecutive vectors of a sequence whose vectors are ``spacing_s``
  apart. Consecutive windows therefore overlap, one per hop (the service updates every hop).
- A new segment (a timestamp gap or a NaN/inf *sample*, see :mod:`signals.streaming`) clears the
  kept vectors: no window mixes segments, and the first window after a gap comes one extractor
  window plus ``(T - 1) * spacing_s`` after the data resumes.
- A feature vector with a NaN or inf entry (NaN HRV with too few beats, NaN pupil features,
  ``-inf`` DE of a flat channel) is never emitted. It is treated like a gap: the kept vectors are
  cleared, so the next window needs ``(T - 1) * step + 1`` finite vectors in a row. This is
  stricter than dropping only the windows that contain the bad vector (with ``step > 1`` a window
  may skip over it), on purpose: a non-finite vector means the signal around it was unusable
  (electrode off, tracker lost), and the model never saw such neighbourhoods in training. One
  warning is logged per occurrence and type: when a run of non-finite vectors starts, or when the
  kind of non-finite value (NaN, +inf, -inf) changes within a run; the run's length is logged
  (INFO) when finite vectors resume. ``n_nonfinite_`` counts every dropped vector.
- Input must already be in the spec's channel order and unit: :func:`map_channels` and
  :func:`unit_scale` give the row order and factor to apply to a stream's chunks once, at
  ingestion.

An :class:`OnlinePipeline` is not thread-safe: one acquisition worker owns it. It never imports
torch.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.bundle import ModalityGraph
from signals._checks import check_array, check_type
from signals.channels import map_channels
from signals.units import unit_scale

logger = logging.getLogger(__name__)

# At most this many feature names are quoted in a non-finite warning.
_MAX_NAMED_FEATURES = 5


@dataclass(frozen=True)
class WindowReady:
    """One model input cut from a live stream.

    Attributes
    ----------
    window : array of float32, shape (T, D)
        ``T`` feature vectors spaced ``spacing_s`` apart (oldest first), normalised with the
        manifest's mean and std; read-only.
    lsl_time : float
        Timestamp (LSL clock, s) of the last sample of the window of the last vector: the
        window end.
    segment : int
        The extractor's continuous segment (1 for the first, +1 per gap) the vectors come from.
    """

    window: np.ndarray
    lsl_time: float
    segment: int


class OnlinePipeline:
    """Streaming features → last ``T`` vectors at the training spacing → manifest normalisation.

    Parameters
    ----------
    graph : ModalityGraph
        The bundle manifest's graph of the modality; its ``feature_spec``, ``seq_len``,
        ``spacing_s`` and ``normalisation`` define everything the pipeline does.

    Attributes
    ----------
    modality : str
        The graph's modality.
    channels : tuple of str
        Channels ``push`` expects, in row order (the spec's order).
    sfreq : float
        Nominal sampling rate of the input in Hz.
    unit : str
        Unit the input must be in (e.g. ``'uV'``).
    seq_len : int
        ``T``, vectors per window.
    dim : int
        ``D``, features per vector.
    step : int
        Extractor vectors between two window entries (``spacing_s / hop_s``).
    n_windows_ : int
        Windows emitted since construction or :meth:`reset`.
    n_nonfinite_ : int
        Non-finite feature vectors dropped since construction or :meth:`reset`.

    Raises
    ------
    TypeError
        ``graph`` is not a ModalityGraph.
    ValueError
        The graph's features cannot be computed live (offline-only smoothing).
    """

    def __init__(self, graph: ModalityGraph):
        check_type(graph, ModalityGraph, "graph")
        spec = graph.feature_spec
        try:
            extractor = spec.build_extractor()
        except ValueError as err:
            raise ValueError(f"the '{graph.modality}' model cannot run on a live stream: {err}") from None
        if not graph.reproducible_online:
            logger.warning(
                "The '%s' model was trained on features the live extractor does not reproduce exactly "
                "(reproducible_online is false in its manifest); its live predictions may be degraded.",
                graph.modality,
            )
        self.graph = graph
        self.modality = graph.modality
        self.channels = tuple(spec.channels)
        self.sfreq = float(spec.sfreq)
        self.unit = spec.unit
        self.seq_len = graph.seq_len
        self.dim = graph.dim
        self.step = round(graph.spacing_s / spec.hop_s)  # a whole number: ModalityGraph checks it
        self._extractor = extractor
        self._feature_names = tuple(spec.feature_names())
        self._mean = np.asarray(graph.normalisation.mean, dtype=np.float64)
        self._std = np.asarray(graph.normalisation.std, dtype=np.float64)
        self._vectors: deque[np.ndarray] = deque(maxlen=(self.seq_len - 1) * self.step + 1)
        self.reset()

    def reset(self) -> None:
        """Forget everything: extractor state, kept vectors, counters."""
        self._extractor.reset()
        self._vectors.clear()
        self._segment: int | None = None
        self._nonfinite_key: tuple[str, ...] | None = None  # kinds of the current run of bad vectors
        self._nonfinite_run = 0
        self.n_windows_ = 0
        self.n_nonfinite_ = 0

    @property
    def samples_until_next_vector(self) -> int:
        """New samples the current segment needs before the extractor's next feature vector (>= 1)."""
        return self._extractor.samples_until_next_frame

    def push(self, data, timestamps) -> list[WindowReady]:
        """Feed a chunk; return one window per new feature vector that completes one.

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
            Oldest first; empty until ``(T - 1) * spacing_s`` plus one extractor window of
            continuous data has arrived.

        Raises
        ------
        ValueError
            ``data`` does not have one row per channel, or ``timestamps`` does not have one
            entry per sample.
        """
        if np.size(timestamps) == 0 and np.size(data) == 0:
            return []  # an empty pull is normal in LSL
        data = check_array(data, "data", ndim=2, layout="(n_channels, n_times)", allow_nonfinite=True)
        if data.shape[0] != len(self.channels):
            raise ValueError(
                f"data must have shape (n_channels={len(self.channels)}, n_times) with rows "
                f"{_preview(self.channels)} for the '{self.modality}' model, got {data.shape}. Select and "
                "order the stream's rows with map_channels (pylsl chunks are samples x channels: transpose)."
            )
        frames = self._extractor.push(data, timestamps)
        ready = []
        for vector, lsl_time, segment in zip(
            frames.features, frames.timestamps, frames.segments, strict=True
        ):
            window = self._add(vector, float(lsl_time), int(segment))
            if window is not None:
                ready.append(window)
        return ready

    def _add(self, vector: np.ndarray, lsl_time: float, segment: int) -> WindowReady | None:
        """Keep one new vector; return the window it completes, if any."""
        if segment != self._segment:
            self._vectors.clear()  # a new segment: never mix vectors across a gap
            self._segment = segment
        finite = np.isfinite(vector)
        if not finite.all():
            self._vectors.clear()
            self._note_nonfinite(vector, finite, lsl_time)
            return None
        if self._nonfinite_run:
            logger.info(
                "'%s' features are finite again at t=%.3f s after %d non-finite vector(s).",
                self.modality,
                lsl_time,
                self._nonfinite_run,
            )
            self._nonfinite_key, self._nonfinite_run = None, 0
        self._vectors.append((vector - self._mean) / self._std)
        if len(self._vectors) < self._vectors.maxlen:
            return None
        window = np.stack(self._vectors)[:: self.step].astype(np.float32)  # (T, D), oldest first
        window.setflags(write=False)
        self.n_windows_ += 1
        return WindowReady(window=window, lsl_time=lsl_time, segment=segment)

    def _note_nonfinite(self, vector: np.ndarray, finite: np.ndarray, lsl_time: float) -> None:
        """Count a dropped vector; warn once per run and kind of non-finite values."""
        self.n_nonfinite_ += 1
        self._nonfinite_run += 1
        bad = np.flatnonzero(~finite)
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
            return  # same occurrence, same kind: already reported
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
            self._vectors.maxlen,
        )


def _preview(names: Sequence[str], n: int = 4) -> str:
    """``[a, b, c, d, …]`` for long name lists."""
    shown = ", ".join(names[:n])
    return f"[{shown}{', …' if len(names) > n else ''}]"


__all__ = ["OnlinePipeline", "WindowReady", "map_channels", "unit_scale"]
