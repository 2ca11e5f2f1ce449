"""EEG renderer: band oscillations whose log amplitudes the latent drives, in µV.

Drivers set the log amplitude of delta..gamma oscillations in every channel (one driver per
channel and band: a class- and subject-specific spatial pattern, see
:func:`synthetic.latent.class_patterns`), realised as band-limited noise with time-varying
envelopes, over 1/f background, slow drift, per-trial channel gains, blink artefacts on frontal
channels (the SAME blinks as the eye tracker) and occasional EMG bursts on temporal channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._random import _C_EEG, _LATENT_FS, _band_noise, _bumps, _ou, _pink_noise, _rng, _to_grid
from .config import EEG_BANDS_HZ, SyntheticConfig
from .latent import _drivers, _subject_normal
from .physiology import _Ocular


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
