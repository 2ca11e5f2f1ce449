"""Input validation with actionable messages, shared by every public ``signals`` function.

Message formats follow MNE's ``mne/utils/check.py``: name the parameter, say what is allowed,
say what was received. Public functions call these on their first lines; private helpers
assume valid input.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable
from typing import Any

import numpy as np


def check_type(item: Any, types: type | tuple[type, ...], name: str) -> Any:
    """Return ``item`` if it is an instance of ``types``, else raise TypeError."""
    if not isinstance(item, types):
        allowed = types if isinstance(types, tuple) else (types,)
        names = ", ".join(t.__name__ for t in allowed)
        raise TypeError(f"{name} must be an instance of {names}, got {type(item).__name__} instead.")
    return item


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError listing the options."""
    allowed = tuple(allowed)
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"Invalid value for the '{name}' parameter. Allowed values are {options}, "
            f"but got {value!r} instead."
        )
    return value


def ensure_int(item: Any, name: str) -> int:
    """Return ``item`` as an int; refuse bool and non-integral numbers with TypeError."""
    if isinstance(item, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {type(item).__name__} instead.")
    if not isinstance(item, (numbers.Integral, np.integer)):
        try:
            item = operator.index(item)
        except TypeError:
            raise TypeError(f"{name} must be an int, got {type(item).__name__} instead.") from None
    return int(item)


def check_range(
    value: float,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    unit: str = "",
) -> float:
    """Return ``value`` if it is a finite number inside the bounds, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} instead.")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    unit = f" {unit}" if unit else ""
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}{unit}, got {value}{unit}.")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {op} {high}{unit}, got {value}{unit}.")
    return value


def check_array(
    x: Any,
    name: str,
    *,
    min_ndim: int = 1,
    ndim: int | None = None,
    layout: str = "(..., n_channels, n_times)",
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Return ``x`` as a float64 ndarray after checking dimensions and finiteness.

    The array is converted, never modified in place. ``layout`` is quoted in the error
    message so the caller knows which axis order is expected.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, shape {layout}, got {type(x).__name__}.")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be an array of numbers, shape {layout}; it could not be converted "
            f"to float64 ({err})."
        ) from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout} ({ndim}-D), got shape {arr.shape}.")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have shape {layout} (at least {min_ndim}-D), got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); it must hold at least one sample.")
    if not allow_nonfinite and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s). Remove or interpolate them "
            "before computing features (the streaming extractors treat them as a gap)."
        )
    return arr


def check_sfreq(sfreq: Any, name: str = "sfreq") -> float:
    """Return a positive, finite sampling frequency in Hz."""
    return float(check_range(sfreq, name, low=0, low_inclusive=False, unit="Hz"))


def check_n_samples(n_times: int, needed: int, name: str, *, what: str) -> None:
    """Raise ValueError when fewer than ``needed`` samples are available for ``what``."""
    if n_times < needed:
        raise ValueError(
            f"{name} has {n_times} samples along its last axis, but {what} needs at least "
            f"{needed}. Pass a longer signal or shorten the window."
        )
