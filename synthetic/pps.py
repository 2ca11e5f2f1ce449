"""PPS renderer: DEAP's 8 peripheral channels (see PPS_CHANNELS / PPS_UNITS).

hEOG/vEOG from the same gaze and blinks (:mod:`synthetic.physiology`); zEMG/tEMG with z-modulated
amplitude and bursts; GSR tonic level plus phasic responses at a z-driven rate; respiration rate
and depth from z; plethysmograph pulses following the SAME beats as the ECG; slow skin
temperature.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from ._random import (
    _C_PPS,
    _LATENT_FS,
    _band_noise,
    _bumps,
    _exp_kernel_train,
    _ou,
    _poisson_times,
    _rng,
    _to_grid,
)
from .latent import _drivers, _subject_normal
from .physiology import _beat_waves, _Cardiac, _Ocular, _render_gaze, _Resp


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
