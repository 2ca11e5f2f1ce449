"""The shared emotion latent, the class and subject structure, and the drivers each component reads.

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
that span (a tight frame), so the class information of a modality does not hinge on the seed.
Drivers are multiplied by the modality's ``effect_size`` and receive modality-specific nuisance:
a per-trial offset (``trial_noise_std``) and slow within-trial noise (``state_noise_std``).
Drivers then set physiological parameters, listed with the shared physiology
(:mod:`synthetic.physiology`: ocular, respiratory and cardiac drivers) and with each renderer
(:mod:`synthetic.eeg`, :mod:`synthetic.eye`, :mod:`synthetic.ecg`, :mod:`synthetic.pps`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from signals._checks import check_type

from ._random import (
    _C_CARDIAC,
    _C_CLASS,
    _C_ECG,
    _C_EEG,
    _C_EYE,
    _C_LATENT,
    _C_OCULAR,
    _C_PPS,
    _C_RESP,
    _LABELS,
    _LATENT_FS,
    _POP,
    _SUBJ,
    _ou,
    _rng,
    _unit_rows,
)
from .config import SyntheticConfig, _check_index, _check_modality, _ModalityNoise

# Drivers (rows of each component's map). Ocular/cardiac/resp are shared physiology.
_OCULAR_DRIVERS = ("fixation_duration", "saccade_amplitude", "blink_rate", "blink_duration", "fixation_drift")
_CARDIAC_DRIVERS = ("heart_rate",)
_RESP_DRIVERS = ("rate", "depth")
_EYE_DRIVERS = ("pupil",)
_ECG_DRIVERS = ("t_wave", "r_wave")
_PPS_DRIVERS = ("zemg", "temg", "gsr_tonic", "scr_rate", "pleth_amplitude", "temperature")


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
