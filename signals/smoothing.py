"""Temporal smoothing of feature sequences: offline LDS (Kalman RTS smoother), its causal filter, moving average.

Feature sequences have time FIRST: shape ``(n_steps, ...)`` (e.g. ``(n_windows, n_features)``),
since they are sequences of feature vectors, not signals. Every series (trailing index) is
smoothed independently as a scalar random walk observed in noise (docs/design/features.md §1.3)::

    x[t] = x[t-1] + w,  w ~ N(0, Q)        z[t] = x[t] + v,  v ~ N(0, R)

Defaults ``Q = 1e-3``, ``R = 1``, ``P0 = 0.1`` are the public SJTU pipeline's (Liuledian/eye).
The first observation is corrected against the initial state without a transition, as
pykalman does. With ``Q/R = 1e-3`` the steady-state gain is about 0.031: the causal filter
behaves like an exponential average over about 32 steps, so expect lag.

``lds_smooth`` needs the whole sequence (backward pass, whole-sequence mean): offline only.
Live pipelines use :class:`KalmanFilter` (or :class:`MovingAverage`), and batch training that
must match them uses the same classes through :func:`kalman_filter` / :func:`moving_average`.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_array, check_range, ensure_int

_LAYOUT = "(n_steps, ...)"


def _check_lds_params(transition_cov: float, observation_cov: float, initial_cov: float) -> None:
    check_range(transition_cov, "transition_cov", low=0)
    check_range(observation_cov, "observation_cov", low=0, low_inclusive=False)
    check_range(initial_cov, "initial_cov", low=0)


def lds_smooth(
    x,
    *,
    transition_cov: float = 1e-3,
    observation_cov: float = 1.0,
    initial_cov: float = 0.1,
    initial_mean=None,
) -> np.ndarray:
    """Offline LDS smoothing (Kalman forward filter + Rauch-Tung-Striebel backward pass).

    Parameters
    ----------
    x : array, shape (n_steps, ...)
        Feature sequence, time first; every trailing index is one independent series.
    transition_cov, observation_cov, initial_cov : float
        ``Q``, ``R`` and ``P0`` of the random-walk model.
    initial_mean : array, shape (...) | None
        ``x0``; ``None`` uses each series' mean over the whole sequence (non-causal).

    Returns
    -------
    smoothed : array, shape (n_steps, ...)
    """
    x = check_array(x, "x", min_ndim=1, layout=_LAYOUT)
    _check_lds_params(transition_cov, observation_cov, initial_cov)
    x0 = x.mean(axis=0) if initial_mean is None else _check_initial(initial_mean, x)
    kf = KalmanFilter(transition_cov=transition_cov, observation_cov=observation_cov, initial_cov=initial_cov)
    filtered, p_filtered = kf._filter_with_cov(x, initial_mean=x0)
    smoothed = filtered.copy()
    # RTS: with a unit transition, the predicted covariance at t+1 is P[t] + Q.
    for t in range(x.shape[0] - 2, -1, -1):
        gain = p_filtered[t] / (p_filtered[t] + transition_cov)
        smoothed[t] = filtered[t] + gain * (smoothed[t + 1] - filtered[t])
    return smoothed


def _check_initial(initial_mean, x: np.ndarray) -> np.ndarray:
    x0 = check_array(initial_mean, "initial_mean", min_ndim=0, layout="(...)")
    if x0.shape != x.shape[1:] and x0.ndim != 0:
        raise ValueError(
            f"initial_mean must have shape {x.shape[1:]} (one value per series), got {x0.shape}."
        )
    return np.broadcast_to(x0, x.shape[1:]).astype(float)


class KalmanFilter:
    """Causal LDS smoothing, one feature vector at a time (the online form of :func:`lds_smooth`).

    Parameters
    ----------
    transition_cov, observation_cov, initial_cov : float
        ``Q``, ``R`` and ``P0``.

    Attributes
    ----------
    state_ : array, shape (n_features,) | None
        Current estimate; None before the first vector (the first vector initialises it).
    cov_ : float
        Current posterior variance.
    """

    def __init__(
        self, *, transition_cov: float = 1e-3, observation_cov: float = 1.0, initial_cov: float = 0.1
    ):
        _check_lds_params(transition_cov, observation_cov, initial_cov)
        self.transition_cov = transition_cov
        self.observation_cov = observation_cov
        self.initial_cov = initial_cov
        self.reset()

    def reset(self) -> None:
        """Forget the state; the next vector starts a new sequence."""
        self.state_ = None
        self.cov_ = None

    def filter(self, x: np.ndarray) -> np.ndarray:
        """Filter a block of consecutive vectors, shape ``(n_steps, ...)``, carrying the state on."""
        return self._filter_with_cov(np.asarray(x, dtype=float))[0]

    def _filter_with_cov(self, x: np.ndarray, initial_mean=None) -> tuple[np.ndarray, np.ndarray]:
        """Filter and also return the posterior variance after each step, shape ``(n_steps,)``.

        ``initial_mean`` replaces the first observation as ``x0`` of a fresh filter (offline use).
        """
        out = np.empty_like(x)
        covs = np.empty(x.shape[0])
        q, r = self.transition_cov, self.observation_cov
        for t in range(x.shape[0]):
            if self.state_ is None:
                # Online, x0 = first observation (no whole-trial mean exists yet); P0 as configured.
                self.state_ = (x[t] if initial_mean is None else initial_mean).copy()
                p_pred = self.initial_cov
            else:
                p_pred = self.cov_ + q
            gain = p_pred / (p_pred + r)
            self.state_ = self.state_ + gain * (x[t] - self.state_)
            self.cov_ = (1 - gain) * p_pred
            out[t] = self.state_
            covs[t] = self.cov_
        return out, covs


class MovingAverage:
    """Causal moving average over the last ``n_steps`` vectors (fewer at the start, never zero-padded).

    Parameters
    ----------
    n_steps : int
        Number of vectors averaged.
    """

    def __init__(self, n_steps: int = 5):
        self.n_steps = ensure_int(n_steps, "n_steps")
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        self.reset()

    def reset(self) -> None:
        """Forget the history."""
        self.history_ = None

    def filter(self, x: np.ndarray) -> np.ndarray:
        """Average a block of consecutive vectors, shape ``(n_steps_in, ...)``, carrying the history on."""
        x = np.asarray(x, dtype=float)
        past = self.history_ if self.history_ is not None else x[:0]
        full = np.concatenate([past, x], axis=0)
        csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(full, axis=0)], axis=0)
        ends = np.arange(past.shape[0] + 1, full.shape[0] + 1)
        # Steps seen before the history started are unknown; count only what is held.
        starts = np.maximum(ends - self.n_steps, 0)
        counts = (ends - starts).reshape((-1,) + (1,) * (x.ndim - 1))
        out = (csum[ends] - csum[starts]) / counts
        self.history_ = full[-(self.n_steps - 1) :] if self.n_steps > 1 else full[:0]
        return out


def kalman_filter(x, *, transition_cov: float = 1e-3, observation_cov: float = 1.0, initial_cov: float = 0.1):
    """Causal Kalman filtering of a whole sequence, identical to feeding :class:`KalmanFilter` step by step.

    Parameters
    ----------
    x : array, shape (n_steps, ...)
        Feature sequence, time first.

    Returns
    -------
    filtered : array, shape (n_steps, ...)
    """
    x = check_array(x, "x", min_ndim=1, layout=_LAYOUT)
    kf = KalmanFilter(transition_cov=transition_cov, observation_cov=observation_cov, initial_cov=initial_cov)
    return kf.filter(x)


def moving_average(x, n_steps: int = 5) -> np.ndarray:
    """Causal moving average of a whole sequence, identical to :class:`MovingAverage` step by step.

    Parameters
    ----------
    x : array, shape (n_steps_in, ...)
        Feature sequence, time first.
    n_steps : int
        Averaging length.

    Returns
    -------
    averaged : array, shape (n_steps_in, ...)
    """
    x = check_array(x, "x", min_ndim=1, layout=_LAYOUT)
    return MovingAverage(n_steps).filter(x)
