"""Whole-trial train/validation/test splits: subject-dependent protocols and leave-one-subject-out."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from signals._checks import check_option, check_type, ensure_int
from training.datasets.base import DatasetError, EmotionDataset, Trial

from .normaliser import Normaliser
from .tasks import Task
from .windows import Windows, make_windows

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


_PROTOCOL_RE = re.compile(r"^(first_k|kfold|fraction):(.+)$")


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
        self,
        part: str,
        seq_len: int,
        *,
        modalities: Sequence[str] | None = None,
        stride: int = 1,
        normaliser: Normaliser | None = None,
    ) -> Windows:
        """Windows of one part ('train', 'val' or 'test'), normalised with the training statistics.

        ``normaliser`` replaces the statistics refitted on ``train`` (e.g. a run record's recorded
        ones, :class:`training.run_record.RunData`); None uses :attr:`normaliser`.
        """
        check_option("part", part, ("train", "val", "test"))
        return make_windows(
            getattr(self, part),
            self.task,
            seq_len,
            normaliser=self.normaliser if normaliser is None else normaliser,
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
