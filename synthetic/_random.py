"""Random streams and small signal helpers shared by the latent and every renderer.

Every random stream is a :class:`numpy.random.Generator` seeded from a key of integers with
:class:`numpy.random.SeedSequence`; the tags below keep the streams of the population, of a
subject, of a trial and of each component independent.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

_LATENT_FS = 20.0  # Hz, grid of z(t), intensity and all drivers
_CARDIAC_FS = 250.0  # Hz, grid on which beat times are found (independent of the ECG rate)

# Random-stream tags: one independent stream per component and level.
_POP, _SUBJ, _SESS, _TRIAL, _LABELS = 0, 1, 2, 3, 4
_C_CLASS, _C_LATENT, _C_OCULAR, _C_CARDIAC, _C_RESP, _C_EEG, _C_EYE, _C_ECG, _C_PPS = range(9)


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
