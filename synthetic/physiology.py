"""Shared physiology of one trial: eye movements and blinks, breathing, heartbeats.

Each is simulated once per trial from its own drivers (:mod:`synthetic.latent`) and rendered by
several modalities, as in a body: the SAME blinks and gaze appear in the EEG (frontal blink
artefacts), the eye tracker and the PPS EOG channels; the SAME beats and breathing in the ECG and
the PPS plethysmograph and respiration belt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._random import (
    _C_CARDIAC,
    _C_OCULAR,
    _C_RESP,
    _CARDIAC_FS,
    _LATENT_FS,
    _ou,
    _poisson_times,
    _rng,
    _to_grid,
)
from .config import SyntheticConfig
from .latent import _OCULAR_DRIVERS, _drivers, _subject_normal


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
