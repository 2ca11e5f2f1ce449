"""Tests for signals.pps: Picard statistics and alternatives against direct and closed-form values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.random import default_rng

from signals.pps import PICARD_STATISTICS, PPS_STATISTICS, pps_statistics

ALL_STATISTICS = tuple(PPS_STATISTICS)


def direct_statistics(x):
    """Every statistic of one 1-D window, transcribed from the formulas with Python loops."""
    x = [float(v) for v in x]
    n = len(x)
    mean = sum(x) / n
    var = sum((v - mean) ** 2 for v in x) / n
    std = math.sqrt(var)
    d1 = sum(abs(x[t + 1] - x[t]) for t in range(n - 1)) / (n - 1)
    d2 = sum(abs(x[t + 2] - x[t]) for t in range(n - 2)) / (n - 2)
    return {
        "mean": mean,
        "std": std,
        "mean_abs_diff1": d1,
        "norm_mean_abs_diff1": d1 / std,
        "mean_abs_diff2": d2,
        "norm_mean_abs_diff2": d2 / std,
        "min": min(x),
        "max": max(x),
        "var": var,
        "sum_sq": sum(v * v for v in x),
    }


def test_matches_direct_loop():
    """All statistics equal a per-channel Python-loop transcription of the formulas (1e-12)."""
    rng = default_rng(0)
    windows = rng.normal(2.0, 3.0, size=(2, 3, 8, 50))
    out = pps_statistics(windows, ALL_STATISTICS)
    assert out.shape == (2, 3, 8, len(ALL_STATISTICS))
    for idx in np.ndindex(windows.shape[:-1]):
        expected = direct_statistics(windows[idx])
        np.testing.assert_allclose(out[idx], [expected[s] for s in ALL_STATISTICS], rtol=1e-12, atol=1e-12)


def test_default_is_picard_48_features():
    """The default gives Picard's six statistics, 8 DEAP channels -> 48 channel-major features."""
    rng = default_rng(0)
    windows = rng.standard_normal((8, 128))
    out = pps_statistics(windows)
    assert out.shape == (8, 6)
    np.testing.assert_array_equal(out, pps_statistics(windows, PICARD_STATISTICS))
    flat = out.reshape(-1)
    assert flat[3 * 6 + 1] == out[3, 1] == pytest.approx(np.std(windows[3]), rel=1e-12)


def test_linear_ramp_closed_form():
    """A ramp a*t + b has mean b + a(T-1)/2, std |a|sqrt((T^2-1)/12), delta1 |a| and delta2 2|a|."""
    n, a, b = 101, -0.5, 3.0
    t = np.arange(n)
    out = dict(zip(ALL_STATISTICS, pps_statistics((a * t + b)[np.newaxis], ALL_STATISTICS)[0], strict=True))
    std = abs(a) * np.sqrt((n**2 - 1) / 12)
    expected = {
        "mean": b + a * (n - 1) / 2,
        "std": std,
        "mean_abs_diff1": abs(a),
        "norm_mean_abs_diff1": abs(a) / std,
        "mean_abs_diff2": 2 * abs(a),
        "norm_mean_abs_diff2": 2 * abs(a) / std,
        "min": b + a * (n - 1),
        "max": b,
        "var": std**2,
        "sum_sq": n * b**2 + 2 * a * b * n * (n - 1) / 2 + a**2 * (n - 1) * n * (2 * n - 1) / 6,
    }
    for name in ALL_STATISTICS:
        assert out[name] == pytest.approx(expected[name], rel=1e-12), name


def test_sinusoid_closed_form():
    """A sinusoid of amplitude A over whole periods has std A/sqrt(2) and mean |diff| (4A/pi) sin(pi k d/T)."""
    n, cycles, amp = 12_800, 10, 2.5
    t = np.arange(n)
    x = amp * np.sin(2 * np.pi * cycles * t / n + 0.3) + 1.0
    out = dict(zip(PICARD_STATISTICS, pps_statistics(x[np.newaxis])[0], strict=True))
    std = amp / np.sqrt(2)
    assert out["mean"] == pytest.approx(1.0, rel=1e-12)
    assert out["std"] == pytest.approx(std, rel=1e-12)
    for lag in (1, 2):
        # x[t+d] - x[t] = 2A sin(pi k d / T) cos(...): its mean absolute value is 2/pi of the
        # amplitude, up to the O((2 pi k / T)^2) error of sampling |cos| at 1280 points per period.
        delta = 4 * amp / np.pi * np.sin(np.pi * cycles * lag / n)
        assert out[f"mean_abs_diff{lag}"] == pytest.approx(delta, rel=1e-4)
        assert out[f"norm_mean_abs_diff{lag}"] == pytest.approx(delta / std, rel=1e-4)


def test_period_four_sinusoid_exact():
    """A period-4 sinusoid (0, A, 0, -A, ...) has delta1 = delta2 = A and std A/sqrt(2) exactly."""
    amp = 3.0
    x = np.tile([0.0, amp, 0.0, -amp], 25)[np.newaxis]
    mean, std, d1, nd1, d2, nd2 = pps_statistics(x)[0]
    np.testing.assert_allclose(
        [mean, std, d1, nd1, d2, nd2],
        [0, amp / np.sqrt(2), amp, np.sqrt(2), amp, np.sqrt(2)],
        rtol=1e-12,
        atol=1e-15,
    )


def test_constant_channel_normalised_zero():
    """A constant channel gives 0 (not NaN or inf) for the normalised differences."""
    x = np.full((2, 64), 0.1)
    x[1] = np.linspace(0, 1, 64)
    out = pps_statistics(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0, 2:], 0.0)
    np.testing.assert_allclose(out[0, :2], [0.1, 0.0], rtol=1e-15, atol=1e-15)


def test_leading_axes_kept_and_input_untouched():
    """Leading axes are kept, each slice matches its own computation and the input is not modified."""
    rng = default_rng(0)
    windows = rng.standard_normal((4, 3, 8, 128))
    before = windows.copy()
    out = pps_statistics(windows, ("max", "mean", "sum_sq"))
    np.testing.assert_array_equal(windows, before)
    assert out.shape == (4, 3, 8, 3)
    np.testing.assert_array_equal(out[2, 1], pps_statistics(windows[2, 1], ("max", "mean", "sum_sq")))
    np.testing.assert_allclose(out[..., 0], windows.max(axis=-1), rtol=0)


def test_statistics_validation():
    """Unknown, repeated, empty or string statistics raise errors that name the problem."""
    x = np.zeros((2, 10))
    with pytest.raises(ValueError, match=r"'statistics' parameter.*got 'median'"):
        pps_statistics(x, ("mean", "median"))
    with pytest.raises(ValueError, match="more than once"):
        pps_statistics(x, ("mean", "mean"))
    with pytest.raises(ValueError, match="statistics is empty"):
        pps_statistics(x, ())
    with pytest.raises(TypeError, match=r"pass a tuple such as \('mean',\)"):
        pps_statistics(x, "mean")
    with pytest.raises(TypeError, match="statistics must be an instance of list, tuple"):
        pps_statistics(x, {"mean"})


def test_windows_validation():
    """Too-short windows, NaN input and 1-D input raise ValueError with a hint."""
    with pytest.raises(ValueError, match="needs at least 3"):
        pps_statistics(np.zeros((8, 2)))
    bad = np.zeros((8, 16))
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        pps_statistics(bad)
    with pytest.raises(ValueError, match="at least 2-D"):
        pps_statistics(np.zeros(16))
    with pytest.raises(TypeError, match="windows must be an array of numbers"):
        pps_statistics(None)
