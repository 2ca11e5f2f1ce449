"""Eye-movement events and SEED's 33 eye features from a raw gaze stream (docs/design/features.md §2, §4.3).

Raw gaze is an array of shape ``(5, n_times)``, time last, rows :data:`EYE_CHANNELS`: gaze x and
y (degrees of visual angle, or 0..1 screen fractions with ``gaze_unit='norm'``), left and right
pupil diameter (mm) and validity (``> 0.5`` = valid). A sample is invalid when its validity is
not, or when any of its gaze or pupil values is NaN or infinite.

Event detection follows the Tobii I-VT filter (Olsen 2012): gap fill-in, blink/track-loss
classification, moving-median noise reduction, a centred velocity, the velocity threshold,
merging of adjacent fixations and discarding of short ones. Everything is vectorised with
run-length logic on boolean masks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._checks import check_array, check_n_samples, check_sfreq, check_type
from .bands import PUPIL_BANDS, Band, as_bands
from .de import differential_entropy

EYE_CHANNELS: tuple[str, ...] = ("gaze_x", "gaze_y", "pupil_left", "pupil_right", "validity")
MIN_WINDOW_S = 10.0  # pupil bands are 0.2 Hz wide: shorter buffers cannot resolve them (§2.2)
_EPS = 1e-9  # tolerance when comparing durations in seconds


class EyeParams(BaseModel):
    """Parameters of gaze preprocessing, I-VT event detection and the eye features.

    Defaults are the classic Tobii I-VT values (docs/design/features.md §4.1) and SEED's pupil bands.

    Attributes
    ----------
    gaze_unit : 'deg' | 'norm'
        Unit of the gaze rows. ``'norm'`` is 0..1 screen fractions (0.5 = screen centre,
        positive right/down), converted per axis to degrees with the screen geometry below as
        ``degrees(arctan((x - 0.5) * size_cm / distance_cm))``.
    screen_width_cm, screen_height_cm, distance_cm : float
        Screen size and eye-to-screen distance in cm (used only with ``'norm'``).
    gap_fill_max_s : float
        Invalid runs up to this long (s) are gaps and are linearly interpolated.
    blink_max_s : float
        Invalid runs longer than ``gap_fill_max_s`` and up to this long (s) are blinks; longer
        runs are track loss and are excluded from all event statistics.
    median_filter_samples : int
        Length (odd, samples) of the moving median applied to each gaze axis; 1 disables it.
    velocity_window_s : float
        Span (s) of the centred velocity, see :func:`detect_events`.
    velocity_threshold_deg_s : float
        I-VT threshold: slower samples are fixation samples, the others saccade samples.
    merge_max_gap_s, merge_max_angle_deg : float
        Adjacent fixations at most this far apart in time (s) and in centroid (deg) are merged.
    min_fixation_s : float
        Fixations shorter than this (s, after merging) are discarded.
    stat_window_s : float
        Pupil mean and std are taken over the last ``stat_window_s`` of each window.
    pupil_bands : tuple of Band
        Pupil-diameter bands for the DE features (default SEED's 0-0.2, 0.2-0.4, 0.4-0.6,
        0.6-1 Hz). A band-set name, ``(name, low, high)`` tuples or dicts are accepted.
    pupil_de_formula : 'gaussian' | 'bcmi'
        DE formula of :func:`signals.de.differential_entropy`. ``'bcmi'`` cannot handle a band
        starting at 0 Hz (its bin rule would read FFT bin -1): it needs ``pupil_bands`` whose
        lower edges are all above 0 Hz (by at least one FFT bin, ``sfreq / n_times``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gaze_unit: Literal["deg", "norm"] = Field("deg", description="'deg' or 'norm' (0..1 screen).")
    screen_width_cm: float = Field(53.0, gt=0, description="Screen width in cm ('norm' only).")
    screen_height_cm: float = Field(30.0, gt=0, description="Screen height in cm ('norm' only).")
    distance_cm: float = Field(60.0, gt=0, description="Eye-to-screen distance in cm ('norm' only).")
    gap_fill_max_s: float = Field(0.075, ge=0, description="Longest interpolated gap in s.")
    blink_max_s: float = Field(0.5, gt=0, description="Longest blink in s; longer is track loss.")
    median_filter_samples: int = Field(3, ge=1, description="Moving-median length (odd) in samples.")
    velocity_window_s: float = Field(0.02, gt=0, description="Centred velocity span in s.")
    velocity_threshold_deg_s: float = Field(30.0, gt=0, description="I-VT threshold in deg/s.")
    merge_max_gap_s: float = Field(0.075, ge=0, description="Largest gap (s) between merged fixations.")
    merge_max_angle_deg: float = Field(0.5, ge=0, description="Largest centroid distance (deg) to merge.")
    min_fixation_s: float = Field(0.06, ge=0, description="Shortest kept fixation in s.")
    stat_window_s: float = Field(4.0, gt=0, description="Trailing span (s) of pupil mean/std.")
    pupil_bands: tuple[Band, ...] = Field(PUPIL_BANDS, min_length=1, description="Pupil DE bands.")
    pupil_de_formula: Literal["gaussian", "bcmi"] = Field("gaussian", description="Pupil DE formula.")

    @field_validator("pupil_bands", mode="before")
    @classmethod
    def _as_bands(cls, value):
        return as_bands(value) if isinstance(value, (str, list, tuple)) else value

    @model_validator(mode="after")
    def _consistent(self) -> EyeParams:
        if self.median_filter_samples % 2 == 0:
            raise ValueError(
                f"median_filter_samples must be odd (centred median), got {self.median_filter_samples}."
            )
        if self.blink_max_s <= self.gap_fill_max_s:
            raise ValueError(
                f"blink_max_s ({self.blink_max_s} s) must be > gap_fill_max_s ({self.gap_fill_max_s} s); "
                "invalid runs between the two are blinks."
            )
        if self.pupil_de_formula == "bcmi" and any(b.low == 0 for b in self.pupil_bands):
            zero = [b.name for b in self.pupil_bands if b.low == 0]
            raise ValueError(
                f"pupil_de_formula='bcmi' cannot handle bands starting at 0 Hz ({zero}): its bin rule "
                "reads FFT bin -1. Use pupil_de_formula='gaussian' or bands with low > 0 Hz."
            )
        return self


@dataclass(frozen=True)
class EyeEvents:
    """Detected eye-movement events of one gaze recording (arrays are read-only).

    Event ``k`` covers samples ``onset[k]:offset[k]`` (``offset`` exclusive, Python slice
    convention), so its duration is ``(offset - onset) / sfreq``. Gaze values are in degrees.

    Attributes
    ----------
    fixation_onset, fixation_offset, fixation_duration : array, shape (n_fixations,)
        Sample indices (int) and duration in s.
    fixation_x, fixation_y, fixation_dispersion_x, fixation_dispersion_y : array, shape (n_fixations,)
        Centroid (mean) and extent (``max - min``) of the median-filtered gaze, in degrees.
    saccade_onset, saccade_offset, saccade_duration : array, shape (n_saccades,)
        Sample indices (int) and duration in s.
    saccade_amplitude, saccade_peak_velocity : array, shape (n_saccades,)
        Distance (deg) between the gaze at the first and at the last saccade sample, and the
        largest velocity inside the saccade (deg/s).
    blink_onset, blink_offset, blink_duration : array, shape (n_blinks,)
        Sample indices (int) and duration in s of the invalid run.
    """

    fixation_onset: np.ndarray
    fixation_offset: np.ndarray
    fixation_duration: np.ndarray
    fixation_x: np.ndarray
    fixation_y: np.ndarray
    fixation_dispersion_x: np.ndarray
    fixation_dispersion_y: np.ndarray
    saccade_onset: np.ndarray
    saccade_offset: np.ndarray
    saccade_duration: np.ndarray
    saccade_amplitude: np.ndarray
    saccade_peak_velocity: np.ndarray
    blink_onset: np.ndarray
    blink_offset: np.ndarray
    blink_duration: np.ndarray

    def __post_init__(self) -> None:
        for f in fields(self):
            getattr(self, f.name).setflags(write=False)


def eye_feature_names(params: EyeParams | None = None) -> tuple[str, ...]:
    """Names of :func:`eye_features`' outputs, in order (33 with the 4 default pupil bands)."""
    params = EyeParams() if params is None else check_type(params, EyeParams, "params")
    bands = params.pupil_bands
    pupil = [
        name
        for eye in ("left", "right")
        for name in (
            f"pupil_{eye}_mean",
            f"pupil_{eye}_std",
            *(f"pupil_{eye}_de_{b.name.removeprefix('pupil_')}" for b in bands),
        )
    ]
    return (
        *pupil,
        "dispersion_x_mean", "dispersion_x_std", "dispersion_y_mean", "dispersion_y_std",
        "fixation_duration_mean", "fixation_duration_std",
        "blink_duration_mean", "blink_duration_std",
        "saccade_duration_mean", "saccade_duration_std", "saccade_amplitude_mean", "saccade_amplitude_std",
        "blink_frequency", "fixation_frequency", "fixation_duration_max", "fixation_dispersion_total",
        "fixation_dispersion_max", "saccade_frequency", "saccade_duration_average",
        "saccade_amplitude_average", "saccade_latency_average",
    )  # fmt: skip


EYE_FEATURE_NAMES: tuple[str, ...] = eye_feature_names()


def _check_gaze(gaze, name: str, *, ndim: int | None) -> np.ndarray:
    layout = "(5, n_times)" if ndim == 2 else "(..., 5, n_times)"
    arr = check_array(gaze, name, ndim=ndim, min_ndim=2, layout=layout, allow_nonfinite=True)
    if arr.shape[-2] != len(EYE_CHANNELS):
        raise ValueError(
            f"{name} must have {len(EYE_CHANNELS)} rows {EYE_CHANNELS} along axis -2 (shape {layout}), "
            f"got shape {arr.shape}. Stack the channels in that order, time last."
        )
    return arr


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) indices of the True runs of a 1-D mask."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _span_mask(starts: np.ndarray, stops: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of length ``n``, True inside the non-overlapping spans ``[start, stop)``."""
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, stops, -1)
    return np.cumsum(marks[:-1]) > 0


def _valid_mask(gaze: np.ndarray) -> np.ndarray:
    validity = np.where(np.isfinite(gaze[4]), gaze[4], 0.0)
    return (validity > 0.5) & np.isfinite(gaze[:4]).all(axis=0)


def _to_degrees(gaze: np.ndarray, params: EyeParams) -> np.ndarray:
    if params.gaze_unit == "deg":
        return gaze
    out = gaze.copy()
    for row, size in ((0, params.screen_width_cm), (1, params.screen_height_cm)):
        deg = np.degrees(np.arctan((gaze[row] - 0.5) * size / params.distance_cm))
        out[row] = np.where(np.isfinite(gaze[row]), deg, np.nan)  # arctan(inf) must stay invalid
    return out


def _fill_gaps(gaze: np.ndarray, sfreq: float, params: EyeParams) -> tuple[np.ndarray, np.ndarray]:
    n = gaze.shape[1]
    out = gaze.copy()
    valid = _valid_mask(gaze)
    starts, stops = _runs(~valid)
    short = ((stops - starts) / sfreq <= params.gap_fill_max_s + _EPS) & (starts > 0) & (stops < n)
    fill = _span_mask(starts[short], stops[short], n)
    if fill.any():
        known, target = np.flatnonzero(valid), np.flatnonzero(fill)
        for row in range(4):
            out[row, target] = np.interp(target, known, gaze[row, known])
    valid = valid | fill
    out[4] = valid
    return out, valid


def _moving_median(xy: np.ndarray, k: int) -> np.ndarray:
    """Centred moving median of each row over the finite samples of its window (edge-padded).

    NaN samples stay NaN and do not spread: next to a gap the median uses the valid samples.
    """
    if k == 1:
        return xy.copy()
    half = k // 2
    win = np.lib.stride_tricks.sliding_window_view(np.pad(xy, ((0, 0), (half, half)), mode="edge"), k, -1)
    srt = np.sort(win, axis=-1)  # NaN sort last
    count = np.maximum(np.isfinite(win).sum(axis=-1, keepdims=True), 1)
    lo = np.take_along_axis(srt, (count - 1) // 2, axis=-1)[..., 0]
    hi = np.take_along_axis(srt, count // 2, axis=-1)[..., 0]
    return np.where(np.isfinite(xy), (lo + hi) / 2, np.nan)


def _velocity(xy: np.ndarray, sfreq: float, window_s: float) -> tuple[np.ndarray, int]:
    """Centred angular velocity (deg/s) over ``2 * half`` samples; NaN on the ``half`` outer samples."""
    n = xy.shape[1]
    half = max(1, int(round(window_s * sfreq / 2)))
    vel = np.full(n, np.nan)
    if n > 2 * half:
        step = xy[:, 2 * half :] - xy[:, : -2 * half]
        vel[half : n - half] = np.hypot(step[0], step[1]) * sfreq / (2 * half)
    return vel, half


def _span_stats(xy: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centroid x, y and extents x, y of the finite gaze inside each span (spans sorted, disjoint)."""
    if starts.size == 0:
        return tuple(np.empty(0) for _ in range(4))
    inside = _span_mask(starts, stops, xy.shape[1]) & np.isfinite(xy).all(axis=0)
    count = np.maximum(np.add.reduceat(inside.astype(np.int64), starts), 1)
    out = [np.add.reduceat(np.where(inside, row, 0.0), starts) / count for row in xy]
    for row in xy:
        top = np.maximum.reduceat(np.where(inside, row, -np.inf), starts)
        bottom = np.minimum.reduceat(np.where(inside, row, np.inf), starts)
        out.append(top - bottom)
    return tuple(out)


def _merge_fixations(starts, stops, xy, sfreq, params) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs of neighbours whose gap and original-centroid distance are both small."""
    if starts.size < 2:
        return starts, stops
    cx, cy, _, _ = _span_stats(xy, starts, stops)
    gap_s = (starts[1:] - stops[:-1]) / sfreq
    join = (gap_s <= params.merge_max_gap_s + _EPS) & (
        np.hypot(np.diff(cx), np.diff(cy)) <= params.merge_max_angle_deg
    )
    first = np.flatnonzero(np.concatenate(([True], ~join)))
    last = np.flatnonzero(np.concatenate((~join, [True])))
    return starts[first], stops[last]


def _detect(gaze: np.ndarray, sfreq: float, params: EyeParams) -> tuple[EyeEvents, np.ndarray, np.ndarray]:
    """Run the pipeline on validated ``(5, n_times)`` input; also return the gap-filled data."""
    n = gaze.shape[1]
    filled, valid = _fill_gaps(_to_degrees(gaze, params), sfreq, params)

    starts, stops = _runs(~valid)
    run_s = (stops - starts) / sfreq
    blink = (run_s > params.gap_fill_max_s + _EPS) & (run_s <= params.blink_max_s + _EPS)
    blink &= (starts > 0) & (stops < n)
    b_on, b_off = starts[blink], stops[blink]

    xy = _moving_median(np.where(valid, filled[:2], np.nan), params.median_filter_samples)
    vel, half = _velocity(xy, sfreq, params.velocity_window_s)
    known = np.isfinite(vel) & np.isfinite(xy).all(axis=0)
    slow = np.where(known, vel, np.inf) < params.velocity_threshold_deg_s
    fix, sac = known & slow, known & ~slow

    def complete(on: np.ndarray, off: np.ndarray) -> np.ndarray:
        # The velocity is undefined on the `half` outer samples: touching them = incomplete.
        return (on > half) & (off < n - half)

    f_on, f_off = _merge_fixations(*_runs(fix), xy, sfreq, params)
    keep = ((f_off - f_on) / sfreq >= params.min_fixation_s - _EPS) & complete(f_on, f_off)
    f_on, f_off = f_on[keep], f_off[keep]
    fx, fy, dx, dy = _span_stats(xy, f_on, f_off)

    s_on, s_off = _runs(sac)
    keep = complete(s_on, s_off)
    s_on, s_off = s_on[keep], s_off[keep]
    amp = np.hypot(*(xy[:, s_off - 1] - xy[:, s_on])) if s_on.size else np.empty(0)
    peak = np.maximum.reduceat(np.where(sac, vel, -np.inf), s_on) if s_on.size else np.empty(0)

    events = EyeEvents(
        fixation_onset=f_on, fixation_offset=f_off, fixation_duration=(f_off - f_on) / sfreq,
        fixation_x=fx, fixation_y=fy, fixation_dispersion_x=dx, fixation_dispersion_y=dy,
        saccade_onset=s_on, saccade_offset=s_off, saccade_duration=(s_off - s_on) / sfreq,
        saccade_amplitude=amp, saccade_peak_velocity=peak,
        blink_onset=b_on, blink_offset=b_off, blink_duration=(b_off - b_on) / sfreq,
    )  # fmt: skip
    return events, filled, valid


def fill_gaps(gaze, sfreq: float, params: EyeParams | None = None) -> np.ndarray:
    """Linearly interpolate short invalid runs (Tobii gap fill-in).

    Parameters
    ----------
    gaze : array, shape (5, n_times)
        Raw gaze, rows :data:`EYE_CHANNELS`, in its own unit (no ``'norm'`` conversion here).
    sfreq : float
        Sampling frequency in Hz.
    params : EyeParams | None
        ``gap_fill_max_s`` is used; None means the defaults.

    Returns
    -------
    filled : array, shape (5, n_times)
        A copy (the input is never modified). Invalid runs of at most ``gap_fill_max_s`` that
        have a valid sample on both sides get gaze and pupil linearly interpolated between
        those samples. The validity row is rewritten as 1.0 where the sample is valid or was
        filled and 0.0 elsewhere; values of unfilled invalid samples are left as they were.
    """
    gaze = _check_gaze(gaze, "gaze", ndim=2)
    sfreq = check_sfreq(sfreq)
    params = EyeParams() if params is None else check_type(params, EyeParams, "params")
    return _fill_gaps(gaze, sfreq, params)[0]


def detect_events(gaze, sfreq: float, params: EyeParams | None = None) -> EyeEvents:
    """Detect fixations, saccades and blinks with the Tobii-style I-VT pipeline.

    Parameters
    ----------
    gaze : array, shape (5, n_times)
        Raw gaze, rows :data:`EYE_CHANNELS`, regularly sampled (unit per ``params.gaze_unit``).
    sfreq : float
        Sampling frequency in Hz.
    params : EyeParams | None
        Detection parameters; None means the defaults.

    Returns
    -------
    events : EyeEvents
        Sample indices refer to ``gaze``'s last axis; angles are in degrees.

    Notes
    -----
    1. Gaze in ``'norm'`` units is converted to degrees; gaps are filled (:func:`fill_gaps`).
    2. Remaining invalid runs longer than ``gap_fill_max_s`` and up to ``blink_max_s`` are
       blinks; longer ones are track loss and yield no event.
    3. Each gaze axis is smoothed by a centred moving median of ``median_filter_samples``.
    4. The velocity at sample ``i`` is ``|p[i + h] - p[i - h]| / (2 h / sfreq)`` with
       ``h = max(1, round(velocity_window_s * sfreq / 2))`` (centred, so ``h`` samples of
       look-ahead; at 120 Hz the default 20 ms gives ``h = 1``). It is undefined on the ``h``
       outer samples and wherever the window touches an invalid sample.
    5. I-VT: samples slower than ``velocity_threshold_deg_s`` are fixation samples, the others
       saccade samples; samples with undefined velocity (invalid runs and their margins)
       belong to neither. Runs of each class are the events.
    6. Neighbouring fixations at most ``merge_max_gap_s`` apart whose centroids (of the
       fixations before merging) are at most ``merge_max_angle_deg`` apart become one
       fixation spanning both; then fixations shorter than ``min_fixation_s`` are dropped.

    Events that touch the first or last classifiable sample (blinks: the first or last
    sample) are dropped as incomplete: within a trailing buffer only events that both start
    and end inside it are kept.
    """
    gaze = _check_gaze(gaze, "gaze", ndim=2)
    sfreq = check_sfreq(sfreq)
    params = EyeParams() if params is None else check_type(params, EyeParams, "params")
    check_n_samples(gaze.shape[1], 3, "gaze", what="event detection")
    return _detect(gaze, sfreq, params)[0]


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and std (ddof=0) of ``values``; (0, 0) when there are none."""
    return (float(np.mean(values)), float(np.std(values))) if values.size else (0.0, 0.0)


def _event_features(ev: EyeEvents, sfreq: float, window_s: float) -> list[float]:
    """The 21 event statistics of one window, in :data:`EYE_FEATURE_NAMES` order."""
    fix_ms, sac_ms, blink_ms = ev.fixation_duration * 1e3, ev.saccade_duration * 1e3, ev.blink_duration * 1e3
    dispersion = ev.fixation_dispersion_x + ev.fixation_dispersion_y
    latency_ms = (ev.saccade_onset[1:] - ev.saccade_offset[:-1]) / sfreq * 1e3
    sac_dur, sac_amp = _mean_std(sac_ms), _mean_std(ev.saccade_amplitude)
    return [
        *_mean_std(ev.fixation_dispersion_x), *_mean_std(ev.fixation_dispersion_y),
        *_mean_std(fix_ms), *_mean_std(blink_ms), *sac_dur, *sac_amp,
        blink_ms.size / window_s, fix_ms.size / window_s, float(fix_ms.max(initial=0.0)),
        float(dispersion.sum()), float(dispersion.max(initial=0.0)), sac_ms.size / window_s,
        sac_dur[0], sac_amp[0], _mean_std(latency_ms)[0],
    ]  # fmt: skip


def _pupil_stats(filled: np.ndarray, valid: np.ndarray, n_stat: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean/std (shape (2, 2)) over the valid samples of the last ``n_stat``, and the pupil
    traces (shape (2, n_times)) with invalid samples interpolated, demeaned, for the DE."""
    pupil = filled[2:4]
    last = valid[-n_stat:]
    stats = np.full((2, 2), np.nan)
    if last.any():
        recent = pupil[:, -n_stat:][:, last]
        stats[:, 0], stats[:, 1] = recent.mean(axis=1), recent.std(axis=1)
    idx = np.flatnonzero(valid)
    times = np.arange(pupil.shape[1])
    trace = np.stack([np.interp(times, idx, row[idx]) for row in pupil])
    return stats, trace - trace.mean(axis=1, keepdims=True)


def eye_features(windows, sfreq: float, params: EyeParams | None = None) -> np.ndarray:
    """SEED's 33 eye-movement features of each trailing gaze buffer (docs/design/features.md §2.1, §4.3).

    Parameters
    ----------
    windows : array, shape (..., 5, n_times)
        Raw gaze buffers, rows :data:`EYE_CHANNELS`, time last; leading axes are kept. Each
        buffer must last at least 10 s (the 0.2-Hz pupil bands need it) and at least
        ``params.stat_window_s``.
    sfreq : float
        Sampling frequency in Hz.
    params : EyeParams | None
        Detection and feature parameters; None means the defaults.

    Returns
    -------
    features : array, shape (..., n_features)
        ``n_features = 25 + 2 * n_pupil_bands`` (33 by default), ordered as
        :data:`EYE_FEATURE_NAMES` (our own convention: SEED's index order is not public):

        - ``pupil_left`` mean, std (mm), DE in each pupil band (low to high), then the same
          for ``pupil_right`` (12);
        - dispersion x mean, std, dispersion y mean, std (deg, per-fixation extents) (4);
        - fixation duration mean, std (ms); blink duration mean, std (ms) (4);
        - saccade duration mean, std (ms), saccade amplitude mean, std (deg) (4);
        - blink frequency, fixation frequency (Hz), fixation duration max (ms), fixation
          dispersion total and max (deg), saccade frequency (Hz), saccade duration average
          (ms), saccade amplitude average (deg), saccade latency average (ms) (9).

    Notes
    -----
    Events come from :func:`detect_events` on the whole buffer (only events that start and
    end inside it). Frequencies are event counts divided by the buffer length in seconds.
    A fixation's dispersion is its x extent plus its y extent; "total" sums it over the
    fixations and "max" takes the largest. Saccade latency is the mean of
    ``onset[k + 1] - offset[k]`` over consecutive saccades. The "average" entries repeat the
    corresponding means, as SEED's table lists both. Standard deviations use ``ddof=0``.

    When a buffer holds no event of a kind (or fewer than two saccades, for the latency), the
    statistics of that kind are 0, never NaN.

    Pupil mean and std are taken over the valid samples of the last ``stat_window_s``; the
    DE (:func:`signals.de.differential_entropy` with ``params.pupil_bands`` and
    ``params.pupil_de_formula``) over the whole buffer, gap-filled, with the remaining invalid
    samples linearly interpolated (held constant at the ends) and the mean removed. When the
    buffer has no valid sample at all, its 12 pupil features are NaN (no error is raised);
    when only the last ``stat_window_s`` has none, the pupil means and stds are NaN. The
    streaming pipeline reports such windows instead of feeding them to a model.
    """
    windows = _check_gaze(windows, "windows", ndim=None)
    sfreq = check_sfreq(sfreq)
    params = EyeParams() if params is None else check_type(params, EyeParams, "params")
    n_times = windows.shape[-1]
    window_s = n_times / sfreq
    if window_s < MIN_WINDOW_S - _EPS:
        raise ValueError(
            f"windows last {window_s:g} s ({n_times} samples at sfreq={sfreq} Hz), but eye features "
            f"need a trailing buffer of at least {MIN_WINDOW_S:g} s ({int(np.ceil(MIN_WINDOW_S * sfreq))} "
            "samples) to resolve the 0.2-Hz pupil bands. Pass a longer buffer."
        )
    n_stat = int(round(params.stat_window_s * sfreq))
    check_n_samples(n_times, n_stat, "windows", what=f"stat_window_s={params.stat_window_s} s")

    flat = windows.reshape(-1, len(EYE_CHANNELS), n_times)
    n_bands = len(params.pupil_bands)
    feats = np.empty((flat.shape[0], 25 + 2 * n_bands))
    traces = np.zeros((flat.shape[0], 2, n_times))
    stats = np.full((flat.shape[0], 2, 2), np.nan)
    has_pupil = np.zeros(flat.shape[0], dtype=bool)
    for i, gaze in enumerate(flat):
        events, filled, valid = _detect(gaze, sfreq, params)
        feats[i, 4 + 2 * n_bands :] = _event_features(events, sfreq, window_s)
        if valid.any():
            has_pupil[i] = True
            stats[i], traces[i] = _pupil_stats(filled, valid, n_stat)
    de = differential_entropy(traces, sfreq, params.pupil_bands, formula=params.pupil_de_formula)
    de[~has_pupil] = np.nan
    pupil = np.concatenate([stats, de], axis=-1)  # (n, eye, mean/std/DE...)
    feats[:, : 4 + 2 * n_bands] = pupil.reshape(flat.shape[0], -1)
    return feats.reshape(*windows.shape[:-2], feats.shape[-1])
