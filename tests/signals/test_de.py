"""Differential entropy against closed forms and a literal transcription of SEED's reference algorithm."""

import numpy as np
import pytest

from signals.bands import DEAP_BANDS, SEED_BANDS, Band, as_bands
from signals.de import band_bin_weights, band_power, differential_entropy


def _bcmi_transcription(data, fs, window_s, stftn, f_start, f_end):
    """docs/design/features.md §1.2, transcribed loop by loop (MATLAB's 1-based bins made 0-based as the Python ports do)."""
    n_ch, m = data.shape
    window_points = int(fs * window_s)
    n_win = m // window_points
    f_start_num = [int(np.fix(f / fs * stftn)) for f in f_start]
    f_end_num = [int(np.fix(f / fs * stftn)) for f in f_end]
    hanning = np.array(
        [0.5 - 0.5 * np.cos(2 * np.pi * k / (window_points + 1)) for k in range(1, window_points + 1)]
    )
    de = np.zeros((n_ch, n_win, len(f_start)))
    psd = np.zeros_like(de)
    for i in range(n_win):
        for j in range(n_ch):
            seg = data[j, i * window_points : (i + 1) * window_points] * hanning
            fft_data = np.fft.fft(seg, stftn)
            mag = np.abs(fft_data[0 : stftn // 2])
            for p in range(len(f_start)):
                e = 0.0
                for p0 in range(f_start_num[p] - 1, f_end_num[p]):
                    e += mag[p0] * mag[p0]
                e /= f_end_num[p] - f_start_num[p] + 1
                psd[j, i, p] = e
                de[j, i, p] = np.log2(100 * e)
    return psd, de


@pytest.mark.parametrize(
    ("fs", "window_s", "stftn"), [(200, 1, 200), (200, 4, 800), (200, 1, 256), (128, 2, 256)]
)
def test_bcmi_matches_reference_transcription(fs, window_s, stftn):
    """Vectorised 'bcmi' DE and PSD equal the per-channel, per-band reference loops."""
    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (6, fs * window_s * 3 + 17))
    psd_ref, de_ref = _bcmi_transcription(data, fs, window_s, stftn, [1, 4, 8, 14, 31], [4, 8, 14, 31, 50])
    n = fs * window_s
    windows = np.stack([data[:, i * n : (i + 1) * n] for i in range(data.shape[1] // n)])  # (win, ch, n)
    de = differential_entropy(windows, fs, SEED_BANDS, formula="bcmi", n_fft=stftn)
    psd = band_power(windows, fs, SEED_BANDS, formula="bcmi", n_fft=stftn)
    np.testing.assert_allclose(de, de_ref.transpose(1, 0, 2), rtol=0, atol=1e-10)
    np.testing.assert_allclose(psd, psd_ref.transpose(1, 0, 2), rtol=1e-12)


def test_bcmi_bins_as_documented():
    """With fs = n_fft = 200 the bands read bins 0-3, 3-7, 7-13, 13-30 and 30-49 (docs/design/features.md table)."""
    w = band_bin_weights(SEED_BANDS, 200, 200, "bcmi")
    got = [tuple(np.flatnonzero(w[:, j])[[0, -1]]) for j in range(5)]
    assert got == [(0, 3), (3, 7), (7, 13), (13, 30), (30, 49)]
    np.testing.assert_allclose(w.sum(axis=0), 1.0)


def test_bcmi_white_noise_closed_form_and_seed_scale():
    """For white noise E[|X_k|^2] = sigma^2 * sum(w^2), so DE = log2(100 sigma^2 sum w^2); ~21.4 at 20 uV."""
    rng = np.random.default_rng(0)
    sigma, fs = 20.0, 200
    windows = rng.normal(0, sigma, (16000, 1, fs))
    k = np.arange(1, fs + 1)
    sum_w2 = np.sum((0.5 - 0.5 * np.cos(2 * np.pi * k / (fs + 1))) ** 2)
    expected = np.log2(100 * sigma**2 * sum_w2)
    mean_power = band_power(windows, fs, SEED_BANDS).mean(axis=(0, 1))
    np.testing.assert_allclose(np.log2(100 * mean_power), expected, atol=0.02)
    assert 21.0 < expected < 21.8  # the scale of SEED's released features (docs/design/features.md §1.2)


def test_gaussian_sinusoid_closed_form():
    """A sinusoid of amplitude A has variance A^2/2: DE = 0.5*ln(2*pi*e*A^2/2) in its band only."""
    fs, n, amp = 200, 400, 7.0
    t = np.arange(n) / fs
    x = amp * np.sin(2 * np.pi * 10.0 * t + 0.3)  # 10 Hz: alpha, on an FFT bin
    de = differential_entropy(x[np.newaxis], fs, SEED_BANDS, formula="gaussian")[0]
    np.testing.assert_allclose(de[2], 0.5 * np.log(2 * np.pi * np.e * amp**2 / 2), atol=1e-10)
    assert np.all(de[[0, 1, 3, 4]] < de[2] - 20)


def test_gaussian_white_noise_closed_form():
    """White noise of variance s^2 has band variance s^2 * (bandwidth / Nyquist)."""
    rng = np.random.default_rng(0)
    fs, sigma = 200, 3.0
    x = rng.normal(0, sigma, (200, 1, 2000))
    de = differential_entropy(x, fs, SEED_BANDS, formula="gaussian").mean(axis=(0, 1))
    widths = np.array([b.high - b.low for b in SEED_BANDS])
    expected = 0.5 * np.log(2 * np.pi * np.e * sigma**2 * widths / (fs / 2))
    np.testing.assert_allclose(de, expected, atol=0.02)


def test_gaussian_matches_bandpassed_variance():
    """The ideal band-pass variance agrees with a steep zero-phase Butterworth band-pass on a long signal."""
    from scipy.signal import butter, sosfiltfilt

    rng = np.random.default_rng(0)
    fs = 200
    x = rng.normal(0, 5, 200 * 60)
    de = differential_entropy(x, fs, [Band(name="alpha", low=8, high=14)], formula="gaussian")[0]
    sos = butter(10, [8, 14], btype="bandpass", fs=fs, output="sos")
    ref = 0.5 * np.log(2 * np.pi * np.e * np.var(sosfiltfilt(sos, x)))
    assert abs(de - ref) < 0.03


def test_leading_axes_and_channel_major_layout():
    """Any leading axes are kept and the result is (..., channels, bands)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 4, 256))
    de = differential_entropy(x, 128, DEAP_BANDS)
    assert de.shape == (3, 2, 4, 4)
    np.testing.assert_allclose(de[1, 0, 2], differential_entropy(x[1, 0, 2], 128, DEAP_BANDS))


def test_log_base_and_deap_bands():
    """log_base changes the logarithm only; the DEAP set has no delta band."""
    x = np.random.default_rng(0).normal(size=(2, 256))
    d2 = differential_entropy(x, 128, "deap")
    d10 = differential_entropy(x, 128, "deap", log_base="10")
    np.testing.assert_allclose(d10, d2 * np.log10(2), rtol=1e-12)
    assert [b.name for b in as_bands("deap")] == ["theta", "alpha", "beta", "gamma"]


def test_input_not_modified():
    """The input array is never written to."""
    x = np.random.default_rng(0).normal(size=(4, 200))
    x.flags.writeable = False
    differential_entropy(x, 200)
    differential_entropy(x, 200, formula="gaussian")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"x": np.full((2, 200), np.nan)}, ValueError, "contains 400 NaN or infinite"),
        ({"x": np.array([[1.0, np.inf] * 100])}, ValueError, "NaN or infinite"),
        ({"x": np.zeros((2, 0))}, ValueError, "is empty"),
        ({"x": np.zeros((2, 1))}, ValueError, "at least 2"),
        ({"x": "abc"}, TypeError, "must be an array of numbers"),
        ({"sfreq": 0}, ValueError, "sfreq must be > 0"),
        ({"sfreq": 80}, ValueError, "above the Nyquist frequency 40.0 Hz"),
        ({"formula": "welch"}, ValueError, "Allowed values are 'bcmi', 'gaussian'"),
        ({"n_fft": 100}, ValueError, "shorter than the window"),
        ({"x": np.zeros((2, 50))}, ValueError, "maps to FFT bin 0"),
        ({"x": np.zeros((2, 10)), "formula": "gaussian"}, ValueError, "contains no FFT bin"),
        ({"bands": [("a", 5, 3)]}, ValueError, "must have high > low"),
        ({"bands": "seedv"}, ValueError, "Allowed band-set names"),
        ({"bands": []}, ValueError, "bands is empty"),
        ({"log_base": "3"}, ValueError, "'log_base' parameter"),
    ],
)
def test_bad_input_errors(kwargs, exc, match):
    """Each kind of bad input raises an error that says what was wrong."""
    args = {"x": np.ones((2, 200)), "sfreq": 200, "bands": SEED_BANDS} | kwargs
    with pytest.raises(exc, match=match):
        differential_entropy(args.pop("x"), args.pop("sfreq"), args.pop("bands"), **args)
