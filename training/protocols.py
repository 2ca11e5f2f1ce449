"""Evaluation protocols: what to predict, whole-trial splits, training-only normalisation and windows.

Everything that decides which data a model may see lives here, and leakage is ruled out by
construction:

- splits are made of whole trials, and a :class:`Split` refuses a trial that appears in two of its
  parts (train, validation, test);
- the validation trials are carved from the training trials, never from the test trials;
- a :class:`Split` fits its own :class:`Normaliser` on its training trials (validation trials
  removed), so neither validation nor test vectors can reach the statistics;
- :func:`make_windows` cuts windows of T consecutive feature vectors inside each trial, never across
  a trial boundary, even when neighbouring trials share a label (the authors' code only compares
  the labels at both ends of a window, so its windows can join two trials).

Subject-dependent protocols (paper, "Datasets and Experimental Details"; ``M2S-SPEC.md`` §6):

=========  ==================  ===========================================================
dataset    protocol            meaning
=========  ==================  ===========================================================
seed       ``first_k:9``       per subject and session: trials 1-9 train, 10-15 test (9:6)
seed_iv    ``first_k:16``      per subject and session: trials 1-16 train, 17-24 test (16:8)
seed_v     ``first_k:10``      per subject and session: trials 1-10 train, 11-15 test (10:5)
deap       ``kfold:4``         per subject: 4 contiguous folds of 10 trials (3:1)
dreamer    ``kfold:3``         per subject: 3 contiguous folds of 6 clips (2:1)
synthetic  ``fraction:0.6``    per subject and session: first 60 % of the trials train
recording  ``fraction:0.6``    per subject and session: first 60 % of the trials train
=========  ==================  ===========================================================

No torch here: numpy only, so the split logic can be reused by anything (and tested fast).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from signals._checks import check_option, check_range, check_type, ensure_int
from signals.normalisation import MIN_STD, Normalisation, fit_normalisation
from signals.pipeline import cut_windows, window_ends
from training.datasets.base import DatasetError, EmotionDataset, Trial

logger = logging.getLogger(__name__)

#: Subject-dependent protocol used for each dataset kind when none is given.
DEFAULT_PROTOCOLS: dict[str, str] = {
    "seed": "first_k:9",
    "seed_iv": "first_k:16",
    "seed_v": "first_k:10",
    "deap": "kfold:4",
    "dreamer": "kfold:3",
    "synthetic": "fraction:0.6",
    "recording": "fraction:0.6",
}

#: Rating tasks the datasets know (DEAP has all four, DREAMER the first three).
RATING_TASKS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")

_PROTOCOL_RE = re.compile(r"^(first_k|kfold|fraction):(.+)$")


# --------------------------------------------------------------------------------------------------
# Task: what to predict
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Normaliser: z-scoring fitted on training trials only
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Normaliser:
    """Per-modality z-scoring, ``(x - mean) / std``, with statistics from training trials only.

    Build it with :meth:`fit`; :class:`Split` does so on its training trials. The statistics come
    from :func:`signals.normalisation.fit_normalisation`, the one function that computes them (a
    participant's live calibration uses it too): over every finite feature vector of every training
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
            try:  # the one statistics function, shared with a participant's live calibration
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


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Split:
    """One train/validation/test partition of whole trials, with its training-only normaliser.

    Attributes
    ----------
    name : str
        E.g. 'subject=3/session=1', 'subject=s01/fold=2', 'loso/test=5'.
    subject : str
        The subject evaluated (the test subject in leave-one-subject-out).
    train : tuple of Trial
        Trials the model is fitted on (validation trials removed).
    val : tuple of Trial
        Whole trials carved from the training trials, for model selection and early stopping.
    test : tuple of Trial
        Trials reported once, never used for any choice.
    task : Task
    protocol : str
        The protocol that produced the split (e.g. 'first_k:9', 'loso').
    notes : tuple of str
        Caveats found while splitting (e.g. a class left out of validation).
    normaliser : Normaliser
        Fitted here, on ``train`` only (not a constructor argument, so it cannot come from
        anywhere else).
    """

    name: str
    subject: str
    train: tuple[Trial, ...]
    val: tuple[Trial, ...]
    test: tuple[Trial, ...]
    task: Task
    protocol: str = ""
    notes: tuple[str, ...] = ()
    normaliser: Normaliser = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        parts = {"train": self.train, "val": self.val, "test": self.test}
        for part, trials in parts.items():
            object.__setattr__(self, part, tuple(trials))
        if not self.train:
            raise ValueError(f"split {self.name!r} has no training trials.")
        if not self.test:
            raise ValueError(f"split {self.name!r} has no test trials.")
        keys = {part: {t.key for t in getattr(self, part)} for part in parts}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = keys[a] & keys[b]
            if shared:
                raise ValueError(
                    f"split {self.name!r}: trial(s) {sorted(shared)[:3]} are in both {a} and {b}; "
                    "every trial must belong to exactly one part."
                )
        object.__setattr__(self, "normaliser", Normaliser.fit(self.train))

    def windows(
        self, part: str, seq_len: int, *, modalities: Sequence[str] | None = None, stride: int = 1
    ) -> Windows:
        """Windows of one part ('train', 'val' or 'test'), normalised with the training statistics."""
        check_option("part", part, ("train", "val", "test"))
        return make_windows(
            getattr(self, part),
            self.task,
            seq_len,
            normaliser=self.normaliser,
            modalities=modalities,
            stride=stride,
        )


def _parse_protocol(protocol: str | None, dataset_name: str) -> tuple[str, str, float]:
    """(canonical string, kind, value) of a protocol given by name, 'kind:value' or None."""
    if protocol is None:
        if dataset_name not in DEFAULT_PROTOCOLS:
            raise ValueError(
                f"no default protocol for dataset kind {dataset_name!r}; pass protocol= as "
                f"'first_k:K', 'fraction:F', 'kfold:K' or one of {sorted(DEFAULT_PROTOCOLS)}."
            )
        protocol = DEFAULT_PROTOCOLS[dataset_name]
    check_type(protocol, str, "protocol")
    protocol = DEFAULT_PROTOCOLS.get(protocol, protocol)
    match = _PROTOCOL_RE.match(protocol)
    if match is None:
        raise ValueError(
            f"Invalid protocol {protocol!r}. Use 'first_k:K' (first K trials of each session train), "
            "'fraction:F' (first fraction F of each session train), 'kfold:K' (K contiguous folds per "
            f"subject) or a dataset name ({', '.join(DEFAULT_PROTOCOLS)})."
        )
    kind, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"protocol {protocol!r}: {raw!r} is not a number.") from None
    if kind == "fraction":
        if not 0 < value < 1:
            raise ValueError(f"protocol {protocol!r}: the fraction must lie in (0, 1), got {value}.")
    elif value != int(value) or value < 1 or (kind == "kfold" and value < 2):
        low = 2 if kind == "kfold" else 1
        raise ValueError(f"protocol {protocol!r}: K must be an integer >= {low}, got {raw}.")
    return protocol, kind, value


def _check_selection(val_per_class: int, val_selection: str, seed: int) -> tuple[int, np.random.Generator]:
    val_per_class = ensure_int(val_per_class, "val_per_class")
    if val_per_class < 0:
        raise ValueError(f"val_per_class must be >= 0, got {val_per_class}.")
    check_option("val_selection", val_selection, ("last", "random"))
    seed = ensure_int(seed, "seed")
    return val_per_class, np.random.default_rng(seed)


def _carve_validation(
    train: list[Trial],
    task: Task,
    val_per_class: int,
    val_selection: str,
    rng: np.random.Generator,
    where: str,
) -> tuple[list[Trial], list[Trial], list[str]]:
    """Move ``val_per_class`` whole trials of each class from ``train`` to validation."""
    labels = task.labels(train)
    notes: list[str] = []
    chosen: set[int] = set()
    for c, class_name in enumerate(task.class_names):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            notes.append(f"{where}: no training trial of class '{class_name}'.")
            continue
        if val_per_class == 0:
            continue
        if idx.size <= val_per_class:
            notes.append(
                f"{where}: class '{class_name}' has only {idx.size} training trial(s); none moved to "
                "validation, which would leave the class without training trials."
            )
            continue
        pick = (
            idx[-val_per_class:] if val_selection == "last" else rng.choice(idx, val_per_class, replace=False)
        )
        chosen.update(int(i) for i in pick)
    kept = [t for i, t in enumerate(train) if i not in chosen]
    val = [t for i, t in enumerate(train) if i in chosen]
    for note in notes:
        logger.warning(note)
    return kept, val, notes


def _select_subjects(dataset: EmotionDataset, subjects: Sequence[str] | None) -> list[str]:
    if subjects is None:
        return dataset.subjects
    subjects = [str(s) for s in subjects]
    unknown = sorted(set(subjects) - set(dataset.subjects))
    if unknown:
        raise ValueError(f"unknown subject(s) {unknown}; the dataset has {dataset.subjects}.")
    return subjects


def _n_first(fraction: float, n: int) -> int:
    """round(fraction * n) (halves up), kept within [1, n - 1] so both sides get a trial."""
    return min(max(math.floor(fraction * n + 0.5), 1), n - 1)


def _ordered(trials: Iterable[Trial]) -> list[Trial]:
    return sorted(trials, key=lambda t: (t.session, t.trial))


def subject_dependent_splits(
    dataset: EmotionDataset,
    task: Task,
    *,
    protocol: str | None = None,
    subjects: Sequence[str] | None = None,
    val_per_class: int = 1,
    val_selection: str = "last",
    seed: int = 0,
) -> list[Split]:
    """Per-subject train/validation/test splits of whole trials, as in the paper.

    Parameters
    ----------
    dataset : EmotionDataset
    task : Task
        From :func:`make_task`.
    protocol : str | None
        None takes :data:`DEFAULT_PROTOCOLS` for ``dataset.name``. Otherwise a dataset name
        (e.g. 'seed_iv') or one of:

        - ``'first_k:K'``: per subject and session, the trials numbered 1..K train, the later ones
          test (by ``Trial.trial``, the presentation order, so a missing trial shifts nothing);
        - ``'fraction:F'``: per subject and session, the first round(F·n) trials train (at least one
          trial on each side), the rest test;
        - ``'kfold:K'``: per subject, the trials in (session, trial) order are cut into K contiguous
          folds (sizes differ by at most one); each fold is the test set once, the others train.
    subjects : sequence of str | None
        Subjects to split (None = all).
    val_per_class : int
        Whole trials of each class moved from the training trials to validation (0 = no
        validation). A class with no more than ``val_per_class`` training trials keeps them all and
        the split records a note (and a warning is logged).
    val_selection : {'last', 'random'}
        'last' takes the last training trials of each class (in presentation order, the closest to
        the test trials); 'random' draws them with ``seed``.
    seed : int
        Seed for ``val_selection='random'``.

    Returns
    -------
    list of Split
        One per subject and session (``first_k``, ``fraction``) or per subject and fold (``kfold``),
        named 'subject=S/session=N' or 'subject=S/fold=K' (1-based).
    """
    check_type(dataset, EmotionDataset, "dataset")
    check_type(task, Task, "task")
    canonical, kind, value = _parse_protocol(protocol, dataset.name)
    val_per_class, rng = _check_selection(val_per_class, val_selection, seed)
    splits: list[Split] = []
    for subject in _select_subjects(dataset, subjects):
        trials = _ordered(dataset.select(subjects=[subject]))
        if kind == "kfold":
            k = int(value)
            if len(trials) < k:
                raise DatasetError(
                    f"subject {subject} has {len(trials)} trial(s); protocol {canonical} needs at least {k}."
                )
            for fold, test_idx in enumerate(np.array_split(np.arange(len(trials)), k), start=1):
                test_set = set(test_idx.tolist())
                test = [t for i, t in enumerate(trials) if i in test_set]
                train = [t for i, t in enumerate(trials) if i not in test_set]
                splits.append(
                    _make_split(
                        f"subject={subject}/fold={fold}",
                        subject,
                        train,
                        test,
                        task,
                        canonical,
                        val_per_class,
                        val_selection,
                        rng,
                    )
                )
            continue
        for session in dataset.sessions(subject):
            in_session = [t for t in trials if t.session == session]
            if kind == "first_k":
                # By trial number, not position: a missing or merged trial must not move a later clip
                # (e.g. SEED clip 10, a test clip in the paper) into training.
                train = [t for t in in_session if t.trial <= value]
                test = [t for t in in_session if t.trial > value]
            else:
                n_train = _n_first(value, len(in_session))
                train, test = in_session[:n_train], in_session[n_train:]
            if not train or not test:
                raise DatasetError(
                    f"subject {subject} session {session} has trials {[t.trial for t in in_session]}; "
                    f"protocol {canonical} leaves no {'test' if train else 'training'} trial."
                )
            splits.append(
                _make_split(
                    f"subject={subject}/session={session}",
                    subject,
                    train,
                    test,
                    task,
                    canonical,
                    val_per_class,
                    val_selection,
                    rng,
                )
            )
    logger.info("%s: %d subject-dependent split(s) with protocol %s", dataset.name, len(splits), canonical)
    return splits


def _make_split(name, subject, train, test, task, protocol, val_per_class, val_selection, rng) -> Split:
    train, val, notes = _carve_validation(train, task, val_per_class, val_selection, rng, name)
    return Split(
        name=name,
        subject=subject,
        train=tuple(train),
        val=tuple(val),
        test=tuple(test),
        task=task,
        protocol=protocol,
        notes=tuple(notes),
    )


def cross_subject_splits(
    dataset: EmotionDataset,
    task: Task,
    *,
    subjects: Sequence[str] | None = None,
    sessions: Sequence[int] | None = None,
    val: str = "trials",
    val_per_class: int = 1,
    val_selection: str = "last",
    seed: int = 0,
) -> list[Split]:
    """Leave-one-subject-out splits: each subject is the test set once, the others train.

    Parameters
    ----------
    dataset : EmotionDataset
    task : Task
    subjects : sequence of str | None
        Subjects taking part (None = all), e.g. the 12 SEED subjects with eye data.
    sessions : sequence of int | None
        Sessions used (None = all; the authors' SEED cross-subject run uses session 1).
    val : {'trials', 'subject'}
        'trials': ``val_per_class`` whole trials of each class from **each** training subject
        (chosen as in :func:`subject_dependent_splits`); 'subject': one whole training subject,
        drawn with ``seed``, is the validation set.
    val_per_class, val_selection, seed
        As in :func:`subject_dependent_splits` (``seed`` also draws the validation subject).

    Returns
    -------
    list of Split
        Named 'loso/test=S'.
    """
    check_type(dataset, EmotionDataset, "dataset")
    check_type(task, Task, "task")
    check_option("val", val, ("trials", "subject"))
    val_per_class, rng = _check_selection(val_per_class, val_selection, seed)
    chosen = _select_subjects(dataset, subjects)
    minimum = 3 if val == "subject" else 2
    if len(chosen) < minimum:
        raise ValueError(
            f"leave-one-subject-out with val={val!r} needs at least {minimum} subjects, got {len(chosen)}."
        )
    if sessions is not None:
        sessions = [ensure_int(s, "each session") for s in sessions]
    trials = {s: _ordered(dataset.select(subjects=[s], sessions=sessions)) for s in chosen}
    empty = [s for s, ts in trials.items() if not ts]
    if empty:
        raise DatasetError(f"subject(s) {empty} have no trials in sessions {sessions}.")
    splits = []
    for test_subject in chosen:
        others = [s for s in chosen if s != test_subject]
        name = f"loso/test={test_subject}"
        if val == "subject":
            val_subject = others[int(rng.integers(len(others)))]
            train = [t for s in others if s != val_subject for t in trials[s]]
            val_trials, notes = trials[val_subject], [f"{name}: validation subject {val_subject}."]
        else:
            train, val_trials, notes = [], [], []
            for s in others:
                kept, carved, n = _carve_validation(
                    trials[s], task, val_per_class, val_selection, rng, f"{name}/subject={s}"
                )
                train += kept
                val_trials += carved
                notes += n
        splits.append(
            Split(
                name=name,
                subject=test_subject,
                train=tuple(train),
                val=tuple(val_trials),
                test=tuple(trials[test_subject]),
                task=task,
                protocol=f"loso/val={val}",
                notes=tuple(notes),
            )
        )
    logger.info("%s: %d leave-one-subject-out split(s)", dataset.name, len(splits))
    return splits


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Windows:
    """Samples of T consecutive, normalised feature vectors, each inside one trial.

    Attributes
    ----------
    x : dict of str to array of float32, shape (N, T, D)
        Normalised windows per modality; window ``i`` of every modality covers the same positions
        of the same trial (paired).
    y : array of int64, shape (N,)
        Class index of each window (its trial's class).
    trial_keys : list of tuple
        (subject, session, trial) of each window, N entries.
    starts : array of int64, shape (N,)
        Index of the window's first feature vector within its trial.
    seq_len : int
        T.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    trial_keys: list[tuple[str, int, int]]
    starts: np.ndarray
    seq_len: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def make_windows(
    trials: Sequence[Trial],
    task: Task,
    seq_len: int,
    *,
    normaliser: Normaliser,
    modalities: Sequence[str] | None = None,
    stride: int = 1,
) -> Windows:
    """Cut windows of ``seq_len`` consecutive feature vectors inside each trial.

    A window never crosses a trial boundary: trials are cut one at a time. Inside a trial the
    windows follow the live feature pipeline's rule (:func:`signals.pipeline.window_ends`): never
    across a segment edge (``Trial.segments``: a gap in the recording) nor over a vector with a NaN
    or inf entry in any modality. Every modality is cut at the same positions, so the windows are
    paired across modalities. A trial with no such run of ``seq_len`` vectors contributes nothing
    (logged as a warning).

    Parameters
    ----------
    trials : sequence of Trial
    task : Task
        Gives each window its class (that of its trial).
    seq_len : int
        T, the number of consecutive feature vectors per window (5 in the paper).
    normaliser : Normaliser
        Statistics fitted on the training trials (e.g. ``Split.normaliser``).
    modalities : sequence of str | None
        Modalities to cut (None = all the normaliser's).
    stride : int
        Step between window starts, in feature vectors (1 = every position, as the paper).

    Returns
    -------
    Windows
        With ``sum(max(0, (W - T) // stride + 1))`` windows over the trials' lengths W when the
        trials are gap-free and finite.
    """
    check_type(task, Task, "task")
    check_type(normaliser, Normaliser, "normaliser")
    seq_len = ensure_int(seq_len, "seq_len")
    stride = ensure_int(stride, "stride")
    if seq_len < 1 or stride < 1:
        raise ValueError(f"seq_len and stride must be >= 1, got seq_len={seq_len}, stride={stride}.")
    if isinstance(trials, Trial):
        raise TypeError("trials must be a sequence of Trial, got a single Trial; wrap it in a list.")
    trials = list(trials)
    for t in trials:
        check_type(t, Trial, "each trial")
    if modalities is None:
        modalities = normaliser.modalities
    else:
        modalities = tuple(check_type(m, str, "each modality") for m in modalities)
        unknown = [m for m in modalities if m not in normaliser.mean]
        if unknown or not modalities:
            raise ValueError(
                f"modalities {unknown or '[]'} have no normaliser statistics; choose among "
                f"{list(normaliser.modalities)}."
            )
    # First pass: check every trial and find its windows, so each output is allocated once.
    kept, short = [], []
    for t in trials:
        missing = [m for m in modalities if m not in t.features]
        if missing:
            raise ValueError(f"trial {t.key} has no features for {missing}; it has {sorted(t.features)}.")
        # The feature pipeline's rule: never across a segment edge or a non-finite vector of any modality.
        finite = np.logical_and.reduce([np.isfinite(t.features[m]).all(axis=1) for m in modalities])
        ends = window_ends(t.segment_ids, finite, seq_len, stride=stride)
        if ends.size == 0:
            short.append((t.key, t.n_windows))
        else:
            kept.append((t, ends))
    if short:
        logger.warning(
            "%d of %d trial(s) have no run of seq_len=%d finite feature vectors in one segment and give no "
            "window: %s",
            len(short),
            len(trials),
            seq_len,
            ", ".join(f"{k} (W={w})" for k, w in short[:5]),
        )
    n_total = sum(len(e) for _, e in kept)
    x = {m: np.empty((n_total, seq_len, normaliser.mean[m].shape[0]), np.float32) for m in modalities}
    y = np.empty(n_total, np.int64)
    keys: list[tuple[str, int, int]] = []
    at = 0
    for t, ends in kept:
        n = len(ends)
        y[at : at + n] = task.label(t)
        for m in modalities:
            x[m][at : at + n] = cut_windows(normaliser.apply(m, t.features[m]), ends, seq_len)
        keys += [t.key] * n
        at += n
    starts_arr = np.concatenate([e - (seq_len - 1) for _, e in kept]) if kept else np.zeros(0, np.int64)
    return Windows(x=x, y=y, trial_keys=keys, starts=starts_arr, seq_len=seq_len)


__all__ = [
    "DEFAULT_PROTOCOLS",
    "MIN_STD",
    "RATING_TASKS",
    "Normaliser",
    "Split",
    "Task",
    "Windows",
    "cross_subject_splits",
    "make_task",
    "make_windows",
    "subject_dependent_splits",
]
