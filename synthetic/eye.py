"""Eye-tracker renderer: gaze (deg), pupils (mm) and validity, from the shared ocular events.

Drivers set fixation durations, saccade amplitudes (durations follow the main sequence), blink
rate and duration, fixational drift (ocular drivers, :mod:`synthetic.physiology`) and pupil
diameter (plus a slow luminance-like nuisance, hippus and post-blink dips). During blinks and
track loss validity is 0 and gaze and pupil are NaN.
"""

from __future__ import annotations

import numpy as np

from ._random import _C_EYE, _LATENT_FS, _band_noise, _exp_kernel_train, _ou, _rng, _to_grid
from .config import SyntheticConfig
from .latent import _drivers, _subject_normal
from .physiology import _Ocular, _render_gaze


def _interval_mask(intervals: np.ndarray, n: int, fs: float) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for t0, t1 in intervals:
        mask[int(t0 * fs) : int(np.ceil(t1 * fs))] = True
    return mask


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
