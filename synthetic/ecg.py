"""ECG renderer: P-QRS-T waves on the shared heartbeats, in mV.

Drivers set the heart rate (cardiac driver, :mod:`synthetic.physiology`) with respiratory sinus
arrhythmia and slow HRV; P-QRS-T waves as Gaussians (McSharry et al. 2003 style) with
z-dependent T-wave and R-wave amplitude; baseline wander, EMG noise, mains, motion artefacts and
per-trial lead gains.
"""

from __future__ import annotations

import numpy as np

from ._random import _C_ECG, _LATENT_FS, _band_noise, _bumps, _ou, _rng, _to_grid
from .config import SyntheticConfig
from .latent import _drivers, _subject_normal
from .physiology import _beat_waves, _Cardiac, _Resp


def _rr(beats: np.ndarray) -> np.ndarray:
    if beats.size < 2:
        return np.full(beats.size, 0.85)
    rr = np.diff(beats)
    return np.append(rr, rr[-1])


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
