"""Heartbeat detection and time-domain HRV features from ECG or PPG windows.

The default ECG feature of this project is 5-band DE per channel, computed by
:func:`signals.de.differential_entropy` (docs/design/features.md §3 (a)); it matches the M2S 10-d ECG input
layout. This module provides the physiologically meaningful alternative (docs/design/features.md §5): beat
detection and heart rate / heart-rate variability per channel.

Features (:data:`HRV_FEATURES`), from the RR intervals of one window, in ms:

- ``hr_bpm``: heart rate, 60000 / mean(RR), in beats per minute
- ``mean_nn_ms``: mean RR interval
- ``sdnn_ms``: sample standard deviation of the RR intervals (ddof=1, as neurokit2)
- ``rmssd_ms``: root mean square of successive RR differences
- ``pnn50``: fraction (in [0, 1], not %) of successive differences larger than 50 ms

RR intervals whose rate falls outside ``[min_bpm, max_bpm]``, or (by default) that differ by
more than 30 % from the window's median RR, are dropped as artefacts (a missed or a spurious
beat); successive differences are only taken between two kept intervals that are adjacent, so
a dropped interval never creates a fake jump.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import butter, find_peaks, sosfiltfilt

from ._checks import check_array, check_n_samples, check_option, check_sfreq, check_type

HRV_FEATURES: tuple[str, ...] = ("hr_bpm", "mean_nn_ms", "sdnn_ms", "rmssd_ms", "pnn50")
BEAT_KINDS: tuple[str, ...] = ("ecg", "ppg")

MIN_WINDOW_S = 4.0  # hrv_features refuses shorter windows
RECOMMENDED_WINDOW_S = 10.0
_MIN_DETECT_S = 2.0  # detect_beats refuses shorter signals

# Band-pass edges (Hz), refractory distances (s) and the lowest sampling rate each kind needs.
_BAND = {"ecg": (5.0, 20.0), "ppg": (0.5, 8.0)}
_REFRACTORY_S = {"ecg": 0.27, "ppg": 0.33}
_MIN_SFREQ = {"ecg": 50.0, "ppg": 20.0}
_FILTER_ORDER = 2  # per edge; sosfiltfilt doubles the effective order

# ECG: QRS-energy envelope and threshold.
_QRS_INTEGRATION_S = 0.15  # moving-window integration of the squared slope (Pan-Tompkins)
_THRESHOLD_SPAN_S = 3.0  # the threshold follows the largest QRS energy within ±1.5 s
_THRESHOLD_FRACTION = 0.3  # of that local maximum ...
_THRESHOLD_FLOOR = 0.10  # ... but never below this fraction of the typical local maximum
_QRS_SEARCH_S = 0.075  # half-width searched for the largest |band-passed| deflection
_R_SEARCH_S = 0.05  # half-width searched on the raw signal for the R extremum

# PPG: prominence relative to the local spread of the band-passed pulse wave.
_SPREAD_SPAN_S = 5.0
_PROMINENCE_FRACTION = 0.5  # floor: times the local standard deviation
_RELATIVE_PROMINENCE = 0.5  # and at least this fraction of the largest prominence within ±0.6 s
_DIASTOLE_SPAN_S = 1.2


class HrvParams(BaseModel):
    """Parameters of :func:`hrv_features`.

    Attributes
    ----------
    kind : 'ecg' | 'ppg'
        Signal type: ECG (R peaks) or photoplethysmogram (systolic peaks).
    features : tuple of str
        Names from :data:`HRV_FEATURES`, in output order, without repeats.
    min_bpm, max_bpm : float
        Plausible heart-rate range in beats per minute; RR intervals outside it are dropped
        as artefacts.
    max_rr_deviation : float | None
        Also drop RR intervals that differ from the median of the in-range intervals of the
        window by more than this fraction of it (default 0.3; HeartPy uses a similar 30 %
        rule). This catches a missed beat (about 2 × RR) or a spurious one (RR split in two)
        at any heart rate, which the rate bounds miss above about 80 bpm. ``None`` turns it
        off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ecg", "ppg"] = "ecg"
    features: tuple[Literal["hr_bpm", "mean_nn_ms", "sdnn_ms", "rmssd_ms", "pnn50"], ...] = HRV_FEATURES
    min_bpm: float = Field(default=40.0, gt=0, description="Lowest plausible heart rate (bpm).")
    max_bpm: float = Field(default=200.0, gt=0, description="Highest plausible heart rate (bpm).")
    max_rr_deviation: float | None = Field(
        default=0.3,
        gt=0,
        description="Drop RR intervals further than this fraction from the window's median RR; None: off.",
    )

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: tuple[str, ...]) -> tuple[str, ...]:
        if not features:
            raise ValueError("features is empty; name at least one of " + ", ".join(HRV_FEATURES) + ".")
        duplicates = sorted({f for f in features if features.count(f) > 1})
        if duplicates:
            raise ValueError(f"features lists {duplicates} more than once; name each feature once.")
        return features

    @model_validator(mode="after")
    def _ordered_rates(self) -> HrvParams:
        if self.max_bpm <= self.min_bpm:
            raise ValueError(
                f"max_bpm must be greater than min_bpm, got min_bpm={self.min_bpm}, max_bpm={self.max_bpm}."
            )
        return self


_DEFAULT_PARAMS = HrvParams()


def detect_beats(x, sfreq: float, *, kind: str = "ecg") -> np.ndarray:
    """Sample indices of the heartbeats in one ECG or PPG signal.

    Parameters
    ----------
    x : array, shape (n_times,)
        One channel, any unit (µV or mV for ECG, arbitrary for PPG); baseline wander and
        polarity do not matter. At least 2 s long.
    sfreq : float
        Sampling frequency in Hz; at least 50 Hz for ECG and 20 Hz for PPG.
    kind : 'ecg' | 'ppg'
        ``'ecg'`` finds R peaks, ``'ppg'`` finds systolic pulse peaks.

    Returns
    -------
    beats : array of int, shape (n_beats,)
        Increasing sample indices into ``x``.

    Notes
    -----
    ``kind='ecg'`` (a Pan-Tompkins-style detector, zero-phase, on the given signal only):

    1. Band-pass 5-20 Hz (Butterworth, second-order sections, ``sosfiltfilt``): keeps the
       QRS complex and removes baseline wander, most of the P/T waves and 50/60 Hz mains.
    2. QRS energy: squared slope of the band-passed signal, integrated over 0.15 s.
    3. ``scipy.signal.find_peaks`` on that envelope with a refractory distance of 0.27 s and an
       adaptive height: 0.3 × the largest envelope value within ±1.5 s, floored at 0.10 × its
       median over the signal (so a flat stretch does not turn noise into beats, and an artefact
       only raises the threshold near itself).
    4. Refinement: the largest ``|band-passed|`` deflection within ±75 ms; the lead's polarity
       is the sign of the median of those deflections (inverted leads exist); each beat is then
       moved to the extremum of the raw signal, in that polarity, within ±50 ms.

    ``kind='ppg'``: band-pass 0.5-8 Hz (same filter type), then ``find_peaks`` with a distance
    of 0.33 s and a prominence of at least 0.5 × the local standard deviation of the
    band-passed signal (over ±2.5 s; floored at 0.10 × its median, as for ECG). Of those, a peak
    is kept only if its prominence is at least half the largest prominence within ±0.6 s: this
    removes the diastolic (dicrotic) wave, which follows the systolic peak by about 0.3-0.45 s
    with about a third of its prominence. The beat is the maximum of the band-passed pulse wave.

    Limits: the refractory distances cap the resolvable rate near 200 bpm (ECG) and 180 bpm
    (PPG). In leads where the S wave dominates the R wave, the dominant deflection is reported.
    The zero-phase filter uses the whole given window and no sample after its end: call it on
    each window (ring buffer) online and with the same function in training, never
    sample-by-sample. Beats within a few tens of ms of the window edges may be missed or placed
    less accurately. Heavy noise gives extra or missed beats, and in PPG a large motion artefact
    hides the beats within ±0.6 s of it; :func:`hrv_features` drops the implausible RR
    intervals this creates but interpolates nothing.
    """
    kind = check_option("kind", kind, BEAT_KINDS)
    x = check_array(x, "x", ndim=1, layout="(n_times,)")
    sfreq = _check_kind_sfreq(sfreq, kind)
    check_n_samples(
        x.shape[-1], int(np.ceil(_MIN_DETECT_S * sfreq)), "x", what=f"beat detection ({_MIN_DETECT_S} s)"
    )
    filtered = _bandpass(x, sfreq, kind)
    return _detect(x, filtered, sfreq, kind)


def hrv_features(windows, sfreq: float, params: HrvParams = _DEFAULT_PARAMS) -> np.ndarray:
    """Heart rate and time-domain HRV of each channel of each window.

    Parameters
    ----------
    windows : array, shape (..., n_channels, n_times)
        ECG or PPG windows, time last; leading axes (windows, trials) are kept. At least 4 s
        long; **10 s or more is recommended** (HRV statistics from a handful of beats are
        noisy, and docs/design/features.md §5.3 uses 30-60 s of RR for RMSSD/SDNN/pNN50).
    sfreq : float
        Sampling frequency in Hz; at least 50 Hz for ECG and 20 Hz for PPG.
    params : HrvParams
        Signal kind, features and artefact rules; the default ``HrvParams()`` is ECG, all
        five features, 40-200 bpm, RR within 30 % of the window's median.

    Returns
    -------
    features : array, shape (..., n_channels, n_features)
        In the order of ``params.features``: ``hr_bpm`` (bpm), ``mean_nn_ms``, ``sdnn_ms``,
        ``rmssd_ms`` (ms) and ``pnn50`` (fraction in [0, 1]).

    Notes
    -----
    Beats come from :func:`detect_beats`. RR intervals outside ``[min_bpm, max_bpm]``, and
    those further than ``max_rr_deviation`` from the window's median RR, are dropped. A window
    with fewer than 2 kept RR intervals gives NaN for every feature, and ``rmssd_ms``/``pnn50``
    are NaN when no two kept intervals are adjacent. The streaming pipeline reports such
    windows instead of feeding them to a model. Filtering is vectorised over all channels;
    peak picking loops over them (about 0.35 ms per 10-s channel at 256 Hz).
    """
    params = check_type(params, HrvParams, "params")
    x = check_array(windows, "windows", min_ndim=2)
    sfreq = _check_kind_sfreq(sfreq, params.kind)
    check_n_samples(
        x.shape[-1],
        int(np.ceil(MIN_WINDOW_S * sfreq)),
        "windows",
        what=f"HRV ({MIN_WINDOW_S} s; {RECOMMENDED_WINDOW_S} s or more recommended)",
    )
    return _hrv_features(x, sfreq, params)


def _check_kind_sfreq(sfreq, kind: str) -> float:
    sfreq = check_sfreq(sfreq)
    if sfreq < _MIN_SFREQ[kind]:
        raise ValueError(
            f"sfreq={sfreq} Hz is too low for kind='{kind}', which band-passes up to "
            f"{_BAND[kind][1]} Hz; it needs at least {_MIN_SFREQ[kind]} Hz. Record or resample "
            "at a higher rate."
        )
    return sfreq


@lru_cache(maxsize=32)
def _sos(sfreq: float, kind: str) -> np.ndarray:
    sos = butter(_FILTER_ORDER, _BAND[kind], btype="bandpass", fs=sfreq, output="sos")
    sos.setflags(write=False)
    return sos


def _bandpass(x: np.ndarray, sfreq: float, kind: str) -> np.ndarray:
    """Zero-phase band-pass along the last axis (returns a new array)."""
    # scipy's sosfilt needs a writable sos, so the cached (read-only) one is copied.
    return sosfiltfilt(_sos(sfreq, kind).copy(), x, axis=-1)


def _samples(seconds: float, sfreq: float) -> int:
    return max(1, int(round(seconds * sfreq)))


def _detect(raw: np.ndarray, filtered: np.ndarray, sfreq: float, kind: str) -> np.ndarray:
    if kind == "ecg":
        return _ecg_peaks(raw, filtered, sfreq)
    return _ppg_peaks(filtered, sfreq)


def _ecg_peaks(raw: np.ndarray, filtered: np.ndarray, sfreq: float) -> np.ndarray:
    slope = np.gradient(filtered) * sfreq
    energy = uniform_filter1d(slope**2, _samples(_QRS_INTEGRATION_S, sfreq), mode="nearest")
    local_max = maximum_filter1d(energy, _samples(_THRESHOLD_SPAN_S, sfreq), mode="nearest")
    height = np.maximum(_THRESHOLD_FRACTION * local_max, _THRESHOLD_FLOOR * np.median(local_max))
    candidates, _ = find_peaks(energy, height=height, distance=_samples(_REFRACTORY_S["ecg"], sfreq))
    if candidates.size == 0:
        return candidates.astype(np.intp)

    # Largest |band-passed| deflection near each energy peak, and the lead's polarity.
    qrs = _argmax_near(np.abs(filtered), candidates, _samples(_QRS_SEARCH_S, sfreq))
    polarity = 1.0 if np.median(filtered[qrs]) >= 0 else -1.0
    beats = _argmax_near(polarity * raw, qrs, _samples(_R_SEARCH_S, sfreq))
    return np.unique(beats)


def _argmax_near(signal: np.ndarray, centres: np.ndarray, half_width: int) -> np.ndarray:
    """Index of the maximum of ``signal`` within ``±half_width`` of each centre (edge-clipped)."""
    offsets = np.arange(-half_width, half_width + 1)
    idx = np.clip(centres[:, None] + offsets, 0, signal.size - 1)
    return idx[np.arange(centres.size), np.argmax(signal[idx], axis=1)].astype(np.intp)


def _ppg_peaks(filtered: np.ndarray, sfreq: float) -> np.ndarray:
    span = _samples(_SPREAD_SPAN_S, sfreq)
    local_mean = uniform_filter1d(filtered, span, mode="nearest")
    local_var = uniform_filter1d(filtered**2, span, mode="nearest") - local_mean**2
    local_std = np.sqrt(np.clip(local_var, 0.0, None))
    # Floored like the ECG threshold, so a flat stretch (sensor off) does not yield noise beats.
    floor = np.maximum(_PROMINENCE_FRACTION * local_std, _THRESHOLD_FLOOR * np.median(local_std))
    peaks, props = find_peaks(filtered, prominence=floor, distance=_samples(_REFRACTORY_S["ppg"], sfreq))
    # Diastolic (dicrotic) waves pass the floor; they are much less prominent than the
    # systolic peaks around them, so keep only peaks close to the local largest prominence.
    prominences = np.zeros_like(filtered)
    prominences[peaks] = props["prominences"]
    local_max = maximum_filter1d(prominences, _samples(_DIASTOLE_SPAN_S, sfreq), mode="constant")
    keep = props["prominences"] >= _RELATIVE_PROMINENCE * local_max[peaks]
    return peaks[keep].astype(np.intp)


def _hrv_features(x: np.ndarray, sfreq: float, params: HrvParams) -> np.ndarray:
    """HRV features of validated input (no checks)."""
    lead_shape = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    filtered = _bandpass(rows, sfreq, params.kind)
    out = np.empty((rows.shape[0], len(params.features)))
    for i in range(rows.shape[0]):
        beats = _detect(rows[i], filtered[i], sfreq, params.kind)
        out[i] = _rr_features(beats, sfreq, params)
    return out.reshape(*lead_shape, len(params.features))


def _rr_features(beats: np.ndarray, sfreq: float, params: HrvParams) -> np.ndarray:
    rr = np.diff(beats) * (1000.0 / sfreq)  # ms
    valid = (rr >= 60000.0 / params.max_bpm) & (rr <= 60000.0 / params.min_bpm)
    if params.max_rr_deviation is not None and valid.any():
        median = np.median(rr[valid])
        valid &= np.abs(rr - median) <= params.max_rr_deviation * median
    kept = rr[valid]
    values = dict.fromkeys(HRV_FEATURES, np.nan)
    if kept.size >= 2:
        mean_nn = kept.mean()
        values["hr_bpm"] = 60000.0 / mean_nn
        values["mean_nn_ms"] = mean_nn
        values["sdnn_ms"] = kept.std(ddof=1)
        # Successive differences only between kept intervals that are neighbours.
        adjacent = valid[1:] & valid[:-1]
        successive = np.diff(rr)[adjacent]
        if successive.size:
            values["rmssd_ms"] = np.sqrt(np.mean(successive**2))
            values["pnn50"] = np.count_nonzero(np.abs(successive) > 50.0) / successive.size
    return np.array([values[name] for name in params.features])
