"""Differential entropy (DE) and band power of signal windows, vectorised over all leading axes.

Two formulas are offered:

``'bcmi'``
    SEED's reference algorithm (BCMI ``STFT.m``; docs/design/features.md §1.2): Hann window without zero
    end-points, FFT of length ``n_fft`` (default: the window length), band bins
    ``fix(low/sfreq*n_fft)-1 .. fix(high/sfreq*n_fft)-1`` (0-based), band energy
    ``E = mean(|X|^2)`` over those bins and ``DE = log2(100 * E)``. Defined on microvolts: only
    then does its scale match SEED's released ``de_*`` features (roughly 10-30).
``'gaussian'``
    ``1/2 * log(2*pi*e * var)`` of the band-passed signal, the DE of a Gaussian variable. The
    band-pass is an ideal (rectangular, zero-phase) filter applied in the frequency domain of
    the window, so ``var`` is exactly the sum of the periodogram over the band bins
    (Parseval). Bins count when ``low <= f < high`` (``f <= high`` for a band ending at
    Nyquist); the DC bin never counts, since a variance is taken about the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ._checks import check_array, check_option, check_sfreq, ensure_int
from .bands import SEED_BANDS, Band, as_bands

FORMULAS = ("bcmi", "gaussian")
LOG_BASES = {"2": np.log2, "e": np.log, "10": np.log10}


def band_bin_weights(
    bands: str | Sequence[Band], sfreq: float, n_fft: int, formula: str = "bcmi"
) -> np.ndarray:
    """Return the matrix that maps a one-sided power spectrum to band values.

    Parameters
    ----------
    bands : str | sequence of Band
        Band set name or bands, see :func:`signals.bands.as_bands`.
    sfreq : float
        Sampling frequency in Hz.
    n_fft : int
        FFT length in samples.
    formula : 'bcmi' | 'gaussian'
        Which bin rule to apply (see the module docstring).

    Returns
    -------
    weights : array, shape (n_fft // 2 + 1, n_bands)
        ``power @ weights`` gives the band energy ``E`` (``'bcmi'``: mean of ``|X|^2`` over the
        band bins) or the band-limited variance times ``n_fft**2`` (``'gaussian'``).
    """
    bands = as_bands(bands)
    sfreq = check_sfreq(sfreq)
    n_fft = ensure_int(n_fft, "n_fft")
    check_option("formula", formula, FORMULAS)
    return _checked_weights(bands, sfreq, n_fft, formula).copy()


def _checked_weights(bands: tuple[Band, ...], sfreq: float, n_fft: int, formula: str) -> np.ndarray:
    nyquist = sfreq / 2
    for band in bands:
        if band.high > nyquist:
            raise ValueError(
                f"Band '{band.name}' ({band.low}-{band.high} Hz) reaches above the Nyquist "
                f"frequency {nyquist} Hz of sfreq={sfreq} Hz. Lower its upper edge or use a "
                "higher sampling rate."
            )
    return _band_bin_weights(bands, sfreq, n_fft, formula)


@lru_cache(maxsize=64)
def _band_bin_weights(bands: tuple[Band, ...], sfreq: float, n_fft: int, formula: str) -> np.ndarray:
    n_freqs = n_fft // 2 + 1
    weights = np.zeros((n_freqs, len(bands)))
    if formula == "bcmi":
        for j, band in enumerate(bands):
            # Same float operations as MATLAB's fix(fStart/fs*STFTN), so edge cases match.
            start = int(np.fix(band.low / sfreq * n_fft))
            end = int(np.fix(band.high / sfreq * n_fft))
            if start < 1:
                raise ValueError(
                    f"Band '{band.name}' starts at {band.low} Hz, which maps to FFT bin {start} "
                    f"with n_fft={n_fft} at sfreq={sfreq} Hz; the 'bcmi' rule then reads bin "
                    f"{start - 1}, which does not exist. Use a longer window/n_fft (bin width "
                    f"sfreq/n_fft must be <= {band.low} Hz) or formula='gaussian'."
                )
            if end > n_fft // 2:
                raise ValueError(
                    f"Band '{band.name}' ends at {band.high} Hz, beyond the last bin the 'bcmi' "
                    f"rule reads (n_fft/2 - 1 = {n_fft // 2 - 1}) for n_fft={n_fft}."
                )
            # 0-based bins start-1 .. end-1; dividing by the bin count makes E a mean.
            weights[start - 1 : end, j] = 1.0 / (end - start + 1)
    else:
        freqs = np.arange(n_freqs) * sfreq / n_fft
        # One-sided periodogram: interior bins stand for two (positive and negative) frequencies.
        fold = np.full(n_freqs, 2.0)
        fold[0] = 1.0
        if n_fft % 2 == 0:
            fold[-1] = 1.0
        for j, band in enumerate(bands):
            upper = freqs <= band.high if band.high >= sfreq / 2 else freqs < band.high
            mask = (freqs >= band.low) & upper
            mask[0] = False
            if not mask.any():
                raise ValueError(
                    f"Band '{band.name}' ({band.low}-{band.high} Hz) contains no FFT bin for a "
                    f"window of {n_fft} samples at sfreq={sfreq} Hz (bin width "
                    f"{sfreq / n_fft:.4g} Hz). Use a window of at least "
                    f"{int(np.ceil(sfreq / (band.high - band.low)))} samples."
                )
            weights[mask, j] = fold[mask]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=64)
def _hann_no_zero_ends(n: int) -> np.ndarray:
    # MATLAB hanning(L): 0.5 - 0.5*cos(2*pi*k/(L+1)), k = 1..L (no zero end-points).
    k = np.arange(1, n + 1)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * k / (n + 1))
    w.setflags(write=False)
    return w


def band_power(
    x,
    sfreq: float,
    bands: str | Sequence[Band] = SEED_BANDS,
    *,
    formula: str = "bcmi",
    n_fft: int | None = None,
) -> np.ndarray:
    """Band power of each window, as the DE formulas define it.

    Parameters
    ----------
    x : array, shape (..., n_times)
        Signal windows, time last (e.g. ``(n_windows, n_channels, n_times)``), in the unit of
        the recording (µV for EEG when SEED's scale matters).
    sfreq : float
        Sampling frequency in Hz.
    bands : str | sequence of Band
        Band set name (``'seed'``, ``'deap'``, ``'pupil'``) or bands.
    formula : 'bcmi' | 'gaussian'
        ``'bcmi'`` returns SEED's PSD feature ``E`` (mean ``|X|^2`` over the band bins of the
        Hann-windowed FFT, unit µV²); ``'gaussian'`` returns the variance of the ideally
        band-passed window (unit µV²).
    n_fft : int | None
        FFT length for ``'bcmi'``; ``None`` uses the window length. Must be at least the
        window length. ``'gaussian'`` always uses the window length.

    Returns
    -------
    power : array, shape (..., n_bands)
    """
    formula = check_option("formula", formula, FORMULAS)
    x = check_array(x, "x", min_ndim=1, layout="(..., n_times)")
    sfreq = check_sfreq(sfreq)
    bands = as_bands(bands)
    n_times = x.shape[-1]
    if n_times < 2:
        raise ValueError(f"x has {n_times} sample along its last axis; a window needs at least 2.")
    if formula == "gaussian":
        if n_fft is not None and ensure_int(n_fft, "n_fft") != n_times:
            raise ValueError(
                f"n_fft must be None (the window length) for formula='gaussian', got {n_fft}; "
                "zero-padding would break the exact variance (Parseval)."
            )
        n_fft = n_times
    else:
        n_fft = n_times if n_fft is None else ensure_int(n_fft, "n_fft")
        if n_fft < n_times:
            raise ValueError(
                f"n_fft={n_fft} is shorter than the window ({n_times} samples); the FFT would "
                "silently drop samples. Use n_fft >= the window length."
            )
    _checked_weights(bands, sfreq, n_fft, formula)
    return _band_power(x, sfreq, bands, formula, n_fft)


def _band_power(x: np.ndarray, sfreq: float, bands: tuple[Band, ...], formula: str, n_fft: int) -> np.ndarray:
    """Band power of validated input (no checks; the streaming extractors call this per hop)."""
    n_times = x.shape[-1]
    weights = _band_bin_weights(bands, sfreq, n_fft, formula)
    if formula == "bcmi":
        spec = np.fft.rfft(x * _hann_no_zero_ends(n_times), n=n_fft, axis=-1)
    else:
        spec = np.fft.rfft(x, axis=-1)
    power = spec.real**2 + spec.imag**2
    out = power @ weights
    if formula == "gaussian":
        out /= float(n_times) ** 2
    return out


def differential_entropy(
    x,
    sfreq: float,
    bands: str | Sequence[Band] = SEED_BANDS,
    *,
    formula: str = "bcmi",
    n_fft: int | None = None,
    log_base: str | None = None,
) -> np.ndarray:
    """Differential entropy of each window in each band.

    Parameters
    ----------
    x : array, shape (..., n_channels, n_times)
        Signal windows, time last. Any leading axes (windows, trials) are kept. EEG in µV for
        the ``'bcmi'`` scale to match SEED's released features.
    sfreq : float
        Sampling frequency in Hz.
    bands : str | sequence of Band
        Band set name (``'seed'`` 5 bands, ``'deap'`` 4 bands without delta) or bands.
    formula : 'bcmi' | 'gaussian'
        See the module docstring.
    n_fft : int | None
        FFT length for ``'bcmi'`` (default: window length).
    log_base : '2' | 'e' | '10' | None
        Logarithm base; ``None`` means the formula's own (``'2'`` for ``'bcmi'``, ``'e'`` for
        ``'gaussian'``).

    Returns
    -------
    de : array, shape (..., n_channels, n_bands)
        Channel-major: flattening the last two axes gives index ``channel * n_bands + band``.

    Notes
    -----
    A band with zero power (a flat channel) gives ``-inf``; the streaming pipeline reports
    such windows instead of feeding them to a model.
    """
    formula = check_option("formula", formula, FORMULAS)
    log = _log_fn(formula, log_base)
    power = band_power(x, sfreq, bands, formula=formula, n_fft=n_fft)
    return _de_from_power(power, formula, log)


def _log_fn(formula: str, log_base: str | None):
    if log_base is None:
        log_base = "2" if formula == "bcmi" else "e"
    check_option("log_base", log_base, tuple(LOG_BASES))
    return LOG_BASES[log_base]


def _de_from_power(power: np.ndarray, formula: str, log) -> np.ndarray:
    with np.errstate(divide="ignore"):
        if formula == "bcmi":
            return log(100.0 * power)
        return 0.5 * log(2 * np.pi * np.e * power)
