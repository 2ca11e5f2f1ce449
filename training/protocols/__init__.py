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

Subject-dependent protocols (paper, "Datasets and Experimental Details"; ``docs/design/M2S-SPEC.md`` §6):

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

Modules: :mod:`~training.protocols.tasks` (what to predict), :mod:`~training.protocols.normaliser`
(training-only statistics), :mod:`~training.protocols.splits` (whole-trial splits) and
:mod:`~training.protocols.windows` (windows inside trials).
"""

from signals.normalisation import MIN_STD

from .normaliser import Normaliser
from .splits import DEFAULT_PROTOCOLS, Split, cross_subject_splits, subject_dependent_splits
from .tasks import RATING_TASKS, Task, make_task
from .windows import Windows, make_windows

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
