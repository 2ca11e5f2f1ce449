"""Feature normalisation: per-feature z-scoring, and the one function that computes its statistics.

Statistics are computed in one place, :class:`FeatureStatistics`, whatever the vectors are: the
training trials of a split (offline) and, by design, a participant's calibration data (live, accumulated chunk by
chunk). :func:`fit_normalisation` is the batch front end of the same accumulator. Rules:

- a vector with any NaN or inf entry is skipped: such vectors never reach a model (the feature
  pipeline drops them, offline and live), so they must not shape its inputs either;
- the statistics are over every remaining vector (a long trial weighs more, as the authors'
  ``StandardScaler`` on concatenated windows), population std (ddof 0), accumulated in float64
  with Chan et al.'s pairwise update, so the order in which batches arrive changes nothing beyond
  rounding;
- a feature whose std is below ``min_std`` (default :data:`MIN_STD` = 1e-6, in feature units) gets
  std 1, as scikit-learn's ``StandardScaler`` does for constant features: it is centred but not
  scaled, since dividing by a tiny std would turn any change at test time (a channel that was flat
  in training) into a huge input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ._checks import check_array, check_range

#: Standard deviations below this (in feature units) are replaced by 1.
MIN_STD: float = 1e-6


class Normalisation(BaseModel):
    """Per-feature z-scoring ``(x - mean) / std`` fitted on training data; in every bundle manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: tuple[float, ...] = Field(min_length=1, description="Mean of each of the D features.")
    std: tuple[float, ...] = Field(
        min_length=1, description="Standard deviation of each feature; finite and > 0 (floored at min_std)."
    )
    _mean: np.ndarray = PrivateAttr()
    _std: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _consistent(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}.")
        if not all(math.isfinite(v) for v in self.mean + self.std):
            raise ValueError("mean and std must be finite numbers.")
        if any(s <= 0 for s in self.std):
            raise ValueError("every std must be > 0 (the training normaliser floors it).")
        return self

    def model_post_init(self, _context) -> None:
        mean, std = np.array(self.mean, dtype=np.float64), np.array(self.std, dtype=np.float64)
        mean.setflags(write=False)
        std.setflags(write=False)
        self._mean, self._std = mean, std

    @property
    def dim(self) -> int:
        """D, the length of the vectors this normalises."""
        return len(self.mean)

    @property
    def mean_array(self) -> np.ndarray:
        """``mean`` as a read-only float64 array, shape (D,)."""
        return self._mean

    @property
    def std_array(self) -> np.ndarray:
        """``std`` as a read-only float64 array, shape (D,)."""
        return self._std

    def apply(self, x) -> np.ndarray:
        """Normalise feature vectors.

        Parameters
        ----------
        x : array, shape (..., D)
            Feature vectors, last axis the D features (not modified).

        Returns
        -------
        array of float32, shape (..., D)
        """
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"features must have shape (..., {self.dim}), got shape {x.shape}.")
        return ((x - self._mean) / self._std).astype(np.float32)

    @classmethod
    def identity(cls, dim: int) -> Normalisation:
        """Mean 0, std 1: leaves vectors as they are (until statistics exist)."""
        return cls(mean=(0.0,) * dim, std=(1.0,) * dim)


class FeatureStatistics:
    """Running mean and variance of feature vectors, batch by batch; the one source of :class:`Normalisation`.

    Parameters
    ----------
    dim : int
        D, the length of the vectors.

    Attributes
    ----------
    n_vectors : int
        Finite vectors accumulated.
    n_skipped : int
        Vectors skipped because an entry was NaN or inf.
    """

    def __init__(self, dim: int):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}.")
        self.dim = int(dim)
        self.n_vectors = 0
        self.n_skipped = 0
        self._mean = np.zeros(self.dim)
        self._m2 = np.zeros(self.dim)  # sum of squared deviations from the mean

    def update(self, vectors) -> FeatureStatistics:
        """Add feature vectors ``(n, D)`` (rows with a NaN/inf entry are skipped); returns self."""
        if np.ndim(vectors) == 2 and np.shape(vectors)[0] == 0 and np.shape(vectors)[1] == self.dim:
            return self  # no vectors (a trial shorter than one window)
        x = check_array(vectors, "vectors", ndim=2, layout="(n_vectors, D)", allow_nonfinite=True)
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors must have D={self.dim} columns, got shape {x.shape}.")
        finite = np.isfinite(x).all(axis=1)
        self.n_skipped += int(x.shape[0] - np.count_nonzero(finite))
        x = x[finite] if not finite.all() else x
        n_b = x.shape[0]
        if n_b == 0:
            return self
        x = x.astype(np.float64, copy=False)
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n_a = self.n_vectors
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + delta**2 * (n_a * n_b / n)
        self.n_vectors = n
        return self

    def normalisation(self, min_std: float = MIN_STD) -> Normalisation:
        """The z-scoring of the vectors so far (std floored at ``min_std``, see the module notes).

        Raises
        ------
        ValueError
            No finite vector has been accumulated.
        """
        check_range(min_std, "min_std", low=0, low_inclusive=False)
        if self.n_vectors == 0:
            extra = f" ({self.n_skipped} had NaN or inf entries)" if self.n_skipped else ""
            raise ValueError(
                f"cannot compute normalisation statistics from zero finite feature vectors{extra}; "
                "give data with at least one complete, finite feature window."
            )
        sd = np.sqrt(self._m2 / self.n_vectors)
        std = np.where(sd < min_std, 1.0, sd)
        return Normalisation(mean=tuple(self._mean.tolist()), std=tuple(std.tolist()))


def fit_normalisation(
    vector_sets: Iterable, *, dim: int | None = None, min_std: float = MIN_STD
) -> Normalisation:
    """Normalisation statistics over every finite vector of ``vector_sets``.

    Parameters
    ----------
    vector_sets : iterable of array, shape (n_i, D)
        Feature vectors, e.g. one array per training trial.
    dim : int | None
        D; None takes it from the first array (then ``vector_sets`` must not be empty).
    min_std : float
        Std floor, see the module notes.

    Returns
    -------
    Normalisation
    """
    stats = None if dim is None else FeatureStatistics(dim)
    for vectors in vector_sets:
        if stats is None:
            stats = FeatureStatistics(np.shape(vectors)[-1])
        stats.update(vectors)
    if stats is None:
        raise ValueError("cannot compute normalisation statistics from no feature vectors at all.")
    return stats.normalisation(min_std)


__all__ = ["MIN_STD", "FeatureStatistics", "Normalisation", "fit_normalisation"]
