"""Sample timestamps: the one dejitter rule, derived from the gap policy, for recordings and live streams.

The gap policy is the feature spec's (:func:`signals.windowing.segment_breaks`): a timestamp step
larger than ``gap_factor / sfreq``, or a step <= 0, starts a new continuous segment, and no window
spans it. Dejittering follows the same rule, so that what it smooths and what the extractor calls
a gap can never disagree:

- **Within a segment** sample ``k`` is stamped ``anchor + k / sfreq``: regular, at the nominal
  rate. After each chunk the anchor moves by ``alpha`` times the chunk's mean deviation from that
  line, ``alpha = 1 - exp(-n / (time_constant_s * sfreq))`` for a chunk of ``n`` samples, which
  follows clock drift and clock-sync corrections with a time constant of ``time_constant_s``
  seconds of signal whatever the chunk sizes. One move is at most ``min(1, gap_factor - 1) / 2``
  sample periods, so every output step inside a segment stays in ``(0, gap_factor / sfreq]``: the
  extractor sees no gap there.
- **A gap** is a raw timestamp whose step from the previous *output* timestamp is above
  ``gap_factor / sfreq`` (samples were lost: it is late by more than ``(gap_factor - 1) / sfreq``)
  or at or below ``min(0, 2 - gap_factor) / sfreq`` (the clock went back: it is early by at least
  ``max(1, gap_factor - 1)`` sample periods). That sample starts a new segment at its own raw
  timestamp, so the output steps by exactly that amount and the extractor downstream sees the
  same gap (a step above ``gap_factor / sfreq``, or one <= 0).

Jitter: timestamps stamped at arrival (USB or Bluetooth bursts, chunked pushes) deviate from the
regular line by milliseconds to tens of milliseconds, which cannot be told from lost samples at the
moment they arrive. The spec's ``jitter_s`` (default :data:`DEFAULT_JITTER_S` = 0.1 s, the live
worker's tolerance before the rule was unified) widens both limits: a step is a gap only when it is
late by more than ``max((gap_factor - 1) / sfreq, jitter_s)`` or early by more than
``max(1 / sfreq, (gap_factor - 1) / sfreq, jitter_s)``. The price is that a loss shorter than
``jitter_s`` is bridged (the windows around it span it), in training and live alike; a spec with
``jitter_s=0`` makes every step above ``gap_factor / sfreq`` a gap (2.5 ms at 200 Hz with the
default 1.5), for devices that stamp from their own sample counter.

:class:`SegmentDejitter` is the causal, chunk-by-chunk form the LSL worker runs;
:func:`dejitter` runs the very same object over a whole recorded stream, in chunks of
``chunk_s``, for the recording reader (:mod:`signals.recording`).
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_range, check_sfreq

DEFAULT_GAP_FACTOR = 1.5  # FeatureSpec.gap_factor's default: a step above 1.5 sample periods is a gap
DEFAULT_TIME_CONSTANT_S = 1.0  # seconds of signal over which the anchor follows the timestamps
DEFAULT_JITTER_S = 0.1  # FeatureSpec.jitter_s's default: deviations up to 0.1 s are jitter, not gaps


class SegmentDejitter:
    """Regular timestamps inside continuous segments; a step that is a gap stays a gap (module docstring).

    Parameters
    ----------
    sfreq : float
        Nominal sampling rate in Hz.
    gap_factor : float
        A step larger than ``gap_factor / sfreq`` (or a step <= 0) is a gap; the feature spec's
        ``gap_factor``, > 1.
    jitter_s : float
        Deviations from the regular line up to this many seconds are jitter, not gaps (module
        docstring); the feature spec's ``jitter_s``, >= 0.
    time_constant_s : float
        Seconds of signal over which the anchor follows the input timestamps (clock drift,
        clock-sync corrections), > 0.

    Attributes
    ----------
    n_segments_ : int
        Segments started so far (1 after the first sample; +1 per gap).
    """

    def __init__(
        self,
        sfreq: float,
        *,
        gap_factor: float = DEFAULT_GAP_FACTOR,
        jitter_s: float = DEFAULT_JITTER_S,
        time_constant_s: float = DEFAULT_TIME_CONSTANT_S,
    ) -> None:
        self.sfreq = check_sfreq(sfreq)
        self.gap_factor = float(check_range(gap_factor, "gap_factor", low=1, low_inclusive=False))
        self.jitter_s = float(check_range(jitter_s, "jitter_s", low=0, unit="s"))
        self.time_constant_s = float(
            check_range(time_constant_s, "time_constant_s", low=0, low_inclusive=False, unit="s")
        )
        self.period = 1.0 / self.sfreq
        # A longer step is a gap (samples lost); a step <= min_step: the clock went back.
        self.max_step = max(self.gap_factor * self.period, self.period + self.jitter_s)
        self.min_step = min(min(0.0, 2.0 - self.gap_factor) * self.period, self.period - self.jitter_s)
        self.max_move = 0.5 * min(1.0, self.gap_factor - 1.0) * self.period  # largest anchor move per chunk
        self.reset()

    def __repr__(self) -> str:
        return (
            f"<SegmentDejitter {self.sfreq:g} Hz | gaps > {1e3 * self.max_step:.3g} ms, "
            f"{self.n_segments_} segment(s)>"
        )

    def reset(self) -> None:
        """Forget the segment: the next sample anchors a new one."""
        self.anchor_: float | None = None
        self.count_ = 0
        self.last_: float | None = None  # the last output timestamp
        self.n_segments_ = 0

    def __call__(self, timestamps: np.ndarray) -> np.ndarray:
        """Regularise one chunk of timestamps, in arrival order.

        Parameters
        ----------
        timestamps : array, shape (n,)
            Raw sample times in s (any clock), continuing the previous chunk.

        Returns
        -------
        out : array of float64, shape (n,)
            Regular within segments; equal to the raw timestamp at the first sample of each
            segment.
        """
        ts = np.asarray(timestamps, dtype=np.float64)  # the live hot path: no finiteness scan
        if ts.ndim != 1:
            raise ValueError(f"timestamps must have shape (n,), got shape {ts.shape}.")
        out = np.empty_like(ts)
        start = 0
        while start < ts.shape[0]:
            fresh = self.anchor_ is None
            if fresh:  # a new segment starts at its raw timestamp
                self.anchor_, self.count_ = float(ts[start]), 0
                self.n_segments_ += 1
            part = ts[start:]
            predicted = self.anchor_ + (self.count_ + np.arange(part.shape[0])) * self.period
            previous = np.empty_like(predicted)
            previous[1:] = predicted[:-1]
            previous[0] = predicted[0] - self.period if fresh else self.last_
            steps = part - previous
            gaps = np.flatnonzero((steps > self.max_step) | (steps <= self.min_step))
            stop = int(gaps[0]) if gaps.size else part.shape[0]
            out[start : start + stop] = predicted[:stop]
            if stop:
                self.last_ = float(predicted[stop - 1])
                self.count_ += stop
                alpha = -math.expm1(-stop / (self.time_constant_s * self.sfreq))
                move = alpha * float(np.mean(part[:stop] - predicted[:stop]))
                self.anchor_ += min(self.max_move, max(-self.max_move, move))
            if gaps.size:
                self.anchor_ = None  # the deviating sample starts the next segment
            start += stop
        return out


def dejitter(
    timestamps: np.ndarray,
    sfreq: float,
    *,
    gap_factor: float = DEFAULT_GAP_FACTOR,
    jitter_s: float = DEFAULT_JITTER_S,
    chunk_s: float = 0.1,
) -> np.ndarray:
    """Regularise a whole recorded stream's timestamps with :class:`SegmentDejitter`.

    Parameters
    ----------
    timestamps : array, shape (n_times,)
        Raw sample times in s, in recording order.
    sfreq : float
        Nominal sampling rate in Hz.
    gap_factor, jitter_s : float
        The gap rule (module docstring).
    chunk_s : float
        The stream is fed in chunks of this many seconds of samples (at least one sample), as the
        live worker is fed LSL chunks.

    Returns
    -------
    out : array of float64, shape (n_times,)
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.ndim != 1:
        raise ValueError(f"timestamps must have shape (n_times,), got shape {ts.shape}.")
    if not np.all(np.isfinite(ts)):
        raise ValueError(
            "timestamps contain NaN or infinite values; a recording's sample times must be finite."
        )
    dj = SegmentDejitter(sfreq, gap_factor=gap_factor, jitter_s=jitter_s)
    check_range(chunk_s, "chunk_s", low=0, low_inclusive=False, unit="s")
    step = max(1, int(round(chunk_s * dj.sfreq)))
    if ts.shape[0] == 0:
        return ts.copy()
    return np.concatenate([dj(ts[i : i + step]) for i in range(0, ts.shape[0], step)])


__all__ = ["DEFAULT_GAP_FACTOR", "DEFAULT_JITTER_S", "SegmentDejitter", "dejitter"]
