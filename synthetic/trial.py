"""One synthetic trial: :class:`SyntheticTrial`, :func:`generate_trial` and :func:`iter_trials`.

A trial's latent (:mod:`synthetic.latent`) and shared physiology (:mod:`synthetic.physiology`) are
simulated for the modalities asked for, then each modality's renderer produces its raw signals.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from signals._checks import check_type
from signals.eye import EYE_CHANNELS

from ._random import _TRIAL
from .config import (
    EYE_UNITS,
    MODALITIES,
    PPS_CHANNELS,
    PPS_UNITS,
    SyntheticConfig,
    _check_index,
    _check_modalities,
)
from .ecg import _ecg
from .eeg import _eeg
from .eye import _eye
from .latent import _latent, _trial_labels
from .physiology import _cardiac, _ocular, _respiration
from .pps import _pps


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
