"""Synthetic multimodal physiology driven by a shared emotion latent (the M2S test bed).

Raw signals (EEG, eye tracker, ECG, DEAP-style peripheral channels) for a whole synthetic
dataset of subjects × sessions × trials, deterministic and cheap. Features are computed later by
the rest of :mod:`signals`, exactly as for recorded data.

Generative model
----------------
Every trial has a class ``k`` and a latent trajectory ``z(t)`` of dimension ``latent.dim``
sampled at 20 Hz::

    z(t) = intensity(t) · μ_k + ε(t)

``μ_k`` are unit-norm, centred class means (a regular simplex when ``n_classes <= dim``), drawn
from the seed. ``intensity(t)`` ramps up from ``intensity_start`` (the stimulus takes hold),
fluctuates slowly and has short emotional episodes; it is returned as ground truth. ``ε`` is slow
latent noise shared by all modalities (emotion-unrelated state).

Each modality reads ``z`` through its own linear map to a few *drivers* (dimensionless, about
unit scale), each map being a population map (from the seed) plus a subject deviation (from
``(seed, subject)``, scaled by ``subject_variability``); a fraction ``latent.class_alignment`` of
each map's row lies in the span of the class means, and the rows are spread evenly over
that span (a tight frame), so the class information of a modality does not hinge on the seed. Drivers are multiplied by the modality's
``effect_size`` and receive modality-specific nuisance: a per-trial offset (``trial_noise_std``)
and slow within-trial noise (``state_noise_std``). Drivers then set physiological parameters:

- EEG: the log amplitude of delta..gamma oscillations in every channel (one driver per channel
  and band: a class- and subject-specific spatial pattern, see :func:`class_patterns`), realised
  as band-limited noise with time-varying envelopes, over 1/f background, slow drift, per-trial
  channel gains, blink artefacts on frontal channels (the SAME blinks as the eye tracker) and
  occasional EMG bursts on temporal channels.
- Eye: fixation durations, saccade amplitudes (durations follow the main sequence), blink rate
  and duration, fixational drift (ocular drivers) and pupil diameter (plus a slow
  luminance-like nuisance, hippus and post-blink dips). During blinks and track
  loss validity is 0 and gaze and pupil are NaN.
- ECG: heart rate (cardiac driver) with respiratory sinus arrhythmia and slow HRV; P-QRS-T
  waves as Gaussians (McSharry et al. 2003 style) with z-dependent T-wave and R-wave amplitude;
  baseline wander, EMG noise, mains, motion artefacts and per-trial lead gains.
- PPS (DEAP's 8 channels): hEOG/vEOG from the same gaze and blinks; zEMG/tEMG with z-modulated
  amplitude and bursts; GSR tonic level plus phasic responses at a z-driven rate; respiration
  rate and depth from z; plethysmograph pulses following the SAME beats as the ECG; slow skin
  temperature.

Shared physiology (blinks and gaze: EEG/eye/PPS; beats and breathing: ECG/PPS) is coupled across
modalities as it is in a body; sensor noise, gains, drifts and artefacts are modality-specific.
Every trial uses its own random streams derived with :class:`numpy.random.SeedSequence` from
``(seed, subject, session, trial, component)``, so a trial is reproducible alone, and generating
fewer modalities never changes the ones generated.

Calibration
-----------
Measured on 2026-11-24 with ``benchmarks/synthetic_separability.py`` (default config except
6 subjects × 1 session × 15 trials × 60 s; first 9 trials train, last 6 test; shrinkage LDA on
z-scored per-window features; balanced accuracy, mean ± std over subjects):

    ====  ========  =========================  =========================  ====================
    seed  modality  features                   LDA balanced accuracy (%)  best single feature
    ====  ========  =========================  =========================  ====================
    0     EEG       DE 62×5, 1-s windows       62.1 ± 5.3                 33.1 ± 5.9
    0     eye       33 eye features, 10 s/2 s  71.4 ± 11.4                51.8 ± 6.1
    0     ECG       DE 2×5, 4 s/1 s            72.2 ± 13.0                56.9 ± 12.5
    0     PPS       Picard 8×6, 4 s/1 s        77.7 ± 7.7                 58.7 ± 10.2
    1     EEG                                  68.5 ± 8.8                 45.0 ± 7.1
    2     EEG                                  69.1 ± 9.6                 39.1 ± 5.0
    ====  ========  =========================  =========================  ====================

Chance is 33.3 %. The EEG effect size (2.5) was then set with the deep supervised baseline of
``m2s-train benchmark`` (ER encoder + classifier on T = 5 vectors of 2-s DE windows, all 15
default subjects): 85.9 % EEG→EEG at 2.5, against 90.8 % at 3, 98.0 % at 4 and 99.3 % at the
first default of 6, which left no room to compare methods; the same baseline gives 74.7 % for
the eye. Every modality's best single feature stays far below its full classifier. Most of the
remaining error is shared by all modalities (latent noise, the intensity ramp at trial onset),
the rest is modality-specific (per-trial gains and offsets, sensor noise). Re-run
``python benchmarks/synthetic_separability.py [--seed N] [--config file.json]`` after changing a
default.

Timing (measured on 2026-11-24, one core, OMP/BLAS threads = 1): one 60-s trial with all four
modalities and the default 62-channel EEG takes about 0.11 s (EEG 0.10 s, eye, ECG and PPS
about 5 ms each).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy.signal import lfilter

from ._checks import check_range, check_type, ensure_int
from .eye import EYE_CHANNELS

MODALITIES: tuple[str, ...] = ("eeg", "eye", "ecg", "pps")

SEED_CHANNELS: tuple[str, ...] = (
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8",
    "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ",
    "C2", "C4", "C6", "T8", "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7",
    "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6",
    "PO8", "CB1", "O1", "OZ", "O2", "CB2",
)  # fmt: skip

EYE_UNITS: tuple[str, ...] = ("deg", "deg", "mm", "mm", "bool")
PPS_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # fmt: skip
PPS_UNITS: tuple[str, ...] = ("uV", "uV", "uV", "uV", "uS", "a.u.", "a.u.", "degC")
EEG_BANDS_HZ: tuple[tuple[float, float], ...] = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 50))
EEG_BAND_NAMES: tuple[str, ...] = ("delta", "theta", "alpha", "beta", "gamma")

_LATENT_FS = 20.0  # Hz, grid of z(t), intensity and all drivers
_CARDIAC_FS = 250.0  # Hz, grid on which beat times are found (independent of the ECG rate)

# Random-stream tags: one independent stream per component and level.
_POP, _SUBJ, _SESS, _TRIAL, _LABELS = 0, 1, 2, 3, 4
_C_CLASS, _C_LATENT, _C_OCULAR, _C_CARDIAC, _C_RESP, _C_EEG, _C_EYE, _C_ECG, _C_PPS = range(9)

# Drivers (rows of each component's map). Ocular/cardiac/resp are shared physiology.
_OCULAR_DRIVERS = ("fixation_duration", "saccade_amplitude", "blink_rate", "blink_duration", "fixation_drift")
_CARDIAC_DRIVERS = ("heart_rate",)
_RESP_DRIVERS = ("rate", "depth")
_EYE_DRIVERS = ("pupil",)
_ECG_DRIVERS = ("t_wave", "r_wave")
_PPS_DRIVERS = ("zemg", "temg", "gsr_tonic", "scr_rate", "pleth_amplitude", "temperature")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _ModalityNoise(_Model):
    effect_size: float = Field(
        default=1.0,
        ge=0,
        description="Multiplies every emotion-driven modulation of this modality "
        "(0: the modality carries no class information).",
    )
    trial_noise_std: float = Field(
        default=0.5,
        ge=0,
        description="Std of a per-trial random offset added to each driver (driver units, "
        "about the scale of the class effect at effect_size 1): modality-specific nuisance "
        "that differs between trials.",
    )
    state_noise_std: float = Field(
        default=0.4,
        ge=0,
        description="Std of slow within-trial noise on each driver (driver units).",
    )
    state_noise_tau_s: float = Field(default=5.0, gt=0, description="Time constant of that noise (s).")


class LatentConfig(_Model):
    """Shared emotion latent ``z(t) = intensity(t) · μ_k + ε(t)`` and its within-trial dynamics."""

    dim: int = Field(default=6, ge=1, le=64, description="Dimension of the latent z.")
    class_alignment: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Fraction of the squared norm of each modality map row that lies in the "
        "span of the class means (the rest reads the emotion-unrelated latent noise).",
    )
    noise_std: float = Field(default=0.3, ge=0, description="Std of the slow latent noise ε.")
    noise_tau_s: float = Field(default=4.0, gt=0, description="Time constant of ε (s).")
    intensity_start: float = Field(
        default=0.2, ge=0, le=1, description="Intensity at trial onset (it ramps up to about 1)."
    )
    ramp_s: float = Field(default=8.0, gt=0, description="Time constant of the intensity ramp-up (s).")
    fluctuation_std: float = Field(
        default=0.2, ge=0, description="Relative std of the slow multiplicative intensity fluctuation."
    )
    fluctuation_tau_s: float = Field(default=6.0, gt=0, description="Time constant of that fluctuation (s).")
    episode_rate_per_min: float = Field(
        default=2.0, ge=0, description="Rate of short emotional episodes (intensity bursts), per minute."
    )
    episode_gain: float = Field(default=0.4, ge=0, description="Mean intensity added at an episode's peak.")
    episode_duration_s: float = Field(
        default=4.0, gt=0, description="Duration (FWHM-like) of an episode (s)."
    )


class EegConfig(_ModalityNoise):
    """EEG: band oscillations with class-/subject-specific log-amplitude patterns, in µV."""

    effect_size: float = Field(
        default=2.5,
        ge=0,
        description="Multiplies every emotion-driven modulation of this modality (0: no class "
        "information). The default is calibrated (module docstring, 'Calibration').",
    )

    sfreq: float = Field(
        default=200.0, gt=100, description="Sampling rate (Hz); > 100 so gamma (to 50 Hz) fits."
    )
    channel_names: tuple[str, ...] = Field(
        default=SEED_CHANNELS,
        min_length=1,
        description="Channel names (any count). Blink artefacts go to names starting with FP/AF/F, "
        "EMG bursts to T/FT/TP, the alpha boost to P/PO/O/CB.",
    )
    band_amplitude_uv: tuple[float, float, float, float, float] = Field(
        default=(6.0, 4.0, 5.0, 2.5, 1.0),
        description="RMS amplitude (µV) of the delta, theta, alpha, beta, gamma oscillations.",
    )
    log_amplitude_per_unit: float = Field(
        default=0.08,
        ge=0,
        description="Natural-log amplitude change of a band per driver unit (×effect_size).",
    )
    background_uv: float = Field(default=3.0, ge=0, description="RMS of the 1/f background noise (µV).")
    drift_uv: float = Field(default=8.0, ge=0, description="RMS of the slow (< 0.1 Hz) drift (µV).")
    trial_gain_std: float = Field(
        default=0.15, ge=0, description="Std of the per-trial, per-channel log gain (electrode contact)."
    )
    blink_uv: float = Field(default=120.0, ge=0, description="Blink artefact peak at FP channels (µV).")
    emg_burst_rate_per_min: float = Field(default=3.0, ge=0, description="Rate of EMG bursts (per minute).")
    emg_burst_uv: float = Field(
        default=8.0, ge=0, description="RMS of an EMG burst on temporal channels (µV)."
    )

    @field_validator("channel_names")
    @classmethod
    def _unique(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return _check_unique_names(names)


class EyeConfig(_ModalityNoise):
    """Eye tracker: rows gaze_x, gaze_y (deg), pupil_left, pupil_right (mm), validity (1/0)."""

    effect_size: float = Field(
        default=3.5,
        ge=0,
        description="Multiplies every emotion-driven modulation of this modality (0: no class "
        "information). The default is calibrated (module docstring, 'Calibration').",
    )

    sfreq: float = Field(default=120.0, ge=30, description="Sampling rate (Hz).")
    pupil_mm: float = Field(default=3.5, gt=0, description="Population mean pupil diameter (mm).")
    pupil_mm_per_unit: float = Field(default=0.1, ge=0, description="Pupil change per driver unit (mm).")
    fixation_ms: float = Field(default=280.0, gt=0, description="Population mean fixation duration (ms).")
    fixation_log_per_unit: float = Field(
        default=0.03, ge=0, description="Log fixation-duration change per driver unit."
    )
    saccade_deg: float = Field(default=5.0, gt=0, description="Population mean saccade amplitude (deg).")
    saccade_log_per_unit: float = Field(
        default=0.06, ge=0, description="Log saccade-amplitude change per driver unit."
    )
    blink_rate_per_min: float = Field(
        default=15.0, gt=0, description="Population mean blink rate (per minute)."
    )
    blink_log_per_unit: float = Field(
        default=0.35, ge=0, description="Log blink-rate change per driver unit."
    )
    blink_ms: float = Field(default=180.0, gt=100, description="Population mean blink duration (ms).")
    blink_duration_log_per_unit: float = Field(
        default=0.25, ge=0, description="Log change of the blink duration above 80 ms per driver unit."
    )
    fixation_drift_deg: float = Field(default=0.15, ge=0, description="RMS fixational drift of gaze (deg).")
    drift_log_per_unit: float = Field(
        default=0.03, ge=0, description="Log fixational-drift change per driver unit."
    )
    screen_half_width_deg: float = Field(default=15.0, gt=1, description="Gaze stays within ± this (deg).")
    luminance_std_mm: float = Field(
        default=0.25,
        ge=0,
        description="Std of the slow luminance-like pupil nuisance (mm), per trial and within.",
    )
    luminance_tau_s: float = Field(default=8.0, gt=0, description="Time constant of that nuisance (s).")
    gaze_noise_deg: float = Field(default=0.05, ge=0, description="Gaze sensor noise (deg RMS).")
    pupil_noise_mm: float = Field(default=0.02, ge=0, description="Pupil sensor noise (mm RMS).")
    dropout_rate_per_min: float = Field(
        default=0.5, ge=0, description="Rate of track-loss periods (0.5-1.5 s of invalid data), per minute."
    )


class EcgConfig(_ModalityNoise):
    """ECG: P-QRS-T waves at a z-driven heart rate, in mV."""

    effect_size: float = Field(
        default=3.0,
        ge=0,
        description="Multiplies every emotion-driven modulation of this modality (0: no class "
        "information). The default is calibrated (module docstring, 'Calibration').",
    )

    sfreq: float = Field(default=256.0, ge=100, description="Sampling rate (Hz).")
    channel_names: tuple[str, ...] = Field(
        default=("ECG1", "ECG2"), min_length=1, max_length=3, description="Lead names (1-3 leads)."
    )
    heart_rate_bpm: float = Field(
        default=70.0, gt=30, lt=180, description="Population mean heart rate (bpm)."
    )
    bpm_per_unit: float = Field(default=2.5, ge=0, description="Heart-rate change per driver unit (bpm).")
    hrv_bpm: float = Field(default=2.0, ge=0, description="Std of slow heart-rate variability (bpm).")
    rsa_fraction: float = Field(
        default=0.04, ge=0, lt=0.5, description="Respiratory sinus arrhythmia: relative heart-rate swing."
    )
    wave_log_per_unit: float = Field(
        default=0.1, ge=0, description="Log change of T-wave and R-wave amplitude per driver unit."
    )
    baseline_wander_mv: float = Field(default=0.1, ge=0, description="RMS of the baseline wander (mV).")
    noise_mv: float = Field(default=0.03, ge=0, description="RMS of broadband EMG/sensor noise (mV).")
    mains_mv: float = Field(default=0.01, ge=0, description="Amplitude of 50 Hz mains interference (mV).")
    trial_gain_std: float = Field(default=0.15, ge=0, description="Std of the per-trial, per-lead log gain.")
    artifact_rate_per_min: float = Field(
        default=1.0, ge=0, description="Rate of motion artefacts (per minute)."
    )
    artifact_mv: float = Field(default=0.5, ge=0, description="Peak of a motion artefact (mV).")


class PpsConfig(_ModalityNoise):
    """DEAP-style peripheral channels (see PPS_CHANNELS / PPS_UNITS)."""

    effect_size: float = Field(
        default=4.0,
        ge=0,
        description="Multiplies every emotion-driven modulation of this modality (0: no class "
        "information). The default is calibrated (module docstring, 'Calibration').",
    )

    sfreq: float = Field(default=128.0, ge=64, description="Sampling rate (Hz).")
    eog_uv_per_deg: float = Field(default=15.0, ge=0, description="EOG gain (µV per degree of gaze).")
    eog_blink_uv: float = Field(default=250.0, ge=0, description="Blink peak in vEOG (µV).")
    eog_drift_uv: float = Field(default=20.0, ge=0, description="RMS of the slow EOG drift (µV).")
    emg_uv: float = Field(default=5.0, gt=0, description="Baseline EMG RMS (µV).")
    emg_log_per_unit: float = Field(
        default=0.12, ge=0, description="Log EMG amplitude change per driver unit."
    )
    emg_burst_rate_per_min: float = Field(default=4.0, ge=0, description="EMG burst rate (per minute).")
    gsr_us: float = Field(default=5.0, gt=0, description="Population tonic skin conductance (µS).")
    gsr_us_per_unit: float = Field(
        default=0.25, ge=0, description="Tonic conductance change per driver unit (µS)."
    )
    scr_rate_per_min: float = Field(
        default=3.0, gt=0, description="Mean rate of phasic responses (per minute)."
    )
    scr_log_per_unit: float = Field(default=0.25, ge=0, description="Log SCR-rate change per driver unit.")
    scr_us: float = Field(default=0.2, ge=0, description="Mean SCR amplitude (µS).")
    respiration_per_min: float = Field(
        default=15.0, gt=2, lt=40, description="Population breathing rate (per min)."
    )
    respiration_log_per_unit: float = Field(
        default=0.06, ge=0, description="Log change of breathing rate and depth per driver unit."
    )
    pleth_log_per_unit: float = Field(
        default=0.1, ge=0, description="Log change of pulse amplitude (vasoconstriction) per driver unit."
    )
    temperature_c: float = Field(default=32.5, description="Population skin temperature (°C).")
    temperature_c_per_unit: float = Field(
        default=0.05, ge=0, description="Temperature change per driver unit (°C)."
    )
    trial_gain_std: float = Field(
        default=0.15,
        ge=0,
        description="Std of per-trial log gains of the EMG, GSR, pulse and respiration sensors.",
    )
    noise_scale: float = Field(default=1.0, ge=0, description="Multiplies every sensor-noise level.")


def _default_class_names(n_classes: int) -> tuple[str, ...]:
    if n_classes == 3:
        return ("negative", "neutral", "positive")
    if n_classes == 2:
        return ("low", "high")
    return tuple(f"class_{k}" for k in range(n_classes))


class SyntheticConfig(_Model):
    """Everything that defines a synthetic dataset; JSON-loadable (:meth:`from_json`).

    Two configs that differ only in ``seed`` give two different but statistically comparable
    datasets (population patterns, subjects and trials all change).
    """

    seed: int = Field(default=0, ge=0, description="Root seed of every random stream.")
    n_subjects: int = Field(default=15, ge=1, description="Number of subjects.")
    n_sessions: int = Field(default=1, ge=1, description="Sessions per subject.")
    n_trials: int = Field(default=15, ge=1, description="Trials per session.")
    n_classes: int = Field(default=3, ge=2, description="Number of emotion classes.")
    class_names: tuple[str, ...] = Field(
        default=("negative", "neutral", "positive"),
        description="One unique name per class; default negative/neutral/positive for 3 classes, "
        "low/high for 2, class_<k> otherwise.",
    )
    trial_duration_s: float = Field(default=60.0, ge=2, le=3600, description="Length of each trial (s).")
    subject_variability: float = Field(
        default=0.5,
        ge=0,
        description="Scale of subject deviations from the population (emotion maps and "
        "physiological baselines); 0 makes all subjects statistically identical.",
    )
    latent: LatentConfig = Field(default_factory=LatentConfig, description="Shared emotion latent.")
    eeg: EegConfig = Field(default_factory=EegConfig, description="EEG generator.")
    eye: EyeConfig = Field(default_factory=EyeConfig, description="Eye-tracker generator.")
    ecg: EcgConfig = Field(default_factory=EcgConfig, description="ECG generator.")
    pps: PpsConfig = Field(default_factory=PpsConfig, description="Peripheral-channel generator.")

    @model_validator(mode="before")
    @classmethod
    def _fill_class_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "class_names" not in data:
            n_classes = data.get("n_classes", 3)
            if isinstance(n_classes, int) and not isinstance(n_classes, bool) and n_classes >= 2:
                data = {**data, "class_names": _default_class_names(n_classes)}
        return data

    @model_validator(mode="after")
    def _check_class_names(self) -> SyntheticConfig:
        if len(self.class_names) != self.n_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} names but n_classes={self.n_classes}; give "
                "one name per class or leave class_names out to get default names."
            )
        _check_unique_names(self.class_names)
        return self

    @classmethod
    def from_json(cls, path: str | Path) -> SyntheticConfig:
        """Load a config from a JSON file.

        Parameters
        ----------
        path : str | Path
            JSON file holding (part of) the fields; missing fields take their defaults.

        Returns
        -------
        config : SyntheticConfig

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        ValueError
            The file is not valid JSON or a field is invalid; the message names the file and
            the field (dotted path, e.g. ``eeg.sfreq``).
        """
        path = Path(check_type(path, (str, Path), "path"))
        if not path.is_file():
            raise FileNotFoundError(
                f"Synthetic config file {str(path)!r} does not exist; pass the path of a JSON file "
                "(e.g. written by SyntheticConfig().model_dump_json())."
            )
        text = path.read_text(encoding="utf-8")
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"Synthetic config file {str(path)!r} is not valid JSON: {err}.") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            problems = "; ".join(
                f"field '{'.'.join(str(p) for p in e['loc']) or '<root>'}': {e['msg']}"
                + (
                    f" (got {e['input']!r})"
                    if e["type"] != "missing" and not isinstance(e["input"], dict)
                    else ""
                )
                for e in err.errors()
            )
            raise ValueError(
                f"Synthetic config file {str(path)!r} is invalid: {problems}. Fix the field(s) or "
                "remove them to use the defaults."
            ) from None


def _check_unique_names(names: tuple[str, ...]) -> tuple[str, ...]:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"names must be unique, got {duplicates} more than once.")
    if any(not n for n in names):
        raise ValueError("names must be non-empty strings.")
    return names


@dataclass(frozen=True)
class SyntheticTrial:
    """One generated trial.

    Attributes
    ----------
    subject, session, trial : int
        Indices (0-based).
    label : int
        Class index in ``[0, n_classes)``.
    class_name : str
        ``config.class_names[label]``.
    signals : dict of str to array, shape (n_channels, n_times)
        Raw float64 signals per modality (only the modalities asked for). Eye: rows gaze_x,
        gaze_y (deg), pupil_left, pupil_right (mm), validity (1/0); NaN where validity is 0.
    sfreq : dict of str to float
        Sampling rate (Hz) per modality.
    channel_names : dict of str to tuple of str
        Channel names per modality.
    units : dict of str to tuple of str
        Unit of each channel per modality ('uV', 'mV', 'deg', 'mm', 'bool', 'uS', 'a.u.', 'degC').
    intensity_times : array, shape (n_latent,)
        Times (s from trial onset) of the latent grid (20 Hz).
    intensity : array, shape (n_latent,)
        Ground-truth emotion intensity (about 0.2 at onset, about 1 once established).
    latent : array, shape (latent.dim, n_latent)
        Ground-truth latent ``z(t)``.
    events : dict of str to array
        Ground truth of the shared physiology that was simulated: ``'r_peaks'`` (s, shape
        (n_beats,)), ``'heart_rate_bpm'`` (instantaneous rate on the latent grid, shape
        (n_latent,)), ``'blinks'`` and ``'dropouts'`` ((n, 2) onset/offset in s),
        ``'respiration_per_min'`` (on the latent grid).
    """

    subject: int
    session: int
    trial: int
    label: int
    class_name: str
    signals: dict[str, np.ndarray]
    sfreq: dict[str, float]
    channel_names: dict[str, tuple[str, ...]]
    units: dict[str, tuple[str, ...]]
    intensity_times: np.ndarray
    intensity: np.ndarray
    latent: np.ndarray
    events: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Trial length in seconds."""
        return float(self.intensity_times[-1])


# --------------------------------------------------------------------------------------------
# Random streams and small signal helpers
# --------------------------------------------------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _ou(
    rng: np.random.Generator, shape: tuple[int, ...], n: int, fs: float, tau: float, std: float
) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck (AR(1)) noise, shape (*shape, n), marginal std ``std``."""
    a = np.exp(-1.0 / (tau * fs))
    e = rng.standard_normal((*shape, n))
    e[..., 1:] *= np.sqrt(1 - a * a)
    return std * lfilter([1.0], [1.0, -a], e, axis=-1)


def _to_grid(values: np.ndarray, fs_src: float, n_dst: int, fs_dst: float) -> np.ndarray:
    """Linear interpolation of ``values`` (..., n_src) sampled at fs_src onto n_dst samples at fs_dst."""
    pos = np.arange(n_dst) * (fs_src / fs_dst)
    i0 = np.minimum(pos.astype(np.int64), values.shape[-1] - 2)
    frac = pos - i0
    return values[..., i0] * (1 - frac) + values[..., i0 + 1] * frac


def _spectral_noise(rng: np.random.Generator, shape: tuple[int, ...], n: int, fs: float, gain) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain(freqs)``, normalised to unit variance."""
    freqs = np.fft.rfftfreq(n, 1 / fs)
    g = np.asarray(gain(freqs), dtype=float)
    nz = np.flatnonzero(g)
    spec = np.zeros((*shape, freqs.size), dtype=complex)
    spec[..., nz] = (
        rng.standard_normal((*shape, nz.size)) + 1j * rng.standard_normal((*shape, nz.size))
    ) * g[nz]
    # var(irfft) = (2/n²) Σ|X_k|² over one-sided bins, E|X_k|² = 2 g_k².
    scale = n / (2 * np.sqrt(np.sum(g[nz] ** 2))) if nz.size else 0.0
    return np.fft.irfft(spec * scale, n=n, axis=-1)


def _band_noise(rng, shape, n, fs, low, high) -> np.ndarray:
    return _spectral_noise(rng, shape, n, fs, lambda f: ((f >= low) & (f < high)).astype(float))


def _pink_noise(rng, shape, n, fs, f_min=0.5) -> np.ndarray:
    return _spectral_noise(
        rng, shape, n, fs, lambda f: np.where(f >= f_min, 1 / np.sqrt(np.maximum(f, f_min)), 0)
    )


def _poisson_times(rng: np.random.Generator, rate_per_s: np.ndarray, fs: float) -> np.ndarray:
    """Event times (s) of an inhomogeneous Poisson process with rate given on a grid at fs."""
    hits = rng.random(rate_per_s.shape) < rate_per_s / fs
    idx = np.flatnonzero(hits)
    return (idx + rng.random(idx.size)) / fs


def _bumps(times: np.ndarray, widths: np.ndarray, amps: np.ndarray, n: int, fs: float) -> np.ndarray:
    """Sum of raised-cosine bumps starting at ``times`` (s), ``widths`` long (s); one loop per event."""
    out = np.zeros(n)
    for t0, w, a in zip(times, widths, amps, strict=True):
        i0, i1 = int(t0 * fs), min(int(np.ceil((t0 + w) * fs)), n)
        if i1 > i0:
            phase = (np.arange(i0, i1) / fs - t0) / w
            out[i0:i1] += a * 0.5 * (1 - np.cos(2 * np.pi * np.clip(phase, 0, 1)))
    return out


def _exp_kernel_train(
    times: np.ndarray, amps: np.ndarray, n: int, fs: float, tau_rise: float, tau_decay: float
):
    """Impulses at ``times`` filtered by a bi-exponential kernel peaking at ``amps`` (GSR phasic)."""
    train = np.zeros(n)
    idx = np.minimum((times * fs).astype(np.int64), n - 1)
    np.add.at(train, idx, amps)
    a_r, a_d = np.exp(-1 / (tau_rise * fs)), np.exp(-1 / (tau_decay * fs))
    resp = lfilter([1.0], [1.0, -a_d], train) - lfilter([1.0], [1.0, -a_r], train)
    t_peak = np.log(tau_decay / tau_rise) * tau_rise * tau_decay / (tau_decay - tau_rise)
    return resp / (np.exp(-t_peak / tau_decay) - np.exp(-t_peak / tau_rise))


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------------------------
# Population and subject structure
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _class_means(seed: int, n_classes: int, dim: int) -> np.ndarray:
    """Unit-norm class means μ_k, centred over classes, shape (n_classes, dim)."""
    rng = _rng(seed, _POP, _C_CLASS, n_classes, dim)
    if n_classes <= dim:
        q, _ = np.linalg.qr(rng.standard_normal((dim, n_classes)))
        mu = q.T
    else:
        mu = rng.standard_normal((n_classes, dim))
    mu = mu - mu.mean(axis=0)
    return _unit_rows(mu)


def _component_map(config: SyntheticConfig, subject: int, component: int, n_drivers: int) -> np.ndarray:
    """Map from z to the drivers of one component, shape (n_drivers, dim): population + subject deviation."""
    return _cached_map(config.seed, config.n_classes, config.latent.dim, config.latent.class_alignment,
                       config.subject_variability, subject, component, n_drivers)  # fmt: skip


@lru_cache(maxsize=256)
def _cached_map(seed, n_classes, dim, alignment, variability, subject, component, n_drivers) -> np.ndarray:
    mu = _class_means(seed, n_classes, dim)
    u, s, vt = np.linalg.svd(mu, full_matrices=True)
    rank = int(np.sum(s > 1e-9))
    span, perp = vt[:rank], vt[rank:]
    rng = _rng(seed, _POP, component, n_drivers)
    w = np.sqrt(alignment) * _unit_rows(_spread(rng, n_drivers, rank) @ span)
    if perp.shape[0]:
        w = w + np.sqrt(1 - alignment) * _unit_rows(_spread(rng, n_drivers, perp.shape[0]) @ perp)
    dev = _rng(seed, _SUBJ, subject, component, n_drivers).standard_normal((n_drivers, dim)) / np.sqrt(dim)
    w = _unit_rows(w + variability * dev)
    w.setflags(write=False)
    return w


def _spread(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    """Random (n, r) coefficients whose rows cover all r directions evenly (orthonormal columns or rows).

    With few drivers, independent random rows can all point the same way and hide a class
    contrast; an evenly spread (tight-frame) map keeps the total class information of a
    modality the same for every seed.
    """
    g = rng.standard_normal((max(n, r), min(n, r)))
    q, _ = np.linalg.qr(g)
    return q if n >= r else q.T


def _subject_normal(config: SyntheticConfig, subject: int, component: int, size) -> np.ndarray:
    """Subject-level standard normals for baselines of one component (from (seed, subject) only)."""
    return _rng(config.seed, _SUBJ, subject, component, 1000).standard_normal(size)


def class_patterns(config: SyntheticConfig, subject: int, modality: str) -> np.ndarray:
    """Expected emotion-driven modulation of one modality per class, at intensity 1.

    Parameters
    ----------
    config : SyntheticConfig
    subject : int
        Subject index in ``[0, n_subjects)``.
    modality : 'eeg' | 'eye' | 'ecg' | 'pps'

    Returns
    -------
    patterns : array
        ``'eeg'``: shape (n_classes, n_channels, 5), the change of the natural-log amplitude
        of the delta..gamma oscillations of each channel (log power changes twice as much).
        Other modalities: shape (n_classes, n_drivers), the dimensionless drivers of the
        modality and of the shared physiology it shows (eye: fixation duration, saccade
        amplitude, blink rate, blink duration, fixational drift, pupil; ecg: heart rate, T wave, R wave; pps: breathing rate and
        depth, heart rate, zEMG, tEMG, tonic GSR, SCR rate, pulse amplitude, temperature).
    """
    config = check_type(config, SyntheticConfig, "config")
    subject = _check_index(subject, config.n_subjects, "subject", "n_subjects")
    _check_modality(modality)
    mu = _class_means(config.seed, config.n_classes, config.latent.dim)
    if modality == "eeg":
        n_ch = len(config.eeg.channel_names)
        w = _component_map(config, subject, _C_EEG, n_ch * 5)
        gain = config.eeg.effect_size * config.eeg.log_amplitude_per_unit
        return gain * (mu @ w.T).reshape(config.n_classes, n_ch, 5)
    parts = {
        "eye": [(_C_OCULAR, len(_OCULAR_DRIVERS), config.eye), (_C_EYE, 1, config.eye)],
        "ecg": [(_C_CARDIAC, 1, config.ecg), (_C_ECG, 2, config.ecg)],
        "pps": [(_C_RESP, 2, config.pps), (_C_CARDIAC, 1, config.ecg), (_C_PPS, 6, config.pps)],
    }[modality]
    return np.concatenate(
        [cfg.effect_size * mu @ _component_map(config, subject, comp, n).T for comp, n, cfg in parts], axis=1
    )


# --------------------------------------------------------------------------------------------
# Labels and latent
# --------------------------------------------------------------------------------------------


def _check_index(value, n: int, name: str, n_name: str) -> int:
    value = ensure_int(value, name)
    check_range(value, f"{name} (must be < {n_name}={n})", low=0, high=n - 1)
    return value


def _check_modality(modality) -> str:
    if modality not in MODALITIES:
        raise ValueError(
            f"Invalid modality {modality!r}. Allowed values are {', '.join(map(repr, MODALITIES))}."
        )
    return modality


def trial_labels(config: SyntheticConfig, subject: int, session: int) -> np.ndarray:
    """Class of every trial of one session, block-balanced.

    Parameters
    ----------
    config : SyntheticConfig
    subject, session : int
        Indices in ``[0, n_subjects)`` and ``[0, n_sessions)``.

    Returns
    -------
    labels : array of int, shape (n_trials,)
        Each consecutive block of ``n_classes`` trials holds every class once, in an order
        shuffled from ``(seed, subject, session)``; a final partial block holds distinct classes.
        So the first and the last ``m · n_classes`` trials both contain every class.
    """
    config = check_type(config, SyntheticConfig, "config")
    subject = _check_index(subject, config.n_subjects, "subject", "n_subjects")
    session = _check_index(session, config.n_sessions, "session", "n_sessions")
    return _trial_labels(config, subject, session)


def _trial_labels(config: SyntheticConfig, subject: int, session: int) -> np.ndarray:
    rng = _rng(config.seed, _LABELS, subject, session)
    n_blocks = -(-config.n_trials // config.n_classes)
    blocks = [rng.permutation(config.n_classes) for _ in range(n_blocks)]
    return np.concatenate(blocks)[: config.n_trials].astype(np.int64)


def _latent(config: SyntheticConfig, key: tuple[int, ...], label: int):
    """Latent grid times, intensity (n_lat,) and z (dim, n_lat) of one trial."""
    lc = config.latent
    rng = _rng(*key, _C_LATENT)
    n_lat = int(round(config.trial_duration_s * _LATENT_FS)) + 1
    t = np.arange(n_lat) / _LATENT_FS
    ramp = lc.intensity_start + (1 - lc.intensity_start) * (1 - np.exp(-t / lc.ramp_s))
    fluct = _ou(rng, (), n_lat, _LATENT_FS, lc.fluctuation_tau_s, lc.fluctuation_std)
    n_ep = rng.poisson(lc.episode_rate_per_min * config.trial_duration_s / 60)
    centres = rng.uniform(0, config.trial_duration_s, n_ep)
    gains = lc.episode_gain * rng.gamma(4.0, 0.25, n_ep)
    sigma = lc.episode_duration_s / 2.355
    episodes = (gains[:, None] * np.exp(-0.5 * ((t - centres[:, None]) / sigma) ** 2)).sum(axis=0)
    intensity = np.maximum(ramp * (1 + fluct) + episodes, 0.0)
    mu = _class_means(config.seed, config.n_classes, lc.dim)[label]
    z = intensity * mu[:, None] + _ou(rng, (lc.dim,), n_lat, _LATENT_FS, lc.noise_tau_s, lc.noise_std)
    return t, intensity, z


def _drivers(config, subject, key, component, n, z, mod_cfg: _ModalityNoise, rng) -> np.ndarray:
    """Drivers (n, n_lat): effect · W z + per-trial offset + slow noise (modality-specific)."""
    w = _component_map(config, subject, component, n)
    d = mod_cfg.effect_size * (w @ z)
    d += rng.normal(0.0, mod_cfg.trial_noise_std, (n, 1)) if mod_cfg.trial_noise_std else 0.0
    if mod_cfg.state_noise_std:
        d += _ou(rng, (n,), z.shape[1], _LATENT_FS, mod_cfg.state_noise_tau_s, mod_cfg.state_noise_std)
    return d


# --------------------------------------------------------------------------------------------
# Shared physiology: eye movements and blinks, breathing, heartbeats
# --------------------------------------------------------------------------------------------


@dataclass
class _Ocular:
    starts: np.ndarray  # (n_ev,) s, fixations and saccades alternate
    ends: np.ndarray
    pos0: np.ndarray  # (n_ev, 2) deg
    pos1: np.ndarray
    blinks: np.ndarray  # (n_blinks, 2) s
    dropouts: np.ndarray  # (n_drop, 2) s
    drift_deg: np.ndarray  # (n_lat,) RMS of the fixational drift


def _ocular(config: SyntheticConfig, subject: int, key, z) -> _Ocular:
    ec = config.eye
    rng = _rng(*key, _C_OCULAR)
    d = _drivers(config, subject, key, _C_OCULAR, len(_OCULAR_DRIVERS), z, ec, rng)
    subj = _subject_normal(config, subject, _C_OCULAR, 5) * config.subject_variability
    fix_mean = ec.fixation_ms / 1000 * np.exp(0.3 * subj[0] + ec.fixation_log_per_unit * d[0])
    sac_mean = ec.saccade_deg * np.exp(0.3 * subj[1] + ec.saccade_log_per_unit * d[1])
    blink_rate = ec.blink_rate_per_min / 60 * np.exp(0.4 * subj[2] + ec.blink_log_per_unit * d[2])
    duration, half = config.trial_duration_s, ec.screen_half_width_deg
    starts, ends, pos0, pos1 = [], [], [], []
    t, pos = 0.0, rng.uniform(-half / 2, half / 2, 2)
    while t < duration:  # one iteration per fixation + saccade pair
        i = min(int(t * _LATENT_FS), fix_mean.size - 1)
        fix = max(rng.gamma(4.0, fix_mean[i] / 4), 0.06)
        starts.append(t), ends.append(t + fix), pos0.append(pos), pos1.append(pos)
        t += fix
        amp = rng.gamma(2.0, sac_mean[i] / 2)
        angle = rng.uniform(0, 2 * np.pi)
        new = pos + amp * np.array([np.cos(angle), 0.6 * np.sin(angle)])
        new = np.where(np.abs(new) > half, np.sign(new) * (2 * half - np.abs(new)), new)  # reflect
        new = np.clip(new, -half, half)
        sac = (21 + 2.2 * float(np.hypot(*(new - pos)))) / 1000
        starts.append(t), ends.append(t + sac), pos0.append(pos), pos1.append(new)
        t, pos = t + sac, new
    onsets = _poisson_times(rng, blink_rate, _LATENT_FS)
    lat_idx = np.minimum((onsets * _LATENT_FS).astype(np.int64), z.shape[1] - 1)
    scale = (ec.blink_ms / 1000 - 0.08) * np.exp(
        0.2 * subj[3] + ec.blink_duration_log_per_unit * d[3, lat_idx]
    )
    durs = np.minimum(0.08 + rng.gamma(4.0, scale / 4), 0.45)
    blinks = _non_overlapping(onsets, durs, duration, min_gap=0.3)
    drop_on = _poisson_times(rng, np.full(z.shape[1], ec.dropout_rate_per_min / 60), _LATENT_FS)
    dropouts = _non_overlapping(drop_on, rng.uniform(0.5, 1.5, drop_on.size), duration, min_gap=0.5)
    drift = ec.fixation_drift_deg * np.exp(0.2 * subj[4] + ec.drift_log_per_unit * d[4])
    return _Ocular(np.array(starts), np.array(ends), np.array(pos0), np.array(pos1), blinks, dropouts, drift)


def _non_overlapping(onsets, durations, duration, min_gap) -> np.ndarray:
    kept, last_end = [], -np.inf
    for t0, dur in zip(onsets, durations, strict=True):
        if t0 >= last_end + min_gap and t0 + dur < duration:
            kept.append((t0, t0 + dur))
            last_end = t0 + dur
    return np.array(kept, dtype=float).reshape(-1, 2)


def _render_gaze(oc: _Ocular, n: int, fs: float, rng: np.random.Generator, noise_deg: float) -> np.ndarray:
    """Gaze (2, n) in deg from the fixation/saccade sequence (cosine saccade profile)."""
    t = np.arange(n) / fs
    idx = np.clip(np.searchsorted(oc.starts, t, side="right") - 1, 0, oc.starts.size - 1)
    frac = np.clip((t - oc.starts[idx]) / (oc.ends[idx] - oc.starts[idx]), 0, 1)
    profile = 0.5 * (1 - np.cos(np.pi * frac))
    gaze = oc.pos0[idx] + (oc.pos1[idx] - oc.pos0[idx]) * profile[:, None]
    drift = _ou(rng, (2,), n, fs, 0.3, 1.0) * _to_grid(oc.drift_deg, _LATENT_FS, n, fs)  # fixational drift
    return gaze.T + drift + noise_deg * rng.standard_normal((2, n))


def _interval_mask(intervals: np.ndarray, n: int, fs: float) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for t0, t1 in intervals:
        mask[int(t0 * fs) : int(np.ceil(t1 * fs))] = True
    return mask


@dataclass
class _Resp:
    phase: np.ndarray  # (n_lat,) rad
    rate_per_min: np.ndarray
    depth: np.ndarray


def _respiration(config: SyntheticConfig, subject: int, key, z) -> _Resp:
    pc = config.pps
    rng = _rng(*key, _C_RESP)
    d = _drivers(config, subject, key, _C_RESP, 2, z, pc, rng)
    subj = _subject_normal(config, subject, _C_RESP, 2) * config.subject_variability
    rate = pc.respiration_per_min * np.exp(0.15 * subj[0] + pc.respiration_log_per_unit * d[0])
    rate = rate * np.exp(_ou(rng, (), z.shape[1], _LATENT_FS, 10.0, 0.08))
    depth = np.exp(0.2 * subj[1] + pc.respiration_log_per_unit * d[1])
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(rate / 60) / _LATENT_FS
    return _Resp(phase, rate, depth)


@dataclass
class _Cardiac:
    beats: np.ndarray  # (n_beats,) s, R-peak times
    rate_bpm: np.ndarray  # (n_lat,) instantaneous rate on the latent grid


def _cardiac(config: SyntheticConfig, subject: int, key, z, resp: _Resp) -> _Cardiac:
    ec = config.ecg
    rng = _rng(*key, _C_CARDIAC)
    d = _drivers(config, subject, key, _C_CARDIAC, 1, z, ec, rng)[0]
    subj = _subject_normal(config, subject, _C_CARDIAC, 1)[0] * config.subject_variability
    hr = ec.heart_rate_bpm + 12 * subj + ec.bpm_per_unit * d
    hr = hr + _ou(rng, (), z.shape[1], _LATENT_FS, 3.0, ec.hrv_bpm)
    hr = np.clip(hr * (1 + ec.rsa_fraction * np.sin(resp.phase)), 35, 190)
    n = int(round(config.trial_duration_s * _CARDIAC_FS))
    hr_fine = _to_grid(hr, _LATENT_FS, n, _CARDIAC_FS)
    cycles = rng.uniform(0, 1) + np.cumsum(hr_fine / 60) / _CARDIAC_FS
    k = np.floor(cycles)
    i = np.flatnonzero(np.diff(k) > 0)
    beats = (i + (k[i + 1] - cycles[i]) / (cycles[i + 1] - cycles[i])) / _CARDIAC_FS
    return _Cardiac(beats, hr)


def _beat_waves(t: np.ndarray, beats: np.ndarray, offsets, widths, amps) -> np.ndarray:
    """Sum over the previous and next beat of Gaussian waves; offsets/widths/amps (n_waves, n_beats)."""
    out = np.zeros(t.size)
    if beats.size == 0:
        return out
    nxt = np.clip(np.searchsorted(beats, t), 0, beats.size - 1)
    prv = np.clip(nxt - 1, 0, beats.size - 1)
    for b in (prv, nxt) if beats.size > 1 else (nxt,):
        dt = t - beats[b]
        for off, wid, amp in zip(offsets, widths, amps, strict=True):
            out += amp[b] * np.exp(-0.5 * ((dt - off[b]) / wid[b]) ** 2)
    return out


def _rr(beats: np.ndarray) -> np.ndarray:
    if beats.size < 2:
        return np.full(beats.size, 0.85)
    rr = np.diff(beats)
    return np.append(rr, rr[-1])


# --------------------------------------------------------------------------------------------
# Modalities
# --------------------------------------------------------------------------------------------


def _name_weights(names: Sequence[str], rules: Sequence[tuple[tuple[str, ...], float]], default: float):
    out = np.full(len(names), default)
    for i, name in enumerate(n.upper() for n in names):
        for prefixes, w in rules:
            if name.startswith(prefixes):
                out[i] = w
                break
    return out


def _eeg(config: SyntheticConfig, subject: int, key, z, ocular: _Ocular) -> np.ndarray:
    ec = config.eeg
    rng = _rng(*key, _C_EEG)
    names = ec.channel_names
    n_ch, fs = len(names), ec.sfreq
    n = int(round(config.trial_duration_s * fs))
    # Log amplitude per (channel, band) on the latent grid.
    d = _drivers(config, subject, key, _C_EEG, n_ch * 5, z, ec, rng).reshape(n_ch, 5, -1)
    subj = _subject_normal(config, subject, _C_EEG, (n_ch, 6)) * config.subject_variability
    posterior = _name_weights(names, [(("PO", "P", "O", "CB"), 1.0)], 0.0)
    base = np.log(np.asarray(ec.band_amplitude_uv))[None, :] + 0.3 * subj[:, :5]
    base[:, 2] += 0.7 * posterior  # posterior alpha
    gain = 0.2 * subj[:, 5] + rng.normal(0, ec.trial_gain_std, n_ch)  # subject and trial contact
    log_amp = base[:, :, None] + gain[:, None, None] + ec.log_amplitude_per_unit * d
    amp = _to_grid(np.exp(log_amp), _LATENT_FS, n, fs)  # (n_ch, 5, n)
    x = np.zeros((n_ch, n))
    for b, (lo, hi) in enumerate(EEG_BANDS_HZ):
        x += amp[:, b] * _band_noise(rng, (n_ch,), n, fs, lo, hi)
    x += ec.background_uv * np.exp(gain)[:, None] * _pink_noise(rng, (n_ch,), n, fs)
    x += _to_grid(_ou(rng, (n_ch,), z.shape[1], _LATENT_FS, 20.0, ec.drift_uv), _LATENT_FS, n, fs)
    # Blinks from the shared ocular events, projected mostly onto frontal channels.
    frontal = _name_weights(
        names, [(("FP",), 1.0), (("AF",), 0.6), (("FC", "FT"), 0.2), (("F",), 0.35)], 0.03
    )
    frontal = frontal * np.exp(0.2 * subj[:, 0])
    blink = _bumps(ocular.blinks[:, 0], np.diff(ocular.blinks, axis=1)[:, 0] + 0.1,
                   np.ones(len(ocular.blinks)), n, fs)  # fmt: skip
    x += ec.blink_uv * frontal[:, None] * blink[None, :]
    # EMG bursts on temporal channels.
    n_burst = rng.poisson(ec.emg_burst_rate_per_min * config.trial_duration_s / 60)
    if n_burst and ec.emg_burst_uv:
        temporal = _name_weights(names, [(("T", "FT", "TP"), 1.0), (("F7", "F8", "P7", "P8"), 0.5)], 0.1)
        env = _bumps(rng.uniform(0, config.trial_duration_s, n_burst), rng.uniform(0.5, 2.0, n_burst),
                     rng.uniform(0.5, 1.5, n_burst), n, fs)  # fmt: skip
        emg = _band_noise(rng, (n_ch,), n, fs, 20.0, min(90.0, 0.45 * fs))
        x += ec.emg_burst_uv * temporal[:, None] * env[None, :] * emg
    return x


def _eye(config: SyntheticConfig, subject: int, key, z, ocular: _Ocular) -> np.ndarray:
    ec = config.eye
    rng = _rng(*key, _C_EYE)
    fs = ec.sfreq
    n = int(round(config.trial_duration_s * fs))
    gaze = _render_gaze(ocular, n, fs, rng, ec.gaze_noise_deg)
    d = _drivers(config, subject, key, _C_EYE, 1, z, ec, rng)[0]
    subj = _subject_normal(config, subject, _C_EYE, 2) * config.subject_variability
    lum = rng.normal(0, ec.luminance_std_mm) + _ou(rng, (), z.shape[1], _LATENT_FS, ec.luminance_tau_s,
                                                   ec.luminance_std_mm)  # fmt: skip
    pupil_lat = ec.pupil_mm + 0.6 * subj[0] + ec.pupil_mm_per_unit * d + lum
    pupil = _to_grid(pupil_lat, _LATENT_FS, n, fs)
    pupil += 0.04 * _band_noise(rng, (), n, fs, 0.1, 1.5)  # hippus
    blink_ends = ocular.blinks[:, 1] if len(ocular.blinks) else np.empty(0)
    pupil -= _exp_kernel_train(blink_ends, np.full(blink_ends.size, 0.15), n, fs, 0.3, 1.0)
    right = pupil + 0.15 * subj[1] + ec.pupil_noise_mm * rng.standard_normal(n)
    left = pupil + ec.pupil_noise_mm * rng.standard_normal(n)
    invalid = _interval_mask(ocular.blinks, n, fs) | _interval_mask(ocular.dropouts, n, fs)
    out = np.vstack([gaze, left, right, (~invalid).astype(float)])
    out[:4, invalid] = np.nan
    return out


def _ecg(config: SyntheticConfig, subject: int, key, z, cardiac: _Cardiac, resp: _Resp) -> np.ndarray:
    ec = config.ecg
    rng = _rng(*key, _C_ECG)
    fs, n_leads = ec.sfreq, len(ec.channel_names)
    n = int(round(config.trial_duration_s * fs))
    t = np.arange(n) / fs
    d = _drivers(config, subject, key, _C_ECG, 2, z, ec, rng)
    subj = _subject_normal(config, subject, _C_ECG, (n_leads, 6)) * config.subject_variability
    beats = cardiac.beats
    lat_idx = np.minimum((beats * _LATENT_FS).astype(np.int64), z.shape[1] - 1)
    t_scale = np.exp(ec.wave_log_per_unit * d[0, lat_idx])
    r_scale = np.exp(ec.wave_log_per_unit * d[1, lat_idx])
    sq = np.sqrt(_rr(beats))  # Bazett-like scaling of P and T timing
    jitter = 1 + 0.03 * rng.standard_normal(beats.size)
    ones = np.ones(beats.size)
    offsets = np.array([-0.2 * sq, -0.035 * ones, 0 * ones, 0.035 * ones, 0.3 * sq])
    widths = np.array([0.025 * ones, 0.01 * ones, 0.012 * ones, 0.012 * ones, 0.06 * sq])
    lead_amp = np.array(
        [[0.15, -0.12, 1.2, -0.3, 0.35], [0.12, -0.05, 0.8, -0.45, 0.25], [0.1, -0.1, 1.0, -0.2, 0.3]]
    )
    x = np.zeros((n_leads, n))
    for lead in range(n_leads):
        a = lead_amp[lead] * np.exp(0.15 * subj[lead, :5])
        amps = a[:, None] * np.array([ones, r_scale, r_scale, r_scale, t_scale]) * jitter
        x[lead] = _beat_waves(t, beats, offsets, widths, amps)
    gain = np.exp(0.2 * subj[:, 5] + rng.normal(0, ec.trial_gain_std, n_leads))
    x *= gain[:, None]
    resp_wave = _to_grid(np.sin(resp.phase), _LATENT_FS, n, fs)
    wander = 0.6 * resp_wave + _to_grid(
        _ou(rng, (n_leads,), z.shape[1], _LATENT_FS, 6.0, 0.8), _LATENT_FS, n, fs
    )
    x += ec.baseline_wander_mv * wander
    x += ec.noise_mv * _band_noise(rng, (n_leads,), n, fs, 5.0, 0.45 * fs)
    x += ec.mains_mv * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi, (n_leads, 1)))
    n_art = rng.poisson(ec.artifact_rate_per_min * config.trial_duration_s / 60)
    if n_art:
        art = _bumps(rng.uniform(0, config.trial_duration_s, n_art), rng.uniform(0.2, 0.8, n_art),
                     rng.choice([-1.0, 1.0], n_art) * rng.uniform(0.5, 1.0, n_art), n, fs)  # fmt: skip
        x += ec.artifact_mv * rng.uniform(0.5, 1.0, (n_leads, 1)) * art
    return x


def _pps(config, subject, key, z, ocular: _Ocular, cardiac: _Cardiac, resp: _Resp) -> np.ndarray:
    pc = config.pps
    rng = _rng(*key, _C_PPS)
    fs = pc.sfreq
    n = int(round(config.trial_duration_s * fs))
    t = np.arange(n) / fs
    n_lat, ns = z.shape[1], pc.noise_scale
    d = _drivers(config, subject, key, _C_PPS, 6, z, pc, rng)
    subj = _subject_normal(config, subject, _C_PPS, 8) * config.subject_variability
    trial_gain = np.exp(rng.normal(0, pc.trial_gain_std, 5))  # zEMG, tEMG, GSR, pulse, belt

    def slow(tau, std):  # slow noise on the latent grid, brought to fs
        return _to_grid(_ou(rng, (), n_lat, _LATENT_FS, tau, std), _LATENT_FS, n, fs)

    def up(v):
        return _to_grid(v, _LATENT_FS, n, fs)

    gaze = _render_gaze(ocular, n, fs, rng, 0.0)
    blink = _bumps(ocular.blinks[:, 0], np.diff(ocular.blinks, axis=1)[:, 0] + 0.1,
                   np.ones(len(ocular.blinks)), n, fs)  # fmt: skip
    heog = pc.eog_uv_per_deg * gaze[0] + slow(20.0, pc.eog_drift_uv) + 3.0 * ns * rng.standard_normal(n)
    veog = pc.eog_uv_per_deg * gaze[1] + pc.eog_blink_uv * blink + slow(20.0, pc.eog_drift_uv)
    veog += 3.0 * ns * rng.standard_normal(n)

    emg_hi = min(60.0, 0.45 * fs)
    n_burst = rng.poisson(pc.emg_burst_rate_per_min * config.trial_duration_s / 60, 2)
    emg = []
    for ch in range(2):
        level = pc.emg_uv * np.exp(0.3 * subj[ch] + pc.emg_log_per_unit * d[ch]) * trial_gain[ch]
        bursts = _bumps(rng.uniform(0, config.trial_duration_s, n_burst[ch]), rng.uniform(0.3, 1.5, n_burst[ch]),
                        rng.uniform(1.0, 4.0, n_burst[ch]), n, fs)  # fmt: skip
        env = up(level) * (1 + bursts)
        emg.append(env * _band_noise(rng, (), n, fs, 20.0, emg_hi) + 0.5 * ns * rng.standard_normal(n))

    tonic = (pc.gsr_us * np.exp(0.3 * subj[2]) + pc.gsr_us_per_unit * d[2]) * trial_gain[2]
    scr_rate = pc.scr_rate_per_min / 60 * np.exp(0.3 * subj[3] + pc.scr_log_per_unit * d[3])
    scr_t = _poisson_times(rng, scr_rate, _LATENT_FS)
    scr = _exp_kernel_train(
        scr_t, pc.scr_us * trial_gain[2] * rng.gamma(3.0, 1 / 3, scr_t.size), n, fs, 0.75, 2.5
    )
    gsr = up(tonic) + scr + slow(30.0, 0.3) + 0.005 * ns * rng.standard_normal(n)

    phase = up(resp.phase)
    breath = trial_gain[4] * up(resp.depth) * (np.sin(phase) + 0.25 * np.sin(2 * phase + 0.5))
    respiration = breath + slow(15.0, 0.2) + 0.03 * ns * rng.standard_normal(n)

    beats = cardiac.beats
    ones = np.ones(beats.size)
    lat_idx = np.minimum((beats * _LATENT_FS).astype(np.int64), n_lat - 1)
    pulse_amp = np.exp(0.2 * subj[4] + pc.pleth_log_per_unit * d[4, lat_idx]) * trial_gain[3]
    pulse_amp = pulse_amp * (1 + 0.1 * np.sin(resp.phase[lat_idx]))
    ptt = 0.2 + 0.01 * rng.standard_normal(beats.size)  # pulse transit time (s)
    pleth = _beat_waves(t, beats, np.array([ptt + 0.12, ptt + 0.38]), np.array([0.07 * ones, 0.09 * ones]),
                        np.array([pulse_amp, 0.35 * pulse_amp]))  # fmt: skip
    pleth += 0.2 * up(np.sin(resp.phase)) + slow(10.0, 0.2) + 0.02 * ns * rng.standard_normal(n)

    temp_drive = lfilter([1 - np.exp(-1 / (20 * _LATENT_FS))], [1, -np.exp(-1 / (20 * _LATENT_FS))],
                         d[5] - d[5, 0]) + d[5, 0]  # fmt: skip
    temp = pc.temperature_c + 0.5 * subj[5] + rng.normal(0, 0.3) + pc.temperature_c_per_unit * temp_drive
    temperature = up(temp) + slow(30.0, 0.05) + 0.003 * ns * rng.standard_normal(n)
    return np.vstack([heog, veog, emg[0], emg[1], gsr, respiration, pleth, temperature])


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _check_modalities(modalities) -> tuple[str, ...]:
    if isinstance(modalities, str):
        modalities = (modalities,)
    check_type(modalities, (list, tuple), "modalities")
    if not modalities:
        raise ValueError(f"modalities is empty; name at least one of {', '.join(map(repr, MODALITIES))}.")
    for m in modalities:
        _check_modality(m)
    return tuple(dict.fromkeys(modalities))


def generate_trial(
    config: SyntheticConfig,
    subject: int,
    session: int,
    trial: int,
    *,
    modalities: Sequence[str] = MODALITIES,
) -> SyntheticTrial:
    """Generate one trial of raw multimodal signals.

    Parameters
    ----------
    config : SyntheticConfig
        Dataset definition.
    subject, session, trial : int
        Indices in ``[0, n_subjects)``, ``[0, n_sessions)``, ``[0, n_trials)``.
    modalities : sequence of {'eeg', 'eye', 'ecg', 'pps'}
        Which signals to produce (fewer is faster). The others, and the shared physiology,
        do not depend on this choice.

    Returns
    -------
    trial : SyntheticTrial
        ``signals[m]`` has shape (n_channels, round(trial_duration_s · sfreq)): EEG
        (n_eeg_channels, ·) in µV; eye (5, ·) gaze deg / pupil mm / validity; ECG (n_leads, ·)
        in mV; PPS (8, ·) in the units of ``PPS_UNITS``.

    Notes
    -----
    The trial's random streams come from ``SeedSequence((seed, subject, session, trial,
    component))`` and subject parameters from ``(seed, subject)`` only, so the result does
    not depend on which other trials were generated. About 0.11 s for a 60-s trial with all
    modalities on one core (see the module docstring).
    """
    config = check_type(config, SyntheticConfig, "config")
    subject = _check_index(subject, config.n_subjects, "subject", "n_subjects")
    session = _check_index(session, config.n_sessions, "session", "n_sessions")
    trial = _check_index(trial, config.n_trials, "trial", "n_trials")
    modalities = _check_modalities(modalities)
    return _generate(config, subject, session, trial, modalities)


def _generate(config, subject, session, trial, modalities) -> SyntheticTrial:
    label = int(_trial_labels(config, subject, session)[trial])
    key = (config.seed, _TRIAL, subject, session, trial)
    times, intensity, z = _latent(config, key, label)
    events: dict[str, np.ndarray] = {}
    ocular = resp = cardiac = None
    if {"eeg", "eye", "pps"} & set(modalities):
        ocular = _ocular(config, subject, key, z)
        events["blinks"], events["dropouts"] = ocular.blinks, ocular.dropouts
    if {"ecg", "pps"} & set(modalities):
        resp = _respiration(config, subject, key, z)
        cardiac = _cardiac(config, subject, key, z, resp)
        events["r_peaks"], events["heart_rate_bpm"] = cardiac.beats, cardiac.rate_bpm
        events["respiration_per_min"] = resp.rate_per_min
    signals, sfreq, names, units = {}, {}, {}, {}
    for m in modalities:
        if m == "eeg":
            signals[m] = _eeg(config, subject, key, z, ocular)
            names[m], units[m] = config.eeg.channel_names, ("uV",) * len(config.eeg.channel_names)
        elif m == "eye":
            signals[m] = _eye(config, subject, key, z, ocular)
            names[m], units[m] = EYE_CHANNELS, EYE_UNITS
        elif m == "ecg":
            signals[m] = _ecg(config, subject, key, z, cardiac, resp)
            names[m], units[m] = config.ecg.channel_names, ("mV",) * len(config.ecg.channel_names)
        else:
            signals[m] = _pps(config, subject, key, z, ocular, cardiac, resp)
            names[m], units[m] = PPS_CHANNELS, PPS_UNITS
        sfreq[m] = float(getattr(config, m).sfreq)
    return SyntheticTrial(
        subject=subject,
        session=session,
        trial=trial,
        label=label,
        class_name=config.class_names[label],
        signals=signals,
        sfreq=sfreq,
        channel_names=names,
        units=units,
        intensity_times=times,
        intensity=intensity,
        latent=z,
        events=events,
    )


def iter_trials(
    config: SyntheticConfig,
    *,
    modalities: Sequence[str] = MODALITIES,
    subjects: Sequence[int] | None = None,
) -> Iterator[SyntheticTrial]:
    """Iterate over the dataset: subjects, then sessions, then trials.

    Parameters
    ----------
    config : SyntheticConfig
    modalities : sequence of {'eeg', 'eye', 'ecg', 'pps'}
        Signals to produce.
    subjects : sequence of int | None
        Restrict to these subjects (default: all).

    Yields
    ------
    trial : SyntheticTrial
        Identical to ``generate_trial(config, subject, session, trial)``.
    """
    config = check_type(config, SyntheticConfig, "config")
    modalities = _check_modalities(modalities)
    if subjects is None:
        subjects = range(config.n_subjects)
    subjects = [_check_index(s, config.n_subjects, "subject", "n_subjects") for s in subjects]
    for subject in subjects:
        for session in range(config.n_sessions):
            for trial in range(config.n_trials):
                yield _generate(config, subject, session, trial, modalities)
