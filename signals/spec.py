"""FeatureSpec: a complete, JSON-serialisable description of a feature extractor.

A spec says everything needed to recompute a modality's features: sampling rate, channel
names and unit, window and hop, the feature function and its parameters, and the temporal
smoothing. It is stored in every model bundle, and both sides build their extractor from it:

- training: ``spec.compute(recording, timestamps)`` (a whole recording, as one chunk),
- serving: ``spec.build_extractor().push(chunk, timestamps)`` (live chunks),

which run the same :class:`~signals.streaming.StreamingExtractor` with the same feature
function. Kinds:

``de``    differential entropy per channel and band (EEG; ECG by default), :mod:`signals.de`
``eye``   the 33 eye-movement features from raw gaze, :mod:`signals.eye`
``hrv``   heart rate and HRV per channel (ECG/PPG option), :mod:`signals.ecg`
``pps``   Picard statistics per peripheral channel, :mod:`signals.pps`
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from . import de as _de
from .bands import SEED_BANDS, Band
from .ecg import HrvParams, hrv_features
from .eye import EYE_CHANNELS, EyeParams, eye_feature_names, eye_features
from .pps import PICARD_STATISTICS, PPS_STATISTICS, pps_statistics
from .smoothing import KalmanFilter, MovingAverage, lds_smooth
from .streaming import FeatureFrames, StreamingExtractor
from .timing import DEFAULT_GAP_FACTOR, DEFAULT_JITTER_S
from .windowing import seconds_to_samples

SPEC_SCHEMA_VERSION = 1


class SmoothingSpec(BaseModel):
    """Temporal smoothing of the feature sequence (see :mod:`signals.smoothing`).

    ``'kalman'`` (causal) and ``'moving_average'`` (causal) run identically offline and
    online. ``'lds'`` is the offline RTS smoother behind SEED's released ``de_LDS``: it needs
    the whole trial, so features made with it cannot be reproduced live.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["none", "kalman", "lds", "moving_average"] = "none"
    transition_cov: float = Field(1e-3, ge=0, description="Q of the random-walk model (kalman, lds).")
    observation_cov: float = Field(1.0, gt=0, description="R of the random-walk model (kalman, lds).")
    initial_cov: float = Field(0.1, ge=0, description="P0 of the random-walk model (kalman, lds).")
    n_steps: int = Field(5, ge=1, description="Vectors averaged (moving_average).")

    @property
    def reproducible_online(self) -> bool:
        """Whether a live extractor can compute exactly these features."""
        return self.method != "lds"

    def build(self):
        """A fresh causal smoother, or None for ``'none'``; refuses ``'lds'`` (offline only)."""
        if self.method == "kalman":
            return KalmanFilter(
                transition_cov=self.transition_cov,
                observation_cov=self.observation_cov,
                initial_cov=self.initial_cov,
            )
        if self.method == "moving_average":
            return MovingAverage(self.n_steps)
        if self.method == "lds":
            raise ValueError(
                "smoothing method 'lds' is an offline RTS smoother (it needs the whole trial) and "
                "cannot run live. Use method='kalman', its causal form, for features that must be "
                "reproduced online."
            )
        return None


class _SpecBase(BaseModel):
    """Fields every feature spec has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    modality: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="Modality name, e.g. 'eeg', 'eye', 'ecg', 'pps'."
    )
    sfreq: float = Field(gt=0, description="Sampling frequency of the input in Hz.")
    channels: tuple[str, ...] = Field(min_length=1, description="Input channel names, in row order.")
    unit: str = Field(
        min_length=1, description="Unit the input must be in, e.g. 'uV' (converted at ingestion)."
    )
    window_s: float = Field(gt=0, description="Window length in seconds.")
    hop_s: float = Field(gt=0, description="Time between consecutive feature vectors in seconds.")
    smoothing: SmoothingSpec = SmoothingSpec()
    gap_factor: float = Field(
        DEFAULT_GAP_FACTOR,
        gt=1,
        description="A timestamp step above gap_factor/sfreq is a gap: windows restart after it.",
    )
    jitter_s: float = Field(
        DEFAULT_JITTER_S,
        ge=0,
        description="Raw timestamps may deviate this many seconds from the regular line (device or transport "
        "jitter) without being a gap; 0 makes every step above gap_factor/sfreq a gap (signals.timing).",
    )
    schema_version: int = SPEC_SCHEMA_VERSION

    # How NaN/inf samples are treated by the extractor (see signals.streaming).
    _nonfinite: ClassVar[str] = "gap"

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({c for c in channels if channels.count(c) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {dupes}")
        return channels

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != SPEC_SCHEMA_VERSION:
            raise ValueError(
                f"feature spec schema_version {version} is not supported by this version of "
                f"m2s-live (expects {SPEC_SCHEMA_VERSION}); upgrade m2s-live or re-export the bundle."
            )
        return version

    @model_validator(mode="after")
    def _whole_samples(self):
        seconds_to_samples(self.window_s, self.sfreq, "window_s")
        seconds_to_samples(self.hop_s, self.sfreq, "hop_s")
        return self

    @property
    def n_window(self) -> int:
        """Window length in samples."""
        return seconds_to_samples(self.window_s, self.sfreq, "window_s")

    @property
    def n_hop(self) -> int:
        """Hop in samples."""
        return seconds_to_samples(self.hop_s, self.sfreq, "hop_s")

    @property
    def n_features(self) -> int:
        """Length of one feature vector (D)."""
        return len(self.feature_names())

    @property
    def reproducible_online(self) -> bool:
        """False when the features need offline-only processing (``smoothing='lds'``)."""
        return self.smoothing.reproducible_online

    def feature_names(self) -> list[str]:
        """Name of each entry of a feature vector, in order."""
        raise NotImplementedError

    def transform(self, windows: np.ndarray) -> np.ndarray:
        """Features of windows ``(n_windows, n_channels, n_window)`` -> ``(n_windows, n_features)``."""
        raise NotImplementedError

    def build_extractor(self) -> StreamingExtractor:
        """A fresh live extractor computing exactly these features (refuses offline-only smoothing)."""
        return self._extractor(self.smoothing.build())

    def _extractor(self, smoother) -> StreamingExtractor:
        return StreamingExtractor(
            self.transform,
            n_channels=len(self.channels),
            n_features=self.n_features,
            sfreq=self.sfreq,
            n_window=self.n_window,
            n_hop=self.n_hop,
            smoother=smoother,
            gap_factor=self.gap_factor,
            nonfinite=self._nonfinite,
        )

    def compute(self, data, timestamps=None) -> FeatureFrames:
        """Features of a whole recording, through the same extractor the live service uses.

        Parameters
        ----------
        data : array, shape (n_channels, n_times)
            The recording, time last, in ``unit``.
        timestamps : array, shape (n_times,) | None
            Sample times in seconds; None means ``arange(n_times) / sfreq`` (one continuous
            segment). Gaps in the timestamps split the recording exactly as live.

        Returns
        -------
        frames : FeatureFrames
            ``(n_windows, n_features)`` vectors stamped with the time of their window's last
            sample. With ``smoothing='lds'`` each continuous segment is RTS-smoothed offline.
        """
        data = np.asarray(data, dtype=float) if not isinstance(data, np.ndarray) else data
        if timestamps is None:
            n_times = data.shape[-1] if data.ndim else 0
            timestamps = np.arange(n_times) / self.sfreq
        if self.smoothing.method != "lds":
            return self.build_extractor().push(data, timestamps)
        frames = self._extractor(None).push(data, timestamps)
        feats = frames.features.copy()
        for seg in np.unique(frames.segments):
            sel = frames.segments == seg
            feats[sel] = lds_smooth(
                feats[sel],
                transition_cov=self.smoothing.transition_cov,
                observation_cov=self.smoothing.observation_cov,
                initial_cov=self.smoothing.initial_cov,
            )
        return FeatureFrames(feats, frames.timestamps, frames.segments)


class DESpec(_SpecBase):
    """Differential entropy per channel and band; vector index = ``channel * n_bands + band``."""

    kind: Literal["de"] = "de"
    unit: str = "uV"
    window_s: float = Field(1.0, gt=0, description="Window length in seconds (SEED: 1 s; SEED-IV/V: 4 s).")
    hop_s: float = Field(1.0, gt=0, description="Time between vectors in seconds.")
    bands: tuple[Band, ...] = Field(SEED_BANDS, min_length=1)
    formula: Literal["bcmi", "gaussian"] = "bcmi"
    n_fft: int | None = Field(None, ge=2, description="FFT length for 'bcmi' (None: window length).")
    log_base: Literal["2", "e", "10"] | None = None

    @model_validator(mode="after")
    def _bands_fit(self):
        if self.formula == "gaussian" and self.n_fft is not None:
            raise ValueError("n_fft must be None for formula='gaussian' (it always uses the window length).")
        n_fft = self.n_fft or self.n_window
        if n_fft < self.n_window:
            raise ValueError(f"n_fft={n_fft} is shorter than the window ({self.n_window} samples).")
        _de.band_bin_weights(self.bands, self.sfreq, n_fft, self.formula)
        return self

    def feature_names(self) -> list[str]:
        return [f"{ch}:{band.name}" for ch in self.channels for band in self.bands]

    def transform(self, windows: np.ndarray) -> np.ndarray:
        power = _de._band_power(windows, self.sfreq, self.bands, self.formula, self.n_fft or self.n_window)
        out = _de._de_from_power(power, self.formula, _de._log_fn(self.formula, self.log_base))
        return out.reshape(windows.shape[0], -1)


class EyeSpec(_SpecBase):
    """The 33 eye-movement features of a trailing gaze buffer (``window_s`` >= 10 s)."""

    kind: Literal["eye"] = "eye"
    modality: str = Field("eye", pattern=r"^[a-z][a-z0-9_]*$")
    channels: tuple[str, ...] = EYE_CHANNELS
    unit: str = "deg,mm"
    window_s: float = Field(10.0, gt=0, description="Trailing buffer the features are computed over.")
    hop_s: float = Field(1.0, gt=0)
    params: EyeParams = EyeParams()

    _nonfinite: ClassVar[str] = "keep"  # invalid gaze samples are blinks/gaps the eye module handles

    @field_validator("channels")
    @classmethod
    def _eye_layout(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        if tuple(channels) != EYE_CHANNELS:
            raise ValueError(f"eye channels must be exactly {EYE_CHANNELS} in this order, got {channels}")
        return channels

    @model_validator(mode="after")
    def _long_enough(self):
        if self.window_s < 10:
            raise ValueError(
                f"window_s must be >= 10 s for eye features (pupil band DE), got {self.window_s}"
            )
        return self

    def feature_names(self) -> list[str]:
        return list(eye_feature_names(self.params))

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return eye_features(windows, self.sfreq, self.params)


class HrvSpec(_SpecBase):
    """Heart rate and HRV per channel (ECG or PPG); vector index = ``channel * n_features + feature``."""

    kind: Literal["hrv"] = "hrv"
    modality: str = Field("ecg", pattern=r"^[a-z][a-z0-9_]*$")
    unit: str = "mV"
    window_s: float = Field(10.0, gt=0, description="Beats are detected over this trailing window.")
    hop_s: float = Field(1.0, gt=0)
    params: HrvParams = HrvParams()

    def feature_names(self) -> list[str]:
        return [f"{ch}:{f}" for ch in self.channels for f in self.params.features]

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return hrv_features(windows, self.sfreq, self.params).reshape(windows.shape[0], -1)


class PpsSpec(_SpecBase):
    """Statistics per peripheral channel; vector index = ``channel * n_statistics + statistic``."""

    kind: Literal["pps"] = "pps"
    modality: str = Field("pps", pattern=r"^[a-z][a-z0-9_]*$")
    unit: str = "native"
    window_s: float = Field(1.0, gt=0)
    hop_s: float = Field(1.0, gt=0)
    statistics: tuple[str, ...] = Field(PICARD_STATISTICS, min_length=1)

    @field_validator("statistics")
    @classmethod
    def _known(cls, stats: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in stats if s not in PPS_STATISTICS]
        if unknown:
            raise ValueError(f"unknown statistics {unknown}; choose from {sorted(PPS_STATISTICS)}")
        return stats

    def feature_names(self) -> list[str]:
        return [f"{ch}:{s}" for ch in self.channels for s in self.statistics]

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return pps_statistics(windows, self.statistics).reshape(windows.shape[0], -1)


FeatureSpec = Annotated[DESpec | EyeSpec | HrvSpec | PpsSpec, Field(discriminator="kind")]
_FEATURE_SPEC = TypeAdapter(FeatureSpec)


def feature_spec_from_dict(obj: Any) -> DESpec | EyeSpec | HrvSpec | PpsSpec:
    """Rebuild a spec from its JSON-like dict (``spec.model_dump(mode='json')``).

    Raises ValueError listing every invalid field.
    """
    try:
        return _FEATURE_SPEC.validate_python(obj)
    except ValidationError as err:
        raise ValueError(f"Invalid feature spec: {_describe(err)}") from None


def feature_spec_from_json(text: str | bytes) -> DESpec | EyeSpec | HrvSpec | PpsSpec:
    """Rebuild a spec from JSON text (``spec.model_dump_json()``)."""
    try:
        return _FEATURE_SPEC.validate_json(text)
    except ValidationError as err:
        raise ValueError(f"Invalid feature spec: {_describe(err)}") from None


def feature_spec_json_schema() -> dict:
    """The JSON schema of FeatureSpec (all kinds)."""
    return _FEATURE_SPEC.json_schema()


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)
