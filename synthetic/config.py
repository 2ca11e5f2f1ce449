"""Configuration of the synthetic generator: pydantic models, channel layouts and argument checks.

:class:`SyntheticConfig` defines a whole dataset (JSON-loadable with
:meth:`SyntheticConfig.from_json`); its parts configure the shared latent (:class:`LatentConfig`)
and each modality's renderer (:class:`EegConfig`, :class:`EyeConfig`, :class:`EcgConfig`,
:class:`PpsConfig`). The eye tracker's rows are :data:`signals.eye.EYE_CHANNELS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signals._checks import check_range, check_type, ensure_int

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


def _check_modalities(modalities) -> tuple[str, ...]:
    if isinstance(modalities, str):
        modalities = (modalities,)
    check_type(modalities, (list, tuple), "modalities")
    if not modalities:
        raise ValueError(f"modalities is empty; name at least one of {', '.join(map(repr, MODALITIES))}.")
    for m in modalities:
        _check_modality(m)
    return tuple(dict.fromkeys(modalities))
