"""signals: feature extraction for affective BCI, batch and streaming, from one code path.

numpy, scipy and pydantic only. Arrays are ``(..., n_channels, n_times)`` (time last), sampling
rates in Hz, EEG in µV. Feature sequences are ``(n_windows, n_features)`` (time first).
"""

from .bands import DEAP_BANDS, PUPIL_BANDS, SEED_BANDS, Band
from .de import band_power, differential_entropy
from .ecg import HRV_FEATURES, HrvParams, detect_beats, hrv_features
from .eye import EYE_CHANNELS, EYE_FEATURE_NAMES, EyeEvents, EyeParams, detect_events, eye_features, fill_gaps
from .pps import PICARD_STATISTICS, pps_statistics
from .smoothing import KalmanFilter, MovingAverage, kalman_filter, lds_smooth, moving_average
from .spec import (
    DESpec,
    EyeSpec,
    FeatureSpec,
    HrvSpec,
    PpsSpec,
    SmoothingSpec,
    feature_spec_from_dict,
    feature_spec_from_json,
    feature_spec_json_schema,
)
from .streaming import FeatureFrames, StreamingExtractor
from .windowing import sliding_windows

__all__ = [
    "DEAP_BANDS",
    "EYE_CHANNELS",
    "EYE_FEATURE_NAMES",
    "HRV_FEATURES",
    "PICARD_STATISTICS",
    "PUPIL_BANDS",
    "SEED_BANDS",
    "Band",
    "DESpec",
    "EyeEvents",
    "EyeParams",
    "EyeSpec",
    "FeatureFrames",
    "FeatureSpec",
    "HrvParams",
    "HrvSpec",
    "KalmanFilter",
    "MovingAverage",
    "PpsSpec",
    "SmoothingSpec",
    "StreamingExtractor",
    "band_power",
    "detect_beats",
    "detect_events",
    "differential_entropy",
    "eye_features",
    "feature_spec_from_dict",
    "feature_spec_from_json",
    "feature_spec_json_schema",
    "fill_gaps",
    "hrv_features",
    "kalman_filter",
    "lds_smooth",
    "moving_average",
    "pps_statistics",
    "sliding_windows",
]
