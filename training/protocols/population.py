"""The population regime: leave-one-subject-out folds with a calibration block for the target.

A lab meets a new person every day (``docs/design/CALIBRATION.md`` §1). Per target subject a
:class:`PopulationFold` says which data each step may see, by construction:

- **pool**: every trial of the *other* subjects. Pretraining (paired, labels unused), population
  heads (k = 0) and settings fixed on other people (nested choices) read only these.
- **calibration**: the target's calibration candidates in recording order: the training trials of
  its first protocol split (for ``kfold`` protocols the split whose test fold is the last one, so
  calibration comes first, as in a lab). :meth:`PopulationFold.calibration_trials` gives the first k
  trials per class.
- **test**: the target's remaining trials of that split, used once for the numbers reported.

Per-participant normalisation: each subject is z-scored with statistics of its own data that the
protocol allows (:meth:`PopulationFold.subject_normaliser`): a pool subject with all its trials, the
target with its calibration trials only (:meth:`PopulationFold.target_normaliser`). The statistics
come from :func:`signals.normalisation.fit_normalisation` through :class:`Normaliser`, the same
function the live service uses for a participant's calibration session.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from signals._checks import check_type
from training.datasets.base import EmotionDataset, Trial

from .normaliser import Normaliser
from .splits import _ordered, _parse_protocol, _select_subjects, subject_dependent_splits
from .tasks import Task
from .windows import Windows, make_windows

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SubjectWindows:
    """Windows of several subjects, each normalised with its own statistics.

    Attributes
    ----------
    windows : Windows
        Concatenated over subjects (``x``, ``y``, ``trial_keys``).
    subjects : array of str, shape (N,)
        The subject of each window.
    """

    windows: Windows
    subjects: np.ndarray

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def x(self) -> dict[str, np.ndarray]:
        """Windows per modality, (N, T, D)."""
        return self.windows.x

    @property
    def y(self) -> np.ndarray:
        """Class of each window, (N,)."""
        return self.windows.y

    @property
    def trial_ids(self) -> np.ndarray:
        """A hashable id of each window's trial, (N,) of str ('subject/session/trial')."""
        return np.array(["/".join(str(p) for p in k) for k in self.windows.trial_keys], dtype=object)


def concat_windows(parts: Sequence[Windows]) -> Windows:
    """Concatenate windows of the same modalities and T (e.g. of several subjects)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("no windows to concatenate.")
    mods = list(parts[0].x)
    return Windows(
        x={m: np.concatenate([p.x[m] for p in parts]) for m in mods},
        y=np.concatenate([p.y for p in parts]),
        trial_keys=[k for p in parts for k in p.trial_keys],
        starts=np.concatenate([p.starts for p in parts]),
        seq_len=parts[0].seq_len,
    )


def first_trials_per_class(trials: Sequence[Trial], task: Task, k: int | None) -> tuple[Trial, ...]:
    """The first ``k`` trials of each class in recording order (None: all), kept in recording order."""
    ordered = _ordered(trials)
    if k is None:
        return tuple(ordered)
    if k < 0:
        raise ValueError(f"k must be >= 0 or None (all), got {k}.")
    taken: dict[int, int] = {}
    out = []
    for t in ordered:
        c = task.label(t)
        if taken.get(c, 0) < k:
            taken[c] = taken.get(c, 0) + 1
            out.append(t)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class PopulationFold:
    """One target subject: the pool of other subjects, its calibration trials and its test trials.

    The constructor refuses a pool that holds the target, and a trial in two parts.
    """

    target: str
    pool: tuple[Trial, ...]
    calibration: tuple[Trial, ...]
    test: tuple[Trial, ...]
    task: Task
    protocol: str = ""
    _normalisers: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        for part in ("pool", "calibration", "test"):
            object.__setattr__(self, part, tuple(getattr(self, part)))
        if not self.pool or not self.calibration or not self.test:
            raise ValueError(
                f"fold for target {self.target!r} needs pool, calibration and test trials; got "
                f"{len(self.pool)}, {len(self.calibration)} and {len(self.test)}."
            )
        if any(t.subject == self.target for t in self.pool):
            raise ValueError(f"the pool of target {self.target!r} holds the target's own trials.")
        for part in ("calibration", "test"):
            others = {t.subject for t in getattr(self, part)} - {self.target}
            if others:
                raise ValueError(
                    f"{part} trials of target {self.target!r} come from other subjects {others}."
                )
        shared = {t.key for t in self.calibration} & {t.key for t in self.test}
        if shared:
            raise ValueError(f"trial(s) {sorted(shared)[:3]} are both calibration and test trials.")

    @property
    def name(self) -> str:
        """'population/test=S'."""
        return f"population/test={self.target}"

    @property
    def pool_subjects(self) -> list[str]:
        """The other subjects, in first-appearance order."""
        return list(dict.fromkeys(t.subject for t in self.pool))

    def calibration_trials(self, k: int | None) -> tuple[Trial, ...]:
        """The target's first ``k`` calibration trials per class in recording order (None: all)."""
        return first_trials_per_class(self.calibration, self.task, k)

    def subject_normaliser(self, subject: str) -> Normaliser:
        """A pool subject's own statistics, from all its trials."""
        if subject == self.target:
            raise ValueError(
                "the target's statistics come from its calibration trials: target_normaliser(k)."
            )
        if subject not in self._normalisers:
            trials = [t for t in self.pool if t.subject == subject]
            if not trials:
                raise ValueError(f"subject {subject!r} is not in the pool of target {self.target!r}.")
            self._normalisers[subject] = Normaliser.fit(trials)
        return self._normalisers[subject]

    def target_normaliser(self, k: int | None) -> Normaliser:
        """The target's statistics from its calibration trials at ``k`` (k = 0: those of k = 1, labels unused).

        A zero-shot session still records a few minutes of the participant before it predicts; here they
        are the first calibration trial of each class, without their labels.
        """
        return Normaliser.fit(self.calibration_trials(max(k, 1) if k is not None else None))

    def pool_windows(
        self, seq_len: int, *, modalities: Sequence[str] | None = None, stride: int = 1,
        subjects: Sequence[str] | None = None,
    ) -> SubjectWindows:  # fmt: skip
        """Windows of the pool subjects (or ``subjects`` among them), each z-scored with its own statistics."""
        chosen = self.pool_subjects if subjects is None else list(subjects)
        parts, labels = [], []
        for s in chosen:
            trials = [t for t in self.pool if t.subject == s]
            w = make_windows(
                trials, self.task, seq_len, normaliser=self.subject_normaliser(s), modalities=modalities,
                stride=stride,
            )  # fmt: skip
            parts.append(w)
            labels += [s] * len(w)
        return SubjectWindows(concat_windows(parts), np.array(labels, dtype=object))

    def target_windows(
        self, part: str, k: int | None, seq_len: int, *, modalities: Sequence[str] | None = None,
        stride: int = 1,
    ) -> SubjectWindows:  # fmt: skip
        """The target's 'calibration' (first k trials per class) or 'test' windows, normalised with
        :meth:`target_normaliser` ``(k)``."""
        if part not in ("calibration", "test"):
            raise ValueError(f"part must be 'calibration' or 'test', got {part!r}.")
        trials = self.calibration_trials(k) if part == "calibration" else self.test
        w = make_windows(
            trials, self.task, seq_len, normaliser=self.target_normaliser(k), modalities=modalities,
            stride=stride,
        )  # fmt: skip
        return SubjectWindows(w, np.array([self.target] * len(w), dtype=object))


def population_folds(
    dataset: EmotionDataset,
    task: Task,
    *,
    targets: Sequence[str] | None = None,
    protocol: str | None = None,
) -> list[PopulationFold]:
    """One :class:`PopulationFold` per target subject (leave-one-subject-out).

    Parameters
    ----------
    dataset : EmotionDataset
    task : Task
    targets : sequence of str | None
        Target subjects (None = every subject); the pool of each is every other subject.
    protocol : str | None
        The subject-dependent protocol that splits the target's trials into calibration candidates
        (its training trials) and test trials (None: the dataset's default, e.g. 'first_k:16').

    Returns
    -------
    list of PopulationFold
    """
    check_type(dataset, EmotionDataset, "dataset")
    check_type(task, Task, "task")
    canonical, kind, _ = _parse_protocol(protocol, dataset.name)
    targets = _select_subjects(dataset, targets)
    if len(dataset.subjects) < 2:
        raise ValueError(
            f"the population regime needs at least 2 subjects, the dataset has {dataset.subjects}."
        )
    folds = []
    for target in targets:
        splits = subject_dependent_splits(
            dataset, task, protocol=canonical, subjects=[target], val_per_class=0
        )
        split = splits[-1] if kind == "kfold" else splits[0]
        pool = [t for t in _ordered(dataset.trials) if t.subject != target]
        folds.append(
            PopulationFold(
                target=target,
                pool=tuple(pool),
                calibration=split.train,
                test=split.test,
                task=task,
                protocol=f"population ({canonical}, {split.name})",
            )  # fmt: skip
        )
    logger.info("%s: %d population fold(s), protocol %s", dataset.name, len(folds), canonical)
    return folds
