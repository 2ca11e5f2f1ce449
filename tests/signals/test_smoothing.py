"""LDS smoothing, its causal Kalman filter and the moving average, against direct scalar transcriptions."""

import numpy as np
import pytest

from signals.smoothing import KalmanFilter, MovingAverage, kalman_filter, lds_smooth, moving_average


def _rts_scalar(z, q, r, p0, x0):
    """Textbook scalar Kalman filter + RTS smoother, one series, written out step by step."""
    n = len(z)
    xf, pf = np.zeros(n), np.zeros(n)
    x_pred, p_pred = x0, p0
    for t in range(n):
        if t > 0:
            x_pred, p_pred = xf[t - 1], pf[t - 1] + q
        k = p_pred / (p_pred + r)
        xf[t] = x_pred + k * (z[t] - x_pred)
        pf[t] = (1 - k) * p_pred
    xs = xf.copy()
    for t in range(n - 2, -1, -1):
        c = pf[t] / (pf[t] + q)
        xs[t] = xf[t] + c * (xs[t + 1] - xf[t])
    return xf, xs


def test_lds_matches_scalar_rts():
    """lds_smooth equals the scalar RTS smoother per series, with x0 = the series mean."""
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(0, 0.05, (120, 3, 2)), axis=0) + rng.normal(0, 1, (120, 3, 2))
    out = lds_smooth(x)
    for i in range(3):
        for j in range(2):
            z = x[:, i, j]
            _, ref = _rts_scalar(z, 1e-3, 1.0, 0.1, z.mean())
            np.testing.assert_allclose(out[:, i, j], ref, atol=1e-12)


def test_kalman_filter_matches_scalar_forward_pass():
    """The causal filter equals the scalar forward pass with x0 = the first observation."""
    z = np.random.default_rng(0).normal(size=50)
    ref, _ = _rts_scalar(z, 0.01, 0.5, 0.2, z[0])
    np.testing.assert_allclose(
        kalman_filter(z, transition_cov=0.01, observation_cov=0.5, initial_cov=0.2), ref, atol=1e-12
    )


def test_kalman_steady_state_gain():
    """The gain converges to the Riccati solution: about 0.031 for Q/R = 1e-3 (a ~32-step EMA)."""
    q, r = 1e-3, 1.0
    p_pred = (q + np.sqrt(q * q + 4 * q * r)) / 2
    gain = p_pred / (p_pred + r)
    out = kalman_filter(np.r_[np.zeros(2000), np.ones(2)])
    np.testing.assert_allclose(out[-2], gain, rtol=1e-6)
    assert 0.030 < gain < 0.032


def test_kalman_blockwise_equals_whole():
    """Feeding the filter in blocks carries the state: same output as one call."""
    x = np.random.default_rng(0).normal(size=(40, 4))
    kf = KalmanFilter()
    blocks = np.concatenate([kf.filter(x[:7]), kf.filter(x[7:8]), kf.filter(x[8:])])
    np.testing.assert_allclose(blocks, kalman_filter(x), atol=1e-14)
    kf.reset()
    np.testing.assert_allclose(kf.filter(x), kalman_filter(x))


def test_lds_is_smoother_than_causal_filter_and_noncausal():
    """The RTS smoother tracks a step with no lag at the step's far side; the filter lags."""
    z = np.r_[np.zeros(100), np.ones(100)]
    smooth, causal = lds_smooth(z, transition_cov=0.01), kalman_filter(z, transition_cov=0.01)
    assert smooth[95] > 0.05 and causal[95] == 0  # the smoother sees the future
    assert causal[105] < smooth[105]


def test_moving_average_matches_direct_and_chunks():
    """The causal moving average is the mean of the last n vectors (fewer at the start), chunk-invariant."""
    x = np.random.default_rng(0).normal(size=(30, 2))
    ref = np.array([x[max(0, t - 4) : t + 1].mean(axis=0) for t in range(30)])
    np.testing.assert_allclose(moving_average(x, 5), ref, atol=1e-12)
    ma = MovingAverage(5)
    np.testing.assert_allclose(np.concatenate([ma.filter(x[:3]), ma.filter(x[3:4]), ma.filter(x[4:])]), ref)
    np.testing.assert_allclose(moving_average(x, 1), x)


def test_smoothing_validation():
    """Bad parameters and inputs are refused with their names in the message."""
    with pytest.raises(ValueError, match="observation_cov must be > 0"):
        lds_smooth(np.ones(5), observation_cov=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        kalman_filter(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        MovingAverage(0)
    with pytest.raises(ValueError, match="initial_mean must have shape"):
        lds_smooth(np.ones((5, 3)), initial_mean=np.ones(2))
