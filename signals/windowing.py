"""Window geometry: seconds to samples, sliding windows over a recording, and continuous-segment detection."""

from __future__ import annotations

import numpy as np

from ._checks import check_array, check_range, check_sfreq, ensure_int


def seconds_to_samples(duration_s: float, sfreq: float, name: str) -> int:
    """Convert a duration to a whole number of samples.

    Raises ValueError when ``duration_s * sfreq`` is not (within 1e-6) an integer: a window of
    a fractional number of samples would silently differ between recordings.
    """
    sfreq = check_sfreq(sfreq)
    check_range(duration_s, name, low=0, low_inclusive=False, unit="s")
    n = duration_s * sfreq
    n_int = int(round(n))
    if abs(n - n_int) > 1e-6 or n_int < 1:
        raise ValueError(
            f"{name}={duration_s} s at sfreq={sfreq} Hz is {n:g} samples; it must be a whole, "
            f"positive number of samples. Use a multiple of 1/sfreq = {1 / sfreq:.6g} s."
        )
    return n_int


def sliding_windows(x, n_window: int, n_hop: int) -> np.ndarray:
    """Cut a continuous recording into windows (a read-only view, no copy).

    Parameters
    ----------
    x : array, shape (n_channels, n_times)
        One continuous recording, time last.
    n_window : int
        Window length in samples.
    n_hop : int
        Hop between window starts in samples.

    Returns
    -------
    windows : array, shape (n_windows, n_channels, n_window)
        Window ``k`` covers samples ``[k * n_hop, k * n_hop + n_window)``; a partial last
        window is dropped (as SEED's ``fix(m / WindowPoints)`` does). ``n_windows`` is 0 when
        the recording is shorter than one window.
    """
    x = check_array(x, "x", ndim=2, layout="(n_channels, n_times)", allow_nonfinite=True)
    n_window = ensure_int(n_window, "n_window")
    n_hop = ensure_int(n_hop, "n_hop")
    if n_window < 1 or n_hop < 1:
        raise ValueError(f"n_window and n_hop must be >= 1, got {n_window} and {n_hop}.")
    if x.shape[1] < n_window:
        return np.empty((0, x.shape[0], n_window))
    view = np.lib.stride_tricks.sliding_window_view(x, n_window, axis=1)[:, ::n_hop]
    return view.transpose(1, 0, 2)


def window_end_indices(n_times: int, n_window: int, n_hop: int) -> np.ndarray:
    """Sample index of the last sample of each window :func:`sliding_windows` returns."""
    if n_times < n_window:
        return np.empty(0, dtype=np.int64)
    return np.arange(n_window - 1, n_times, n_hop, dtype=np.int64)


def segment_breaks(
    timestamps: np.ndarray, sfreq: float, gap_factor: float, previous: float | None = None
) -> np.ndarray:
    """Mark samples that start a new continuous segment because of a timestamp discontinuity.

    Parameters
    ----------
    timestamps : array, shape (n_times,)
        Sample times in seconds (LSL clock or recording time).
    sfreq : float
        Nominal sampling frequency in Hz.
    gap_factor : float
        A step larger than ``gap_factor / sfreq`` is a gap. Steps that are zero or negative
        (time going backwards) also break the segment.
    previous : float | None
        Timestamp of the sample before ``timestamps[0]`` (from an earlier chunk), or None when
        there is none (then sample 0 always starts a segment).

    Returns
    -------
    breaks : array of bool, shape (n_times,)
    """
    breaks = np.empty(timestamps.shape[0], dtype=bool)
    if timestamps.shape[0] == 0:
        return breaks
    limit = gap_factor / sfreq
    steps = np.diff(timestamps)
    breaks[1:] = (steps > limit) | (steps <= 0)
    if previous is None:
        breaks[0] = True
    else:
        step0 = timestamps[0] - previous
        breaks[0] = bool(step0 > limit or step0 <= 0)
    return breaks
