"""The stateful sliding-window extractor: chunks of samples with timestamps in, one feature vector per hop out.

This is the only place where windows are cut from a signal, for training and for serving alike:
``FeatureSpec.compute`` feeds a whole recording through a fresh extractor as one chunk, the
live service feeds LSL chunks as they arrive. Both therefore see the same windows, the same
feature function and the same smoothing state.

Rules
-----
- Within a continuous *segment*, window ``k`` covers samples ``[k * hop, k * hop + window)``
  counted from the segment's first sample; a vector is emitted when the window's last sample
  arrives, stamped with that sample's timestamp. Nothing is emitted from an incomplete window.
- A timestamp step larger than ``gap_factor / sfreq`` (or a step <= 0) ends the segment: the
  buffer and the smoother restart, and the next vector comes one full window after the gap.
  Windows never stitch data across a gap.
- With ``nonfinite='gap'`` a sample holding NaN or inf in any channel is dropped and ends the
  segment too (a NaN burst is a gap). ``nonfinite='keep'`` passes such samples to the feature
  function (eye trackers mark blinks that way).
- Cost per chunk is proportional to the chunk plus the windows it completes: samples go into a
  :class:`~signals.buffer.RingBuffer`; the previous ``window - 1`` samples are read back only
  when a window completes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._checks import check_array, check_option, check_range, check_sfreq, ensure_int
from .buffer import RingBuffer
from .timing import DEFAULT_GAP_FACTOR
from .windowing import segment_breaks

# Bound on windows computed in one call, so a long recording never materialises all its windows at once.
_MAX_WINDOWS_PER_BATCH = 256


@dataclass(frozen=True)
class FeatureFrames:
    """Feature vectors with the timestamp of the last sample of their window.

    Attributes
    ----------
    features : array, shape (n_frames, n_features)
    timestamps : array, shape (n_frames,)
        Seconds, on the clock of the input timestamps.
    segments : array of int, shape (n_frames,)
        Number of the continuous segment each frame comes from (1 for the first; it grows by
        one at every gap), so frames of different segments are never treated as neighbours.
    """

    features: np.ndarray
    timestamps: np.ndarray
    segments: np.ndarray

    def __len__(self) -> int:
        return self.features.shape[0]

    @staticmethod
    def concatenate(parts: list[FeatureFrames], n_features: int) -> FeatureFrames:
        """Join frames in order (an empty list gives zero frames of ``n_features``)."""
        if not parts:
            return FeatureFrames(np.empty((0, n_features)), np.empty(0), np.empty(0, dtype=np.int64))
        return FeatureFrames(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.timestamps for p in parts]),
            np.concatenate([p.segments for p in parts]),
        )


class StreamingExtractor:
    """Sliding-window feature extraction over a live stream.

    Parameters
    ----------
    transform : callable
        Feature function ``windows (n_windows, n_channels, n_window) -> (n_windows, n_features)``.
    n_channels : int
        Channels per sample.
    n_features : int
        Length of the vectors ``transform`` returns.
    sfreq : float
        Nominal sampling frequency in Hz.
    n_window, n_hop : int
        Window length and hop in samples.
    smoother : object | None
        Causal smoother with ``filter(block)`` and ``reset()`` (e.g.
        :class:`~signals.smoothing.KalmanFilter`), applied to the vectors in order.
    gap_factor : float
        Timestamp steps above ``gap_factor / sfreq`` are gaps.
    nonfinite : 'gap' | 'keep'
        What a NaN/inf sample means (see the module docstring).

    Attributes
    ----------
    n_segments_ : int
        Continuous segments started so far (1 after the first sample, +1 per gap).
    segment_samples_ : int
        Samples received in the current segment.
    last_timestamp_ : float | None
        Timestamp of the last sample received.
    """

    def __init__(
        self,
        transform: Callable[[np.ndarray], np.ndarray],
        *,
        n_channels: int,
        n_features: int,
        sfreq: float,
        n_window: int,
        n_hop: int,
        smoother=None,
        gap_factor: float = DEFAULT_GAP_FACTOR,
        nonfinite: str = "gap",
    ):
        self.transform = transform
        self.n_channels = ensure_int(n_channels, "n_channels")
        self.n_features = ensure_int(n_features, "n_features")
        self.sfreq = check_sfreq(sfreq)
        self.n_window = ensure_int(n_window, "n_window")
        self.n_hop = ensure_int(n_hop, "n_hop")
        if min(self.n_channels, self.n_features, self.n_window, self.n_hop) < 1:
            raise ValueError("n_channels, n_features, n_window and n_hop must all be >= 1.")
        self.smoother = smoother
        self.gap_factor = check_range(gap_factor, "gap_factor", low=1, low_inclusive=False)
        self.nonfinite = check_option("nonfinite", nonfinite, ("gap", "keep"))
        self.reset()

    def reset(self) -> None:
        """Return to the initial state: no samples, no segment, smoother cleared."""
        self.buffer_ = RingBuffer(self.n_channels, self.n_window)
        self._no_frames = FeatureFrames.concatenate([], self.n_features)  # shared: frames are frozen
        self.n_segments_ = 0
        self.segment_samples_ = 0
        self.last_timestamp_ = None
        self._fresh = True
        if self.smoother is not None:
            self.smoother.reset()

    @property
    def samples_until_next_frame(self) -> int:
        """Samples still needed in the current segment before the next vector is emitted."""
        if self._fresh:  # the next valid sample starts a new segment (at start, after a NaN/inf run)
            return self.n_window
        n = self.segment_samples_
        if n < self.n_window:
            return self.n_window - n
        return (-(n - self.n_window)) % self.n_hop or self.n_hop

    def push(self, data, timestamps) -> FeatureFrames:
        """Feed a chunk and return the vectors of every window it completes.

        Parameters
        ----------
        data : array, shape (n_channels, n_times)
            New samples, time last. (LSL's ``pull_chunk`` gives ``(n_times, n_channels)``:
            transpose it.)
        timestamps : array, shape (n_times,)
            Time of each sample in seconds, increasing.

        Returns
        -------
        frames : FeatureFrames
            Zero or more vectors, oldest first.
        """
        if np.size(timestamps) == 0 and np.shape(data) in ((self.n_channels, 0), (0,)):
            return FeatureFrames.concatenate([], self.n_features)  # an empty pull is normal in LSL
        data = check_array(data, "data", ndim=2, layout="(n_channels, n_times)", allow_nonfinite=True)
        if data.shape[0] != self.n_channels:
            raise ValueError(
                f"data must have shape (n_channels={self.n_channels}, n_times), got {data.shape}. "
                "If it came from pylsl's pull_chunk, transpose it (samples x channels there)."
            )
        timestamps = check_array(timestamps, "timestamps", ndim=1, layout="(n_times,)")
        if timestamps.shape[0] != data.shape[1]:
            raise ValueError(
                f"timestamps has {timestamps.shape[0]} entries but data has {data.shape[1]} samples; "
                "give one timestamp per sample."
            )
        breaks = segment_breaks(timestamps, self.sfreq, self.gap_factor, self.last_timestamp_)
        self.last_timestamp_ = float(timestamps[-1])
        if self.nonfinite == "gap":
            valid = np.isfinite(data).all(axis=0)
        else:
            valid = np.ones(data.shape[1], dtype=bool)
        if not (self._fresh or breaks.any()) and valid.all():
            # The live case: the whole chunk extends the current segment, so skip the run bookkeeping.
            return self._extend(data, timestamps)
        # Runs: maximal stretches of valid samples with no break inside.
        is_start = valid.copy()
        is_start[1:] &= breaks[1:] | ~valid[:-1]
        is_end = valid.copy()
        is_end[:-1] &= breaks[1:] | ~valid[1:]
        parts = []
        for a, b in zip(np.flatnonzero(is_start), np.flatnonzero(is_end) + 1, strict=True):
            if a > 0 or breaks[0] or self._fresh:
                self._start_segment()
            parts.append(self._extend(data[:, a:b], timestamps[a:b]))
        if not valid[-1]:
            self._fresh = True  # the next valid sample starts a new segment
        return FeatureFrames.concatenate([p for p in parts if len(p)], self.n_features)

    def _start_segment(self) -> None:
        self.buffer_.clear()
        self.segment_samples_ = 0
        self.n_segments_ += 1
        self._fresh = False
        if self.smoother is not None:
            self.smoother.reset()

    def _extend(self, x: np.ndarray, t: np.ndarray) -> FeatureFrames:
        """Append continuous samples to the current segment; compute the windows they complete."""
        win, hop = self.n_window, self.n_hop
        n0 = self.segment_samples_
        n1 = n0 + x.shape[1]
        # Windows end at k * hop + win - 1 (segment sample index); keep those inside [n0, n1).
        k_first = max(0, -(-(n0 - win + 1) // hop))
        k_last = (n1 - win) // hop
        frames = None
        if k_last >= k_first:
            tail = min(n0, win - 1)
            seg = np.concatenate([self.buffer_.latest(tail), x], axis=1)
            ends = np.arange(k_first, k_last + 1) * hop + win - 1  # segment sample index
            parts = []
            for i in range(0, ends.shape[0], _MAX_WINDOWS_PER_BATCH):
                batch = ends[i : i + _MAX_WINDOWS_PER_BATCH]
                starts_in_seg = batch - win + 1 - (n0 - tail)
                windows = np.lib.stride_tricks.sliding_window_view(seg, win, axis=1)[:, starts_in_seg]
                feats = np.asarray(self.transform(windows.transpose(1, 0, 2)), dtype=float)
                if self.smoother is not None:
                    feats = self.smoother.filter(feats)
                segment = np.full(batch.shape[0], self.n_segments_, dtype=np.int64)
                parts.append(FeatureFrames(feats, t[batch - n0], segment))
            frames = FeatureFrames.concatenate(parts, self.n_features)
        self.buffer_._append(x)
        self.segment_samples_ = n1
        return frames if frames is not None else self._no_frames
