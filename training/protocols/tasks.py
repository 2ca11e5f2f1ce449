"""What a model predicts for a trial: the dataset's emotion label or a thresholded rating."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from signals._checks import check_range, check_type
from training.datasets.base import DatasetError, EmotionDataset, Trial

logger = logging.getLogger(__name__)

#: Rating tasks the datasets know (DEAP has all four, DREAMER the first three).
RATING_TASKS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")


@dataclass(frozen=True)
class Task:
    """What a model predicts for a trial.

    Attributes
    ----------
    name : str
        'emotion' (the dataset's categorical label) or a rating name ('valence', 'arousal', ...).
    class_names : tuple of str
        Names of the class indices; ``('low', 'high')`` for rating tasks.
    rating : str | None
        The rating a binary task thresholds, None for 'emotion'.
    threshold : float | None
        Ratings strictly greater than this are 'high' (1), the rest 'low' (0); None for 'emotion'.
    """

    name: str
    class_names: tuple[str, ...]
    rating: str | None = None
    threshold: float | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def label(self, trial: Trial) -> int:
        """Class index of one trial.

        Raises
        ------
        DatasetError
            When the trial has no label (emotion task) or lacks the rating (rating task).
        """
        if self.rating is None:
            if trial.label is None:
                raise DatasetError(
                    f"subject {trial.subject} session {trial.session} trial {trial.trial} has no emotion "
                    "label; use a rating task (e.g. make_task(dataset, 'valence')) for this dataset."
                )
            if not 0 <= trial.label < self.n_classes:
                raise DatasetError(
                    f"subject {trial.subject} session {trial.session} trial {trial.trial} has label "
                    f"{trial.label}, outside the {self.n_classes} classes {self.class_names}."
                )
            return int(trial.label)
        if self.rating not in trial.ratings:
            raise DatasetError(
                f"subject {trial.subject} session {trial.session} trial {trial.trial} has no "
                f"'{self.rating}' rating (it has {sorted(trial.ratings) or 'none'})."
            )
        return int(trial.ratings[self.rating] > self.threshold)

    def labels(self, trials: Iterable[Trial]) -> np.ndarray:
        """Class index of each trial, array of int64, shape (n_trials,)."""
        return np.array([self.label(t) for t in trials], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a model bundle manifest)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "rating": self.rating,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Task:
        """Inverse of :meth:`to_dict`."""
        check_type(obj, dict, "obj")
        missing = {"name", "class_names"} - set(obj)
        if missing:
            raise ValueError(f"a task dict needs the keys {sorted(missing)}; got keys {sorted(obj)}.")
        threshold = obj.get("threshold")
        return cls(
            name=str(obj["name"]),
            class_names=tuple(str(c) for c in obj["class_names"]),
            rating=obj.get("rating"),
            threshold=None if threshold is None else float(threshold),
        )


def make_task(dataset: EmotionDataset, name: str = "emotion", threshold: float | None = None) -> Task:
    """Build the prediction task ``name`` for ``dataset``.

    Parameters
    ----------
    dataset : EmotionDataset
    name : str
        'emotion' for the dataset's categorical labels (``Trial.label``, named by
        ``dataset.class_names``), or a rating the dataset has ('valence', 'arousal', 'dominance',
        'liking') for a binary low/high task.
    threshold : float | None
        Rating tasks only. A rating **strictly greater** than the threshold is 'high' (class 1);
        a rating equal to it is 'low' (class 0), the usual convention for DEAP. None takes the
        midpoint of the rating scale, which gives the paper's thresholds: 5 on DEAP's 1-9 scale
        and 3 on DREAMER's 1-5 scale.

    Returns
    -------
    Task

    Raises
    ------
    DatasetError
        When the dataset has no categorical labels (for 'emotion') or not that rating.
    """
    check_type(dataset, EmotionDataset, "dataset")
    check_type(name, str, "name")
    available = (["emotion"] if dataset.class_names is not None else []) + sorted(
        set(dataset.rating_scales) | {r for t in dataset.trials for r in t.ratings}
    )
    if name == "emotion":
        if threshold is not None:
            raise ValueError(
                "threshold applies to rating tasks only; drop it for the 'emotion' task or pick a "
                f"rating task ({', '.join(available[1:]) or 'none in this dataset'})."
            )
        if dataset.class_names is None:
            raise DatasetError(
                f"dataset {dataset.name!r} has no categorical emotion labels; its tasks are "
                f"{', '.join(available) or 'none (no labels, no ratings)'}."
            )
        unlabelled = [t.key for t in dataset.trials if t.label is None]
        if unlabelled:
            raise DatasetError(
                f"dataset {dataset.name!r}: {len(unlabelled)} trial(s) have no emotion label "
                f"(first: {unlabelled[:3]}); drop them or use a rating task."
            )
        return Task(name="emotion", class_names=tuple(dataset.class_names))
    if name not in available:
        raise DatasetError(
            f"dataset {dataset.name!r} has no '{name}' task; its tasks are "
            f"{', '.join(available) or 'none (no labels, no ratings)'}."
        )
    scale = dataset.rating_scales.get(name)
    if threshold is None:
        if scale is None:
            raise DatasetError(
                f"dataset {dataset.name!r} declares no scale for '{name}', so no default threshold; "
                "pass threshold= explicitly."
            )
        threshold = (float(scale[0]) + float(scale[1])) / 2.0
    else:
        threshold = float(check_range(threshold, "threshold"))
        if scale is not None and not scale[0] <= threshold < scale[1]:
            raise ValueError(
                f"threshold must lie in [{scale[0]}, {scale[1]}) for '{name}' rated on "
                f"{scale[0]}-{scale[1]}, got {threshold}; otherwise every trial falls into one class."
            )
    missing = [t.key for t in dataset.trials if name not in t.ratings]
    if missing:
        raise DatasetError(
            f"dataset {dataset.name!r}: {len(missing)} trial(s) have no '{name}' rating "
            f"(first: {missing[:3]})."
        )
    return Task(name=name, class_names=("low", "high"), rating=name, threshold=threshold)
