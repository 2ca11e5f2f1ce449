"""Time-domain statistics of peripheral physiological signals (PPS), vectorised over all axes.

DEAP's 8 peripheral channels (hEOG, vEOG, zEMG, tEMG, GSR, respiration, plethysmograph,
temperature; channels 33-40 of the preprocessed data, 128 Hz) times 6 statistics give the
48-d PPS input of the M2S models.

Which statistics
----------------
The exact 6 statistics of Liu et al. 2021 are **unconfirmed** (docs/design/features.md §3, §6): their
methods section and code could not be retrieved. Our documented convention is the six
statistics of Picard et al. 2001 (TPAMI), :data:`PICARD_STATISTICS`. For a window ``x`` of
``T`` samples:

- ``mean``: μ = mean(x)
- ``std``: σ = sqrt(mean((x - μ)²)), the **population** standard deviation (ddof=0, as in
  Picard et al.)
- ``mean_abs_diff1``: δ1 = mean |x[t+1] - x[t]| over the T-1 first differences
- ``norm_mean_abs_diff1``: δ̃1 = δ1 / σ
- ``mean_abs_diff2``: δ2 = mean |x[t+2] - x[t]| over the T-2 second differences
- ``norm_mean_abs_diff2``: δ̃2 = δ2 / σ

The alternative half-remembered from the BCMI papers (docs/design/features.md §3 (b): max, min, mean, std,
variance, squared sum) is available by name: ``min``, ``max``, ``var`` (ddof=0) and ``sum_sq``
(Σ x²). Every name is listed in :data:`PPS_STATISTICS`.

A constant channel (σ = 0) gives ``norm_mean_abs_diff1 = norm_mean_abs_diff2 = 0`` (its
differences are 0 too), never NaN or inf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._checks import check_array, check_n_samples, check_option, check_type

PPS_STATISTICS: dict[str, str] = {
    "mean": "mean of the window, mean(x)",
    "std": "population standard deviation (ddof=0)",
    "mean_abs_diff1": "mean absolute first difference, mean|x[t+1] - x[t]|",
    "norm_mean_abs_diff1": "mean_abs_diff1 / std (0 for a constant window)",
    "mean_abs_diff2": "mean absolute second difference, mean|x[t+2] - x[t]|",
    "norm_mean_abs_diff2": "mean_abs_diff2 / std (0 for a constant window)",
    "min": "minimum of the window",
    "max": "maximum of the window",
    "var": "population variance (ddof=0)",
    "sum_sq": "sum of squares, sum(x**2)",
}

PICARD_STATISTICS: tuple[str, ...] = (
    "mean",
    "std",
    "mean_abs_diff1",
    "norm_mean_abs_diff1",
    "mean_abs_diff2",
    "norm_mean_abs_diff2",
)

_MIN_SAMPLES = 3  # mean_abs_diff2 needs x[t+2]


def pps_statistics(windows, statistics: Sequence[str] = PICARD_STATISTICS) -> np.ndarray:
    """Per-channel time-domain statistics of peripheral-signal windows.

    Parameters
    ----------
    windows : array, shape (..., n_channels, n_times)
        Signal windows, time last; leading axes (windows, trials) are kept. Any unit: each
        statistic keeps the unit of the signal (``var`` and ``sum_sq`` its square), except the
        normalised differences, which are unitless.
    statistics : sequence of str
        Names from :data:`PPS_STATISTICS`, in output order, without repeats. Defaults to
        :data:`PICARD_STATISTICS` (Picard et al. 2001, our documented convention; see the
        module docstring).

    Returns
    -------
    features : array, shape (..., n_channels, n_statistics)
        Channel-major: flattening the last two axes gives index
        ``channel * n_statistics + statistic`` (8 DEAP channels × 6 → 48 features).

    Notes
    -----
    Standard deviation and variance are population values (ddof=0). A constant channel gives
    0 for the normalised differences. Fully vectorised; the input is never modified.
    """
    statistics = _check_statistics(statistics)
    x = check_array(windows, "windows", min_ndim=2)
    check_n_samples(x.shape[-1], _MIN_SAMPLES, "windows", what="the second-difference statistics")
    return _pps_statistics(x, statistics)


def _check_statistics(statistics) -> tuple[str, ...]:
    if isinstance(statistics, str):
        raise TypeError(
            f"statistics must be a sequence of names, got the string {statistics!r}; "
            f"pass a tuple such as ({statistics!r},)."
        )
    check_type(statistics, (list, tuple), "statistics")
    if len(statistics) == 0:
        raise ValueError("statistics is empty; name at least one of " + ", ".join(PPS_STATISTICS) + ".")
    for name in statistics:
        check_option("statistics", name, PPS_STATISTICS)
    duplicates = sorted({s for s in statistics if statistics.count(s) > 1})
    if duplicates:
        raise ValueError(f"statistics lists {duplicates} more than once; name each statistic once.")
    return tuple(statistics)


class _Cache:
    """Lazily computed intermediates shared by several statistics of one call."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._values: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = _STAT_FUNCS[name](self)
        return self._values[name]


def _normalised(delta: np.ndarray, std: np.ndarray) -> np.ndarray:
    # σ = 0 only for a constant window, whose differences are 0 too: report 0, not NaN.
    return np.divide(delta, std, out=np.zeros_like(delta), where=std > 0)


_STAT_FUNCS: dict[str, Callable[[_Cache], np.ndarray]] = {
    "mean": lambda c: c.x.mean(axis=-1),
    "std": lambda c: c.x.std(axis=-1),
    "var": lambda c: c.x.var(axis=-1),
    "min": lambda c: c.x.min(axis=-1),
    "max": lambda c: c.x.max(axis=-1),
    "sum_sq": lambda c: np.einsum("...t,...t->...", c.x, c.x),
    "mean_abs_diff1": lambda c: np.abs(np.diff(c.x, axis=-1)).mean(axis=-1),
    "mean_abs_diff2": lambda c: np.abs(c.x[..., 2:] - c.x[..., :-2]).mean(axis=-1),
    "norm_mean_abs_diff1": lambda c: _normalised(c.get("mean_abs_diff1"), c.get("std")),
    "norm_mean_abs_diff2": lambda c: _normalised(c.get("mean_abs_diff2"), c.get("std")),
}


def _pps_statistics(x: np.ndarray, statistics: tuple[str, ...]) -> np.ndarray:
    """Statistics of validated input (no checks)."""
    cache = _Cache(x)
    return np.stack([cache.get(name) for name in statistics], axis=-1)
