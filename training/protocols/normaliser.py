"""Per-modality z-scoring fitted on training trials only (statistics: :mod:`signals.normalisation`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from signals._checks import check_range, check_type
from signals.normalisation import MIN_STD, Normalisation, fit_normalisation
from training.datasets.base import Trial

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Normaliser:
    """Per-modality z-scoring, ``(x - mean) / std``, with statistics from training trials only.

    Build it with :meth:`fit`; :class:`Split` does so on its training trials. The statistics come
    from :func:`signals.normalisation.fit_normalisation`, the one function that computes them (a
    participant's live calibration is to use it too): over every finite feature vector of every training
    trial (a long trial weighs more, as in the authors' ``StandardScaler`` on concatenated windows),
    with the population std (ddof 0); vectors with a NaN or inf entry are skipped, as they never
    reach a model.

    Attributes
    ----------
    mean : dict of str to array, shape (D,)
        Mean of each feature, float64, per modality.
    std : dict of str to array, shape (D,)
        Standard deviation of each feature, float64, per modality; entries that were below
        ``min_std`` are 1 (see Notes).
    n_vectors : int
        Number of feature vectors of the trials the statistics were computed from.
    min_std : float
        The std floor used when fitting.

    Notes
    -----
    Std floor: a feature whose training std is below ``min_std`` (default :data:`MIN_STD` = 1e-6,
    in feature units) gets std 1, as scikit-learn's ``StandardScaler`` does for constant
    features. Such a feature is centred but not scaled; dividing by a tiny std instead would turn
    any change at test time (a channel that was flat in training) into a huge input.
    """

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    n_vectors: int
    min_std: float = MIN_STD

    def __post_init__(self):
        if set(self.mean) != set(self.std):
            raise ValueError(
                f"mean and std must cover the same modalities, got {sorted(self.mean)} and {sorted(self.std)}."
            )
        norms = {}
        for m in self.mean:
            mean, std = np.asarray(self.mean[m], dtype=np.float64), np.asarray(self.std[m], dtype=np.float64)
            if mean.ndim != 1 or mean.shape != std.shape:
                raise ValueError(
                    f"modality '{m}': mean and std must both have shape (D,), got {mean.shape} and {std.shape}."
                )
            try:
                norms[m] = Normalisation(mean=tuple(mean.tolist()), std=tuple(std.tolist()))
            except ValueError:
                raise ValueError(f"modality '{m}': mean must be finite and std finite and > 0.") from None
        # Own read-only copies: the caller's dicts and arrays stay untouched and cannot alter us later.
        object.__setattr__(self, "_norms", norms)
        object.__setattr__(self, "mean", {m: n.mean_array for m, n in norms.items()})
        object.__setattr__(self, "std", {m: n.std_array for m, n in norms.items()})

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities the normaliser knows."""
        return tuple(self.mean)

    @classmethod
    def fit(
        cls, trials: Sequence[Trial], *, modalities: Sequence[str] | None = None, min_std: float = MIN_STD
    ) -> Normaliser:
        """Fit mean and std per modality over every feature vector of ``trials``.

        Parameters
        ----------
        trials : sequence of Trial
            The training trials (never validation or test trials).
        modalities : sequence of str | None
            Modalities to fit; None = those of the first trial.
        min_std : float
            Std floor, see the class Notes.

        Returns
        -------
        Normaliser
        """
        trials = list(trials)
        for t in trials:
            check_type(t, Trial, "each trial")
        check_range(min_std, "min_std", low=0, low_inclusive=False)
        n_vectors = sum(t.n_windows for t in trials)
        if n_vectors == 0:
            raise ValueError(
                f"cannot fit a normaliser on {len(trials)} trial(s) holding no feature vectors; "
                "the training split is empty."
            )
        if modalities is None:
            modalities = tuple(trials[0].features)
        mean: dict[str, np.ndarray] = {}
        std: dict[str, np.ndarray] = {}
        for m in modalities:
            missing = [t.key for t in trials if m not in t.features]
            if missing:
                raise ValueError(f"modality '{m}' is missing from trial(s) {missing[:3]}; cannot fit it.")
            try:  # the one statistics function (signals.normalisation)
                norm = fit_normalisation((t.features[m] for t in trials), min_std=min_std)
            except ValueError as err:
                raise ValueError(f"modality '{m}' of the training trials: {err}") from None
            mean[m], std[m] = norm.mean_array, norm.std_array
        logger.debug("fitted normaliser on %d trials (%d vectors): %s", len(trials), n_vectors, list(mean))
        return cls(mean=mean, std=std, n_vectors=int(n_vectors), min_std=float(min_std))

    def apply(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Normalise feature vectors of one modality.

        Parameters
        ----------
        modality : str
        x : array, shape (..., D)
            Feature vectors, last axis the D features (not modified).

        Returns
        -------
        array of float32, shape (..., D)
        """
        return self.normalisation(modality).apply(x)

    def normalisation(self, modality: str) -> Normalisation:
        """The statistics of one modality as the :class:`~signals.normalisation.Normalisation` a bundle carries."""
        if modality not in self.mean:
            raise ValueError(
                f"the normaliser has no statistics for '{modality}'; it knows {list(self.mean)}."
            )
        return self._norms[modality]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with plain lists (travels in a model bundle manifest)."""
        return {
            "modalities": {
                m: {"mean": self.mean[m].tolist(), "std": self.std[m].tolist()} for m in self.mean
            },
            "n_vectors": self.n_vectors,
            "min_std": self.min_std,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Normaliser:
        """Inverse of :meth:`to_dict`; checks shapes and values."""
        check_type(obj, dict, "obj")
        if "modalities" not in obj or not isinstance(obj["modalities"], dict):
            raise ValueError(
                "a normaliser dict needs 'modalities': {name: {'mean': [...], 'std': [...]}}; "
                f"got keys {sorted(obj)}."
            )
        mean, std = {}, {}
        for m, stats in obj["modalities"].items():
            if not isinstance(stats, dict) or {"mean", "std"} - set(stats):
                raise ValueError(f"modality '{m}' needs 'mean' and 'std' lists.")
            mean[m] = np.asarray(stats["mean"], dtype=np.float64)
            std[m] = np.asarray(stats["std"], dtype=np.float64)
        return cls(
            mean=mean,
            std=std,
            n_vectors=int(obj.get("n_vectors", 0)),
            min_std=float(obj.get("min_std", MIN_STD)),
        )
